// Members: find one, then their profile, history, each model's recommendations side by side,
// what they may buy again (with due dates), their bundles, and the items similar to whichever
// item is clicked.
import { getJSON, getOptional } from "../api.js";
import { churnFigure, rfmHeatmap } from "../figures.js";
import { badge, card, dateTime, day, el, money, notice, number, percent, table } from "../ui.js";

const RECOMMENDATIONS = 10;
const SIMILAR = 8;
const BUY_AGAIN = 8;
// An item due within this many days (or overdue) is marked.
const DUE_SOON_DAYS = 7;

export async function render(memberId) {
  const page = el("div", {}, el("h1", {}, "Members"), searchBox(memberId));
  if (!memberId) {
    page.append(await memberList(""));
    return page;
  }
  page.append(await memberView(memberId));
  return page;
}

function open(memberId) {
  location.hash = `#/member/${encodeURIComponent(memberId)}`;
}

function searchBox(current) {
  const input = el("input", { type: "search", id: "member-search", value: current || "",
    placeholder: "Member id, or part of it", list: "member-suggestions", "aria-label": "Member id" });
  const suggestions = el("datalist", { id: "member-suggestions" });
  input.addEventListener("input", async () => {
    const found = await getJSON("/v1/dashboard/members", { q: input.value.trim(), limit: 20 });
    suggestions.replaceChildren(...found.members.map((m) => el("option", { value: m.member_id })));
  });
  const form = el("form", { class: "search" }, input, suggestions,
    el("button", { type: "submit" }, "Show member"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value.trim()) open(input.value.trim());
  });
  return form;
}

async function memberList(query) {
  const found = await getJSON("/v1/dashboard/members", { q: query, limit: 40 });
  return card(`Members (${number(found.total)})`,
    el("p", { class: "muted" }, "The first members by id; type in the box to find others."),
    el("div", { class: "chips" }, found.members.map((m) =>
      el("button", { class: "chip", type: "button", "data-member": m.member_id,
        onclick: () => open(m.member_id) },
      m.member_id, m.segment ? ` · ${m.segment}` : ""))));
}

async function memberView(memberId) {
  const id = encodeURIComponent(memberId);
  const [profile, history, loaded, overview] = await Promise.all([
    getJSON(`/v1/members/${id}/profile`),
    getJSON(`/v1/members/${id}/history`, { n: 15 }),
    getJSON("/v1/models"),
    getOptional("/v1/dashboard/overview"),
  ]);
  const variant = loaded.variants.find((v) => v.variant === profile.variant);
  const modelNames = variant?.models ?? [];
  const [lists, bundles, buyAgain] = await Promise.all([
    Promise.all(modelNames.map((model) =>
      getJSON(`/v1/members/${id}/recommendations`, { model, n: RECOMMENDATIONS }))),
    getJSON(`/v1/members/${id}/bundles`, { n: 3 }),
    getOptional(`/v1/members/${id}/buy-again`, { n: BUY_AGAIN }),
  ]);
  const similar = card("Similar items", el("p", { class: "muted", id: "similar-hint" },
    "Click any item to see the items most similar to it."));
  similar.id = "similar";
  const chooser = itemChooser(similar);
  return el("div", { class: "grid" },
    el("div", { class: "grid cols-2" }, profileCard(profile), historyCard(history, chooser)),
    el("div", { class: "grid cols-2" }, scoresCard(profile, overview), standingCard(profile, overview)),
    card(`Recommended for ${memberId}, by model`,
      el("p", { class: "muted" }, `Top ${RECOMMENDATIONS} of each model of variant ` +
        `${profile.variant}; purchased items are left out. ` +
        `${variant?.chosen ? `${variant.chosen} answers the storefront.` : ""}`),
      el("div", { class: "grid cols-models", id: "recommendations" },
        lists.map((list) => modelColumn(list, variant?.chosen, chooser)))),
    el("div", { class: "grid cols-2" }, buyAgainCard(buyAgain, chooser), bundleCard(bundles, chooser)),
    similar,
  );
}

function profileCard(p) {
  const facts = [
    ["Segment", p.segment ?? "unknown"],
    ["Tier (members file)", p.tier ?? "none declared"],
    ["Value tier (spend)", p.value_tier ?? "–"],
    ["Orders", number(p.orders)],
    ["Spend", money(p.spend)],
    ["Last purchase", day(p.last_purchase)],
    ["Member since", day(p.first_seen)],
    ["Days since last activity", number(p.recency_days)],
    ["A/B variant", p.variant],
  ];
  return card(`Member ${p.member_id}`,
    p.known ? null : notice("The models have no events of this member: their lists come " +
      "from their segment's popularity (flagged fallback)."),
    factList("profile", facts));
}

