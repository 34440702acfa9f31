// textback: live updates. The page names its event stream in <main data-live="...">; on each
// "change" the live part (#live) is fetched again from the same URL and replaced. Nothing
// else runs here, and nothing is loaded from anywhere but this server.
(function () {
  "use strict";
  function start() {
    var main = document.getElementById("main");
    var url = main && main.getAttribute("data-live");
    var live = document.getElementById("live");
    if (!url || !live) { return; }
    var busy = false;
    function refresh() {
      if (busy) { return; }
      busy = true;
      fetch(window.location.pathname + window.location.search,
            {headers: {"X-Fragment": "live"}, credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) { if (text !== null) { live.innerHTML = text; } })
        .catch(function () {})
        .then(function () { busy = false; });
    }
    if (window.EventSource) {
      var source = new EventSource(url);
      source.addEventListener("change", refresh);
    } else {
      window.setInterval(refresh, 5000);  // a short poll where there is no EventSource
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
