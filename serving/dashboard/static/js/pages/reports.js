// Reports: online CTR and conversion of served lists, by model and by A/B variant, per day
// (GET /v1/reports/ctr?per_day=true), with the totals and their 95% intervals; then the
// campaigns' uplift against their holdouts (./campaigns.js).
import { getJSON } from "../api.js";
import { PALETTE, chart } from "../charts.js";
import { card, el, notice, number, percent, table } from "../ui.js";
import { campaignsSection } from "./campaigns.js";

export async function render() {
  const [byModel, byVariant, modelTotals, variantTotals, campaigns] = await Promise.all([
    getJSON("/v1/reports/ctr", { group_by: "model", per_day: true }),
    getJSON("/v1/reports/ctr", { group_by: "variant", per_day: true }),
    getJSON("/v1/reports/ctr", { group_by: "model" }),
    getJSON("/v1/reports/ctr", { group_by: "variant" }),
    campaignsSection(),
  ]);
  const page = el("div", {}, el("h1", {}, "Reports"),
    el("p", { class: "sub" }, "Clicks and purchases count when they quote the " +
      "recommendation_id of a served list, once per list and item. Rates with 95% intervals."));
  if (!modelTotals.total.impressions) {
    page.append(notice("Nothing has been served and recorded yet: the report fills as the " +
      "storefront asks for lists and posts events."), campaigns);
    return page;
  }
  page.append(el("div", { class: "grid" },
    el("div", { class: "grid cols-2" },
      card("CTR by model, per day", trend(byModel, "ctr")),
      card("Conversion by model, per day", trend(byModel, "conversion_rate"))),
    el("div", { class: "grid cols-2" },
      card("CTR by A/B variant, per day", trend(byVariant, "ctr")),
      card("Conversion by A/B variant, per day", trend(byVariant, "conversion_rate"))),
    el("div", { class: "grid cols-2" },
      card("By model", totals(modelTotals)), card("By A/B variant", totals(variantTotals)))),
    campaigns);
  return page;
}

function trend(report, rate) {
  const days = [...new Set(report.groups.map((g) => g.day))].sort();
  const keys = [...new Set(report.groups.map((g) => g.key))];
  return chart({
    type: days.length > 2 ? "line" : "bar", // a line needs days to run between
    data: {
      labels: days,
      datasets: keys.map((key, i) => ({
        label: key, borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length],
        data: days.map((d) => report.groups.find((g) => g.key === key && g.day === d)?.[rate].value ?? null),
      })),
    },
    options: {
      datasets: { bar: { maxBarThickness: 48 } },
      scales: { y: { beginAtZero: true, ticks: { callback: (v) => percent(v, 0) } } },
    },
  }, `${rate} per day`);
}

function interval(rate) {
  return rate.value === null ? "–" : `${percent(rate.value)} (${percent(rate.low)}–${percent(rate.high)})`;
}

function totals(report) {
  return table([
    { label: report.group_by, value: (g) => g.key },
    { label: "Impressions", num: true, value: (g) => number(g.impressions) },
    { label: "Clicks", num: true, value: (g) => number(g.clicks) },
    { label: "CTR (95%)", num: true, value: (g) => interval(g.ctr) },
    { label: "Purchases", num: true, value: (g) => number(g.conversions) },
    { label: "Conversion (95%)", num: true, value: (g) => interval(g.conversion_rate) },
  ], [...report.groups, report.total], { rowClass: (g) => (g === report.total ? "best" : null) });
}
