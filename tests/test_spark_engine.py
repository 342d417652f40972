"""``recsys train --engine spark``: the same loading, protocol and model artifact as the default
engine, on a local[2] Spark session.

One generated store is trained twice: by the default engine, and by the Spark engine on the
test's local[2] session. The Spark artifact must measure as
the default engine does (ALS within 10% on P@10), hold the very rule table, id maps and matrix,
and load and serve like any other.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.baskets import baskets_from_interactions
from features.errors import TooManyBadRowsError
from features.splits import parse_split_spec
from features.synthetic import StoreConfig, generate_store
from features.validate import load_interactions, load_items, load_members
from tests.cli import run_recsys
from tests.serving_helpers import READ, serve_tiny
from training.artifact import data_fingerprint, load_artifact
from training.config import RuleConfig, TuningBudget
from training.dataset import build_training_data
from training.models import MODEL_CLASSES
from training.models.als import ALSRecommender
from training.models.base import ModelFitError
from training.publish import write_training_artifact
from training.rules import association_rules
from training.train import TrainConfig, TrainOutcome, run_training

pytestmark = [
    pytest.mark.skipif(
        shutil.which("java") is None,
        reason="the Spark engine needs a Java runtime (java is not on PATH; "
        "apt-get install default-jre-headless)",
    ),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

#: Big enough for a few hundred evaluated members, so that P@10 is a figure, not noise.
STORE = StoreConfig(members=3000, items=300, events=60_000, seed=7)
SPLIT = "last-days:90"
MODELS = ("popular", "als")


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers of this environment
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("store")
    generate_store(STORE, directory)
    return directory


@pytest.fixture(scope="module")
def default_engine(store: Path) -> TrainOutcome:
    """The default engine on the store, one tuning trial (the default parameters) a model."""
    spec = parse_split_spec(SPLIT)
    config = TrainConfig(models=MODELS, budget=TuningBudget(trials=1))
    interactions = load_interactions(store / "interactions.parquet").frame
    return run_training(
        spec.split(interactions), spec, config,
        items=load_items(store / "items.parquet").frame,
        members=load_members(store / "members.parquet").frame,
    )  # fmt: skip


@pytest.fixture(scope="module")
def spark_artifact(spark: object, store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Spark engine's model artifact, made as ``recsys train --engine spark`` makes it (the
    command runs in a subprocess only: ``tests/cli.py`` hides the ``cli`` package here)."""
    from training.spark import load_interactions as load_with_spark
    from training.spark import train_in_spark

    root = tmp_path_factory.mktemp("spark")
    spec = parse_split_spec(SPLIT)
    config = TrainConfig(models=MODELS, budget=TuningBudget(trials=1))
    items = load_items(store / "items.parquet").frame
    members = load_members(store / "members.parquet").frame
    loaded = load_with_spark(spark, store / "interactions.parquet", root / "scratch")
    outcome = train_in_spark(
        loaded.spark, spec.split(loaded.validated.frame), spec, config, items=items,
        members=members,
    )  # fmt: skip
    return write_training_artifact(outcome, root / "artifact", items, members=members)


def _metrics(artifact: Path) -> dict:
    return json.loads((artifact / "metrics.json").read_text())


def test_spark_als_measures_within_a_tenth_of_the_default_engine(
    spark_artifact: Path, default_engine: TrainOutcome
) -> None:
    spark_metrics, default = _metrics(spark_artifact), default_engine.metrics
    assert spark_metrics["protocol"]["evaluated_members"] >= 150
    assert spark_metrics["protocol"] == default["protocol"]  # the same split, members, test
    expected = default["models"]["als"]["precision@10"]
    measured = spark_metrics["models"]["als"]["precision@10"]
    # Both are real models: well above popularity on the same members.
    assert expected > 1.2 * default["models"]["popular"]["precision@10"]
    assert measured > 1.2 * spark_metrics["models"]["popular"]["precision@10"]
    assert abs(measured - expected) <= 0.1 * expected, (measured, expected)
    # Popularity is counted, not fit: the two engines' figures are the same.
    assert spark_metrics["models"]["popular"] == default["models"]["popular"]
    engine = spark_metrics["engine"]
    assert (engine["name"], engine["master"]) == ("spark", "local[2]")
    assert engine["tuning_trials"] == {"popular": 1, "als": 1}


def test_spark_rules_equal_the_rules_of_the_polars_baskets(
    spark_artifact: Path, store: Path
) -> None:
    interactions = load_interactions(store / "interactions.parquet").frame
    expected = association_rules(baskets_from_interactions(interactions), RuleConfig())
    served = pl.read_parquet(spark_artifact / "rules.parquet")
    assert expected.height > 20
    assert served.equals(expected)


def test_spark_artifact_holds_the_default_engines_maps_matrix_and_fingerprint(
    spark_artifact: Path, store: Path
) -> None:
    interactions = load_interactions(store / "interactions.parquet").frame
    items = load_items(store / "items.parquet").frame
    expected = build_training_data(interactions, items=items)
    artifact = load_artifact(spark_artifact, model_classes=MODEL_CLASSES)
    assert artifact.member_ids == expected.member_ids
    assert artifact.item_ids == expected.item_ids
    assert (artifact.histories != expected.matrix).nnz == 0
    assert artifact.manifest["data_fingerprint"] == data_fingerprint(interactions)
    assert artifact.manifest["metrics"]["engine"]["name"] == "spark"


def test_spark_artifact_serves_recommendations(spark_artifact: Path, tmp_path: Path) -> None:
    artifact = load_artifact(spark_artifact, model_classes=MODEL_CLASSES)
    member = str(artifact.member_ids.external_ids[0])
    server = serve_tiny(spark_artifact, tmp_path)
    try:
        response = server.client.get(f"/v1/members/{member}/recommendations?n=5", headers=READ)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "als" and not body["fallback"]
        assert len(body["items"]) == 5
    finally:
        server.stop()


