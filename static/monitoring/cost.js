// The Cost page's chart (Chart.js), from #cost-data: bars of the cloud's and the server's cost
// each month, the savings so far as a line (dashed where projected) against the hardware price,
// and the break-even month marked on the line.
(function () {
  "use strict";
  const source = document.getElementById("cost-data");
  const canvas = document.getElementById("chart-cost");
  if (!source || !canvas || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const pad = (values) => values.concat(new Array(data.labels.length - values.length).fill(null));
  const marked = (context) => context.dataIndex === data.break_even;

  const datasets = [
    { type: "bar", label: "Cloud", data: pad(data.cloud), backgroundColor: "#d6452a", order: 3 },
    { type: "bar", label: "Server", data: pad(data.server), backgroundColor: "#2f6fde", order: 3 },
    {
      type: "line", label: "Savings so far", data: data.cumulative, borderColor: "#1d7a46",
      backgroundColor: "#1d7a46", order: 1, tension: 0.1,
      pointRadius: (c) => (marked(c) ? 8 : 2), pointStyle: (c) => (marked(c) ? "star" : "circle"),
    },
    {
      type: "line", label: "Hardware price", data: new Array(data.labels.length).fill(data.hardware),
      borderColor: "#6b7280", borderDash: [2, 3], pointRadius: 0, order: 2,
    },
  ];
  if (data.projected.length) {  // only while the break-even is ahead
    datasets.splice(3, 0, {
      type: "line", label: "Projected", data: data.projected, borderColor: "#1d7a46", backgroundColor: "#1d7a46",
      borderDash: [6, 4], order: 1, pointRadius: (c) => (marked(c) ? 8 : 0),
      pointStyle: (c) => (marked(c) ? "star" : "circle"),
    });
  }
  new window.Chart(canvas, {
    data: { labels: data.labels, datasets: datasets },
    options: {
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true } },
        y: { beginAtZero: true, title: { display: true, text: data.currency } },
      },
      plugins: {
        legend: { position: "bottom" },
        tooltip: {
          callbacks: {
            footer: (items) => (items.length && items[0].dataIndex === data.break_even ? "Break-even" : ""),
          },
        },
        subtitle: {
          display: data.break_even !== null,
          text: data.break_even !== null ? "★ break-even: " + data.labels[data.break_even] : "",
          position: "bottom",
        },
      },
    },
  });
})();
