// naslab dashboard: draws the page's Plotly figures and keeps live pages current.
// Figures come as JSON in <script type="application/json" id="figures-data">;
// live pages poll the server (GET only) and swap in server-rendered, escaped HTML.
(function () {
  "use strict";
  var config = {responsive: true, displaylogo: false};

  function draw(figures, react) {
    Object.keys(figures || {}).forEach(function (key) {
      var el = document.getElementById("fig-" + key);
      var fig = figures[key];
      if (!el || !fig || typeof Plotly === "undefined") { return; }
      (react ? Plotly.react : Plotly.newPlot)(el, fig.data || [], fig.layout || {}, config);
    });
  }

  // figure boxes with nothing to draw (e.g. no learning curves) are hidden
  function hideEmpty(figures) {
    document.querySelectorAll(".figure[id^='fig-']").forEach(function (el) {
      if (!(el.id.slice(4) in figures)) { el.style.display = "none"; }
    });
  }

  function setHtml(id, html) {
    var el = document.getElementById(id);
    if (el && typeof html === "string" && el.innerHTML !== html) { el.innerHTML = html; }
  }

  function poll(url, ms, apply) {
    var busy = false;
    window.setInterval(function () {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, {headers: {"Accept": "application/json, text/html"}, cache: "no-store"})
        .then(function (r) { return r.ok ? apply(r) : null; })
        .catch(function () { return null; })
        .then(function () { busy = false; });
    }, ms);
  }

  function start() {
    var body = document.body;
    var data = document.getElementById("figures-data");
    var embedded = data ? JSON.parse(data.textContent) : {};
    draw(embedded, false);
    var figuresUrl = body.getAttribute("data-figures-url");
    if (figuresUrl) {
      fetch(figuresUrl, {cache: "no-store"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (got) {
          if (!got) { return; }
          draw(got.figures, true);
          hideEmpty(got.figures);
          setHtml("study-extra", got.extra);
          body.setAttribute("data-figures-drawn", "1");
        })
        .catch(function () { return null; });
    } else {
      hideEmpty(embedded);
    }
    var ms = parseInt(body.getAttribute("data-poll-ms") || "2000", 10);
    var liveUrl = body.getAttribute("data-live-url");
    if (liveUrl) {
      poll(liveUrl, ms, function (r) {
        return r.json().then(function (news) {
          setHtml("summary", news.summary);
          setHtml("trials", news.table);
          draw(news.figures, true);
          body.setAttribute("data-updated", String(Date.now()));
        });
      });
    }
    var fragment = body.getAttribute("data-live-fragment");
    if (fragment) {
      poll(fragment, ms, function (r) {
        return r.text().then(function (html) {
          setHtml(body.getAttribute("data-live-target"), html);
          body.setAttribute("data-updated", String(Date.now()));
        });
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