BAD_ROWS = """member_id,item_id,event,timestamp,quantity,price,note
m1,i1,view,2024-01-01 10:00:00,1,2.5,a
m1,i1,view,2024-01-01 10:00:00,1,2.5,a
,i2,buy,2024-01-02,2,3,missing member
m2,,click,2024-01-02,1,1,missing item
m2,i2,addtocart,not a time,1,1,bad time
m2,i2,cart,,1,1,no time
m2,i3,teleport,2024-01-03T10:00:00Z,1,1,"quoted ""note"", with comma"
m3,i3,PURCHASE,1704067200,abc,1,
m3,i4,purchase,1704067200,-1,1," padded "
m4,i4,Purchase,2024-01-05,1,-3,z
m4,i5,,2024-01-05,1,x,z
m5,i5,detail_view,2024-01-06,,,
m6,i1,order,2024-01-04T08:30:00+02:00,2,1.5,
m1,i1,view,2024-01-01 10:00:00,1,2.5,a
"""


def test_spark_validation_accepts_and_quarantines_as_the_polars_loader(
    spark: object, tmp_path: Path
) -> None:
    from training.spark import load_interactions as load_with_spark

    source = tmp_path / "events.csv"
    source.write_text(BAD_ROWS)
    expected = load_interactions(source, max_bad_share=1.0, quarantine_path=tmp_path / "p.csv")
    loaded = load_with_spark(
        spark, source, tmp_path / "scratch", max_bad_share=1.0, quarantine_path=tmp_path / "s.csv"
    )
    assert loaded.validated.frame.drop("_row").equals(expected.frame)
    report, polars_report = loaded.validated.report.to_dict(), expected.report.to_dict()
    assert report.pop("quarantine_path") != polars_report.pop("quarantine_path")
    assert report == polars_report
    assert (report["accepted"], report["duplicates"], report["quarantined"]) == (3, 2, 9)
    assert (tmp_path / "s.csv").read_text() == (tmp_path / "p.csv").read_text()


def test_spark_validation_stops_above_the_cap_with_the_polars_message(
    spark: object, tmp_path: Path
) -> None:
    from training.spark import load_interactions as load_with_spark

    source = tmp_path / "events.csv"
    # One reason most common: which of tied reasons the message names is arbitrary.
    source.write_text(BAD_ROWS + "m7,i1,view,yesterday,1,1,\n" * 3)
    quarantine = tmp_path / "quarantine.csv"
    with pytest.raises(TooManyBadRowsError) as polars_error:
        load_interactions(source, quarantine_path=quarantine)
    with pytest.raises(TooManyBadRowsError) as spark_error:
        load_with_spark(spark, source, tmp_path / "scratch", quarantine_path=quarantine)
    assert str(spark_error.value) == str(polars_error.value)
    assert "e.g. row" in str(spark_error.value)


def test_spark_engine_refuses_other_models_naming_the_option(tmp_path: Path) -> None:
    result = run_recsys(
        "train", "-i", tmp_path / "none.parquet", "--out", tmp_path / "artifact",
        "--engine", "spark", "--models", "popular,item_knn,als", "--no-mlflow",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--models" in result.stderr and "item_knn" in result.stderr
    assert "--engine implicit" in result.stderr


def test_als_from_factors_scores_as_the_fit_it_copies(store: Path) -> None:
    interactions = load_interactions(store / "interactions.parquet").frame.head(5000)
    data = build_training_data(interactions)
    fitted = ALSRecommender(factors=8, iterations=3).fit(data)
    copied = ALSRecommender.from_factors(
        fitted.user_factors, fitted.item_factors, data.matrix, fitted.params
    )
    members = np.arange(10)
    histories = data.matrix[members]
    np.testing.assert_array_equal(
        copied.score(members, histories), fitted.score(members, histories)
    )
    np.testing.assert_array_equal(copied.fold_in(histories), fitted.fold_in(histories))
    with pytest.raises(ModelFitError, match="do not fit"):
        ALSRecommender.from_factors(fitted.user_factors[:-1], fitted.item_factors, data.matrix)


def test_spark_settings_are_key_value_pairs_of_spark_keys() -> None:
    from features.errors import ConfigError
    from training.config import parse_spark_conf

    given = ["spark.driver.memory=8g", " spark.executor.cores = 4 "]
    assert parse_spark_conf(given) == {"spark.driver.memory": "8g", "spark.executor.cores": "4"}
    for bad in ("spark.driver.memory", "driver.memory=8g", "spark.driver.memory="):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_spark_conf([bad])


def test_a_local_master_gets_half_the_machine_as_heap_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psutil

    from training.spark.session import _driver_memory_set, local_driver_memory

    megabytes = int(local_driver_memory().removesuffix("m"))
    assert megabytes >= 1024
    assert abs(megabytes * 2**20 - psutil.virtual_memory().total / 2) < 2**20 or megabytes == 1024
    monkeypatch.delenv("SPARK_DRIVER_MEMORY", raising=False)
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS", raising=False)
    assert not _driver_memory_set({})
    assert _driver_memory_set({"spark.driver.memory": "2g"})
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--driver-memory 3g pyspark-shell")
    assert _driver_memory_set({})


def test_spark_settings_without_the_spark_engine_are_refused(tmp_path: Path) -> None:
    result = run_recsys(
        "train", "-i", tmp_path / "missing.parquet", "--out", tmp_path / "artifact",
        "--spark-conf", "spark.driver.memory=2g",
    )  # fmt: skip
    assert result.returncode == 2 and "--spark-conf" in result.stderr
