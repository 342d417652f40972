"""``GET /v1/members/{id}/profile`` against a real server of the tiny model artifact: every
field read from the artifact's profile frame and tier rules, live purchases folded in, unknown
members a 404, and an artifact older than the profile columns still answered."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from features.tier_rules import TIER_RULES_FILE, Tier, TierRules, write_tier_rules
from features.validate import load_interactions, load_items, load_members
from tests.serving_helpers import (
    ADMIN,
    READ,
    Server,
    an_event,
    edit_manifest,
    post_events,
    serve_tiny,
    swap_in,
)
from training.artifact.manifest import checksums_under, read_manifest, utc_moment
from training.member_kpis import PROFILES_FILE
from training.member_profiles import build_member_profiles

#: A ladder of its own, so that the test sees the artifact's rules and not the defaults.
RULES = TierRules(
    window_days=180,
    tiers=(Tier(name="basic", min_spend=0), Tier(name="plus", min_spend=40),
           Tier(name="top", min_spend=150)),
)  # fmt: skip
SCORED_AT = datetime(2026, 7, 1)
#: The profile columns of artifacts written before scores, tags and tier progress existed.
OLD_COLUMNS = ("member_id", "segment", "tier", "value_tier", "frequency", "monetary",
               "last_purchase", "first_seen", "recency_days")  # fmt: skip


def _rewrite_extras(artifact: Path, profiles: pl.DataFrame, rules: TierRules | None) -> None:
    """Replace the artifact's profile frame (and tier rules) and re-checksum the manifest.

    The test writes its own frame (with hand-made scores) and a ladder of its own into a copy
    of the tiny artifact, so that every served value can be told from a default.
    """
    profiles.write_parquet(artifact / PROFILES_FILE)
    manifest = read_manifest(artifact)
    extras = set(manifest["extra_files"]) - {TIER_RULES_FILE}
    (artifact / TIER_RULES_FILE).unlink(missing_ok=True)
    if rules is not None:
        write_tier_rules(rules, artifact)
        extras.add(TIER_RULES_FILE)
    files = checksums_under(artifact)
    files.pop("manifest.json", None)
    edit_manifest(artifact, extra_files=sorted(extras), files=files)


@pytest.fixture(scope="module")
def profiles(tiny_trained: tuple[Path, Path]) -> pl.DataFrame:
    store, artifact = tiny_trained
    interactions = load_interactions(store / "interactions.parquet").frame
    members = load_members(store / "members.parquet").frame
    data_end = utc_moment(read_manifest(artifact)["data_end"]).replace(tzinfo=None)
    ids = pl.concat([interactions["member_id"], members["member_id"]]).unique().sort()
    scores = pl.DataFrame({
        "member_id": ids, "churn_risk": [index / len(ids) for index in range(len(ids))],
        "churn_band": "medium", "expected_purchases": 1.5, "expected_spend": 30.0,
    })  # fmt: skip
    return build_member_profiles(
        interactions, data_end, members=members, items=load_items(store / "items.parquet").frame,
        scores=scores, scores_as_of=SCORED_AT, tier_rules=RULES,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(
    tiny_trained: tuple[Path, Path],
    profiles: pl.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("profiles-api")
    artifact = root / "source"
    shutil.copytree(tiny_trained[1], artifact)
    _rewrite_extras(artifact, profiles, RULES)
    running = serve_tiny(artifact, root, {"RECSYS_REQUIRE_READ_KEY": "true"})
    running.client.headers.update(READ)
    yield running
    running.stop()


def _regular(profiles: pl.DataFrame) -> dict:
    """The buyer with the most orders who has tags: the richest profile."""
    tagged = profiles.filter(
        pl.col("preference_tags").list.len() > 0, pl.col("next_tier").is_not_null()
    )
    return tagged.sort("frequency", "member_id", descending=[True, False]).row(0, named=True)


def _utc(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def test_every_field_comes_from_the_artifact(server: Server, profiles: pl.DataFrame) -> None:
    row = _regular(profiles)
    body = server.client.get(f"/v1/members/{row['member_id']}/profile").json()
    for field in ("segment", "tier", "value_tier", "r_score", "f_score", "m_score", "rfm_score",
                  "churn_risk", "churn_band", "expected_purchases", "expected_spend",
                  "behaviour_tags", "purchase_cycle_days", "tier_spend", "earned_tier",
                  "next_tier", "spend_to_next_tier"):  # fmt: skip
        assert body[field] == row[field], field
    assert body["preference_tags"] == row["preference_tags"] and body["preference_tags"]
    assert (body["orders"], body["spend"]) == (row["frequency"], row["monetary"])
    assert body["recency_days"] == pytest.approx(row["recency_days"])
    assert body["last_purchase"] == _utc(row["last_purchase"])
    assert body["tier_rules"] == json.loads(RULES.model_dump_json())
    assert body["spend_to_next_tier"] == pytest.approx(
        {"plus": 40, "top": 150}[body["next_tier"]] - body["tier_spend"]
    )
    assert body["attributes"] == {"region": row["region"], "age_band": row["age_band"],
                                  "join_cohort": row["join_cohort"]}  # fmt: skip
    assert body["attributes"]["age_band"] is not None  # the generated members have birth dates
    assert body["attributes"]["join_cohort"][:4] in ("2024", "2025", "2026")
    assert body["scores_as_of"] == _utc(SCORED_AT)
    assert (body["live_events"], body["as_of"]) == (0, body["live_since"])
    assert body["live_fields"] == ["last_purchase", "orders", "recency_days"]


def test_live_purchases_move_last_purchase_orders_and_recency(
    server: Server, profiles: pl.DataFrame
) -> None:
    row = _regular(profiles)
    member = row["member_id"]
    before = server.client.get(f"/v1/members/{member}/profile").json()
    live_since = datetime.fromisoformat(before["live_since"])
    day = (live_since + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    stamp = lambda at: at.isoformat().replace("+00:00", "Z")  # noqa: E731
    post_events(
        server,
        an_event("purchase", member, "I001", timestamp=stamp(day)),
        an_event("purchase", member, "I002", timestamp=stamp(day + timedelta(hours=2))),
        an_event("view", member, "I003", timestamp=stamp(day + timedelta(days=1, hours=2))),
        an_event("impression", member, "I004", timestamp=stamp(day + timedelta(days=2))),
    )
    body = server.client.get(f"/v1/members/{member}/profile").json()
    assert body["live_events"] == 3  # the impression is no interaction
    assert body["orders"] == row["frequency"] + 1  # two purchases on one UTC day: one order
    assert datetime.fromisoformat(body["last_purchase"]) == day + timedelta(hours=2)
    assert datetime.fromisoformat(body["as_of"]) == day + timedelta(days=1, hours=2)
    assert body["recency_days"] == pytest.approx(1.0)  # last purchase to the last live event
    # Neither spend (events carry no price) nor the scores follow live events.
    for field in ("spend", "tier_spend", "spend_to_next_tier", "churn_risk", "segment"):
        assert body[field] == before[field], field


def test_members_without_events_and_unknown_members(
    server: Server, profiles: pl.DataFrame, tiny_trained: tuple[Path, Path]
) -> None:
    indexed = set(pl.read_parquet(tiny_trained[0] / "interactions.parquet")["member_id"])
    quiet = profiles.filter(~pl.col("member_id").is_in(pl.Series(list(indexed)).implode())).row(
        0, named=True
    )
    body = server.client.get(f"/v1/members/{quiet['member_id']}/profile").json()
    assert body["known"] is False and body["orders"] == 0 and body["earned_tier"] == "basic"
    assert (body["segment"], body["next_tier"]) == (quiet["segment"], "plus")
    missing = server.client.get("/v1/members/NOBODY/profile")
    assert missing.status_code == 404 and "NOBODY" in missing.json()["error"]["message"]


def test_an_artifact_older_than_the_profile_columns_is_still_answered(
    server: Server, profiles: pl.DataFrame, tmp_path: Path
) -> None:
    served = Path(server.client.get("/v1/models").json()["variants"][0]["source"])
    older = tmp_path / "older"
    shutil.copytree(served, older)
    _rewrite_extras(older, profiles.select(OLD_COLUMNS), None)
    edit_manifest(older, created_at="2030-01-01T00:00:00+00:00")
    swap_in(older, served)
    reload = server.client.post("/v1/admin/reload", headers=ADMIN)
    assert reload.status_code == 200 and reload.json()["variants"][0]["swapped"], reload.text
    regular = _regular(profiles)["member_id"]  # has live events by now: another buyer
    row = profiles.filter(pl.col("frequency") > 0, pl.col("member_id") != regular).row(
        0, named=True
    )
    body = server.client.get(f"/v1/members/{row['member_id']}/profile").json()
    assert (body["segment"], body["orders"]) == (row["segment"], row["frequency"])
    assert body["churn_risk"] is None and body["tier_rules"] is None
    assert body["preference_tags"] is None and body["next_tier"] is None
