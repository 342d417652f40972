// The dashboard's router: #/<page>/<argument>, one module per page under pages/.
import { ApiError, readKey, setReadKey } from "./api.js";
import { destroyCharts } from "./charts.js";
import { el } from "./ui.js";
import * as member from "./pages/member.js";
import * as models from "./pages/models.js";
import * as overview from "./pages/overview.js";
import * as reports from "./pages/reports.js";

const PAGES = { overview, member, models, reports };
const main = document.getElementById("page");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("key-input");

function route() {
  const [name = "overview", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] ? name : "overview";
  return { page, argument: rest.map(decodeURIComponent).join("/") || null };
}

async function show() {
  const { page, argument } = route();
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
  destroyCharts();
  main.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    const content = await PAGES[page].render(argument);
    main.replaceChildren(content);
    document.body.dataset.page = page;
  } catch (error) {
    main.replaceChildren(failure(error));
  }
}

// What a page that could not load says: the API's message, and the key form when it asks
// for a key.
function failure(error) {
  if (error instanceof ApiError && error.needsKey) {
    keyForm.hidden = false;
    keyInput.focus();
    return el("div", { class: "card" }, el("h2", {}, "A read key is needed"),
      el("p", {}, error.message),
      el("p", { class: "muted" }, "This deployment requires a key with the read role " +
        "(RECSYS_REQUIRE_READ_KEY). Enter it above; it is kept for this tab only."));
  }
  return el("div", { class: "card" }, el("h2", { class: "error" }, "This page could not load"),
    el("p", {}, error.message || String(error)));
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setReadKey(keyInput.value.trim());
  keyInput.value = "";
  show();
});
keyForm.hidden = !readKey();
window.addEventListener("hashchange", show);
show();
