// Live status without reloading the page every few seconds (WCAG 2.2.1): ask the portal where the case stands
// and announce changes in a polite live region; once the case is done, show the final page.
(function () {
  var live = document.getElementById("live");
  if (!live) return;
  var url = live.getAttribute("data-poll");
  var stage = document.getElementById("live-stage");
  var every = Number(live.getAttribute("data-every-ms")) || 3000;
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s && s.done) { window.location.reload(); return; }
        if (s && stage.textContent !== s.stage) stage.textContent = s.stage;
        setTimeout(poll, every);
      })
      .catch(function () { setTimeout(poll, every * 2); });
  }
  setTimeout(poll, every);
})();
