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

  var money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var when = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  // Axis labels as fine as the curve's span needs: seconds within an hour, the time within two days.
  var span = points[points.length - 1].t - points[0].t;
  var tick = span < 3600e3 ? new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : span < 2 * 86400e3 ? new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" })
    : new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  var accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#1f5fbf";

  new window.Chart(canvas, {
    type: "line",
    data: {
      datasets: [{
        label: "Equity",
        data: points.map(function (p) { return { x: p.t, y: p.equity, reason: p.reason }; }),
        borderColor: accent,
        backgroundColor: "rgba(31, 95, 191, 0.08)",
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
          ticks: { callback: function (value) { return money.format(value); } }
        }
      },
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            title: function (items) { return when.format(new Date(items[0].parsed.x)); },
            label: function (item) {
              var reason = item.raw.reason === "now" ? " (now)" : item.raw.reason === "squareoff" ? " (square-off)" : "";
              return "Equity " + money.format(item.parsed.y) + reason;
            }
          }
        }
      }
    }
  });
})();
