"""Campaign exports: every member of the campaign set is exactly one of sent, holdout,
suppressed or capped; the holdout group is stable within a family; caps read the ledger of
earlier exports; the ledger (SQLite and PostgreSQL) holds both groups; a failed export leaves
neither files nor sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from features import columns as col
from serving.event_store import EventStore
from tests.cli import run_recsys
from tests.serving_helpers import throwaway_postgres
from training.artifact import ModelArtifact, load_artifact
from training.artifact.manifest import sha256
from training.campaigns import (
    CampaignPlan,
    CampaignSend,
    FrequencyCaps,
    excluded_path,
    export_campaign,
    manifest_path,
)
from training.models import MODEL_CLASSES

DAY = 86_400.0
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def artifact(tiny_trained: tuple[Path, Path]) -> ModelArtifact:
    return load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    opened = EventStore.open(f"sqlite:///{tmp_path / 'events.db'}")
    yield opened
    opened.close()


def _all_members(artifact: ModelArtifact) -> list[str]:
    from training.roster import Roster

    return [*artifact.member_ids.external_ids.tolist(), *Roster(artifact).member_ids.tolist()]


def _outcomes(out: Path) -> dict[str, set[str]]:
    """Members by outcome, from the files alone: the sent from the export, the rest from the
    reasons file's member rows (item id null)."""
    sent = set(pl.read_parquet(out).get_column("member_id"))
    excluded = pl.read_parquet(excluded_path(out)).filter(pl.col("item_id").is_null())
    by_reason = {
        reason: set(excluded.filter(pl.col("reason") == reason).get_column("member_id"))
        for reason in ("holdout", "suppressed", "capped")
    }
    assert excluded.height == sum(len(members) for members in by_reason.values())
    return {"sent": sent, **by_reason}


@pytest.mark.parametrize("kind", ["recommendations", "bundles", "buy-again"])
def test_every_member_is_exactly_one_of_sent_holdout_suppressed_or_capped(
    artifact: ModelArtifact, store: EventStore, tmp_path: Path, kind: str
) -> None:
    members = _all_members(artifact)
    plan = CampaignPlan(
        "weekly", holdout_share=0.2, seed=7,
        caps=FrequencyCaps(item_days=7, max_sends=2, per_days=7), suppressed=set(members[:5]),
    )  # fmt: skip
    sent_before: list[set[str]] = []
    for day in range(3):  # the third export meets members sent twice: the member cap bites
        out = tmp_path / f"{kind}-{day}.parquet"
        summary = export_campaign(
            artifact,
            out,
            store,
            plan,
            kind=kind,
            n=3,
            batch=64,
            sent_at=T0 + day * DAY,  # type: ignore[arg-type]
        )
        found = _outcomes(out)
        counts = json.loads(manifest_path(out).read_text())["counts"]
        groups = list(found.values())
        assert sum(len(group) for group in groups) == len(set().union(*groups))  # disjoint
        assert {name: len(group) for name, group in found.items()} == {
            name: counts[name] for name in found
        }
        assert counts["campaign_set"] == sum(len(group) for group in groups)
        assert counts["campaign_set"] + counts["no_items"] == counts["selected"] == len(members)
        assert found["suppressed"] == set(members[:5])
        assert summary.outcomes.campaign_set == counts["campaign_set"]
        if kind != "buy-again":
            assert counts["no_items"] == 0  # popularity answers everyone
        if day == 2:
            twice = sent_before[0] & sent_before[1]
            assert twice and twice <= found["capped"] and not twice & found["sent"]
        sent_before.append(found["sent"])


