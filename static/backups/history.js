// The backup history chart (Chart.js), from the runs the page put in #history-data: each run's
// duration as a bar (left axis, minutes) and its size as a line (right axes: snapshots made by a
// local snapshot run, GiB in all for an offsite run). The table below has the same figures.
(function () {
  "use strict";
  const source = document.getElementById("history-data");
  const canvas = document.getElementById("history-chart");
  if (!source || !canvas || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const colour = { succeeded: "#2f6fde", partial: "#f0a43a", failed: "#b3261e", running: "#a7b1c2" };
  const has = (series) => series.some((value) => value !== null);

  const datasets = [
    {
      type: "bar",
      label: "Duration (min)",
      data: data.minutes,
      yAxisID: "y",
      backgroundColor: data.results.map((result) => colour[result] || "#a7b1c2"),
      borderRadius: 2,
      order: 2,
    },
  ];
  const scales = {
    x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } },
    y: { beginAtZero: true, position: "left", title: { display: true, text: "minutes" } },
  };
  if (has(data.snapshots)) {
    datasets.push({ type: "line", label: "Snapshots made", data: data.snapshots, yAxisID: "snapshots",
      borderColor: "#1d7a46", backgroundColor: "#1d7a46", pointRadius: 2, spanGaps: true, order: 1 });
    scales.snapshots = { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
      title: { display: true, text: "snapshots" }, ticks: { precision: 0 } };
  }
  if (has(data.gib)) {
    datasets.push({ type: "line", label: "Backup size (GiB)", data: data.gib, yAxisID: "gib",
      borderColor: "#8e44ad", backgroundColor: "#8e44ad", pointRadius: 2, spanGaps: true, order: 1 });
    scales.gib = { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
      title: { display: true, text: "GiB" } };
  }
  new window.Chart(canvas, {
    data: { labels: data.labels, datasets: datasets },
    options: {
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: scales,
      plugins: {
        legend: { position: "bottom" },
        tooltip: { callbacks: { footer: (items) => (items.length ? data.results[items[0].dataIndex] : "") } },
      },
    },
  });
})();
