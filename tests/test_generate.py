"""The synthetic store behaves like a store: exact size, contract schemas, a funnel, power-law
popularity, lifecycles, repeat purchases, planted bundles that mining can find, cold starts —
and the same seed always gives the same files."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.columns import (
    AVAILABLE,
    BIRTH_DATE,
    BRAND,
    CATEGORY,
    DESCRIPTION,
    EVENT,
    EVENTS,
    ITEM_ID,
    JOINED_AT,
    MEMBER_ID,
    ORDER_ID,
    PRICE,
    QUANTITY,
    REGION,
    REPEATABLE,
    TAGS,
    TIER,
    TIMESTAMP,
    TITLE,
)
from features.errors import ConfigError
from features.synthetic import (
    BUNDLE_ID,
    BUNDLE_ITEM_IDS,
    BUNDLE_SIZE,
    FUNNEL_SHARES,
    MANIFEST_FILE,
    PERIOD_END,
    PERIOD_START,
    RELEASED_AT,
    TIERS,
    StoreConfig,
    StoreSummary,
    generate_store,
)
from features.synthetic import members as synthetic_members
from features.validate import load_members

VIEW, CLICK, CART, PURCHASE = EVENTS
START: datetime = PERIOD_START.astype(datetime)
END: datetime = PERIOD_END.astype(datetime)

# Several chunks of members, so that chunk boundaries are exercised too.
CONFIG = StoreConfig(members=600, items=300, events=40_000, seed=11, members_per_chunk=150)
TINY = StoreConfig(members=120, items=60, events=3_000, seed=5, members_per_chunk=50)


@dataclass(frozen=True)
class Store:
    summary: StoreSummary
    progress: list[int]
    interactions: pl.DataFrame
    items: pl.DataFrame
    members: pl.DataFrame
    bundles: pl.DataFrame


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    progress: list[int] = []
    summary = generate_store(CONFIG, tmp_path_factory.mktemp("store"), on_progress=progress.append)
    return Store(
        summary=summary,
        progress=progress,
        interactions=pl.read_parquet(summary.interactions_path),
        items=pl.read_parquet(summary.items_path),
        members=pl.read_parquet(summary.members_path),
        bundles=pl.read_csv(summary.bundles_path),
    )


def _purchase_orders(interactions: pl.DataFrame) -> pl.DataFrame:
    """Distinct (order, item) pairs of purchases: the baskets that bundle mining looks at."""
    return interactions.filter(pl.col(EVENT) == PURCHASE).select(ORDER_ID, ITEM_ID).unique()


# --- size and shape -------------------------------------------------------------------------


def test_writes_exactly_the_requested_number_of_events(store: Store) -> None:
    summary = store.summary
    assert store.interactions.height == CONFIG.events == summary.events
    counts = store.interactions.get_column(EVENT).value_counts()
    by_event = dict(zip(counts.get_column(EVENT), counts.get_column("count"), strict=True))
    expected = (summary.views, summary.clicks, summary.carts, summary.purchases)
    assert [by_event[event] for event in EVENTS] == list(expected)
    assert store.members.height == CONFIG.members
    assert store.items.height == CONFIG.items


def test_files_follow_the_data_contract(store: Store) -> None:
    assert store.interactions.schema == pl.Schema(
        {
            MEMBER_ID: pl.String,
            ITEM_ID: pl.String,
            EVENT: pl.String,
            TIMESTAMP: pl.Datetime("us"),
            QUANTITY: pl.Int32,
            PRICE: pl.Float64,
            ORDER_ID: pl.String,
        }
    )
    assert store.items.schema == pl.Schema(
        {
            ITEM_ID: pl.String,
            TITLE: pl.String,
            CATEGORY: pl.String,
            BRAND: pl.String,
            PRICE: pl.Float64,
            TAGS: pl.String,
            DESCRIPTION: pl.String,
            AVAILABLE: pl.Boolean,
            REPEATABLE: pl.Boolean,
            RELEASED_AT: pl.Datetime("us"),
        }
    )
    assert store.members.schema == pl.Schema(
        {
            MEMBER_ID: pl.String,
            JOINED_AT: pl.Datetime("us"),
            TIER: pl.String,
            REGION: pl.String,
            BIRTH_DATE: pl.Date,
        }
    )
    assert store.bundles.columns == [BUNDLE_ID, BUNDLE_ITEM_IDS, BUNDLE_SIZE]
    assert set(store.interactions.get_column(EVENT).unique()) == set(EVENTS)
    assert set(store.members.get_column(TIER).unique()) <= set(TIERS)
    assert store.interactions.null_count().drop(ORDER_ID).sum_horizontal().item() == 0


def test_ids_are_zero_padded_to_fit_the_count(store: Store) -> None:
    assert store.members.get_column(MEMBER_ID).head(2).to_list() == ["M001", "M002"]
    assert store.items.get_column(ITEM_ID).tail(1).to_list() == ["I300"]
    assert store.members.get_column(MEMBER_ID).is_unique().all()


def test_catalog_reads_like_a_store(store: Store) -> None:
    items = store.items
    assert 20 <= items.get_column(CATEGORY).n_unique() <= 40
    assert (items.get_column(PRICE) > 0).all()
    first_words = items.get_column(TITLE).str.split(" ").list.first()
    assert (first_words == items.get_column(BRAND)).all()  # "Brand Adjective Noun"
    assert (items.get_column(TAGS).str.split("|").list.len() >= 2).all()
    assert not items.get_column(AVAILABLE).all()


def test_manifest_records_the_config_and_the_counts(store: Store) -> None:
    manifest = json.loads((store.summary.out_dir / MANIFEST_FILE).read_text())
    assert manifest["config"]["seed"] == CONFIG.seed
    assert manifest["config"]["events"] == CONFIG.events
    assert manifest["summary"] == store.summary.counts()


def test_progress_is_reported_per_chunk_up_to_the_total(store: Store) -> None:
    assert len(store.progress) > 1
    assert store.progress == sorted(store.progress)
    assert store.progress[-1] == CONFIG.events


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = generate_store(TINY, tmp_path / "a")
    second = generate_store(TINY, tmp_path / "b")
    for name in ("interactions.parquet", "items.parquet", "members.parquet", "store.json"):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name
    assert first.bundles_path.read_text() == second.bundles_path.read_text()


def test_different_seed_gives_a_different_store(tmp_path: Path) -> None:
    first = generate_store(TINY, tmp_path / "a")
    other = generate_store(StoreConfig(**{**TINY.__dict__, "seed": TINY.seed + 1}), tmp_path / "b")
    a = pl.read_parquet(first.interactions_path)
    b = pl.read_parquet(other.interactions_path)
    assert a.height == b.height
    assert not a.equals(b)
    assert not pl.read_parquet(first.items_path).equals(pl.read_parquet(other.items_path))


# --- behaviour ------------------------------------------------------------------------------


def test_every_deeper_event_is_preceded_by_the_weaker_one(store: Store) -> None:
    interactions = store.interactions
    for weaker, deeper in itertools.pairwise(EVENTS):
        first_weaker = (
            interactions.filter(pl.col(EVENT) == weaker)
            .group_by(MEMBER_ID, ITEM_ID)
            .agg(pl.col(TIMESTAMP).min().alias("first_weaker"))
        )
        checked = interactions.filter(pl.col(EVENT) == deeper).join(
            first_weaker, on=[MEMBER_ID, ITEM_ID], how="left"
        )
        assert checked.get_column("first_weaker").null_count() == 0, deeper
        assert (checked.get_column("first_weaker") <= checked.get_column(TIMESTAMP)).all(), deeper


def test_event_mix_follows_the_funnel(store: Store) -> None:
    shares = [count / store.summary.events for count in _event_counts(store.summary)]
    assert shares == pytest.approx(FUNNEL_SHARES, abs=0.03)


def _event_counts(summary: StoreSummary) -> tuple[int, int, int, int]:
    return summary.views, summary.clicks, summary.carts, summary.purchases


def test_orders_group_a_sessions_purchases(store: Store) -> None:
    interactions = store.interactions
    browsing = interactions.filter(pl.col(EVENT).is_in([VIEW, CLICK]))
    purchases = interactions.filter(pl.col(EVENT) == PURCHASE)
    assert browsing.get_column(ORDER_ID).null_count() == browsing.height
    assert purchases.get_column(ORDER_ID).null_count() == 0
    per_order = purchases.group_by(ORDER_ID).agg(
        pl.col(MEMBER_ID).n_unique().alias("members"),
        pl.col(TIMESTAMP).n_unique().alias("checkouts"),
        pl.len().alias("lines"),
    )
    assert (per_order.get_column("members") == 1).all()
    assert (per_order.get_column("checkouts") == 1).all()
    assert per_order.get_column("lines").max() > 1
    assert per_order.height == store.summary.orders
    ordered_carts = interactions.filter((pl.col(EVENT) == CART) & pl.col(ORDER_ID).is_not_null())
    unmatched = ordered_carts.join(purchases, on=[MEMBER_ID, ITEM_ID, ORDER_ID], how="anti")
    assert unmatched.height == 0


def test_item_popularity_is_heavy_tailed(store: Store) -> None:
    per_item = store.interactions.group_by(ITEM_ID).len().sort("len", descending=True)
    top_decile = per_item.head(CONFIG.items // 10).get_column("len").sum()
    assert top_decile / CONFIG.events > 0.3  # uniform popularity would give 0.1


def test_member_activity_is_heavy_tailed_and_tiers_follow_it(store: Store) -> None:
    per_member = store.interactions.group_by(MEMBER_ID).len()
    counts = np.sort(per_member.get_column("len").to_numpy())[::-1]
    assert counts[: len(counts) // 10].sum() / counts.sum() > 0.3
    assert counts.max() > 10 * np.median(counts)
    by_tier = (
        store.members.join(per_member, on=MEMBER_ID, how="left")
        .group_by(TIER)
        .agg(pl.col("len").fill_null(0).mean())
    )
    means = dict(zip(by_tier.get_column(TIER), by_tier.get_column("len"), strict=True))
    assert [means[tier] for tier in TIERS] == sorted(means[tier] for tier in TIERS)


def test_members_have_a_lifecycle(store: Store) -> None:
    interactions = store.interactions
    assert interactions.get_column(TIMESTAMP).min() >= START
    assert interactions.get_column(TIMESTAMP).max() < END
    spans = store.members.join(
        interactions.group_by(MEMBER_ID).agg(
            pl.col(TIMESTAMP).min().alias("first"), pl.col(TIMESTAMP).max().alias("last")
        ),
        on=MEMBER_ID,
    )
    assert (spans.get_column("first") >= spans.get_column(JOINED_AT)).all()
    lapsed = spans.filter(pl.col("last") < END - timedelta(days=180)).height
    assert lapsed >= 0.8 * store.summary.lapsed_members > 0
    new = spans.filter(pl.col(JOINED_AT) >= END - timedelta(days=30)).height
    assert new >= store.summary.new_members > 0
    joins = store.members.get_column(JOINED_AT)
    assert joins.min() < START + timedelta(days=60)
    assert joins.is_sorted()  # ids are issued in join order


def test_members_are_adults_of_a_loyalty_programs_ages(store: Store) -> None:
    joined = store.members.get_column(JOINED_AT).cast(pl.Date)
    age = (joined - store.members.get_column(BIRTH_DATE)).dt.total_days() / 365.2425
    assert age.null_count() == 0
    assert age.min() >= 18 and age.max() <= 85  # type: ignore[operator]
    assert 0.6 <= age.is_between(25, 55, closed="left").mean() <= 0.85  # type: ignore[operator]
    assert 38 <= age.median() <= 48  # type: ignore[operator]
    # The members loader keeps the birth date, so profiles get an age band.
    loaded = load_members(store.summary.members_path)
    assert loaded.report.quarantined == 0
    assert loaded.frame.get_column(BIRTH_DATE).null_count() == 0


def test_birth_dates_have_a_stream_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another birth-date stream changes the birth dates and nothing else: no other draw
    depends on them, so adding them left every store of an earlier version as it was."""
    first = generate_store(TINY, tmp_path / "a")
    monkeypatch.setattr(synthetic_members, "STREAM_BIRTH_DATES", 99)
    second = generate_store(TINY, tmp_path / "b")
    for name in ("interactions.parquet", "items.parquet", "planted_bundles.csv", "store.json"):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name
    a, b = pl.read_parquet(first.members_path), pl.read_parquet(second.members_path)
    assert a.drop(BIRTH_DATE).equals(b.drop(BIRTH_DATE))
    assert not a.get_column(BIRTH_DATE).equals(b.get_column(BIRTH_DATE))


