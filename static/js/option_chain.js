// The option chain page: a new exchange, underlying, expiry or width shows its chain at once (the form
// still works without this script, through its Show button).
(function () {
  "use strict";
  var form = document.getElementById("chain-picker");
  if (!form) { return; }
  form.addEventListener("change", function (event) {
    var name = event.target.name;
    if (name === "exchange" || name === "underlying") {
      // The expiries listed belong to the previous underlying: let the server pick the nearest one.
      var expiry = document.getElementById("expiry");
      if (expiry) { expiry.disabled = true; }
    }
    form.submit();
  });
})();
