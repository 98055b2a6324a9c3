// Copy buttons: <button type="button" class="copy" data-copy-target="#id">Copy</button> copies the text of
// the element #id (the value of an input or textarea) to the clipboard and says "Copied" for a moment.
// navigator.clipboard needs a secure context (https, or localhost); elsewhere (http on a LAN address) the
// text is selected and copied with document.execCommand, and when that fails too it stays selected for Ctrl+C.
(function () {
  "use strict";

  function textOf(el) {
    if (el.value !== undefined && (el.tagName === "INPUT" || el.tagName === "TEXTAREA")) return el.value;
    return el.textContent.trim();
  }

  function select(el) {
    if (el.select) { el.select(); return; }
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function fallback(text, el) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    if (!ok) select(el);  // the user can still press Ctrl+C
    return ok;
  }

  function say(button, label) {
    var original = button.getAttribute("data-copy-label") || button.textContent;
    button.setAttribute("data-copy-label", original);
    button.textContent = label;
    button.classList.add("copied");
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () {
      button.textContent = original;
      button.classList.remove("copied");
    }, 1500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy[data-copy-target]") : null;
    if (!button) return;
    var el = document.querySelector(button.getAttribute("data-copy-target"));
    if (!el) return;
    var text = textOf(el);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { say(button, "Copied"); }, function () {
        say(button, fallback(text, el) ? "Copied" : "Press Ctrl+C");
      });
    } else {
      say(button, fallback(text, el) ? "Copied" : "Press Ctrl+C");
    }
  });
})();
