"""The buy-again list below the API: the ranking on hand-made arrays, the reason text, the table
of a trained artifact with live purchases folded in, the campaign export (``--kind buy-again``)
and the next-basket default of "exclude purchased" (one repeatable mask)."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features import columns as col
from serving.event_store import EventStore
from tests.cli import run_recsys
from tests.serving_helpers import edit_manifest
from training.artifact import ModelArtifact, add_member_lists, load_artifact
from training.artifact.layout import ITEM_CYCLES_FILE, PURCHASE_CYCLES_FILE
from training.buy_again import (
    DAY_SECONDS,
    BuyAgainTable,
    DueLists,
    PastItems,
    due_lists,
    reason,
)
from training.export import BUY_AGAIN_COLUMNS, export_members
from training.models import MODEL_CLASSES
from training.recommend import ArtifactRecommender

DAY = DAY_SECONDS


def test_items_rank_by_how_due_times_how_habitual() -> None:
    """One member at day 100 (item: occasions, cycle days, last purchase day), prior strength
    2: habit = (o - 1 + 2 x rebuy rate) / (o + 1); the rebuy rate is 0.5 but for item 4."""
    past = {  # item: (occasions, cycle, last day)
        0: (5, 10.0, 90.0),   # due now: timing 1, habit 5/6
        1: (5, 10.0, 95.0),   # half-way: 0.5 x 5/6
        2: (5, 10.0, 80.0),   # twice late: 0.5 x 5/6, ties with 1: the later purchase first
        3: (1, 10.0, 90.0),   # bought once: habit = the rebuy rate, 1/2
        4: (1, 10.0, 90.0),   # bought once, rebuy rate 0.1: due now, yet last
        5: (3, np.nan, 90.0),  # no cycle: left out
        6: (4, 10.0, 90.0),   # no longer available: left out
        7: (2, 0.2, 99.5),    # a cycle under a day counts as one: timing 0.5, habit 2/3
    }  # fmt: skip
    items = np.array(list(past), dtype=np.int64)
    occasions, cycle, last = (np.array([v[k] for v in past.values()]) for k in range(3))
    rebuy_rate = np.array([0.5, 0.5, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5])
    available = np.array([True] * 6 + [False, True])

    def ranked(as_of: np.ndarray, n: int) -> DueLists:
        past_items = PastItems(rows=np.zeros(len(items), np.int64), items=items,
                               occasions=occasions.astype(np.int64), last=last * DAY,
                               cycle=cycle)  # fmt: skip
        return due_lists(past_items, as_of, n, rebuy_rate=rebuy_rate, available=available)

    found = ranked(np.array([100.0 * DAY, 100.0 * DAY]), 7)
    assert found.items[0, :6].tolist() == [0, 3, 1, 2, 7, 4] and found.items[0, 6] == -1
    np.testing.assert_allclose(
        found.scores[0, :6], [5 / 6, 1 / 2, 5 / 12, 5 / 12, 1 / 3, 0.1], rtol=1e-12
    )
    assert found.counts().tolist() == [6, 0]  # the second member bought nothing
    assert found.past_items.tolist() == [8, 0]
    np.testing.assert_allclose(found.due[0, :6] / DAY, [100, 100, 105, 90, 100.5, 100])
    np.testing.assert_allclose(found.due_in_days()[0, :6], [0, 0, 5, -10, 0.5, 0])
    np.testing.assert_allclose(found.cycle_days[0, 4], 1.0)
    assert ranked(np.array([100.0 * DAY]), 2).items.tolist() == [[0, 3]]


def test_the_reason_says_frequency_cycle_recency_and_due_date() -> None:
    assert reason(6, 14.2, 16.4, -2.3) == (
        "bought 6 times, about every 14 days; last bought 16 days ago, due 2 days ago"
    )
    assert reason(1, 30.0, 40.0, -10.0) == (
        "bought once 40 days ago; its buyers buy it again about every 30 days; due 10 days ago"
    )
    assert reason(2, 1.0, 0.2, 0.8) == (
        "bought 2 times, about every day; last bought today, due in 1 day"
    )
    assert reason(3, 7.0, 7.2, -0.2).endswith("last bought 7 days ago, due today")


@dataclass(frozen=True)
class Event:
    """A live event as the event store returns it."""

    member_id: str
    item_id: str
    event: str
    occurred_at: float


@pytest.fixture(scope="module")
def artifact(tiny_trained: tuple[Path, Path]) -> ModelArtifact:
    return load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES)


@pytest.fixture(scope="module")
def table(artifact: ModelArtifact) -> BuyAgainTable:
    found = BuyAgainTable.of(ArtifactRecommender(artifact))
    assert found is not None
    return found


def _member_with_a_list(artifact: ModelArtifact, table: BuyAgainTable) -> int:
    found = table.answer(np.arange(len(artifact.member_ids)), 5)
    return int(np.argmax(found.counts() >= 2))


def test_the_artifact_holds_the_cycles_of_its_purchases(
    artifact: ModelArtifact, tiny_trained: tuple[Path, Path]
) -> None:
    items = pl.read_parquet(artifact.extra_files[ITEM_CYCLES_FILE])
    pairs = pl.read_parquet(artifact.extra_files[PURCHASE_CYCLES_FILE])
    assert items.get_column("item_id").to_list() == artifact.item_ids.external_ids.tolist()
    purchases = artifact.purchases.tocoo()
    assert sorted(zip(pairs["member_index"], pairs["item_index"], strict=True)) == sorted(
        zip(purchases.row.tolist(), purchases.col.tolist(), strict=True)
    )
    catalog = pl.read_parquet(tiny_trained[0] / "items.parquet")
    flagged = set(catalog.filter(pl.col(col.REPEATABLE)).get_column(col.ITEM_ID))
    assert flagged <= set(items.filter(pl.col(col.REPEATABLE)).get_column(col.ITEM_ID))
    mask = ArtifactRecommender(artifact).repeatable
    assert mask.tolist() == items.get_column(col.REPEATABLE).to_list()


def test_a_batch_equals_one_member_at_a_time(artifact: ModelArtifact, table: BuyAgainTable) -> None:
    members = np.array([*range(len(artifact.member_ids)), -1], dtype=np.int64)
    batch = table.answer(members, 6)
    for row, member in enumerate(members.tolist()):
        alone = table.answer(np.array([member]), 6)
        assert alone.items[0].tolist() == batch.items[row].tolist(), member
        np.testing.assert_array_equal(alone.scores[0], batch.scores[row])
    assert batch.counts()[-1] == 0  # a member the artifact does not know bought nothing
    assert (batch.as_of == table.since).all()


def test_a_live_purchase_resets_the_items_clock(
    artifact: ModelArtifact, table: BuyAgainTable
) -> None:
    member = _member_with_a_list(artifact, table)
    member_id = str(artifact.member_ids.external_ids[member])
    before = table.answer(np.array([member]), 10)
    item = int(before.items[0, 1])
    item_id = str(artifact.item_ids.external_ids[item])
    day = (table.since // DAY + 3) * DAY + 9 * 3600  # 09:00 three days after the data's end
    live = [
        Event(member_id, item_id, col.PURCHASE, day),
        Event(member_id, item_id, col.PURCHASE, day + 3600),  # same UTC day: one occasion
        Event(member_id, item_id, "impression", day + 20 * DAY),  # no activity
        Event(member_id, item_id, col.VIEW, day + 2 * DAY),
    ]
    after = table.answer(np.array([member]), 10, [live])
    assert after.as_of[0] == day + 2 * DAY and after.live_purchases[0] == 2
    position = after.items[0].tolist().index(item)
    was = before.items[0].tolist().index(item)
    assert after.last[0, position] == day + 3600
    assert after.occasions[0, position] == before.occasions[0, was] + 1
    assert after.cycle_days[0, position] == before.cycle_days[0, was]  # cycles stay as trained
    assert after.due[0, position] == day + 3600 + after.cycle_days[0, position] * DAY
    assert after.elapsed_days()[0, position] == pytest.approx((2 * DAY - 3600) / DAY)
    fixed = table.answer(np.array([member]), 10, [live], as_of=day + 30 * DAY)
    assert fixed.as_of[0] == day + 30 * DAY


def test_an_item_first_bought_live_joins_with_the_items_cycle(
    artifact: ModelArtifact, table: BuyAgainTable
) -> None:
    items = pl.read_parquet(artifact.extra_files[ITEM_CYCLES_FILE]).with_row_index("index")
    candidates = items.filter(pl.col("median_interval_days").is_not_null())
    item = next(i for i in candidates["index"].to_list() if _available(artifact, i))
    item_id = str(artifact.item_ids.external_ids[item])
    stranger = table.answer(
        np.array([-1]), 5, [[Event("new-member", item_id, col.PURCHASE, table.since + DAY)]]
    )
    assert stranger.items[0, 0] == item and stranger.occasions[0, 0] == 1
    cycle = candidates.filter(pl.col("index") == item)["median_interval_days"].item()
    assert stranger.cycle_days[0, 0] == pytest.approx(max(cycle, 1.0))
    assert stranger.last[0, 0] == table.since + DAY


def _available(artifact: ModelArtifact, item: int) -> bool:
    return bool(ArtifactRecommender(artifact).allowed_items()[item])


def _stored_purchase(member: str, item: str, at: float) -> dict:
    return {"event_id": uuid.uuid4().hex, "event": col.PURCHASE, "member_id": member,
            "item_id": item, "recommendation_id": None, "occurred_at": at,
            "received_at": at}  # fmt: skip


def test_the_export_writes_what_the_table_answers_with_live_purchases(
    artifact: ModelArtifact, table: BuyAgainTable, tmp_path: Path
) -> None:
    member = _member_with_a_list(artifact, table)
    member_id = str(artifact.member_ids.external_ids[member])
    item_id = str(artifact.item_ids.external_ids[table.answer(np.array([member]), 5).items[0, 1]])
    store = EventStore.open(f"sqlite:///{tmp_path / 'events.db'}")
    bought_at = table.since + 2 * DAY
    try:
        store.add_events([_stored_purchase(member_id, item_id, bought_at)])
        out = tmp_path / "buy-again.parquet"
        done: list[int] = []
        summary = export_members(artifact, out, kind="buy-again", n=4, batch=50, events=store,
                                 progress=done.append)  # fmt: skip
    finally:
        store.close()
    exported = pl.read_parquet(out)
    assert tuple(exported.columns) == BUY_AGAIN_COLUMNS and summary.live_members == 1
    assert sum(done) == summary.members and summary.rows == exported.height
    members = artifact.member_ids.external_ids.tolist()
    live = [[Event(member_id, item_id, col.PURCHASE, bought_at)] if m == member_id else []
            for m in members]  # fmt: skip
    expected = table.answer(np.arange(len(members)), 4, live)
    by_member = exported.partition_by("member_id", as_dict=True, maintain_order=True)
    for row, member_name in enumerate(members):
        count = int(expected.counts()[row])
        rows = by_member.get((member_name,))
        if not count:
            assert rows is None
            continue
        assert rows is not None and rows["rank"].to_list() == list(range(1, count + 1))
        assert (
            rows["item_id"].to_list()
            == artifact.item_ids.external_ids[expected.items[row, :count]].tolist()
        )
        assert rows["reason"].to_list() == expected.reasons()[row]
        np.testing.assert_allclose(rows["score"].to_numpy(), expected.scores[row, :count])
    mine = by_member[(member_id,)].filter(pl.col("item_id") == item_id).row(0, named=True)
    assert mine["last_purchase"] == datetime.fromtimestamp(bought_at, UTC).replace(tzinfo=None)
    assert mine["as_of"] == mine["last_purchase"]


def test_the_cli_exports_buy_again_as_of_a_date_and_refuses_bad_options(
    artifact: ModelArtifact, table: BuyAgainTable, tmp_path: Path
) -> None:
    send = datetime.fromtimestamp(table.since, UTC).replace(tzinfo=None) + timedelta(days=10)
    out = tmp_path / "due.csv"
    result = run_recsys("export", "--artifact", artifact.path, "--out", out, "--kind",
                        "buy-again", "-n", "3", "--as-of", send.isoformat())  # fmt: skip
    assert result.returncode == 0, result.stderr
    exported = pl.read_csv(out, try_parse_dates=True)
    assert exported.height > 0 and (exported["as_of"] == send).all()
    assert (exported["rank"] <= 3).all()
    early = send - timedelta(days=40)
    refused = run_recsys("export", "--artifact", artifact.path, "--out", tmp_path / "x.csv",
                         "--kind", "buy-again", "--as-of", early.isoformat())  # fmt: skip
    assert refused.returncode == 2 and "before the data's end" in refused.stderr
    for options in (["--kind", "buy-again", "--model", "als"], ["--as-of", send.isoformat()],
                    ["--kind", "nope"]):  # fmt: skip
        refused = run_recsys("export", "--artifact", artifact.path, "--out",
                             tmp_path / "x.csv", *options)  # fmt: skip
        assert refused.returncode == 2, options
    assert not (tmp_path / "x.csv").exists()


@pytest.fixture(scope="module")
def next_basket(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> ModelArtifact:
    """The tiny artifact as a next-basket run writes it: the manifest's target, and the
    precomputed lists that the target's default answers (publish adds them after writing)."""
    path = tmp_path_factory.mktemp("next-basket") / "artifact"
    shutil.copytree(tiny_trained[1], path)
    manifest = edit_manifest(path)
    edit_manifest(path, metrics={**manifest["metrics"], "target": "next-basket"})
    loaded = load_artifact(path, model_classes=MODEL_CLASSES)
    assert loaded.lists is not None
    add_member_lists(path, ArtifactRecommender(loaded).member_lists(loaded.lists.depth))
    return load_artifact(path, model_classes=MODEL_CLASSES)


