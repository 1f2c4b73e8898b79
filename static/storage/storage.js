// The storage page's chart (Chart.js): each member's home and scratch (in data.unit), stacked, with
// their soft limit as a marker. The table under it carries the same figures.
(function () {
  "use strict";
  const source = document.getElementById("storage-data");
  const canvas = document.getElementById("storage-chart");
  if (!source || !canvas || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  // Over the soft limit: the home bar turns amber (the legend keeps the plain colour).
  const homeColour = (context) => (data.over[context.dataIndex] ? "#d69a14" : "#2f6fde");
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        { label: "Home", data: data.home, backgroundColor: homeColour, borderRadius: 3, stack: "use" },
        { label: "Scratch", data: data.scratch, backgroundColor: "#a7b1c2", borderRadius: 3, stack: "use" },
        {
          label: "Soft limit",
          type: "line",
          data: data.soft,
          showLine: false,
          pointStyle: "line",
          pointRadius: 12,
          pointBorderWidth: 3,
          pointRotation: 90,
          borderColor: "#1d2433",
          backgroundColor: "#1d2433",
        },
      ],
    },
    options: {
      indexAxis: "y",
      maintainAspectRatio: false,
      animation: false,
      scales: {
        x: { stacked: true, beginAtZero: true, title: { display: true, text: data.unit } },
        y: { stacked: true, grid: { display: false } },
      },
      plugins: {
        legend: { position: "bottom" },
        tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${item.formattedValue} ${data.unit}` } },
      },
    },
  });
})();
