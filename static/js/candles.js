// The symbols page's candle chart: a symbol's stored candles from /history/chart.json, drawn as SVG (no
// library, nothing from the internet). Candles: [timestamp (Unix s), open, high, low, close, volume]; intraday
// timestamps are shown in the exchange's zone, daily ones (00:00 UTC) as dates.
(function () {
  "use strict";
  var box = document.getElementById("chart");
  var form = document.getElementById("chart-form");
  var target = document.getElementById("chart-box");
  var message = document.getElementById("chart-message");
  var intervalSelect = document.getElementById("chart-interval");
  if (!box || !form || !target) { return; }
  var SVG = "http://www.w3.org/2000/svg";
  var HEIGHT = 340, LEFT = 8, RIGHT = 64, TOP = 10, BOTTOM = 26, VOLUME_SHARE = 0.18;

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function css(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  // About `count` round steps (1, 2, 5 x 10^n) between lo and hi.
  function steps(lo, hi, count) {
    var raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    var step = [1, 2, 5, 10].map(function (m) { return m * mag; }).find(function (s) { return s >= raw; });
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi; v += step) { out.push(v); }
    return out;
  }

  function labeller(data) {
    var opts = data.intraday
      ? { timeZone: data.timezone, day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }
      : { timeZone: "UTC", day: "2-digit", month: "short", year: "numeric" };
    var fmt = new Intl.DateTimeFormat("en-IN", opts);
    return function (ts) { return fmt.format(new Date(ts * 1000)); };
  }

  function draw(data) {
    var candles = data.candles;
    target.textContent = "";
    var width = Math.max(320, target.clientWidth || 800);
    var svg = el("svg", { width: width, height: HEIGHT, viewBox: "0 0 " + width + " " + HEIGHT }, target);
    var plotW = width - LEFT - RIGHT, plotH = HEIGHT - TOP - BOTTOM;
    var priceH = plotH * (1 - VOLUME_SHARE);
    var lo = Infinity, hi = -Infinity, vmax = 0;
    candles.forEach(function (c) { lo = Math.min(lo, c[3]); hi = Math.max(hi, c[2]); vmax = Math.max(vmax, c[5]); });
    if (hi === lo) { hi += 1; lo -= 1; }
    var pad = (hi - lo) * 0.04;
    lo -= pad; hi += pad;
    var y = function (p) { return TOP + (hi - p) / (hi - lo) * priceH; };
    var step = plotW / candles.length;
    var body = Math.max(1, Math.min(12, step * 0.7));
    var up = css("--ok", "#1f7a45"), down = css("--error", "#b3261e"), grid = css("--border", "#d9dde4");
    var muted = css("--muted", "#636b7a");
    var label = labeller(data);
    var price = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

    steps(lo, hi, 5).forEach(function (p) {
      el("line", { x1: LEFT, x2: LEFT + plotW, y1: y(p), y2: y(p), stroke: grid, "stroke-width": 1 }, svg);
      var t = el("text", { x: LEFT + plotW + 6, y: y(p) + 4, fill: muted, "font-size": 11 }, svg);
      t.textContent = price.format(p);
    });
    var every = Math.max(1, Math.ceil(candles.length / Math.max(1, Math.floor(plotW / 110))));
    candles.forEach(function (c, i) {
      var x = LEFT + (i + 0.5) * step, rising = c[4] >= c[1], color = rising ? up : down;
      var g = el("g", {}, svg);
      el("line", { x1: x, x2: x, y1: y(c[2]), y2: y(c[3]), stroke: color, "stroke-width": 1 }, g);
      var top = y(Math.max(c[1], c[4])), bottom = y(Math.min(c[1], c[4]));
      el("rect", { x: x - body / 2, y: top, width: body, height: Math.max(1, bottom - top), fill: color }, g);
      if (vmax > 0) {
        var vh = c[5] / vmax * plotH * VOLUME_SHARE * 0.9;
        el("rect", { x: x - body / 2, y: TOP + plotH - vh, width: body, height: vh, fill: color, opacity: 0.35 }, g);
      }
      el("title", {}, g).textContent = label(c[0]) + "  O " + price.format(c[1]) + "  H " + price.format(c[2]) +
        "  L " + price.format(c[3]) + "  C " + price.format(c[4]) + "  V " + c[5].toLocaleString();
      if (i % every === 0) {
        // The first label starts at its candle, so that it is not cut at the chart's left edge.
        var t = el("text", { x: i ? x : LEFT, y: HEIGHT - 8, fill: muted, "font-size": 11,
                             "text-anchor": i ? "middle" : "start" }, svg);
        t.textContent = label(c[0]);
      }
    });
  }

  function fillIntervals(data) {
    if (!intervalSelect || !data.intervals) { return; }
    intervalSelect.textContent = "";
    data.intervals.forEach(function (code) {
      var option = document.createElement("option");
      option.textContent = code;
      option.selected = code === data.interval;
      intervalSelect.appendChild(option);
    });
  }

  function show() {
    var params = new URLSearchParams(new FormData(form));
    Array.from(params.keys()).forEach(function (k) { if (!params.get(k)) { params.delete(k); } });
    if (!params.get("symbol")) { return; }
    message.textContent = "Loading…";
    fetch(box.getAttribute("data-url") + "?" + params.toString(),
          { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (!data.candles || !data.candles.length) {
          target.textContent = "";
          message.textContent = data.message || "No candles stored in that range.";
          return;
        }
        fillIntervals(data);
        message.textContent = data.symbol + " " + data.exchange + ", " + data.interval + " from " + data.source +
          ": " + data.candles.length + " candles (stored history).";
        draw(data);
      })
      .catch(function () { message.textContent = "Could not load the chart."; });
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); show(); });
  show();
})();
