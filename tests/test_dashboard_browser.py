"""The dashboard in a real browser: Debian's chromium (headless, driven by Playwright) against
a real server that follows the registry's champion and requires a read key.

Every page must load with no console error; a member's page must show recommendations from
at least two models, the items they may buy again with due dates, and clicking an item its
similar items. Each page's screenshot is saved
under ``$RECSYS_TEST_ARTIFACTS`` (default ``tests/artifacts/``) for a person to look at.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.serving_helpers import KEYS, Server, an_event, copy_artifact, post_events
from training.member_distributions import (
    CHURN_BAND,
    CHURN_RISK,
    EXPECTED_PURCHASES,
    EXPECTED_SPEND,
    churn_distribution,
    value_by_segment,
)
from training.tracking import log_training_run

CHROMIUM = Path("/usr/bin/chromium")
REGISTERED = "dashboard-test-model"
SCREENSHOTS = Path(os.environ.get("RECSYS_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
READ_KEY = next(key for key, roles in KEYS.items() if roles == ["read"])
PAGE_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def server(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Two registered versions of the tiny artifact (the first champion), served from the
    registry, with read keys required."""
    root = tmp_path_factory.mktemp("dashboard-browser")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    metrics = json.loads((tiny_trained[1] / "metrics.json").read_text())
    second = copy_artifact(tiny_trained[1], root / "second", created_at="2030-01-01T00:00:00")
    for artifact in (tiny_trained[1], second):
        log_training_run(metrics, artifact, tracking_uri=tracking_uri, registered_model=REGISTERED)
    running = Server(
        {
            "RECSYS_MODEL_URI": f"models:/{REGISTERED}@champion",
            "RECSYS_TRACKING_URI": tracking_uri,
            "RECSYS_ARTIFACT_CACHE": str(root / "cache"),
            "RECSYS_EVENTS_URL": f"sqlite:///{root / 'events.db'}",
            "RECSYS_REQUIRE_READ_KEY": "true",
        },
        root / "server.log",
    )
    yield running.wait()
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"the browser tests need Debian's chromium at {CHROMIUM}: "
            "apt-get install -y chromium (.ci/run installs it when it is missing)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


#: Console errors and uncaught exceptions of the tab, as they happen (cleared per page).
ERRORS: list[str] = []


@pytest.fixture(scope="module")
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """One tab, its read key entered once (the dashboard keeps it for the tab)."""
    tab = browser.new_page(viewport={"width": 1400, "height": 900})
    tab.set_default_timeout(PAGE_TIMEOUT_MS)
    tab.on("console", lambda message: message.type == "error" and ERRORS.append(message.text))
    tab.on("pageerror", lambda error: ERRORS.append(str(error)))
    yield tab
    tab.close()


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def _goto(page: Page, server: Server, route: str, ready: str) -> None:
    ERRORS.clear()
    page.goto(f"{server.url}/#/{route}")
    page.wait_for_selector(ready)
    page.wait_for_timeout(300)  # charts draw on the next frame
    assert ERRORS == [], f"console errors on #/{route}: {ERRORS}"


