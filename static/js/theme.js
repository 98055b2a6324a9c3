/* The theme and the menus, on every page (templates/base.html loads this in <head>).
   - Theme: the button #theme-toggle flips light/dark and keeps the choice in localStorage and in the
     `theme` cookie (the server renders <html data-theme> from it, so the next page paints right away).
     Without a choice the system's preference (prefers-color-scheme) applies.
   - Menus (<details class="navmenu">): work without this script; with it, one is open at a time and a
     click elsewhere or Escape closes it. */
(function () {
  "use strict";

  var root = document.documentElement;
  var YEAR = 365 * 24 * 3600;

  function remember(theme) {
    try { localStorage.setItem("theme", theme); } catch (e) { /* private mode: the cookie still works */ }
    document.cookie = "theme=" + theme + "; path=/; max-age=" + YEAR + "; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }

  // A choice kept in localStorage whose cookie was cleared: apply it before the first paint, and re-set it.
  if (!root.hasAttribute("data-theme")) {
    var kept = null;
    try { kept = localStorage.getItem("theme"); } catch (e) { kept = null; }
    if (kept === "light" || kept === "dark") {
      root.setAttribute("data-theme", kept);
      remember(kept);
    }
  }

  function current() {
    var set = root.getAttribute("data-theme");
    if (set === "light" || set === "dark") { return set; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function label(button) {
    var next = current() === "dark" ? "light" : "dark";
    button.setAttribute("aria-label", "Switch to the " + next + " theme");
    button.setAttribute("title", "Switch to the " + next + " theme");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (button) {
      label(button);
      button.addEventListener("click", function () {
        var next = current() === "dark" ? "light" : "dark";
        root.setAttribute("data-theme", next);
        remember(next);
        label(button);
        document.dispatchEvent(new CustomEvent("themechange", { detail: next }));
      });
    }

    var menus = document.querySelectorAll("details.navmenu");
    menus.forEach(function (menu) {
      menu.addEventListener("toggle", function () {
        if (!menu.open) { return; }
        menus.forEach(function (other) { if (other !== menu) { other.open = false; } });
      });
    });
    document.addEventListener("click", function (event) {
      menus.forEach(function (menu) { if (menu.open && !menu.contains(event.target)) { menu.open = false; } });
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") { return; }
      menus.forEach(function (menu) {
        if (menu.open) {
          menu.open = false;
          menu.querySelector("summary").focus();
        }
      });
    });
  });
}());
