// The member program's figures (the artifact's kpis.json, GET /v1/dashboard/overview): the
// same ones the member report draws (training/member_report.py). Each returns a node; a figure
// the artifact lacks, or one that would mean nothing, is a notice saying why.
import { PALETTE, chart } from "./charts.js";
import { el, money, notice, number, percent, table } from "./ui.js";

const LIGHT = "#93c5fd";

// What an artifact trained before a figure existed shows in its place.
export function predates(what) {
  return notice(`This model artifact has no ${what}: it was trained before the figure ` +
    "existed. Retrain it (recsys train) to see it.");
}

export function segmentSizesChart(sizes) {
  if (!sizes) return predates("segment sizes");
  return chart({
    type: "bar",
    data: {
      labels: sizes.map((s) => s.segment),
      datasets: [
        { label: "Share of members", data: sizes.map((s) => 100 * (s.member_share ?? 0)),
          backgroundColor: PALETTE[0] },
        { label: "Share of revenue", data: sizes.map((s) => 100 * (s.revenue_share ?? 0)),
          backgroundColor: PALETTE[1] },
      ],
    },
    options: { scales: { y: { title: { display: true, text: "%" } } },
      plugins: { tooltip: { callbacks: { footer: (items) => {
        const s = sizes[items[0].dataIndex];
        return `${number(s.members)} members · revenue ${money(s.revenue)}`;
      } } } } },
  }, "Share of members and of revenue per lifecycle segment");
}

export function repeatChart(months) {
  if (!months.length) return notice("No purchases in the data.");
  if (months.every((m) => m.repurchase_rate === undefined || m.repurchase_rate === null)) {
    return predates("repurchase rate by month");
  }
  return chart({
    data: {
      labels: months.map((m) => m.month),
      datasets: [
        { type: "line", label: "Repurchase rate (2+ orders in the month)", yAxisID: "rate",
          data: months.map((m) => 100 * m.repurchase_rate), borderColor: PALETTE[0],
          backgroundColor: PALETTE[0] },
        { type: "line", label: "Average order value", yAxisID: "value",
          data: months.map((m) => m.average_order_value), borderColor: PALETTE[1],
          backgroundColor: PALETTE[1] },
      ],
    },
    options: {
      scales: {
        rate: { position: "left", beginAtZero: true, title: { display: true, text: "% of buyers" } },
        value: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
          title: { display: true, text: "Per order" } },
      },
    },
  }, "Repurchase rate and average order value by month");
}

// The RFM heat map: a table, one cell per R x F score, shaded by its members.
export function rfmHeatmap(grid, mark = null) {
  if (!grid) return predates("RFM grid");
  const most = Math.max(1, ...grid.cells.map((c) => c.members));
  const cell = (r, f) => grid.cells.find((c) => c.r_score === r && c.f_score === f);
  const rows = [...grid.r_scores].reverse().map((r) => el("tr", {},
    el("th", { scope: "row" }, `R ${r}`),
    grid.f_scores.map((f) => {
      const c = cell(r, f) ?? { members: 0, mean_monetary: null };
      const shade = c.members / most;
      const marked = mark && mark.r === r && mark.f === f;
      return el("td", {
        class: `heat${shade > 0.55 ? " dark" : ""}${marked ? " marked" : ""}`,
        style: `background: rgba(37, 99, 235, ${(0.08 + 0.92 * shade).toFixed(3)})`,
        title: `R ${r}, F ${f}: ${number(c.members)} members, mean spend ${money(c.mean_monetary)}`,
      }, el("div", { class: "count" }, number(c.members)),
      el("div", { class: "mean" }, c.mean_monetary === null ? "–" : money(c.mean_monetary)));
    })));
  const head = el("tr", {}, el("th", {}, ""), grid.f_scores.map((f) => el("th", {}, `F ${f}`)));
  return el("div", { class: "scroll" },
    el("table", { class: "heatmap", id: "rfm-grid" }, el("thead", {}, head), el("tbody", {}, rows)),
    el("p", { class: "muted" }, "Members per cell (mean spend below). R: recency quintile, " +
      "F: order-count quintile; 5 is best."));
}

export function frequencyChart(bins) {
  if (!bins) return predates("purchase-frequency histogram");
  return chart({
    type: "bar",
    data: {
      labels: bins.map((b) => b.label),
      datasets: [{ label: "Members", data: bins.map((b) => b.members), backgroundColor: PALETTE[0] }],
    },
    options: { plugins: { legend: { display: false } },
      scales: { x: { title: { display: true, text: "Orders" } },
        y: { title: { display: true, text: "Members" } } } },
  }, "Members by number of orders");
}

