/* The console's own script. No inline scripts anywhere (CSP: script-src 'self'), so page
 * behaviour is declared with data-* attributes and wired here.
 *
 * - htmx requests other than GET carry the session's CSRF token in the X-CSRF-Token header
 *   (read from <meta name="csrf-token">).
 * - <form data-confirm="Текст?"> or <button data-confirm="…">: asks before submitting.
 * - <input type="radio" name="regions_mode">: the region list (#regions-list) is enabled only
 *   when "list" is chosen (users admin form).
 */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var verb = String(event.detail.verb || "get").toUpperCase();
    if (verb !== "GET") {
      event.detail.headers["X-CSRF-Token"] = csrfToken();
    }
  });

  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var message = (button && button.getAttribute("data-confirm")) ||
      event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  function syncRegions() {
    var chosen = document.querySelector('input[name="regions_mode"]:checked');
    var list = document.getElementById("regions-list");
    if (!list) { return; }
    var enabled = chosen !== null && chosen.value === "list";
    list.disabled = !enabled;
    list.classList.toggle("disabled", !enabled);
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "regions_mode") { syncRegions(); }
  });
  document.addEventListener("DOMContentLoaded", syncRegions);
})();
