"""The training protocol end to end on a small generated store (real models, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features import columns as col
from features.split_shapes import carve_validation, shape_of_spec
from features.splits import parse_split_spec, temporal_split
from features.synthetic import StoreConfig, generate_store
from features.validate import load_interactions, load_items, load_members
from tests.cli import run_recsys
from training.config import TuningBudget
from training.index import IndexConfig, ItemIndex
from training.lineup import _recall_against_exact
from training.train import TrainConfig, TrainOutcome, run_training

SMALL_STORE = StoreConfig(members=400, items=120, events=20_000, seed=5)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store")
    generate_store(SMALL_STORE, out)
    return out


@pytest.fixture(scope="module")
def outcome(store: Path) -> TrainOutcome:
    interactions = load_interactions(store / "interactions.parquet").frame
    spec = parse_split_spec("last-days:60")
    config = TrainConfig(
        models=("popular", "item_knn", "ease", "als"), budget=TuningBudget(trials=2, seconds=20)
    )
    return run_training(
        spec.split(interactions),
        spec,
        config,
        items=load_items(store / "items.parquet").frame,
        members=load_members(store / "members.parquet").frame,
    )


def test_validation_is_carved_from_train_only_and_precedes_the_test() -> None:
    frame = pl.DataFrame(
        {
            col.MEMBER_ID: ["a"] * 10,
            col.ITEM_ID: [f"i{day}" for day in range(10)],
            col.EVENT: ["purchase"] * 10,
            col.TIMESTAMP: pl.datetime_range(
                pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 10), "1d", eager=True
            ),
        }
    )
    split = temporal_split(frame, last_days=3)
    shape = shape_of_spec(parse_split_spec("last-days:3"), split)
    validation = carve_validation(split.train, shape)
    assert validation.test[col.TIMESTAMP].max() < split.test[col.TIMESTAMP].min()
    assert validation.train.height + validation.test.height == split.train.height


def test_every_model_is_reported_beside_the_baseline(outcome: TrainOutcome) -> None:
    metrics = outcome.metrics
    assert set(metrics["models"]) == {"popular", "item_knn", "ease", "als"}
    for name in metrics["models"]:
        for key in ("precision@10", "recall@10", "ndcg@10", "map", "hit_rate@10", "coverage@10"):
            assert 0.0 <= metrics["models"][name][key] <= 1.0
        assert metrics["primary_metric"] in metrics["validation"][name]
    best_on_validation = max(
        metrics["validation"], key=lambda name: metrics["validation"][name]["ndcg@10"]
    )
    assert metrics["chosen"] == best_on_validation


def test_personalised_models_beat_popularity_on_the_synthetic_store(outcome: TrainOutcome) -> None:
    models = outcome.metrics["models"]
    assert (
        max(models[m]["ndcg@10"] for m in ("item_knn", "ease", "als"))
        > models["popular"]["ndcg@10"]
    )


def test_segments_long_tail_and_index_are_reported(outcome: TrainOutcome) -> None:
    metrics = outcome.metrics
    assert set(metrics["segment_sizes"]) <= {"new", "active", "at-risk", "sleeping", "churned"}
    assert metrics["segments"]["ease"]
    assert abs(sum(metrics["long_tail"]["catalog"]) - 1) < 1e-6
    assert metrics["index"]["als"]["hnsw_recall@10"] >= 0.95


def test_index_recall_is_measured_on_the_built_index_itself() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((2000, 8)).astype(np.float32)
    queries = rng.standard_normal((50, 8)).astype(np.float32)
    # One probed list of 40: an index that misses neighbours, so recall is visibly below 1.
    index = ItemIndex.build(
        vectors, IndexConfig(exact_below=0, kind="ivf", ivf_nlist=40, ivf_nprobe=1)
    )
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    found, _ = index.search(queries, 10)
    expected = np.mean([len(set(e) & set(f)) / 10 for e, f in zip(exact, found, strict=True)])
    assert expected < 0.9
    assert _recall_against_exact(index, vectors, queries, k=10) == pytest.approx(expected)


def test_cli_train_writes_an_artifact_that_recommend_and_evaluate_load(
    store: Path, tmp_path: Path
) -> None:
    artifact = tmp_path / "artifact"
    result = run_recsys(
        "train", "-i", store / "interactions.parquet", "--items", store / "items.parquet",
        "--split", "last-days:60", "--models", "popular,ease", "--trials", 1,
        "--out", artifact, "--no-mlflow", "--list-depth", 7, "--no-refit",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("manifest.json", "metrics.json", "report.html"):
        assert (artifact / name).exists()
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["chosen"] in {"popular", "ease"}
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["lists"] == {"model": metrics["chosen"], "depth": 7}
    assert "rules.parquet" in manifest["extra_files"]
    rules = pl.read_parquet(artifact / "rules.parquet")
    assert rules.height == metrics["rules"]["rules"] > 0  # the store plants bundles
    held_out = metrics["rules"]["test"]
    assert held_out["anchors"] > 0 and 0 < held_out["coverage"] <= 1
    # Planted bundles recur in the test period: the rules must beat popularity there.
    assert held_out["hit_rate"]["rules_then_popular"] > held_out["hit_rate"]["popular"]
    assert "bundle rules from" in " ".join(result.stdout.split())
    assert {"precision@10", "recall@10", "ndcg@10", "map"} <= set(metrics["models"]["ease"])

    member = pl.read_parquet(store / "interactions.parquet")[col.MEMBER_ID][0]
    answer = run_recsys("recommend", "--artifact", artifact, "--member", member, "-n", 4, "--json")
    assert answer.returncode == 0, answer.stderr
    assert len(json.loads(answer.stdout)["item_ids"]) == 4

    test_file = tmp_path / "test.parquet"
    interactions = pl.read_parquet(store / "interactions.parquet")
    cutoff = interactions[col.TIMESTAMP].max() - pl.duration(days=60)
    interactions.filter(pl.col(col.TIMESTAMP) >= cutoff).write_parquet(test_file)
    evaluated = run_recsys("evaluate", "--artifact", artifact, "--test-file", test_file, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert figures["ease"]["ndcg@10"] == pytest.approx(
        metrics["models"]["ease"]["ndcg@10"], rel=1e-6
    )


def test_train_refuses_both_split_and_test_file(store: Path, tmp_path: Path) -> None:
    result = run_recsys(
        "train", "-i", store / "interactions.parquet", "--split", "last-days:5",
        "--test-file", store / "interactions.parquet", "--out", tmp_path / "b", "--no-mlflow",
    )  # fmt: skip
    assert result.returncode == 2
    assert "either --split or --test-file" in result.stderr


def test_a_model_lost_to_a_failure_hands_the_choice_to_the_next_best_on_validation() -> None:
    from training.train import choose_model
    from training.tune import TuningResult

    def tuned(name: str, value: float) -> TuningResult:
        return TuningResult(name, {}, value, {"ndcg@10": value}, trials=1, seconds=0.0)

    results = {
        "ease": tuned("ease", 0.3),
        "als": tuned("als", 0.2),
        "popular": tuned("popular", 0.1),
    }
    served = {"als": object(), "popular": object()}
    tested = {"ease": {}, "als": {}, "popular": {}}
    assert choose_model(results, served, tested) == (
        "als",
        "best on validation after the failure of ease",
    )  # type: ignore[arg-type]
    assert choose_model(results, {"ease": object(), **served}, tested) == (
        "ease",
        "best on validation",
    )  # type: ignore[arg-type]
    assert choose_model(results, served, {"popular": {}})[0] == "popular"  # type: ignore[arg-type]


def test_cli_next_basket_target_counts_repeats_and_serves_them(store: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "next-basket"
    result = run_recsys(
        "train", "-i", store / "interactions.parquet", "--items", store / "items.parquet",
        "--split", "last-baskets:1", "--target", "next-basket",
        "--models", "popular,top_personal,repeat_explore", "--trials", 1,
        "--out", artifact, "--no-mlflow", "--no-refit",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["target"] == "next-basket"
    assert metrics["protocol"]["validation_shape"]["orders_per_member"] == 1
    for name in ("popular", "top_personal", "repeat_explore"):
        figures = metrics["models"][name]
        assert {"recall@10", "ndcg@10", "phr@10", "repeat_recall@10"} <= set(figures)
        assert figures["repeat_recall@10"] + figures["explore_recall@10"] == pytest.approx(
            figures["recall@10"]
        )
    # The member's own items carry a next basket: the repeat models beat popularity.
    assert (
        metrics["models"]["top_personal"]["recall@10"] > metrics["models"]["popular"]["recall@10"]
    )
    header = [line for line in result.stdout.splitlines() if line.startswith("┃")]
    assert {"PHR@10", "repeat", "explore"} <= set(" ".join(header).replace("┃", " ").split())

    purchases = pl.read_parquet(store / "interactions.parquet").filter(
        pl.col(col.EVENT) == "purchase"
    )
    member = purchases.group_by(col.MEMBER_ID).len().sort("len", descending=True)[col.MEMBER_ID][0]
    answer = run_recsys("recommend", "--artifact", artifact, "--member", member, "-n", 10, "--json")
    assert answer.returncode == 0, answer.stderr
    listed = set(json.loads(answer.stdout)["item_ids"])
    bought = set(purchases.filter(pl.col(col.MEMBER_ID) == member)[col.ITEM_ID])
    if metrics["chosen"] != "popular":  # a repeat model serves the member's own staples
        assert listed & bought


def test_cli_train_refuses_an_unknown_target(store: Path, tmp_path: Path) -> None:
    result = run_recsys(
        "train", "-i", store / "interactions.parquet", "--target", "next-week",
        "--out", tmp_path / "t", "--no-mlflow",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--target" in result.stderr and "next-basket" in result.stderr
