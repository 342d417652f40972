"""Shared fixtures; real data in ../shared/data is optional and tests needing it skip."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

SHARED_DATA = Path(
    os.environ.get("RECSYS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
ONLINE_RETAIL = SHARED_DATA / "online-retail" / "online_retail.csv.gz"
GROCERIES = SHARED_DATA / "groceries" / "groceries.csv"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's default outputs (quarantine files, stores) inside its tmp dir."""
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def online_retail_path() -> Path:
    if not ONLINE_RETAIL.exists():
        pytest.skip(f"UCI Online Retail not found at {ONLINE_RETAIL} (set RECSYS_SHARED_DATA)")
    return ONLINE_RETAIL


@pytest.fixture
def groceries_path() -> Path:
    if not GROCERIES.exists():
        pytest.skip(f"the Groceries baskets not found at {GROCERIES} (set RECSYS_SHARED_DATA)")
    return GROCERIES


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store, model artifact) of a tiny generated store, trained once per session for the serving
    tests (popular, item_knn, als and content; one tuning trial each)."""
    from tests.serving_helpers import train_tiny_artifact

    return train_tiny_artifact(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def catalog(tiny_trained: tuple[Path, Path]) -> pl.DataFrame:
    """The tiny store's item catalog (a module may define its own ``catalog``)."""
    return pl.read_parquet(tiny_trained[0] / "items.parquet")


@pytest.fixture(scope="session")
def known_member(tiny_trained: tuple[Path, Path]) -> str:
    """A member of the tiny store that the tiny model artifact knows."""
    return str(pl.read_parquet(tiny_trained[0] / "interactions.parquet")["member_id"][0])
