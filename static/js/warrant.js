/* Warrant's own script, loaded before htmx on every page. */

/* Tell the server the viewer's timezone (cookie "tz"), so that times render in it. */
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  if (!zone || !/^[A-Za-z0-9_+\-\/]+$/.test(zone)) return;
  var read = function () {
    var m = document.cookie.match(/(?:^|;\s*)tz=([^;]*)/);
    return m ? m[1] : "";
  };
  if (read() === zone) return;
  document.cookie = "tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
  var root = document.documentElement;
  // Re-render once in the viewer's zone; never re-send a form (a POST result is shown only once).
  if (read() === zone && root.dataset.tz !== zone && root.dataset.reloadable === "1") {
    window.location.reload();
  }
})();

/* Ask before an irreversible action sent by a plain form: <form data-confirm="Question?">.
   (Forms sent by htmx ask with hx-confirm instead.) Without JavaScript the form is sent as is. */
document.addEventListener("submit", function (event) {
  "use strict";
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);
