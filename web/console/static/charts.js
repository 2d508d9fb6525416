/* Live charts of the console pages (dashboard, campaign progress), drawn with Chart.js.
 * No inline scripts (CSP): a page declares its charts with data-* attributes.
 *
 * <div data-source="/console/…/data.json" data-refresh="10">   JSON re-read every 10 s
 *   <canvas data-chart="outcomes" data-type="doughnut"></canvas>
 * </div>
 *
 * The JSON has one entry per chart: {"labels": [...], "values": [...]} for one series, or
 * {"labels": [...], "datasets": [{"label": "...", "values": [...]}, ...]} for several
 * (data-type "stacked" draws them as stacked bars). "live": false in the JSON stops the
 * polling. After every refresh the container's data-updates attribute counts the refreshes
 * and data-as-of holds the data's time. A 401 (the session ended) reloads the page, which
 * leads to the login form.
 */
(function () {
  "use strict";

  var PALETTE = ["#1f5fbf", "#1a7f37", "#b42318", "#9a6700", "#6f42c1", "#0a7f8c",
    "#d9480f", "#5d6778", "#c2255c", "#2b8a3e", "#364fc7", "#862e9c"];

  function colours(n) {
    var out = [];
    for (var i = 0; i < n; i += 1) { out.push(PALETTE[i % PALETTE.length]); }
    return out;
  }

  function datasetsOf(entry, type) {
    if (entry.datasets) {
      return entry.datasets.map(function (set, i) {
        var colour = PALETTE[i % PALETTE.length];
        return { label: set.label, data: set.values, backgroundColor: colour, borderColor: colour };
      });
    }
    var single = { label: entry.label || "", data: entry.values };
    single.backgroundColor = type === "doughnut" ? colours(entry.values.length) : PALETTE[0];
    return [single];
  }

  function options(type) {
    var base = { responsive: true, maintainAspectRatio: false, animation: false };
    if (type === "doughnut") {
      base.plugins = { legend: { position: "bottom" } };
    } else if (type === "stacked") {
      base.scales = { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } };
    } else {
      base.plugins = { legend: { display: false } };
      base.scales = { y: { beginAtZero: true, ticks: { precision: 0 } } };
    }
    return base;
  }

  function draw(canvas, entry, charts) {
    var key = canvas.getAttribute("data-chart");
    var type = canvas.getAttribute("data-type") || "bar";
    var existing = charts[key];
    if (existing) {
      existing.data.labels = entry.labels;
      existing.data.datasets = datasetsOf(entry, type);
      existing.update();
      return;
    }
    charts[key] = new window.Chart(canvas, {
      type: type === "stacked" ? "bar" : type,
      data: { labels: entry.labels, datasets: datasetsOf(entry, type) },
      options: options(type)
    });
  }

  function start(container) {
    var source = container.getAttribute("data-source");
    var seconds = parseInt(container.getAttribute("data-refresh") || "10", 10);
    var charts = {};
    var updates = 0;
    var timer = null;

    function refresh() {
      fetch(source, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return null; }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          if (data === null) { return; }
          container.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
            var entry = data[canvas.getAttribute("data-chart")];
            if (entry) { draw(canvas, entry, charts); }
          });
          updates += 1;
          container.setAttribute("data-updates", String(updates));
          if (data.as_of) { container.setAttribute("data-as-of", data.as_of); }
          if (data.live === false && timer !== null) {
            window.clearInterval(timer);
            timer = null;
            container.setAttribute("data-finished", "true");
          }
        })
        .catch(function (error) {
          container.setAttribute("data-error", String(error));
        });
    }

    refresh();
    if (seconds > 0) { timer = window.setInterval(refresh, seconds * 1000); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.Chart) { return; }
    document.querySelectorAll("[data-source]").forEach(start);
  });
})();