def test_cold_start_items_and_members_have_no_interactions(store: Store) -> None:
    silent_items = store.items.join(store.interactions, on=ITEM_ID, how="anti")
    assert silent_items.height == store.summary.cold_items > 0
    assert (silent_items.get_column(RELEASED_AT) >= END - timedelta(days=7)).all()
    silent_members = store.members.join(store.interactions, on=MEMBER_ID, how="anti")
    assert silent_members.height == store.summary.cold_members > 0
    assert (silent_members.get_column(JOINED_AT) >= END - timedelta(days=30)).all()


def test_planted_bundles_are_bought_together_far_above_chance(store: Store) -> None:
    baskets = _purchase_orders(store.interactions)
    n_orders = baskets.get_column(ORDER_ID).n_unique()
    orders_of = {
        item: set(orders) for item, orders in baskets.group_by(ITEM_ID).agg(ORDER_ID).iter_rows()
    }
    bundles = store.bundles.get_column(BUNDLE_ITEM_IDS).str.split("|").to_list()
    assert len(bundles) == store.summary.bundles > 0
    assert store.bundles.get_column(BUNDLE_SIZE).is_between(2, 3).all()
    for bundle in bundles:
        for first, second in itertools.combinations(bundle, 2):
            a, b = orders_of.get(first, set()), orders_of.get(second, set())
            together, expected = len(a & b), len(a) * len(b) / n_orders
            assert together >= 3, (first, second)  # enough support to speak of a lift
            assert together > 5 * expected, (first, second)


