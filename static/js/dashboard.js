/* Dashboard: draws the equity curve from the JSON the page embeds (#equity-data), with the vendored
   Chart.js. Points are {t: epoch ms, equity: number, reason: "scheduled" | "squareoff" | "manual" | "now"}. */
(function () {
  "use strict";

  var canvas = document.getElementById("equity-curve");
  var source = document.getElementById("equity-data");
  if (!canvas || !source || typeof window.Chart === "undefined") {
    return;
  }
  var points = JSON.parse(source.textContent || "[]");
  if (points.length < 2) {
    return;
  }

  // Rupees and exchange time, as the pages write them (static/js/format.js).
  var fmt = window.Algobridge;
  var zone = fmt.exchangeZone;
  function money(value) { return fmt.inr(value); }
  function when(ms) { return fmt.xtime(new Date(ms), "minute"); }
  // Axis labels as fine as the curve's span needs: seconds within an hour, the time within two days.
  var span = points[points.length - 1].t - points[0].t;
  var tick = span < 3600e3 ? new Intl.DateTimeFormat("en-IN", { timeZone: zone, hourCycle: "h23", hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : span < 2 * 86400e3 ? new Intl.DateTimeFormat("en-IN", { timeZone: zone, hourCycle: "h23", weekday: "short", hour: "2-digit", minute: "2-digit" })
    : new Intl.DateTimeFormat("en-IN", { timeZone: zone, month: "short", day: "2-digit" });
  var css = getComputedStyle(document.documentElement);
  var accent = css.getPropertyValue("--accent").trim() || "#1f5fbf";
  window.Chart.defaults.color = css.getPropertyValue("--muted").trim() || "#596170";
  window.Chart.defaults.borderColor = css.getPropertyValue("--border").trim() || "#d4d9e1";

  new window.Chart(canvas, {
    type: "line",
    data: {
      datasets: [{
        label: "Equity",
        data: points.map(function (p) { return { x: p.t, y: p.equity, reason: p.reason }; }),
        borderColor: accent,
        backgroundColor: "rgba(127, 150, 200, 0.12)",
        fill: true,
        tension: 0.15,
        borderWidth: 2,
        pointRadius: points.length > 60 ? 0 : 2,
        pointHitRadius: 6
      }]
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      parsing: false,
      interaction: { mode: "nearest", intersect: false },
      scales: {
        x: {
          type: "linear",
          ticks: { maxTicksLimit: 8, callback: function (value) { return tick.format(new Date(value)); } }
        },
        y: {
          ticks: { callback: function (value) { return money(value); } }
        }
      },
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            title: function (items) { return when(items[0].parsed.x); },
            label: function (item) {
              var reason = item.raw.reason === "now" ? " (now)" : item.raw.reason === "squareoff" ? " (square-off)" : "";
              return "Equity " + money(item.parsed.y) + reason;
            }
          }
        }
      }
    }
  });
})();