def test_next_basket_lists_keep_repeatable_purchases_and_drop_the_others(
    next_basket: ModelArtifact, artifact: ModelArtifact
) -> None:
    recommender = ArtifactRecommender(next_basket)
    repeatable = recommender.repeatable
    n_items = len(next_basket.item_ids)
    members = next_basket.member_ids.external_ids[:60].tolist()
    kept_any = False
    for member_id, everything, strict, plain in zip(
        members,
        recommender.recommend(members, n_items),
        recommender.recommend(members, n_items, exclude_purchased=True),
        ArtifactRecommender(artifact).recommend(members, n_items),
        strict=True,
    ):
        bought = set(recommender.purchased(next_basket.member_ids.index_of(member_id)).tolist())
        listed = set(everything.item_indices)
        assert not {item for item in bought if not repeatable[item]} & listed
        again = {item for item in bought if repeatable[item] and recommender.allowed_items()[item]}
        assert again <= listed
        kept_any |= bool(again)
        assert not bought & set(strict.item_indices)
        assert not bought & set(plain.item_indices)  # the default target: unchanged
    assert kept_any


def test_next_basket_precomputed_lists_are_the_default_answers(next_basket: ModelArtifact) -> None:
    members = next_basket.member_ids.external_ids[:80].tolist()
    listed = ArtifactRecommender(next_basket).recommend(members, 10)
    scored = ArtifactRecommender(replace(next_basket, lists=None)).recommend(members, 10)
    assert [a.item_indices for a in listed] == [a.item_indices for a in scored]
