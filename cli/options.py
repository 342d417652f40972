"""The options several commands share, and the loading they share with them.

Every command that reads interactions takes the same ``--interactions``, ``--preset``,
``--columns`` and ``--max-bad-share`` and loads through :func:`load_with_options`, so that a
file that validates for one command validates for all of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer

from features import columns as col
from features.errors import ConfigError
from features.ingest import parse_column_mapping
from features.presets import PRESETS, get_preset
from features.pseudonyms import KEY_VARIABLE, MemberPseudonyms, key_mismatch
from features.validate import ValidatedTable, load_interactions

if TYPE_CHECKING:
    from training.artifact import ModelArtifact

__all__ = [
    "MAPPABLE",
    "ArtifactOption",
    "ColumnsOption",
    "InteractionsOption",
    "MaxBadShareOption",
    "PresetOption",
    "artifact_pseudonyms",
    "load_with_options",
    "names",
    "open_artifact",
    "write_table",
]

#: The contract's columns that ``--columns`` may map a file's own names to.
MAPPABLE = (
    *col.REQUIRED_INTERACTION_COLUMNS,
    *col.OPTIONAL_INTERACTION_COLUMNS,
    *col.CARRIED_ITEM_COLUMNS,
)

InteractionsOption = Annotated[
    Path, typer.Option("--interactions", "-i", help="Interactions file (CSV or Parquet).")
]
PresetOption = Annotated[
    str | None,
    typer.Option(help=f"Column mapping and rules of a known source: {', '.join(sorted(PRESETS))}."),
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Map your columns to the contract, e.g. member_id=CustomerID,item_id=StockCode.",
    ),
]
MaxBadShareOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Stop when more than this share of rows is invalid (a preset's known exclusions "
        "do not count).",
    ),
]
ArtifactOption = Annotated[
    Path, typer.Option("--artifact", help="A model artifact directory written by recsys train.")
]


def load_with_options(
    interactions: Path,
    preset: str | None,
    columns: str | None,
    max_bad_share: float,
    quarantine: Path | None = None,
) -> ValidatedTable:
    """Load interactions the way every command does, from the shared CLI options."""
    return load_interactions(
        interactions,
        mapping=parse_column_mapping(columns, MAPPABLE),
        preset=get_preset(preset),
        max_bad_share=max_bad_share,
        quarantine_path=quarantine,
    )


def open_artifact(path: Path) -> ModelArtifact:
    """The model artifact at ``path``, with every model class it may name."""
    from training.artifact import load_artifact
    from training.models import MODEL_CLASSES

    return load_artifact(path, model_classes=MODEL_CLASSES)


def artifact_pseudonyms(artifact: ModelArtifact) -> MemberPseudonyms | None:
    """What turns the member ids a user gives (``--member``, ``--members``, ``--suppress``) into
    the ids of ``artifact``: None when its ids are raw; the key in ``$RECSYS_MEMBER_ID_KEY``
    when they are pseudonyms, refused unless it is the key they were made with (an opt-out list
    of raw ids would otherwise suppress nobody)."""
    if artifact.member_key is None:
        return None
    key = os.environ.get(KEY_VARIABLE)
    pseudonyms = MemberPseudonyms(key) if key else None
    mismatch = key_mismatch(artifact.member_key, pseudonyms.fingerprint if pseudonyms else None)
    if mismatch is not None or pseudonyms is None:
        raise ConfigError(f"model artifact {artifact.path}: {mismatch}")
    return pseudonyms


def names(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated option as a tuple of names (None when not given)."""
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV or Parquet, chosen by ``--out``'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    elif path.suffix == ".csv":
        frame.write_csv(path)
    else:
        raise ConfigError(f"--out {path}: use a .csv or .parquet file name")
