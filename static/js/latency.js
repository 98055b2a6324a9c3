// The latency page's charts: a histogram of total times and the recent calls over time.
// Data comes from <script id="latency-data" type="application/json"> (blueprints/logs.py).
(function () {
  "use strict";
  var source = document.getElementById("latency-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var css = getComputedStyle(document.documentElement);
  var accent = css.getPropertyValue("--accent").trim() || "#2563eb";
  Chart.defaults.color = css.getPropertyValue("--muted").trim() || "#596170";
  Chart.defaults.borderColor = css.getPropertyValue("--border").trim() || "#d4d9e1";
  // No animation: the charts are complete as soon as the page is (and screenshots see them).
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  var histogram = document.getElementById("latency-histogram");
  if (histogram && !histogram.hidden && data.histogram) {
    new Chart(histogram, {
      type: "bar",
      data: {
        labels: data.histogram.labels,
        datasets: [{ label: "order calls", data: data.histogram.counts, backgroundColor: accent }]
      },
      options: {
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }
      }
    });
  }

  var timeline = document.getElementById("latency-timeline");
  if (timeline && !timeline.hidden && data.timeline) {
    new Chart(timeline, {
      type: "line",
      data: {
        labels: data.timeline.labels,
        datasets: [{ label: "total ms", data: data.timeline.values, borderColor: accent,
                     backgroundColor: accent, pointRadius: data.timeline.values.length > 100 ? 0 : 2,
                     borderWidth: 1.5, tension: 0 }]
      },
      options: {
        plugins: { legend: { display: false } },
        scales: { x: { ticks: { maxTicksLimit: 8, autoSkip: true } }, y: { beginAtZero: true } }
      }
    });
  }
})();
