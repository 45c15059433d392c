/* Trajectory charts: totals over time, severity bands behind, dosing sessions marked. */
(function () {
  "use strict";
  var el = document.getElementById("measure-charts");
  if (!el || typeof Chart === "undefined") return;
  var charts = JSON.parse(el.textContent);
  var BAND_COLOURS = ["rgba(46,125,50,0.12)", "rgba(249,168,37,0.14)", "rgba(239,108,0,0.14)",
                      "rgba(211,47,47,0.13)", "rgba(136,14,79,0.14)"];
  function fmt(ms) {
    return new Date(ms).toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }
  charts.forEach(function (c, i) {
    var canvas = document.getElementById("chart-" + (i + 1));
    if (!canvas) return;
    var points = c.points.map(function (p) { return { x: Date.parse(p.x), y: p.y }; });
    var doses = c.doses.map(function (d) { return Date.parse(d); });
    var xs = points.map(function (p) { return p.x; }).concat(doses);
    var day = 86400000;
    var xmin = Math.min.apply(null, xs) - 2 * day, xmax = Math.max.apply(null, xs) + 2 * day;
    var annotations = {};
    c.bands.forEach(function (b, j) {
      annotations["band" + j] = {
        type: "box", yMin: b.min - 0.5, yMax: b.max + 0.5, backgroundColor: BAND_COLOURS[j % BAND_COLOURS.length],
        borderWidth: 0, drawTime: "beforeDatasetsDraw",
        label: { display: true, content: b.label, position: { x: "start", y: "center" }, color: "#333",
                 font: { size: 11 } }
      };
    });
    if (c.cutoff !== null && c.cutoff !== undefined) {
      annotations.cutoff = { type: "line", yMin: c.cutoff, yMax: c.cutoff, borderColor: "#b42318", borderDash: [6, 4],
        borderWidth: 2, label: { display: true, content: "Probable PTSD cut-off " + c.cutoff, position: "start",
        backgroundColor: "rgba(180,35,24,0.85)" } };
    }
    doses.forEach(function (d, j) {
      annotations["dose" + j] = { type: "line", xMin: d, xMax: d, borderColor: "#3949ab", borderWidth: 1.5,
        borderDash: [3, 3], label: { display: j === 0, content: "Dosing session", position: "end",
        backgroundColor: "rgba(57,73,171,0.85)", font: { size: 10 } } };
    });
    new Chart(canvas, {
      type: "line",
      data: { datasets: [{ label: c.key + " total", data: points, borderColor: "#1f3b57", backgroundColor: "#1f3b57",
        pointRadius: 5, pointHoverRadius: 7, borderWidth: 2.5, tension: 0 }] },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: {
          x: { type: "linear", min: xmin, max: xmax, ticks: { callback: fmt, maxTicksLimit: 8 },
               title: { display: true, text: "Date" } },
          y: { min: 0, max: c.max, ticks: { stepSize: 5, includeBounds: false }, title: { display: true, text: "Total score" } }
        },
        plugins: {
          legend: { display: true },
          tooltip: { callbacks: { title: function (items) { return fmt(items[0].parsed.x); } } },
          annotation: { annotations: annotations }
        }
      }
    });
  });
})();