export function cohortChart(cohorts) {
  if (!cohorts) return predates("cohort retention");
  if (!cohorts.cohorts.length) return notice("No cohort has a whole month of data after joining.");
  const shown = cohorts.cohorts;
  return el("div", {},
    chart({
      type: "line",
      data: {
        labels: cohorts.months_after.map((k) => `+${k}`),
        datasets: shown.map((c, i) => ({
          label: `${c.cohort} (${number(c.members)})`,
          data: c.retention.map((v) => (v === null ? null : 100 * v)),
          borderColor: shade(i, shown.length), backgroundColor: shade(i, shown.length),
        })),
      },
      options: { scales: { x: { title: { display: true, text: "Months after the join month" } },
        y: { beginAtZero: true, title: { display: true, text: "% with a purchase" } } } },
    }, "Cohort retention by join month"),
    el("p", { class: "muted" }, `Join month: joined_at for ${number(cohorts.members_by_joined_at)} ` +
      `members, first purchase for ${number(cohorts.members_by_first_purchase)}; ` +
      `${number(cohorts.members_without_cohort)} have neither. The latest ${shown.length} of ` +
      `${number(cohorts.cohorts_with_data)} cohorts; gaps: months the data does not hold whole.`));
}

// Oldest cohort dark, newest light.
function shade(index, count) {
  const t = count > 1 ? index / (count - 1) : 0;
  return `hsl(${220 - 120 * t}, 70%, ${30 + 30 * t}%)`;
}

// The churn-risk histogram and members per band; `risk` marks one member's bin.
export function churnFigure(churn, risk = null) {
  if (!churn) return predates("churn-risk distribution");
  if (!churn.histogram.length) {
    return el("div", { id: "churn-note" }, notice(churn.note),
      churn.bands.length ? bandTable(churn.bands) : null);
  }
  const bin = risk === null ? -1 : Math.min(churn.histogram.length - 1, Math.floor(risk * 10));
  const horizon = churn.horizon_days ? ` in the next ${number(churn.horizon_days)} days` : "";
  return el("div", {},
    chart({
      type: "bar",
      data: {
        labels: churn.histogram.map((b) => `${b.lower.toFixed(1)}–${b.upper.toFixed(1)}`),
        datasets: [{ label: "Members", data: churn.histogram.map((b) => b.members),
          backgroundColor: churn.histogram.map((_, i) => (i === bin ? PALETTE[3] : PALETTE[0])) }],
      },
      options: { plugins: { legend: { display: false } },
        scales: { x: { title: { display: true, text: `Churn risk (P(no purchase${horizon}))` } },
          y: { title: { display: true, text: "Members" } } } },
    }, "Members by churn risk"),
    el("p", { class: "muted" }, `${number(churn.scored_members)} scored members, mean risk ` +
      `${percent(churn.mean_risk)}.${bin >= 0 ? " Red: this member's bin." : ""}`),
    bandTable(churn.bands));
}

function bandTable(bands) {
  return table([
    { label: "Churn band", value: (b) => b.band },
    { label: "Members", num: true, value: (b) => number(b.members) },
  ], bands);
}

export function valueFigure(value) {
  if (!value) return predates("expected value by segment");
  if (!value.available) return notice(value.note);
  const measure = value.spend_available ? "expected_spend" : "expected_purchases";
  const horizon = value.horizon_days ? ` (next ${number(value.horizon_days)} days)` : "";
  return el("div", {},
    value.note ? notice(value.note) : null,
    chart({
      type: "bar",
      data: {
        labels: value.rows.map((r) => r.segment),
        datasets: [
          { label: `Total ${measure.replace("_", " ")}${horizon}`, yAxisID: "sum",
            data: value.rows.map((r) => r[`${measure}_sum`]), backgroundColor: PALETTE[0] },
          { label: "Per member", yAxisID: "mean", data: value.rows.map((r) => r[`${measure}_mean`]),
            backgroundColor: LIGHT },
        ],
      },
      options: { scales: { sum: { position: "left", title: { display: true, text: "Total" } },
        mean: { position: "right", grid: { drawOnChartArea: false },
          title: { display: true, text: "Per member" } } } },
    }, "Expected value by lifecycle segment"),
    table([
      { label: "Segment", value: (r) => r.segment },
      { label: "Members", num: true, value: (r) => number(r.members) },
      { label: "Expected purchases", num: true, value: (r) => number(r.expected_purchases_sum, 1) },
      { label: "per member", num: true, value: (r) => number(r.expected_purchases_mean, 2) },
      { label: "Expected spend", num: true, value: (r) => money(r.expected_spend_sum) },
      { label: "per member", num: true, value: (r) => money(r.expected_spend_mean) },
    ], value.rows));
}
