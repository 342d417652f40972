"""The training protocol on generated stores split each way: validation shaped like the test
chooses a model that does well on the test, the served artifact knows the test period, and one
model's failure is recorded instead of ending the run (real models and real files)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from features import columns as col
from features.splits import explicit_split, parse_split_spec
from features.synthetic import StoreConfig, generate_store
from features.validate import load_interactions, load_items, load_members
from tests.cli import run_recsys
from training.artifact import load_artifact
from training.config import TuningBudget
from training.models import MODEL_CLASSES
from training.publish import write_training_artifact
from training.recommend import ArtifactRecommender
from training.train import TrainConfig, TrainOutcome, run_training

STORE = StoreConfig(members=2000, items=300, events=80_000, seed=11)
MODELS = ("popular", "item_knn", "ease", "als")
CONFIG = TrainConfig(models=MODELS, budget=TuningBudget(trials=1))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("protocol-store")
    generate_store(STORE, out)
    return out


@pytest.fixture(scope="module")
def tables(store: Path) -> dict[str, pl.DataFrame]:
    return {
        "interactions": load_interactions(store / "interactions.parquet").frame,
        "items": load_items(store / "items.parquet").frame,
        "members": load_members(store / "members.parquet").frame,
    }


def _train_on_files(tables: dict[str, pl.DataFrame], split_text: str) -> TrainOutcome:
    """Split with a spec, then hand train and test over as files would be: no spec."""
    made = parse_split_spec(split_text).split(tables["interactions"])
    return run_training(
        explicit_split(made.train, made.test), None, CONFIG,
        items=tables["items"], members=tables["members"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("split_text", "kind", "group"),
    [
        ("last-days:30", "global-time", None),
        ("last-share:0.2", "member-time", None),
        ("ratio:0.25:item:3", "random", "item"),
    ],
)
def test_a_test_file_of_each_shape_is_recognised_and_the_choice_holds_on_test(
    tables: dict[str, pl.DataFrame], split_text: str, kind: str, group: str | None
) -> None:
    metrics = _train_on_files(tables, split_text).metrics
    shape = metrics["protocol"]["validation_shape"]
    assert (shape["kind"], shape.get("group"), shape["inferred"]) == (kind, group, True)
    primary = metrics["primary_metric"]
    on_test = {name: figures[primary] for name, figures in metrics["models"].items()}
    assert on_test[metrics["chosen"]] >= 0.97 * max(on_test.values()), on_test


@pytest.fixture(scope="module")
def served(tables: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = parse_split_spec("last-days:30")
    outcome = run_training(
        spec.split(tables["interactions"]), spec, CONFIG,
        items=tables["items"], members=tables["members"],
    )  # fmt: skip
    return write_training_artifact(outcome, tmp_path_factory.mktemp("served") / "artifact")


def test_the_served_artifact_is_refit_on_everything_up_to_the_last_event(
    tables: dict[str, pl.DataFrame], served: Path
) -> None:
    interactions = tables["interactions"]
    artifact = load_artifact(served, model_classes=MODEL_CLASSES)
    assert len(artifact.member_ids) == interactions[col.MEMBER_ID].n_unique()
    data_end = json.loads((served / "manifest.json").read_text())["data_end"]
    assert data_end.startswith(interactions[col.TIMESTAMP].max().isoformat())
    metrics = json.loads((served / "metrics.json").read_text())
    assert metrics["refit"]["on"] == "train + test"
    assert metrics["refit"]["rows"] == interactions.height
    assert set(metrics["refit"]["models"]) == set(MODELS)


def test_a_purchase_in_the_test_window_is_never_served(
    tables: dict[str, pl.DataFrame], served: Path
) -> None:
    interactions = tables["interactions"]
    cutoff = interactions[col.TIMESTAMP].max() - pl.duration(days=30)
    recent = interactions.filter(
        (pl.col(col.EVENT) == "purchase") & (pl.col(col.TIMESTAMP) >= cutoff)
    )
    buyers = recent[col.MEMBER_ID].unique().sort().to_list()[:300]
    bought = (
        interactions.filter(pl.col(col.EVENT) == "purchase")
        .group_by(col.MEMBER_ID)
        .agg(pl.col(col.ITEM_ID).unique())
    )
    bought_by = dict(zip(bought[col.MEMBER_ID], bought[col.ITEM_ID].to_list(), strict=True))
    recommender = ArtifactRecommender(load_artifact(served, model_classes=MODEL_CLASSES))
    for model in (None, *MODELS):  # the chosen model's precomputed path and live scoring
        for answer in recommender.recommend(buyers, 20, model=model):
            assert not set(answer.item_ids) & set(bought_by[answer.member_id]), answer.member_id


def test_a_member_seen_only_in_the_test_window_gets_personal_answers(
    tables: dict[str, pl.DataFrame], served: Path
) -> None:
    interactions = tables["interactions"]
    cutoff = interactions[col.TIMESTAMP].max() - pl.duration(days=30)
    first_seen = interactions.group_by(col.MEMBER_ID).agg(pl.col(col.TIMESTAMP).min())
    newcomers = first_seen.filter(pl.col(col.TIMESTAMP) >= cutoff)[col.MEMBER_ID].to_list()
    assert newcomers, "the generated store has members who joined in the last 30 days"
    recommender = ArtifactRecommender(load_artifact(served, model_classes=MODEL_CLASSES))
    answers = recommender.recommend(newcomers, 10)
    assert all(not answer.fallback for answer in answers)
    assert all(answer.model != "popular" or recommender.artifact.chosen == "popular"
               for answer in answers)  # fmt: skip


def test_a_model_that_fails_is_recorded_and_the_run_goes_on(store: Path, tmp_path: Path) -> None:
    """The content model needs a catalog; without --items it fails, and the others serve."""
    result = run_recsys(
        "train", "-i", store / "interactions.parquet", "--models", "popular,content,item_knn",
        "--trials", 1, "--out", tmp_path / "artifact", "--no-mlflow", "--list-depth", 0,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "artifact" / "metrics.json").read_text())
    assert [(f["model"], f["stage"]) for f in metrics["failed"]] == [("content", "tuning")]
    assert "item content features" in metrics["failed"][0]["reason"]
    assert set(metrics["models"]) == {"popular", "item_knn"}
    assert "1 failure(s)" in result.stderr and "content" in result.stderr


def test_cli_infers_the_shape_of_a_test_file_prints_it_and_stores_every_report(
    store: Path, tables: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    made = parse_split_spec("ratio:0.25:item:3").split(tables["interactions"])
    train_file, test_file = tmp_path / "train.parquet", tmp_path / "test.parquet"
    made.train.write_parquet(train_file)
    made.test.write_parquet(test_file)
    result = run_recsys(
        "train", "-i", train_file, "--test-file", test_file, "--items", store / "items.parquet",
        "--members", store / "members.parquet", "--models", "popular,item_knn", "--trials", 1,
        "--out", tmp_path / "artifact", "--no-mlflow", "--list-depth", 0,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Validation shaped like the test: random (inferred" in " ".join(result.stdout.split())
    metrics = json.loads((tmp_path / "artifact" / "metrics.json").read_text())
    assert metrics["protocol"]["validation_shape"]["group"] == "item"
    assert set(metrics["inputs"]) == {"interactions", "test", "items", "members"}
    assert metrics["inputs"]["test"]["accepted"] == made.test.height
    assert "repeated item_id" in metrics["inputs"]["items"]["duplicate_kind"]

    given = run_recsys(
        "train", "-i", train_file, "--test-file", test_file, "--validation", "last-days:20",
        "--models", "popular", "--out", tmp_path / "given", "--no-mlflow", "--list-depth", 0,
    )  # fmt: skip
    assert given.returncode == 0, given.stderr
    shape = json.loads((tmp_path / "given" / "metrics.json").read_text())["protocol"]
    assert shape["validation_shape"] == {"kind": "given", "spec": "last-days:20"}


def test_evaluating_a_refit_artifact_on_its_own_test_period_warns(
    tables: dict[str, pl.DataFrame], served: Path, tmp_path: Path
) -> None:
    interactions = tables["interactions"]
    cutoff = interactions[col.TIMESTAMP].max() - pl.duration(days=30)
    test_file = tmp_path / "test.parquet"
    recent = interactions.filter(pl.col(col.TIMESTAMP) >= cutoff)
    recent.write_parquet(test_file)
    result = run_recsys(
        "evaluate", "--artifact", served, "--test-file", test_file, "--all-items", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert f"{recent.height:,} of the {recent.height:,} test events" in " ".join(
        result.stderr.split()
    )