function factList(id, facts) {
  return el("dl", { class: "facts", id }, facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

const present = (value) => value !== undefined && value !== null;

// Churn risk, expected value, RFM scores, tags, purchase cycle, tier progress and attribute
// segments: each shown only when the API gives it (an older artifact has none of them).
function scoresCard(p, overview) {
  const horizon = overview?.churn?.horizon_days;
  const over = horizon ? ` (next ${number(horizon)} days)` : "";
  const facts = [];
  if (present(p.churn_risk)) {
    facts.push([`Churn risk${over}`, el("span", {}, percent(p.churn_risk),
      present(p.churn_band) ? badge(p.churn_band, BAND_KIND[p.churn_band] ?? "") : null)]);
  }
  if (present(p.expected_purchases)) {
    facts.push([`Expected purchases${over}`, number(p.expected_purchases, 2)]);
  }
  if (present(p.expected_spend)) facts.push([`Expected spend${over}`, money(p.expected_spend)]);
  if (present(p.r_score)) {
    facts.push(["RFM scores", `R ${p.r_score} · F ${p.f_score ?? "–"} · M ${p.m_score ?? "–"}`]);
  }
  if (present(p.purchase_cycle_days)) {
    facts.push(["Purchase cycle", `every ${number(p.purchase_cycle_days, 1)} days (median)`]);
  }
  if (present(p.earned_tier)) facts.push(["Tier earned by spend", p.earned_tier]);
  if (present(p.next_tier) && present(p.spend_to_next_tier)) {
    facts.push(["Next tier", `spend ${money(p.spend_to_next_tier)} more to reach ${p.next_tier}`]);
  } else if (present(p.tier_spend)) {
    facts.push(["Next tier", "at the top tier"]);
  }
  const attributes = p.attributes ?? p;
  for (const [key, label] of [["region", "Region"], ["age_band", "Age band"],
    ["join_cohort", "Join cohort"]]) {
    if (present(attributes[key])) facts.push([label, attributes[key]]);
  }
  if (present(p.scores_as_of)) facts.push(["Scored as of", day(p.scores_as_of)]);
  const tags = [
    ...(p.preference_tags ?? []).map((t) =>
      badge(`${t.kind}: ${t.name} ×${number(t.affinity, 1)}`, "accent")),
    ...(p.behaviour_tags ?? []).map((t) => badge(t, "good")),
  ];
  const uninformative = p.churn_band === "uninformative"
    ? el("p", { class: "muted" }, "The churn model was not informative on this data: every " +
      "member carries the base rate, which is no ranking.") : null;
  const unscored = present(p.churn_risk) || present(p.expected_purchases) ? null
    : el("p", { class: "muted" }, "No churn risk or expected value: this model artifact's " +
      "members were not scored.");
  return card("Scores and tags", factList("scores", facts), uninformative, unscored,
    tags.length ? el("div", { class: "tags", id: "tags", style: "margin-top:10px" }, tags) : null);
}

const BAND_KIND = { low: "good", medium: "warn", high: "warn" };

// The member among all members: their bin of the churn-risk distribution, their RFM cell, and
// their expected spend beside their segment's mean (the overview's figures).
function standingCard(p, overview) {
  if (!overview) return card("Among all members", notice("This model artifact has no kpis.json."));
  const mark = present(p.r_score) && present(p.f_score) ? { r: p.r_score, f: p.f_score } : null;
  const segment = overview.value_by_segment?.rows.find((row) => row.segment === p.segment);
  const compare = segment && present(p.expected_spend) && present(segment.expected_spend_mean)
    ? el("p", {}, `Expected spend ${money(p.expected_spend)} against ` +
      `${money(segment.expected_spend_mean)} for the average ${p.segment} member.`) : null;
  const standing = card("Among all members",
    compare,
    el("h2", { class: "muted" }, "Churn risk of all members"),
    churnFigure(overview.churn, present(p.churn_risk) ? p.churn_risk : null),
    el("h2", { class: "muted", style: "margin-top:12px" },
      mark ? "RFM cell (outlined: this member's)" : "RFM cells"),
    rfmHeatmap(overview.rfm_grid, mark));
  standing.id = "standing";
  return standing;
}

function itemLine(item, chooser, extra = []) {
  return el("li", { class: "item", "data-item": item.item_id, onclick: () => chooser(item) },
    el("div", { class: "title" }, item.title ?? item.item_id),
    el("div", { class: "meta" }, [item.item_id, item.category].filter(Boolean).join(" · "), ...extra));
}

function historyCard(history, chooser) {
  const trained = history.trained.length
    ? el("ol", { class: "items" }, history.trained.map((item) =>
      itemLine(item, chooser, [item.purchased ? badge("bought", "good") : badge("not bought")])))
    : el("p", { class: "muted" }, "Nothing in the model artifact.");
  const live = history.live.length
    ? table([
      { label: "When", value: (e) => dateTime(e.occurred_at) },
      { label: "Event", value: (e) => e.event },
      { label: "Item", value: (e) => e.title ?? e.item_id },
    ], history.live)
    : el("p", { class: "muted" }, `No events posted since ${day(history.live_since)}.`);
  return card("History", el("h2", { class: "muted" }, "Events since the data's end"), live,
    el("h2", { class: "muted", style: "margin-top:12px" }, "What the models learned (strongest first)"),
    trained);
}

function modelColumn(list, chosen, chooser) {
  return el("div", { class: "card model-list", "data-model": list.model },
    el("h2", {}, list.model, list.model === chosen ? badge("storefront", "accent") : null,
      list.fallback ? badge("fallback", "warn") : null),
    el("ol", { class: "items" }, list.items.map((item) =>
      itemLine(item, chooser, [` · score ${score(item.score)}`]))));
}

function bundleCard(answer, chooser) {
  if (!answer.bundles.length) return card("Bundles", el("p", { class: "muted" }, "No bundles."));
  return card("Bundles for this member",
    answer.bundles.map((bundle) => el("div", { class: "bundle" },
      el("div", { class: "meta muted" },
        `Total ${money(bundle.total_price)} · score ${number(bundle.score, 3)}`),
      el("ol", { class: "items" }, bundle.items.map((item) => itemLine(item, chooser,
        [` · ${item.source}`, item.lift ? ` · lift ${number(item.lift, 2)}` : ""]))))));
}

// The member's past items, most due first, each with its due date and the reason in words;
// null: the artifact predates purchase cycles (the route answers 404).
function buyAgainCard(answer, chooser) {
  const shown = card("Buy again");
  shown.id = "buy-again";
  if (!answer) {
    shown.append(notice("This model artifact has no purchase cycles: retrain it to list " +
      "what members buy again."));
    return shown;
  }
  shown.append(el("p", { class: "muted" }, `Bought before, most due first, as of ${day(answer.as_of)}` +
    (answer.live_purchases ? ` (${number(answer.live_purchases)} purchases since the data's end ` +
      "counted)." : ".")));
  if (!answer.items.length) {
    shown.append(el("p", { class: "muted" }, `Nothing to buy again: ${answer.note}.`));
    return shown;
  }
  shown.append(el("ol", { class: "items" }, answer.items.map((item) => itemLine(item, chooser, [
    ` · due ${day(item.due_date)}`, dueBadge(item.due_in_days),
    el("div", { class: "reason" }, item.reason),
  ]))));
  return shown;
}

function dueBadge(dueInDays) {
  if (dueInDays < -0.5) return badge(`overdue ${number(-dueInDays)} d`, "warn");
  if (dueInDays <= DUE_SOON_DAYS) return badge("due soon", "accent");
  return null;
}

// What clicking an item does: its similar items fill the "Similar items" card.
function itemChooser(target) {
  return async (item) => {
    for (const node of document.querySelectorAll(".item.selected")) node.classList.remove("selected");
    for (const node of document.querySelectorAll(`.item[data-item="${CSS.escape(item.item_id)}"]`)) {
      node.classList.add("selected");
    }
    const heading = el("h2", {}, `Similar to ${item.title ?? item.item_id}`);
    target.replaceChildren(heading, el("p", { class: "muted" }, "Loading…"));
    try {
      const answer = await getJSON(`/v1/items/${encodeURIComponent(item.item_id)}/similar`, { n: SIMILAR });
      target.replaceChildren(heading,
        el("p", { class: "muted" }, `By ${answer.model}${answer.fallback ? " (fallback)" : ""}.`),
        el("ol", { class: "items", id: "similar-items" }, answer.items.map((similar) =>
          itemLine(similar, itemChooser(target), [` · score ${number(similar.score, 3)}`]))));
    } catch (error) {
      target.replaceChildren(heading, el("p", { class: "error" }, error.message));
    }
    target.scrollIntoView({ block: "nearest" });
  };
}

// Scores: popularity counts are whole numbers in the hundreds, model scores small fractions.
function score(value) {
  return number(value, Math.abs(value) >= 100 ? 0 : 3);
}