def test_members_buy_their_favourites_again(store: Store) -> None:
    repeats = (
        store.interactions.filter(pl.col(EVENT) == PURCHASE)
        .group_by(MEMBER_ID, ITEM_ID)
        .agg(pl.col(ORDER_ID).n_unique().alias("orders"))
        .filter(pl.col("orders") >= 2)
    )
    assert repeats.height > 0.05 * CONFIG.members
    assert repeats.get_column("orders").max() >= 4


# --- edge cases and validation --------------------------------------------------------------


def test_smallest_store_still_has_the_exact_size(tmp_path: Path) -> None:
    summary = generate_store(StoreConfig(members=1, items=1, events=3), tmp_path)
    assert pl.read_parquet(summary.interactions_path).height == 3
    assert summary.bundles == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("members", 0),
        ("items", -5),
        ("events", 0),
        ("events", 2.5),
        ("seed", -1),
        ("categories", 1000),
        ("bundles", -1),
        ("lapsed_share", 1.5),
        ("cold_item_share", 1.0),
        ("bundle_attach_rate", -0.1),
        ("repeat_share", 0.5),
        ("session_length", 0.5),
        ("members_per_chunk", 0),
    ],
)
def test_invalid_config_names_the_option(tmp_path: Path, option: str, value: object) -> None:
    config = StoreConfig(**{**TINY.__dict__, option: value})
    with pytest.raises(ConfigError, match=option):
        generate_store(config, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing is written for a bad config
