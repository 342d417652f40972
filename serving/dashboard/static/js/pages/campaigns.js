// Campaigns on the reports page: the latest campaigns of the ledger, each one's treated members
// against its holdout (GET /v1/reports/campaigns/{id}): absolute uplift with its 95% interval
// overall and per segment and tier (a floating bar from low to high: clear of zero, the
// campaign worked for that slice), and the overall figures.
import { getJSON } from "../api.js";
import { PALETTE, chart } from "../charts.js";
import { card, el, money, notice, number, percent, table } from "../ui.js";

// The newest campaigns shown (each is one report request).
const SHOWN = 5;
const FIGURES = {
  sent_item_conversion: "Bought a sent item",
  conversion: "Bought anything",
  revenue_per_member: "Revenue per member",
};

export async function campaignsSection() {
  const { campaigns } = await getJSON("/v1/reports/campaigns");
  if (!campaigns.length) {
    return card("Campaigns", notice("No campaign in the ledger yet: recsys campaign export " +
      "records each send, and its uplift against the holdout shows here."));
  }
  const latest = campaigns.slice(-SHOWN).reverse();
  const reports = await Promise.all(latest.map((c) =>
    getJSON(`/v1/reports/campaigns/${encodeURIComponent(c.campaign_id)}`)));
  return el("div", { class: "grid" }, reports.map(campaignCard));
}

function campaignCard(report) {
  const { treatment, holdout } = report.overall;
  return card(`Campaign ${report.campaign_id} (${report.family})`,
    el("p", { class: "sub" }, `${number(treatment.members)} treated, ${number(holdout.members)} ` +
      `holdout; purchases within ${report.window_days} days of each send. Bars: treated ` +
      "minus holdout, 95% interval."),
    el("div", { class: "grid cols-2" }, upliftChart(report), overallTable(report)));
}

function slices(report) {
  const parts = Object.entries(report.breakdowns)
    .flatMap(([name, values]) => values.map((part) => [`${name}: ${part.key}`, part]));
  return [["all", report.overall], ...parts];
}

function upliftChart(report) {
  const rows = slices(report);
  const rates = ["sent_item_conversion", "conversion"];
  return chart({
    type: "bar",
    data: {
      labels: rows.map(([label]) => label),
      datasets: rates.map((metric, i) => ({
        label: FIGURES[metric],
        backgroundColor: PALETTE[i],
        data: rows.map(([, part]) => {
          const uplift = part.uplift.find((u) => u.metric === metric)?.absolute;
          return uplift && uplift.low !== null ? [uplift.low, uplift.high] : null;
        }),
      })),
    },
    options: {
      indexAxis: "y",
      datasets: { bar: { maxBarThickness: 14 } },
      scales: { x: { ticks: { callback: (v) => percent(v, 0) } } },
    },
  }, `uplift of campaign ${report.campaign_id} with 95% intervals`);
}

function shown(metric, value) {
  return metric === "revenue_per_member" ? money(value) : percent(value);
}

function interval(metric, estimate, asShare = false) {
  const format = (v) => (asShare ? percent(v) : shown(metric, v));
  if (estimate.value === null) return "–";
  if (estimate.low === null) return `${format(estimate.value)} (no interval)`;
  return `${format(estimate.value)} (${format(estimate.low)} to ${format(estimate.high)})`;
}

function overallTable(report) {
  const { overall } = report;
  const value = (group, metric) =>
    metric === "revenue_per_member" ? overall[group][metric] : overall[group][metric].value;
  return table([
    { label: "Figure", value: (u) => FIGURES[u.metric] },
    { label: "Treated", num: true, value: (u) => shown(u.metric, value("treatment", u.metric)) },
    { label: "Holdout", num: true, value: (u) => shown(u.metric, value("holdout", u.metric)) },
    { label: "Uplift (95%)", num: true, value: (u) => interval(u.metric, u.absolute) },
    { label: "Relative (95%)", num: true, value: (u) => interval(u.metric, u.relative, true) },
  ], overall.uplift);
}
