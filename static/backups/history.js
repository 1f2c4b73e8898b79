// The backup history chart (Chart.js), from the runs the page put in #history-data: each run's
// duration as a bar (left axis: seconds, minutes or hours, whichever reads best; logarithmic when
// the page mixes minute-long snapshot runs with hour-long offsite ones) and its size as a line (right axes: snapshots made by a
// local snapshot run, GiB in all for an offsite run). The table below has the same figures.
(function () {
  "use strict";
  const source = document.getElementById("history-data");
  const canvas = document.getElementById("history-chart");
  if (!source || !canvas || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const colour = { succeeded: "#2f6fde", partial: "#f0a43a", failed: "#b3261e", running: "#a7b1c2" };
  const has = (series) => series.some((value) => value !== null);
  const longest = Math.max(1, ...data.seconds.filter((value) => value !== null));
  const [unit, divisor] = longest < 300 ? ["seconds", 1] : longest < 3 * 3600 ? ["minutes", 60] : ["hours", 3600];
  const durations = data.seconds.map((value) => (value === null ? null : Math.max(value, 1) / divisor));
  const mixed = new Set(data.kinds).size > 1;

  const datasets = [
    {
      type: "bar",
      label: `Duration (${unit})`,
      data: durations,
      yAxisID: "y",
      backgroundColor: data.results.map((result) => colour[result] || "#a7b1c2"),
      borderRadius: 2,
      order: 2,
    },
  ];
  const scales = {
    x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } },
    y: mixed
      ? { type: "logarithmic", position: "left", title: { display: true, text: `${unit} (log scale)` } }
      : { beginAtZero: true, position: "left", title: { display: true, text: unit } },
  };
  if (has(data.snapshots)) {
    datasets.push({ type: "line", label: "Snapshots made", data: data.snapshots, yAxisID: "snapshots",
      borderColor: "#1d7a46", backgroundColor: "#1d7a46", pointRadius: 2, spanGaps: true, order: 1 });
    const most = Math.max(...data.snapshots.filter((value) => value !== null));
    scales.snapshots = { beginAtZero: true, suggestedMax: Math.ceil(most * 1.25), position: "right", grid: { drawOnChartArea: false },
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
