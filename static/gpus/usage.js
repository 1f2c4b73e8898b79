// The usage page's charts (Chart.js), from the figures the page put in #usage-data. The
// tables under the charts carry the same figures for screen readers and without JavaScript.
(function () {
  "use strict";
  const source = document.getElementById("usage-data");
  if (!source || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);

  const PARTS = [
    ["used_in_bookings", "Used", "#2f6fde"],
    ["booked", "Booked", "#2f6fde"],
    ["idle", "Idle booked", "#f0a43a"],
    ["released", "Released early", "#a7b1c2"],
    ["unbooked", "Unbooked use", "#8e44ad"],
  ];

  function datasets(series) {
    return PARTS.filter(([key]) => key in series).map(([key, label, colour]) => ({
      label: label,
      data: series[key],
      backgroundColor: colour,
      borderRadius: 3,
    }));
  }

  function draw(id, series, horizontal) {
    const canvas = document.getElementById(id);
    if (!canvas || !series) return;
    const valueAxis = { stacked: true, beginAtZero: true, title: { display: true, text: "GPU-hours" } };
    const labelAxis = { stacked: true, grid: { display: false } };
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: series.labels, datasets: datasets(series) },
      options: {
        indexAxis: horizontal ? "y" : "x",
        maintainAspectRatio: false,
        animation: false,
        scales: horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis },
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${item.formattedValue} h` } },
        },
      },
    });
  }

  draw("weeks-chart", data.weeks, false);
  draw("team-chart", data.team, true);
})();
