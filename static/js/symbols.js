// The symbols page: while a master contract import runs, poll its status every second and show
// the progress; reload the page when it ends (the symbol count and the search change).
(function () {
  "use strict";
  var box = document.getElementById("contract");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  var state = document.getElementById("contract-state");
  var bar = document.getElementById("contract-progress");
  var rows = document.getElementById("contract-rows");
  var skipped = document.getElementById("contract-skipped");
  var error = document.getElementById("contract-error");
  var button = document.getElementById("download-now");
  var seenRunning = state && state.textContent.trim() === "running";
  var fmt = new Intl.NumberFormat("en-IN");

  function show(s) {
    state.textContent = s.state;
    state.className = "state-" + s.state;
    bar.value = s.percent;
    bar.textContent = s.percent + "%";
    rows.textContent = fmt.format(s.rows_done) + " / " + fmt.format(s.rows_total) + " rows";
    skipped.textContent = fmt.format(s.rows_skipped);
    error.hidden = !s.error;
    error.textContent = s.error || "";
    if (button) { button.disabled = s.running; }
  }

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (s) {
        show(s);
        if (s.running) { seenRunning = true; setTimeout(poll, 1000); }
        else if (seenRunning) { window.location.reload(); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  // Look once at load (a download just started may not show as running yet), then every second
  // while one runs (it may have started from another tab, the CLI or another admin).
  setTimeout(poll, seenRunning ? 1000 : 300);
})();
