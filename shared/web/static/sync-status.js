// Settings > Marketplace > Microsoft: while an initial sync runs, refresh its progress from
// GET /api/sync/status every two seconds; when a section changes state, reload the page so
// that its buttons and texts are the server's (one source of truth, both languages).
(function () {
  "use strict";
  var root = document.getElementById("sync-sections");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-status-url");
  var PERIOD_MS = 2000;

  function sectionOf(kind) {
    return root.querySelector('section[data-kind="' + kind + '"]');
  }

  function setText(kind, name, text) {
    var node = root.querySelector('[data-testid="' + kind + "-" + name + '"]');
    if (node && node.textContent !== text) { node.textContent = text; }
  }

  function running() {
    return root.querySelector('section[data-state="initial"]') !== null;
  }

  function apply(sync) {
    for (var i = 0; i < sync.length; i++) {
      var s = sync[i];
      var section = sectionOf(s.kind);
      if (!section) { continue; }
      var barWasCounting = section.querySelector("progress:not([max])") !== null;
      if (section.getAttribute("data-state") !== s.state || (barWasCounting && s.total > 0)) {
        window.location.reload();
        return false;
      }
      var bar = section.querySelector("progress[max]");
      if (bar && s.total > 0) {
        bar.max = s.total;
        bar.value = s.done;
        bar.textContent = s.done + " / " + s.total;
        setText(s.kind, "counts", s.done + " / " + s.total);
      }
      var eta = root.querySelector('[data-testid="' + s.kind + '-eta"]');
      if (eta && s.eta_minutes !== null && s.eta_minutes !== undefined) {
        setText(s.kind, "eta", s.eta_minutes < 1 ? eta.getAttribute("data-text-soon")
          : eta.getAttribute("data-text-minutes").replace("{n}", String(s.eta_minutes)));
      }
      setText(s.kind, "synced", String(s.synced));
      if (s.last_sync) { setText(s.kind, "last-sync", s.last_sync); }
      setText(s.kind, "conflicts", String(s.conflicts));
    }
    return true;
  }

  function poll() {
    if (!running()) { return; }
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (body) {
        if (apply(body.sync || [])) { window.setTimeout(poll, PERIOD_MS); }
      })
      .catch(function () {
        // Signed out or the server is away: stop quietly; a reload shows why.
      });
  }

  window.setTimeout(poll, PERIOD_MS);
}());
