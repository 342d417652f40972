// Building the page: elements, cards, tables, and the formats figures are shown in.

// An element: el("td", { class: "num" }, "12") ; children are nodes or text.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function card(title, ...body) {
  return el("section", { class: "card" }, title ? el("h2", {}, title) : null, ...body);
}

export function badge(text, kind = "") {
  return el("span", { class: `badge ${kind}` }, text);
}

// A table: columns are { label, value(row), num?, className?(row) }.
export function table(columns, rows, { rowClass } = {}) {
  const head = el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : null }, c.label)));
  const body = rows.map((row) =>
    el(
      "tr",
      { class: rowClass ? rowClass(row) : null },
      columns.map((c) => el("td", { class: c.num ? "num" : null }, c.value(row))),
    ),
  );
  return el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, body)));
}

export function notice(text) {
  return el("p", { class: "notice" }, text);
}

const missing = "–";

export function number(value, digits = 0) {
  if (value === null || value === undefined) return missing;
  return Number(value).toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function money(value) {
  return value === null || value === undefined ? missing : number(value, 2);
}

export function percent(value, digits = 1) {
  return value === null || value === undefined ? missing : `${number(value * 100, digits)}%`;
}

export function day(value) {
  return value ? String(value).slice(0, 10) : missing;
}

export function dateTime(value) {
  return value ? String(value).slice(0, 16).replace("T", " ") : missing;
}
