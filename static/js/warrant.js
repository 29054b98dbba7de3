/* Warrant: tell the server the viewer's timezone (cookie "tz"), so that times render in it. */
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
