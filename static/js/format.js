/* Money and moments in the browser, the same shapes as the pages' Jinja filters (blueprints/formatting.py):
   Algobridge.inr(-1234.5) -> "-₹1,234.50" (Indian grouping), inr(x, {sign: false}) without the ₹,
   inr(x, {plus: true}) with "+" before a gain; Algobridge.xtime(date) -> "07 Dec 14:05:09 IST" in the
   exchange's zone (<html data-exchange-tz>, EXCHANGE_TIMEZONE), 24-hour; xtime(date, "hm") -> "14:05 IST",
   "time" -> "14:05:09 IST", "date" -> "07 Dec 2026". */
(function () {
  "use strict";

  var zone = document.documentElement.getAttribute("data-exchange-tz") || "Asia/Kolkata";
  var cache = {};

  function numberFormat(sign, plus) {
    var key = "n" + sign + plus;
    if (!cache[key]) {
      var opts = { minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: plus ? "exceptZero" : "auto" };
      if (sign) { opts.style = "currency"; opts.currency = "INR"; }
      cache[key] = new Intl.NumberFormat("en-IN", opts);
    }
    return cache[key];
  }

  function inr(value, opts) {
    opts = opts || {};
    var n = typeof value === "number" ? value : parseFloat(value);
    if (value === null || value === undefined || value === "" || !isFinite(n)) { return "\u2013"; }
    n = Math.round(n * 100) / 100;
    if (n === 0) { n = 0; }  // no "-₹0.00"
    return numberFormat(opts.sign !== false, !!opts.plus).format(n);
  }

  var PARTS = {
    short: { day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit" },
    full: { day: "2-digit", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" },
    minute: { day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit" },
    time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
    hm: { hour: "2-digit", minute: "2-digit" },
    date: { day: "2-digit", month: "short", year: "numeric" }
  };

  function parts(style) {
    var key = "t" + style;
    if (!cache[key]) {
      var opts = Object.assign({ timeZone: zone, hourCycle: "h23" }, PARTS[style]);
      if (style !== "date") { opts.timeZoneName = "short"; }
      cache[key] = new Intl.DateTimeFormat("en-IN", opts);
    }
    return cache[key];
  }

  function xtime(value, style) {
    style = PARTS[style] ? style : "short";
    var date = value instanceof Date ? value : new Date(value);
    if (isNaN(date.getTime())) { return "\u2013"; }
    var p = {};
    parts(style).formatToParts(date).forEach(function (part) { p[part.type] = part.value; });
    var out = [];
    if (p.day) { out.push(p.day + " " + p.month + (p.year ? " " + p.year : "")); }
    if (p.hour) { out.push(p.hour + ":" + p.minute + (p.second ? ":" + p.second : "")); }
    if (p.timeZoneName) { out.push(p.timeZoneName); }
    return out.join(" ");
  }

  window.Algobridge = Object.assign(window.Algobridge || {}, { inr: inr, xtime: xtime, exchangeZone: zone });
}());
