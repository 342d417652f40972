// Charts with the vendored Chart.js (window.Chart, from /dashboard/vendor/chart.umd.min.js).
import { el } from "./ui.js";

export const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#64748b"];

const live = new Set();

// Charts of the page being left are destroyed, so that their canvases are released.
export function destroyCharts() {
  for (const chart of live) chart.destroy();
  live.clear();
}

// A canvas in a sized box, and the chart drawn on it once the box is in the page.
export function chart(config, label) {
  const canvas = el("canvas", { role: "img", "aria-label": label });
  const box = el("div", { class: "chart" }, canvas);
  requestAnimationFrame(() => {
    const drawn = new window.Chart(canvas, {
      ...config,
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { position: "bottom" } },
        ...config.options,
      },
    });
    live.add(drawn);
  });
  return box;
}
