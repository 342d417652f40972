// Overview: the member program at a glance, as of the data's end (the artifact's kpis.json).
import { getJSON } from "../api.js";
import { PALETTE, chart } from "../charts.js";
import {
  churnFigure, cohortChart, frequencyChart, repeatChart, rfmHeatmap, segmentSizesChart, valueFigure,
} from "../figures.js";
import { card, day, el, money, notice, number, percent, table } from "../ui.js";

export async function render() {
  const data = await getJSON("/v1/dashboard/overview");
  const f = data.figures;
  const window = `last ${number(data.window_days)} days`;
  return el("div", {},
    el("h1", {}, "Overview"),
    el("p", { class: "sub" },
      `As of ${day(data.reference_time)} (the data's end), data from ${day(data.data_start)}. ` +
      `Model artifact ${data.version} (variant ${data.variant}).`),
    el("div", { class: "kpis" },
      kpi("Members", number(f.members), "in the program"),
      kpi("Active members", number(f.active_members), `bought in the ${window}`),
      kpi("Repurchase rate", percent(f.repurchase_rate), `of those, 2+ orders`),
      kpi("Average order value", money(f.average_order_value), `${number(f.orders)} orders`),
      kpi("Revenue", money(f.revenue), window),
    ),
    el("div", { class: "grid cols-2" },
      card("Revenue and active members by month", monthChart(data.months),
        data.months.some((m) => !m.complete)
          ? el("p", { class: "muted" }, "Lighter bars: months the data covers in part.") : null),
      card("Members by segment and tier", segmentChart(data)),
    ),
    el("div", { class: "grid cols-2", style: "margin-top:16px" },
      figureCard("segment-sizes", "Segment sizes and share of revenue",
        segmentSizesChart(data.segment_sizes)),
      figureCard("repeat", "Repurchase rate and average order value by month",
        repeatChart(data.months)),
    ),
    el("div", { class: "grid cols-2", style: "margin-top:16px" },
      figureCard("rfm", "RFM heat map", rfmHeatmap(data.rfm_grid)),
      figureCard("frequency", "Orders per member", frequencyChart(data.purchase_frequency)),
    ),
    el("div", { class: "grid", style: "margin-top:16px" },
      figureCard("cohorts", "Cohort retention by join month", cohortChart(data.cohorts))),
    el("div", { class: "grid cols-2", style: "margin-top:16px" },
      figureCard("churn", "Churn-risk distribution", churnFigure(data.churn)),
      figureCard("value", "Expected value by segment", valueFigure(data.value_by_segment)),
    ),
    el("div", { class: "grid cols-2", style: "margin-top:16px" },
      card("Members by segment and tier (table)", segmentTable(data)),
      card("What the figures mean", definitions(data.definitions)),
    ),
  );
}

function figureCard(id, title, body) {
  const section = card(title, body);
  section.id = `figure-${id}`;
  return section;
}

function kpi(label, value, note) {
  return el("div", { class: "card kpi" }, el("div", { class: "label" }, label),
    el("div", { class: "value" }, value), el("div", { class: "note" }, note));
}

function monthChart(months) {
  if (!months.length) return notice("No purchases in the data.");
  return chart({
    data: {
      labels: months.map((m) => m.month),
      datasets: [
        { type: "bar", label: "Revenue", data: months.map((m) => m.revenue), yAxisID: "revenue",
          backgroundColor: months.map((m) => (m.complete ? PALETTE[0] : "#93c5fd")) },
        { type: "line", label: "Active members", data: months.map((m) => m.active_members),
          yAxisID: "members", borderColor: PALETTE[1], backgroundColor: PALETTE[1] },
      ],
    },
    options: {
      scales: {
        revenue: { position: "left", title: { display: true, text: "Revenue" } },
        members: { position: "right", grid: { drawOnChartArea: false },
          title: { display: true, text: "Active members" } },
      },
    },
  }, "Revenue and active members by month");
}

function tierName(tier) {
  return tier ?? "no tier";
}

function tiersOf(data) {
  const present = new Set(data.members_by_segment_tier.map((row) => tierName(row.tier)));
  const ordered = data.tiers.filter((tier) => present.has(tier));
  return [...ordered, ...[...present].filter((tier) => !ordered.includes(tier))];
}

function segmentsOf(data) {
  const present = new Set(data.members_by_segment_tier.map((row) => row.segment ?? "unknown"));
  const ordered = data.segments.filter((segment) => present.has(segment));
  return [...ordered, ...[...present].filter((segment) => !ordered.includes(segment))];
}

function count(data, segment, tier) {
  const row = data.members_by_segment_tier.find(
    (r) => (r.segment ?? "unknown") === segment && tierName(r.tier) === tier);
  return row ? row.members : 0;
}

function segmentChart(data) {
  const segments = segmentsOf(data);
  const tiers = tiersOf(data);
  return chart({
    type: "bar",
    data: {
      labels: segments,
      datasets: tiers.map((tier, i) => ({
        label: tier, data: segments.map((s) => count(data, s, tier)),
        backgroundColor: PALETTE[i % PALETTE.length],
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true,
      title: { display: true, text: "Members" } } } },
  }, "Members by segment and tier");
}

function segmentTable(data) {
  const segments = segmentsOf(data);
  const tiers = tiersOf(data);
  const columns = [
    { label: "Segment", value: (s) => s },
    ...tiers.map((tier) => ({ label: tier, num: true, value: (s) => number(count(data, s, tier)) })),
    { label: "All", num: true,
      value: (s) => number(tiers.reduce((sum, tier) => sum + count(data, s, tier), 0)) },
  ];
  return el("div", {}, table(columns, segments),
    el("p", { class: "muted" }, "Tier: as declared in the members file. Segment: lifecycle " +
      "segment at the data's end (the same the models and exports use)."));
}

function definitions(defs) {
  return el("dl", { class: "facts" },
    Object.entries(defs).flatMap(([name, text]) => [
      el("dt", {}, name.replaceAll("_", " ")), el("dd", { style: "font-weight:400" }, text)]));
}
