// The Server health charts (Chart.js), from what the page put in #health-data: one line chart per
// canvas[data-chart], every chart on the same time buckets (labels). A bucket without a sample is
// null, drawn as a gap (spanGaps off), never as a zero.
(function () {
  "use strict";
  const source = document.getElementById("health-data");
  if (!source || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);

  function axis(spec, position, grid) {
    return {
      position: position,
      beginAtZero: true,
      max: spec.max,
      grid: { drawOnChartArea: grid },
      title: { display: true, text: spec.title },
    };
  }

  // A point between two gaps has no line to either side: draw it as a dot, or it is not seen.
  function isolated(context) {
    const values = context.dataset.data;
    const i = context.dataIndex;
    return values[i] !== null && (i === 0 || values[i - 1] === null) && (i === values.length - 1 || values[i + 1] === null);
  }

  function draw(canvas) {
    const chart = data.charts[canvas.dataset.chart];
    if (!chart) return;
    const scales = {
      x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 5 } },
    };
    Object.entries(chart.axes).forEach(([id, spec]) => {
      scales[id] = axis(spec, id === "y" ? "left" : "right", id === "y");
    });
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: chart.datasets.map((set) => ({
          label: set.label,
          data: set.data,
          yAxisID: set.axis,
          borderColor: set.colour,
          backgroundColor: set.colour,
          borderDash: set.dashed ? [6, 4] : [],
          borderWidth: 1.6,
          pointRadius: (context) => (isolated(context) ? 2.5 : 0),
          pointHitRadius: 6,
          spanGaps: false,
          tension: 0,
        })),
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: scales,
        plugins: { legend: { position: "bottom", labels: { boxWidth: 14, boxHeight: 2 } } },
      },
    });
  }

  document.querySelectorAll("canvas[data-chart]").forEach(draw);
})();
