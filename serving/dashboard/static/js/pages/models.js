// Models: each model's offline test metrics, overall and per segment (the artifact's
// metrics.json), and the registry's versions with the champion.
import { getJSON } from "../api.js";
import { PALETTE, chart } from "../charts.js";
import { badge, card, dateTime, el, notice, number, table } from "../ui.js";

const CUTOFF = 10;
const SHOWN = ["precision", "recall", "ndcg", "map", "hit_rate", "coverage", "novelty", "diversity"];

export async function render() {
  const [metrics, registry, loaded] = await Promise.all([
    getJSON("/v1/reports/evaluation"),
    getJSON("/v1/dashboard/registry"),
    getJSON("/v1/models"),
  ]);
  const names = Object.keys(metrics.models);
  const primary = metrics.primary_metric;
  return el("div", {},
    el("h1", {}, "Models"),
    el("p", { class: "sub" }, `Offline test figures of the training run. Primary metric ` +
      `${primary}; ${metrics.chosen} was chosen (${metrics.chosen_because}).`),
    el("div", { class: "grid" },
      el("div", { class: "grid cols-2" },
        card(`${primary} by model`, primaryChart(metrics, names)),
        card("Loaded variants", variantsTable(loaded.variants))),
      card(`Test metrics at ${CUTOFF}`, metricsTable(metrics, names)),
      card(`${primary} by member segment`, segmentTable(metrics, names)),
      card("Registry versions", registryView(registry)),
    ));
}

function metricsTable(metrics, names) {
  const columns = [
    { label: "Model", value: (m) => [m, m === metrics.chosen ? badge("chosen", "accent") : null] },
    ...SHOWN.map((metric) => ({
      label: `${metric}@${CUTOFF}`, num: true,
      value: (m) => number(metrics.models[m][`${metric}@${CUTOFF}`], 3),
    })),
  ];
  return table(columns, names, { rowClass: (m) => (m === metrics.chosen ? "best" : null) });
}

function segmentTable(metrics, names) {
  const bySegment = metrics.segments ?? {};
  const segments = Object.keys(bySegment[names[0]] ?? {});
  if (!segments.length) return notice("This training run had no member segments.");
  const sizes = metrics.segment_sizes ?? {};
  const columns = [
    { label: "Model", value: (m) => m },
    ...segments.map((segment) => ({
      label: `${segment} (${number(sizes[segment])})`, num: true,
      value: (m) => number(bySegment[m]?.[segment]?.[metrics.primary_metric], 3),
    })),
  ];
  return el("div", {}, table(columns, names, { rowClass: (m) => (m === metrics.chosen ? "best" : null) }),
    el("p", { class: "muted" }, "In brackets: members of each segment in the training run (metrics.json segment_sizes)."));
}

function primaryChart(metrics, names) {
  return chart({
    type: "bar",
    data: { labels: names, datasets: [{
      label: metrics.primary_metric, data: names.map((m) => metrics.models[m][metrics.primary_metric]),
      backgroundColor: names.map((m) => (m === metrics.chosen ? PALETTE[0] : "#94a3b8")),
    }] },
    options: { plugins: { legend: { display: false } } },
  }, `${metrics.primary_metric} by model`);
}

function variantsTable(variants) {
  return table([
    { label: "Variant", value: (v) => v.variant },
    { label: "Share", num: true, value: (v) => `${number(v.weight * 100)}%` },
    { label: "Version", value: (v) => v.version ?? "not loaded" },
    { label: "Storefront model", value: (v) => v.chosen ?? "–" },
    { label: "Models", value: (v) => (v.models ?? []).join(", ") },
  ], variants);
}

function registryView(registry) {
  if (!registry.configured || !registry.versions.length) {
    return notice(registry.message ?? "No registered versions.");
  }
  return el("div", { id: "registry" },
    el("p", { class: "muted" }, `Registered model ${registry.registered_model}, newest first.`),
    table([
      { label: "Version", value: (v) => [v.version, v.champion ? badge("champion", "good") : null] },
      { label: "Registered", value: (v) => dateTime(v.created_at) },
      { label: "Chosen model", value: (v) => v.chosen_model ?? "–" },
      { label: "Primary metric", num: true,
        value: (v) => (v.primary_value === null ? "–" : `${v.primary_metric} ${number(v.primary_value, 4)}`) },
      { label: "Decision", value: (v) => v.decision ?? "–" },
      { label: "Why", value: (v) => v.reason ?? "" },
    ], registry.versions, { rowClass: (v) => (v.champion ? "best" : null) }));
}
