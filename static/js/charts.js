/* The dashboard's charts, drawn with Chart.js (static/js/vendor/) from the data the page passes
   with json_script. Each chart sits over its data table: once a chart is drawn, its table folds
   into its "Data table" disclosure. Without JavaScript, or without Chart.js, the tables stay open. */
(function () {
  "use strict";

  var FALLBACK = "#5d6673";

  function ready(fn) {
    if (document.readyState !== "loading") {
      fn();
    } else {
      document.addEventListener("DOMContentLoaded", fn);
    }
  }

  /* A colour from the stylesheet: --chart-<key>. */
  function colour(key) {
    var value = getComputedStyle(document.documentElement).getPropertyValue("--chart-" + key).trim();
    return value || FALLBACK;
  }

  function readData(id) {
    var source = document.getElementById("chart-data-" + id);
    if (!source) return null;
    try {
      return JSON.parse(source.textContent);
    } catch (e) {
      return null;
    }
  }

  function datasetsOf(data) {
    var single = data.datasets.length === 1;
    return data.datasets.map(function (ds) {
      var fill = single && data.keys && data.keys.length ? data.keys.map(colour) : colour(ds.key);
      return { label: ds.label, data: ds.data, backgroundColor: fill, borderWidth: 0, maxBarThickness: 48 };
    });
  }

  function draw(figure) {
    var data = readData(figure.getAttribute("data-chart"));
    var canvas = figure.querySelector("canvas");
    var holder = figure.querySelector(".chart-canvas");
    if (!data || !canvas || !holder) return;
    var stacked = data.kind === "stacked-bar";
    holder.hidden = false;
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: data.labels, datasets: datasetsOf(data) },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: data.datasets.length > 1, position: "bottom" } },
        scales: {
          x: { stacked: stacked, grid: { display: false } },
          y: { stacked: stacked, beginAtZero: true, ticks: { precision: 0 } }
        }
      }
    });
    var table = figure.querySelector("details.chart-data");
    if (table) table.open = false;
  }

  ready(function () {
    if (typeof window.Chart !== "function") return;
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    window.Chart.defaults.color = colour("text");
    var figures = document.querySelectorAll("figure[data-chart]");
    for (var i = 0; i < figures.length; i++) {
      draw(figures[i]);
    }
  });
})();