def test_the_holdout_group_is_stable_in_a_family_and_drawn_afresh_in_another(
    artifact: ModelArtifact, store: EventStore, tmp_path: Path
) -> None:
    def held_out(family: str, name: str, members: list[str] | None = None) -> set[str]:
        out = tmp_path / f"{name}.parquet"
        export_campaign(artifact, out, store, CampaignPlan(family, 0.3, seed=1), member_ids=members)
        return _outcomes(out)["holdout"]

    everyone = _all_members(artifact)
    first, again = held_out("spring", "a"), held_out("spring", "b")
    half = everyone[: len(everyone) // 2]
    assert first == again
    assert held_out("spring", "half", half) == first & set(half)  # not the export's order or size
    other = held_out("autumn", "c")
    assert other != first
    assert 0.2 < len(first) / len(everyone) < 0.4


@pytest.mark.parametrize("kind", ["recommendations", "bundles"])
def test_the_item_cap_sends_other_items_and_lists_the_ones_it_held_back(
    artifact: ModelArtifact, store: EventStore, tmp_path: Path, kind: str
) -> None:
    plan = CampaignPlan("nightly", holdout_share=0.1, caps=FrequencyCaps(item_days=3))
    outs = [tmp_path / f"{day}.parquet" for day in range(3)]
    for day, out in zip((0, 1, 4), outs, strict=True):
        export_campaign(artifact, out, store, plan, kind=kind, n=4, sent_at=T0 + day * DAY)  # type: ignore[arg-type]
    columns = (
        ["item_id"]
        if kind == "recommendations"
        else ["anchor_item_id", "complement_item_id", "third_item_id"]
    )
    first, second, later = (_pairs(pl.read_parquet(out), columns) for out in outs)
    assert first and not first & second  # nothing sent on day 0 again on day 1
    sent_first = pl.read_parquet(outs[0])
    assert sent_first.group_by("member_id").len().get_column("len").min() == 4
    if kind == "recommendations":  # ranked deeper: the lists stay full
        second_frame = pl.read_parquet(outs[1])
        assert set(second_frame.group_by("member_id").len().get_column("len")) == {4}
        assert second_frame.get_column("rank").max() == 4
    held_back = _pairs(
        pl.read_parquet(excluded_path(outs[1])).filter(pl.col("item_id").is_not_null()),
        ["item_id"],
    )
    assert held_back and held_back <= first
    assert later & first  # day 4 is past the 3 days: the items may come back


def _pairs(frame: pl.DataFrame, columns: list[str]) -> set[tuple[str, str]]:
    return {
        (row[0], item)
        for row in frame.select("member_id", *columns).iter_rows()
        for item in row[1:]
        if item is not None
    }


def test_the_ledger_holds_both_groups_and_the_manifest_checks_every_file(
    artifact: ModelArtifact, store: EventStore, tmp_path: Path
) -> None:
    out = tmp_path / "spring.csv"
    summary = export_campaign(artifact, out, store, CampaignPlan("spring", 0.25), n=2)
    sends = store.sends(campaign_id=summary.campaign_id)
    exported = pl.read_csv(out)
    treated = {send.member_id: send.items for send in sends if send.group == "treatment"}
    held = {send.member_id for send in sends if send.group == "holdout"}
    expected = {
        member: tuple(frame.sort("rank").get_column("item_id"))
        for (member,), frame in exported.partition_by("member_id", as_dict=True).items()
    }
    assert treated == expected
    assert held == _csv_outcomes(out)["holdout"] and all(
        len(send.items) == 2 for send in sends if send.group == "holdout"
    )  # their would-be items
    [row] = store.campaigns()
    assert row["campaign_id"] == summary.campaign_id and row["family"] == "spring"
    assert row["counts"] == {"treatment": len(treated), "holdout": len(held)}
    manifest = json.loads(manifest_path(out).read_text())
    assert set(manifest["files"]) == {out.name, excluded_path(out).name}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256(tmp_path / name)
    assert manifest["campaign_id"] == summary.campaign_id
    assert manifest["artifact"]["chosen_model"] == artifact.chosen


def _csv_outcomes(out: Path) -> dict[str, set[str]]:
    excluded = pl.read_csv(excluded_path(out), infer_schema=False)
    return {
        reason: set(excluded.filter(pl.col("reason") == reason).get_column("member_id"))
        for reason in ("holdout", "suppressed", "capped")
    }


def test_a_failed_export_leaves_no_files_and_no_sends(
    artifact: ModelArtifact, store: EventStore, tmp_path: Path
) -> None:
    out = tmp_path / "broken.parquet"

    def fail_after_first_batch(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_campaign(
            artifact, out, store, CampaignPlan("spring"), batch=50, progress=fail_after_first_batch
        )
    assert list(tmp_path.glob("broken*")) == [] and not list(tmp_path.glob(".broken*"))
    assert store.sends() == [] and store.campaigns() == []


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with throwaway_postgres() as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_ledger_reads_back_what_it_recorded(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'ledger.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres")
    )
    ledger = EventStore.open(url)
    try:
        ledger.discard("c-1"), ledger.discard("c-2")  # a shared PostgreSQL cluster
        sends = [
            CampaignSend("c-1", "spring", "Mé-1", "treatment", ("I1", "Ítem 2"), None, T0),
            CampaignSend("c-1", "spring", "M2", "holdout", ("I3",), None, T0),
            CampaignSend("c-2", "autumn", "Mé-1", "treatment", (), "OFF-5", T0 + DAY),
        ]
        ledger.record(sends)
        assert ledger.sends(campaign_id="c-1") == sends[:2]
        assert ledger.sends(member_ids=["Mé-1"]) == [sends[0], sends[2]]
        assert ledger.sends(family="autumn", since=T0 + 1) == [sends[2]]
        rows = {row["campaign_id"]: row for row in ledger.campaigns()}
        assert rows["c-1"]["counts"] == {"treatment": 1, "holdout": 1}
        assert rows["c-2"]["created_at"] == T0 + DAY and rows["c-2"]["family"] == "autumn"
        assert ledger.discard("c-1") == 2 and ledger.sends(campaign_id="c-1") == []
    finally:
        ledger.discard("c-2")
        ledger.close()


def test_cli_exports_a_campaign_and_refuses_bad_options(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    artifact = tiny_trained[1]
    optout = tmp_path / "optout.csv"
    pl.DataFrame({"member_id": ["M001", "M002"]}).write_csv(optout)
    url = f"sqlite:///{tmp_path / 'events.db'}"
    out = tmp_path / "campaign.parquet"
    base = ("campaign", "export", "--artifact", artifact, "--events-url", url, "-n", "3")
    done = run_recsys(*base, "--campaign", "win-back", "--out", out, "--suppress", optout,
                      "--item-cap-days", "7", "--max-sends", "3", "--per-days", "7")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "campaign win-back-" in done.stdout and "2 suppressed" in done.stdout
    assert _outcomes(out)["suppressed"] == {"M001", "M002"}
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["caps"] == {"item_days": 7.0, "max_sends": 3, "per_days": 7.0}
    assert manifest["filters"]["suppress"] == [str(optout)]
    for options, message in [
        (("--campaign", "win back"), "--campaign 'win back': a family name"),
        (("--campaign", "x", "--max-sends", "2"), "--max-sends and --per-days go together"),
        (("--campaign", "x", "--suppress", tmp_path / "none.txt"), "--suppress"),
    ]:
        refused = run_recsys(*base, "--out", tmp_path / "refused.parquet", *options)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert not (tmp_path / "refused.parquet").exists()


def test_offers_go_to_sent_members_within_their_cap_into_the_file_and_the_ledger(
    artifact: ModelArtifact, store: EventStore, tmp_path: Path
) -> None:
    offers = tmp_path / "offers.csv"
    offers.write_text(
        "offer_id,kind,value,max_redemptions\nGIFT,free_gift,0.01,5\nTEN,percent_off,10,1000\n"
    )
    out = tmp_path / "offers.parquet"
    plan = CampaignPlan("spring", 0.3, offers_file=offers)
    summary = export_campaign(artifact, out, store, plan, n=2, sent_at=T0)
    exported = pl.read_parquet(out)
    per_member = exported.unique("member_id").select("member_id", "offer_id", "offer_reason")
    given = per_member.filter(pl.col("offer_id").is_not_null())
    assert given.height == summary.outcomes.offered > 0
    assert given.filter(pl.col("offer_id") == "GIFT").height <= 5
    assert per_member.get_column("offer_reason").null_count() == 0
    sends = store.sends(campaign_id=summary.campaign_id)
    assert {s.member_id: s.offer_id for s in sends if s.group == "treatment"} == dict(
        per_member.select("member_id", "offer_id").iter_rows()
    )
    assert all(send.offer_id is None for send in sends if send.group == "holdout")
    assert json.loads(manifest_path(out).read_text())["offers"]["sha256"] == sha256(offers)


def test_a_category_offer_reaches_the_members_who_prefer_that_category(
    artifact: ModelArtifact, store: EventStore, tmp_path: Path
) -> None:
    from training.member_kpis import PROFILES_FILE

    profiles = pl.read_parquet(artifact.extra_files[PROFILES_FILE])
    preferring = profiles.select(
        col.MEMBER_ID,
        pl.col("preference_tags").list.eval(
            pl.element().filter(pl.element().struct.field("kind") == "category")
            .struct.field("name")
        ).alias("categories"),
    )  # fmt: skip
    category = preferring.explode("categories").get_column("categories").drop_nulls().mode()[0]
    offers = tmp_path / "offers.csv"
    offers.write_text(
        f"offer_id,kind,value,categories,max_redemptions\nCAT,percent_off,5,{category},1000\n"
    )
    out = tmp_path / "category.parquet"
    summary = export_campaign(
        artifact, out, store, CampaignPlan("cats", 0.2, offers_file=offers), n=2, sent_at=T0
    )
    offered = set(
        pl.read_parquet(out).filter(pl.col("offer_id") == "CAT").get_column(col.MEMBER_ID)
    )
    wanting = set(
        preferring.filter(pl.col("categories").list.contains(category)).get_column(col.MEMBER_ID)
    )
    assert summary.outcomes.offered == len(offered) > 0
    assert offered <= wanting
    sends = {send.member_id: send for send in store.sends(campaign_id=summary.campaign_id)}
    assert all(sends[member].offer_reason.startswith("chosen") for member in offered)


def test_a_ledger_of_the_first_format_is_moved_into_the_two_tables(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "CREATE TABLE recsys_campaign_sends (id INTEGER PRIMARY KEY, campaign_id VARCHAR,"
            " family VARCHAR, member_id VARCHAR, send_group VARCHAR, items TEXT,"
            " offer_id VARCHAR, sent_at FLOAT);"
            "CREATE INDEX ix_recsys_campaign_sends_member_sent"
            " ON recsys_campaign_sends (member_id, sent_at);"
        )
        connection.executemany(
            "INSERT INTO recsys_campaign_sends (campaign_id, family, member_id, send_group, items,"
            " offer_id, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [("old-1", "spring", "M1", "treatment", "I1\x1fI2", "OFF", T0),
             ("old-1", "spring", "M2", "holdout", "I3", None, T0)],
        )  # fmt: skip
    store = EventStore.open(f"sqlite:///{path}")
    try:
        assert store.sends(campaign_id="old-1") == [
            CampaignSend("old-1", "spring", "M1", "treatment", ("I1", "I2"), "OFF", T0),
            CampaignSend("old-1", "spring", "M2", "holdout", ("I3",), None, T0),
        ]
        [listed] = store.campaigns()
        assert listed["counts"] == {"treatment": 1, "holdout": 1}
    finally:
        store.close()
    reopened = EventStore.open(f"sqlite:///{path}")  # moved once: a second start changes nothing
    assert len(reopened.sends()) == 2
    reopened.close()