def test_the_dashboard_asks_for_the_read_key_then_loads(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/#/overview")
    page.wait_for_selector("text=A read key is needed")
    # The refused requests are the only errors (the browser logs each 401).
    assert ERRORS and all("401" in text for text in ERRORS), ERRORS
    _shot(page, "read-key")
    page.fill("#key-input", READ_KEY)
    page.click("#key-form button")
    page.wait_for_selector(".kpi")
    assert page.locator(".kpi .label").first.inner_text().lower() == "members"


def _overview(server: Server) -> dict[str, Any]:
    return server.client.get("/v1/dashboard/overview", headers={"X-API-Key": READ_KEY}).json()


def test_overview_shows_key_figures_and_charts(page: Page, server: Server) -> None:
    _goto(page, server, "overview", ".kpi")
    labels = [label.lower() for label in page.locator(".kpi .label").all_inner_texts()]
    assert {"active members", "repurchase rate", "average order value"} <= set(labels)
    overview = _overview(server)
    # Months, segment x tier, segment sizes, repurchase / order value, orders, cohorts; churn
    # and value only where the members were scored (else the card says why).
    scored = [bool(overview["churn"]["histogram"]), overview["value_by_segment"]["available"]]
    assert page.locator("canvas").count() == 6 + sum(scored)
    assert page.locator("#rfm-grid td.heat").count() == 25
    if not scored[0]:
        assert overview["churn"]["note"] in page.locator("#figure-churn").inner_text()
    _shot(page, "overview")


def _scored_overview(overview: dict[str, Any], profiles: pl.DataFrame) -> dict[str, Any]:
    """The overview with the score figures of deterministic scores (0.05 .. 0.95 by member)."""
    risk = (pl.int_range(pl.len()) % 10 / 10 + 0.05).alias(CHURN_RISK)
    scored = profiles.with_columns(
        risk,
        pl.when(risk < 0.3).then(pl.lit("low")).otherwise(pl.lit("high")).alias(CHURN_BAND),
        (pl.col("frequency") * 0.5).cast(pl.Float64).alias(EXPECTED_PURCHASES),
        (pl.col("monetary") * 0.2).alias(EXPECTED_SPEND),
    )
    return {
        **overview,
        "churn": churn_distribution(scored, 90),
        "value_by_segment": value_by_segment(scored, 90),
    }


SCORED_PROFILE = {
    "churn_risk": 0.72, "churn_band": "high", "expected_purchases": 1.4, "expected_spend": 38.2,
    "r_score": 3, "f_score": 4, "m_score": 5, "rfm_score": "345",
    "preference_tags": [{"kind": "category", "name": "Books & Maps", "affinity": 2.5}],
    "behaviour_tags": ["weekend-shopper"], "purchase_cycle_days": 12.5, "tier_spend": 58.0,
    "earned_tier": "silver", "next_tier": "gold", "spend_to_next_tier": 42.0,
    "attributes": {"region": "Pacific", "age_band": "25-34", "join_cohort": "2026-Q1"},
    "scores_as_of": "2026-07-01T00:00:00Z",
}  # fmt: skip


def test_scored_members_figures_on_the_overview_and_a_members_page(
    page: Page, server: Server, tiny_trained: tuple[Path, Path]
) -> None:
    """Scores drawn as the API gives them (served here with fixed scores, since the tiny
    artifact's members may be unscored): the churn histogram and value by segment on the
    overview; on a member's page their scores, tags, tier progress, their bin of the churn
    histogram and their RFM cell."""
    profiles = pl.read_parquet(tiny_trained[1] / "member_profiles.parquet")
    overview = _scored_overview(_overview(server), profiles)

    def scored_profile(route: Route) -> None:
        route.fulfill(json={**route.fetch().json(), **SCORED_PROFILE})

    page.route("**/v1/dashboard/overview", lambda route: route.fulfill(json=overview))
    page.route("**/v1/members/*/profile", scored_profile)
    try:
        _goto(page, server, "member/M002", "#standing canvas")
        scores = page.locator("#scores").inner_text()
        for shown in ("72.0%", "high", "R 3 · F 4 · M 5", "every 12.5 days",
                      "spend 42.00 more to reach gold", "Pacific", "25-34", "2026-Q1"):  # fmt: skip
            assert shown in scores, shown
        assert "next 90 days" in scores  # the scores' horizon, from the overview
        tags = page.locator("#tags").inner_text()
        assert "category: Books & Maps" in tags and "weekend-shopper" in tags
        marked = page.locator("#standing td.heat.marked")
        assert marked.get_attribute("title").startswith("R 3, F 4:")
        _shot(page, "member-scored")
        _goto(page, server, "overview", "#figure-churn canvas")
        assert page.locator("#figure-value canvas").count() == 1
        assert "scored members" in page.locator("#figure-churn").inner_text()
        _shot(page, "overview-scored")
    finally:
        page.unroute("**/v1/dashboard/overview")
        page.unroute("**/v1/members/*/profile")


def test_a_members_page_shows_two_models_and_similar_items(page: Page, server: Server) -> None:
    _goto(page, server, "member", "[data-member]")
    _shot(page, "members")
    page.locator("[data-member]").nth(1).click()
    page.wait_for_selector("#recommendations .model-list")
    models = page.locator("#recommendations .model-list").evaluate_all(
        "lists => lists.filter(l => l.querySelector('.item')).map(l => l.dataset.model)"
    )
    assert len(models) >= 2, models
    assert page.locator("#profile").inner_text().count("Segment") == 1
    assert "RFM scores" in page.locator("#scores").inner_text()  # as the API gives them
    clicked = page.locator("#recommendations .item").first
    item = clicked.get_attribute("data-item")
    clicked.click()
    page.wait_for_selector("#similar-items .item")
    similar = page.locator("#similar-items .item").evaluate_all(
        "items => items.map(i => i.dataset.item)"
    )
    assert similar and item not in similar
    assert ERRORS == [], ERRORS
    _shot(page, "member")


def _member_with_buy_again(server: Server) -> dict[str, Any]:
    """The buy-again answer of the first member (M001, M002, ...) with three items or more."""
    for number in range(1, 200):
        answer = server.client.get(
            f"/v1/members/M{number:03d}/buy-again", params={"n": 8},
            headers={"X-API-Key": READ_KEY},
        ).json()  # fmt: skip
        if len(answer["items"]) >= 3:
            return answer
    pytest.fail("no member of the tiny store has three items to buy again")


def test_a_members_page_shows_buy_again_items_with_due_dates(
    page: Page, server: Server, tiny_trained: tuple[Path, Path]
) -> None:
    answer = _member_with_buy_again(server)
    _goto(page, server, f"member/{answer['member_id']}", "#buy-again .item")
    shown = page.locator("#buy-again .item").evaluate_all("items => items.map(i => i.dataset.item)")
    assert shown == [item["item_id"] for item in answer["items"]]
    first = page.locator("#buy-again .item").first.inner_text()
    item = answer["items"][0]
    assert f"due {item['due_date'][:10]}" in first and item["reason"] in first
    overdue = [i for i in answer["items"] if i["due_in_days"] < -0.5]
    assert page.locator("#buy-again .badge.warn").count() == len(overdue)
    assert f"as of {answer['as_of'][:10]}" in page.locator("#buy-again").inner_text()
    page.locator("#buy-again .item").first.click()  # its similar items, like any item
    page.wait_for_selector("#similar-items .item")
    assert ERRORS == [], ERRORS
    _shot(page, "member-buy-again")
    # A member of the members file who never bought anything: the card says so.
    indexed = set(pl.read_parquet(tiny_trained[0] / "interactions.parquet")["member_id"])
    quiet = next(m for m in pl.read_parquet(tiny_trained[0] / "members.parquet")["member_id"]
                 if m not in indexed)  # fmt: skip
    _goto(page, server, f"member/{quiet}", "#buy-again")
    assert "Nothing to buy again: the member bought nothing" in (
        page.locator("#buy-again").inner_text()
    )
    assert page.locator("#buy-again .item").count() == 0


def test_models_page_shows_metrics_and_the_champion(page: Page, server: Server) -> None:
    _goto(page, server, "models", "#registry")
    registry = page.locator("#registry").inner_text()
    assert REGISTERED in registry
    champion = page.locator("#registry tr.best")  # version 1: version 2 did not beat it
    assert champion.count() == 1 and champion.locator(".badge").inner_text() == "champion"
    assert champion.locator("td").first.inner_text().startswith("1")
    assert page.locator("table").count() >= 3  # metrics, per segment, variants, registry
    _shot(page, "models")


def test_reports_page_shows_ctr_by_model_and_variant(page: Page, server: Server) -> None:
    served = server.client.get(
        "/v1/members/M005/recommendations", params={"n": 5}, headers={"X-API-Key": READ_KEY}
    ).json()
    for item in served["items"][:2]:
        post_events(
            server,
            an_event(
                "click", "M005", item["item_id"], recommendation_id=served["recommendation_id"]
            ),
        )
    _goto(page, server, "reports", "canvas")
    text = page.locator("main").inner_text()
    assert "By model" in text and "By A/B variant" in text
    assert page.locator("canvas").count() == 4
    _shot(page, "reports")


def test_screenshots_are_saved() -> None:
    names = {path.name for path in SCREENSHOTS.glob("dashboard-*.png")}
    expected = {
        f"dashboard-{n}.png"
        for n in ("overview", "member", "member-buy-again", "models", "reports")
    }
    assert expected <= names, f"screenshots in {SCREENSHOTS}: {sorted(names)}"
