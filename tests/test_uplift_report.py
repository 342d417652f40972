"""The uplift report end to end: a planted campaign on the tiny store, its sends in the real
``EventStore`` ledger and its purchases as stored events, read back by a real server
(``GET /v1/reports/campaigns/{id}``), by ``recsys campaign report`` (both say the same) and
by the dashboard's reports page in Debian's chromium (screenshot ``dashboard-campaigns.png``
under ``$RECSYS_TEST_ARTIFACTS``, as ``tests/test_dashboard_browser.py`` saves its own)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from playwright.sync_api import sync_playwright

from features.synthetic.campaign import CampaignEffect
from serving.event_store import EventStore
from tests.cli import run_recsys
from tests.serving_helpers import Server, serve_tiny
from tests.test_dashboard_browser import CHROMIUM, PAGE_TIMEOUT_MS, SCREENSHOTS
from training.planted_campaign import PlantedCampaign, plant_store_campaign

CAMPAIGN = "planted-1"
EFFECT = CampaignEffect(base_rate=0.1, treated_rate=0.3, other_rate=0.1, seed=3)


@pytest.fixture(scope="module")
def campaign(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, PlantedCampaign, str]]:
    root = tmp_path_factory.mktemp("uplift-api")
    planted = plant_store_campaign(tiny_trained[0], EFFECT, campaign_id=CAMPAIGN)
    url = f"sqlite:///{root / 'events.db'}"
    store = EventStore.open(url)
    store.record(planted.sends)
    store.add_events(
        [
            {
                "event_id": f"planted-{number}",
                "event": row["event"],
                "member_id": row["member_id"],
                "item_id": row["item_id"],
                "recommendation_id": None,
                "occurred_at": row["timestamp"].timestamp(),
                "received_at": time.time(),
            }
            for number, row in enumerate(
                planted.planted.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))
                .iter_rows(named=True)
            )
        ]
    )  # fmt: skip
    store.close()
    server = serve_tiny(tiny_trained[1], root)
    yield server, planted, url
    server.stop()


def test_the_api_reports_the_planted_campaign(
    campaign: tuple[Server, PlantedCampaign, str],
) -> None:
    server, planted, _ = campaign
    listed = server.client.get("/v1/reports/campaigns").json()["campaigns"]
    assert [row["campaign_id"] for row in listed] == [CAMPAIGN]
    response = server.client.get(f"/v1/reports/campaigns/{CAMPAIGN}")
    assert response.status_code == 200, response.text
    body = response.json()
    overall = body["overall"]
    groups = [send.group for send in planted.sends]
    assert overall["treatment"]["members"] == groups.count("treatment")
    assert overall["holdout"]["members"] == groups.count("holdout")
    planted_buyers = planted.planted.get_column("member_id").n_unique()
    assert overall["treatment"]["converted"] + overall["holdout"]["converted"] == planted_buyers
    assert overall["treatment"]["revenue"] > 0  # priced from the model artifact's catalog
    sent_item = next(p for p in overall["uplift"] if p["metric"] == "sent_item_conversion")
    truth = EFFECT.truth("sent_item")
    assert sent_item["absolute"]["low"] <= truth.absolute <= sent_item["absolute"]["high"]
    assert {"segment", "tier"} <= set(body["breakdowns"])


def test_the_report_page_has_its_plot_and_an_unknown_campaign_is_a_json_404(
    campaign: tuple[Server, PlantedCampaign, str],
) -> None:
    server, _, _ = campaign
    page = server.client.get(f"/v1/reports/campaigns/{CAMPAIGN}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "data:image/png;base64," in page.text and CAMPAIGN in page.text
    missing = server.client.get("/v1/reports/campaigns/nope")
    assert missing.status_code == 404
    assert "not in the ledger" in missing.json()["error"]["message"]
    bad = server.client.get(f"/v1/reports/campaigns/{CAMPAIGN}", params={"window_days": 0})
    assert bad.status_code == 422


def test_the_cli_reports_what_the_api_does(
    campaign: tuple[Server, PlantedCampaign, str],
    tiny_trained: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    server, _, url = campaign
    page = tmp_path / "uplift.html"
    done = run_recsys(
        "campaign", "report", CAMPAIGN, "--events-url", url,
        "--artifact", tiny_trained[1], "--json", "--html", page,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == server.client.get(f"/v1/reports/campaigns/{CAMPAIGN}").json()
    assert "data:image/png;base64," in page.read_text()
    table = run_recsys("campaign", "report", CAMPAIGN, "--events-url", url, "--window-days", "7")
    assert table.returncode == 0, table.stderr
    assert "bought a sent item" in table.stdout
    unknown = run_recsys("campaign", "report", "nope", "--events-url", url)
    assert unknown.returncode == 2
    assert f"latest campaigns there: {CAMPAIGN}" in unknown.stderr
    # The planted campaign is its own family: --latest finds it, an unknown family is refused.
    newest = run_recsys("campaign", "report", "--latest", CAMPAIGN, "--events-url", url, "--json")
    assert newest.returncode == 0, newest.stderr
    assert json.loads(newest.stdout)["campaign_id"] == CAMPAIGN
    absent = run_recsys("campaign", "report", "--latest", "spring", "--events-url", url)
    assert absent.returncode == 2 and f"families there: {CAMPAIGN}" in absent.stderr
    neither = run_recsys("campaign", "report", "--events-url", url)
    assert neither.returncode == 2 and "--latest FAMILY" in neither.stderr


def test_the_dashboard_lists_the_campaign_with_its_uplift_chart(
    campaign: tuple[Server, PlantedCampaign, str],
) -> None:
    server, _, _ = campaign
    if not CHROMIUM.is_file():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}")
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}/#/reports")
        heading = page.get_by_role("heading", name=f"Campaign {CAMPAIGN} ({CAMPAIGN})")
        heading.wait_for()
        section = page.locator("section.card", has=heading)
        section.locator("canvas").wait_for()
        page.wait_for_timeout(300)  # charts draw on the next frame
        text = section.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dashboard-campaigns.png"), full_page=True)
        browser.close()
    assert errors == []
    assert "Bought a sent item" in text and "Uplift (95%)" in text
