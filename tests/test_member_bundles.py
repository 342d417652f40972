"""Member bundles: the vectorised batch against a plain loop of the documented rules, and the
rules themselves (no item twice, no repeat purchase unless repeatable, stand-ins)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features import columns as col
from training.artifact import RULES_FILE, ModelArtifact, load_artifact
from training.artifact.layout import ITEM_CYCLES_FILE
from training.member_bundles import (
    ANCHORS_PER_BUNDLE,
    STAND_INS_PER_ITEM,
    BundleComposer,
    MemberBundles,
)
from training.models import MODEL_CLASSES
from training.recommend import ArtifactRecommender, MemberContext

N = 4


@pytest.fixture(scope="module")
def artifact(tiny_trained: tuple[Path, Path]) -> ModelArtifact:
    return load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES)


@pytest.fixture(scope="module")
def rules(artifact: ModelArtifact) -> pl.DataFrame:
    return pl.read_parquet(artifact.extra_files[RULES_FILE])


def composer_of(artifact: ModelArtifact, rules: pl.DataFrame | None) -> BundleComposer:
    return BundleComposer(ArtifactRecommender(artifact), rules)


@pytest.fixture(scope="module")
def members(artifact: ModelArtifact) -> list[str]:
    return [*artifact.member_ids.external_ids.tolist(), "stranger-1", "stranger-2"]


def reference_bundles(
    artifact: ModelArtifact, rules: pl.DataFrame, member_id: str, n: int
) -> list[tuple[int, int, float, int]]:
    """(anchor, complement, score, third or -1) of one member's bundles, by a plain loop over
    the rules as docs/api.md states them."""
    recommender = ArtifactRecommender(artifact)
    names = artifact.item_ids
    catalog = artifact.catalog
    assert catalog is not None
    available = catalog.get_column(col.AVAILABLE).fill_null(True).to_list()
    # Repeatable: the catalog's flag or the data's rebuy rate (features.purchase_cycles).
    by_data = pl.read_parquet(artifact.extra_files[ITEM_CYCLES_FILE])["repeatable_by_data"]
    flagged = catalog.get_column(col.REPEATABLE).fill_null(False)
    repeatable = (flagged | by_data).to_list()
    [anchors] = recommender.recommend([member_id], ANCHORS_PER_BUNDLE * n)
    index = artifact.member_ids.get(member_id)
    bought = set(recommender.purchased(-1 if index is None else index).tolist())
    not_again = {item for item in bought if not repeatable[item]}
    single = rules.filter(pl.col("antecedents").list.len() == 1).sort(
        ["lift", "confidence", "support"], descending=True
    )
    by_anchor: dict[int, list[tuple[int, float]]] = {}
    for row in single.iter_rows(named=True):
        anchor, item = names.get(row["antecedents"][0]), names.get(row["consequent"])
        if anchor is not None and item is not None and available[item]:
            by_anchor.setdefault(anchor, []).append((item, row["lift"]))
    by_pair: dict[frozenset[int | None], list[int]] = {}
    double = rules.filter(pl.col("antecedents").list.len() == 2).sort(
        ["lift", "confidence", "support"], descending=True
    )
    for row in double.iter_rows(named=True):
        item = names.get(row["consequent"])
        if item is not None and available[item]:
            key = frozenset(names.get(name) for name in row["antecedents"])
            by_pair.setdefault(key, []).append(item)
    stand_ins = composer_of(artifact, rules)
    candidates = []
    for rank, anchor in enumerate(anchors.item_indices, start=1):
        ruled = [(item, lift) for item, lift in by_anchor.get(anchor, []) if item not in not_again]
        if ruled:
            candidates.append((ruled[0][1] / rank, anchor, ruled[0][0]))
            continue
        standing, _ = stand_ins.stand_ins([anchor], STAND_INS_PER_ITEM)
        usable = [item for item in standing[0].tolist() if item >= 0 and item not in not_again]
        if usable:
            candidates.append((1.0 / rank, anchor, usable[0]))
    pairs: list[tuple[int, int, float]] = []
    used: set[int] = set()
    for score, anchor, item in sorted(candidates, key=lambda candidate: -candidate[0]):
        if len(pairs) < n and anchor not in used and item not in used:
            used.update((anchor, item))
            pairs.append((anchor, item, score))
    chosen = []
    for anchor, item, score in pairs:
        thirds = [
            third for third in by_pair.get(frozenset((anchor, item)), [])[:16]
            if third not in used and third not in not_again
        ]  # fmt: skip
        if thirds:
            used.add(thirds[0])
        chosen.append((anchor, item, score, thirds[0] if thirds else -1))
    return chosen


def rows_of(found: MemberBundles, row: int) -> list[tuple[int, int, float, int]]:
    count = int(found.counts()[row])
    return [
        (int(found.anchors[row, k]), int(found.complements[row, k]),
         float(found.scores[row, k]), int(found.thirds[row, k]))
        for k in range(count)
    ]  # fmt: skip


def test_a_batch_equals_the_plain_loop_member_by_member(
    artifact: ModelArtifact, rules: pl.DataFrame, members: list[str]
) -> None:
    found = composer_of(artifact, rules).for_members(members, N)
    assert found.anchors.shape == (len(members), N)
    for row, member_id in enumerate(members):
        expected = reference_bundles(artifact, rules, member_id, N)
        got = rows_of(found, row)
        assert [(a, c, t) for a, c, _, t in got] == [(a, c, t) for a, c, _, t in expected], (
            member_id
        )
        assert np.allclose([p[2] for p in got], [p[2] for p in expected])
    assert found.from_rules.any(), "the tiny store plants bundles: some must come from rules"
    assert (found.thirds >= 0).any(), "it plants bundles of three too: some must have a third"


def test_a_batch_equals_one_member_at_a_time(
    artifact: ModelArtifact, rules: pl.DataFrame, members: list[str]
) -> None:
    composer = composer_of(artifact, rules)
    batch = composer.for_members(members, N)
    for row, member_id in enumerate(members[::7]):
        alone = composer_of(artifact, rules).for_members([member_id], N)
        for field in ("anchors", "complements", "from_rules", "lift", "confidence", "support",
                      "scores", "thirds", "total_price", "fallback"):  # fmt: skip
            np.testing.assert_array_equal(
                getattr(alone, field)[0], getattr(batch, field)[7 * row], err_msg=field
            )
        assert alone.models[0] == batch.models[7 * row]


def test_no_item_twice_and_measures_and_prices_agree(
    artifact: ModelArtifact, rules: pl.DataFrame, members: list[str]
) -> None:
    found = composer_of(artifact, rules).for_members(members, N)
    catalog = artifact.catalog
    assert catalog is not None
    prices = catalog.get_column(col.PRICE).to_numpy()
    measures = {
        (tuple(row["antecedents"]), row["consequent"]): row for row in rules.iter_rows(named=True)
    }
    names = artifact.item_ids.external_ids
    for row in range(len(members)):
        count = int(found.counts()[row])
        assert (found.anchors[row, count:] == -1).all()
        thirds = found.thirds[row, :count]
        items = [*found.anchors[row, :count], *found.complements[row, :count], *thirds[thirds >= 0]]
        assert len(items) == len(set(items))
        assert list(found.scores[row, :count]) == sorted(found.scores[row, :count], reverse=True)
        for k in range(count):
            anchor, complement, third = (found.anchors[row, k], found.complements[row, k],
                                         found.thirds[row, k])  # fmt: skip
            total = prices[anchor] + prices[complement] + (prices[third] if third >= 0 else 0)
            assert math.isclose(found.total_price[row, k], total)
            if third >= 0:
                rule = measures[(tuple(sorted(names[[anchor, complement]])), names[third])]
                assert found.third_measures["lift"][row, k] == rule["lift"]
            if found.from_rules[row, k]:
                rule = measures[((names[anchor],), names[complement])]
                assert found.lift[row, k] == rule["lift"]
                assert found.confidence[row, k] == rule["confidence"]
                assert found.support[row, k] == rule["support"]
            else:
                assert found.lift[row, k] == 1.0 and math.isnan(found.support[row, k])
                assert found.fallback[row]


def test_a_purchase_is_offered_again_only_when_repeatable(
    artifact: ModelArtifact, rules: pl.DataFrame, members: list[str]
) -> None:
    catalog = artifact.catalog
    assert catalog is not None
    repeatable = ArtifactRecommender(artifact).repeatable
    composer = composer_of(artifact, rules)
    found = composer.for_members(members, N)
    row, k = np.argwhere(found.from_rules & ~repeatable[np.maximum(found.complements, 0)])[0]
    member, complement = members[row], int(found.complements[row, k])
    bought_now = [MemberContext(purchased=[complement])]
    assert complement not in composer.for_members([member], N, contexts=bought_now).complements

    everything_repeatable = replace(
        artifact, catalog=catalog.with_columns(pl.lit(True).alias(col.REPEATABLE))
    )
    again = composer_of(everything_repeatable, rules).for_members([member], N, contexts=bought_now)
    assert complement in again.complements


def test_without_rules_every_bundle_is_a_flagged_stand_in_of_the_anchors_category(
    artifact: ModelArtifact, members: list[str]
) -> None:
    found = composer_of(artifact, None).for_members(members, N)
    catalog = artifact.catalog
    assert catalog is not None
    categories = catalog.get_column(col.CATEGORY).to_list()
    assert (found.counts() > 0).all() and not found.from_rules.any()
    assert found.fallback.all()
    taken = found.anchors >= 0
    for anchor, complement in zip(found.anchors[taken], found.complements[taken], strict=True):
        assert categories[anchor] == categories[complement]


def test_stand_ins_are_similar_items_of_the_category_then_its_best_sellers(
    artifact: ModelArtifact,
) -> None:
    composer = composer_of(artifact, None)
    catalog = artifact.catalog
    assert catalog is not None
    categories = catalog.get_column(col.CATEGORY).to_list()
    available = catalog.get_column(col.AVAILABLE).to_list()
    anchors = list(range(0, len(artifact.item_ids), 5))
    taken = [{anchor + 1} for anchor in anchors]
    items, scores = composer.stand_ins(anchors, 6, taken)
    for anchor, row, row_scores, excluded in zip(anchors, items, scores, taken, strict=True):
        kept = row[row >= 0].tolist()
        assert kept and anchor not in kept and not excluded & set(kept)
        assert len(kept) == len(set(kept))
        assert all(categories[item] == categories[anchor] and available[item] for item in kept)
        assert list(row_scores[: len(kept)]) == sorted(row_scores[: len(kept)], reverse=True)
