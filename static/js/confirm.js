/* Confirm before acting: a button (or a form) with a data-confirm attribute asks first, and the form
   is not sent unless the user agrees. The server still accepts these actions only as CSRF-checked POSTs. */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-confirm], input[type=submit][data-confirm]") : null;
    if (!button || button.disabled) {
      return;
    }
    if (!window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopPropagation();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    // Forms sent without a click (Enter in a field) still ask when the form itself carries data-confirm.
    if (form.hasAttribute("data-confirm") && !(event.submitter && event.submitter.hasAttribute("data-confirm"))) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    }
  });
})();
