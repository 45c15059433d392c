(function () {
  "use strict";
  var data = document.getElementById("charts-data");
  if (!data || typeof Chart === "undefined") return;
  JSON.parse(data.textContent).forEach(function (c) {
    var canvas = document.getElementById("chart-" + c.key);
    if (!canvas) return;
    new Chart(canvas, {
      type: "line",
      data: {
        labels: c.points.map(function (p) { return p.x; }),
        datasets: [{ label: c.title + " total", data: c.points.map(function (p) { return p.y; }),
                     borderColor: "#1d4f91", backgroundColor: "#1d4f91", tension: 0.2 }]
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
                 scales: { y: { min: 0, max: c.max, title: { display: true, text: "Score (lower is better)" } } },
                 plugins: { legend: { display: false } } }
    });
  });
})();
