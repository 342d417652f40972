"""Reading an interactions file into Spark as :mod:`features.ingest` reads it into Polars.

The format is decided by the same function (:func:`features.ingest.file_format`) and the columns
get their contract names by the same rules (:func:`features.ingest.contract_names`). CSV values
stay text, so that a malformed value can never abort the read: parsing is the row checks' job.
CSV quotes are RFC 4180's (a doubled quote escapes one), as Polars reads them; a quoted value
spanning lines is not supported (Spark cannot split such a file; use Parquet at scale).
"""

from __future__ import annotations

from pathlib import Path

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf

from features.errors import DataError
from features.ingest import ColumnMapping, contract_names, file_format

__all__ = ["named", "read_table"]


def named(name: str) -> Column:
    """The column called ``name``, whatever it holds (a file's column may contain dots)."""
    return sf.col("`" + name.replace("`", "``") + "`")


def read_table(session: SparkSession, path: Path, mapping: ColumnMapping) -> DataFrame:
    """``path`` in Spark with mapped source columns renamed to their contract names; every
    other column is kept, so that a quarantined row can be written out whole."""
    kind = file_format(path)
    try:
        if kind == "parquet":
            frame = session.read.parquet(path.absolute().as_uri())
        else:
            frame = session.read.csv(
                path.absolute().as_uri(),
                header=True,
                inferSchema=False,
                sep="\t" if kind == "tsv" else ",",
                escape='"',
                encoding="UTF-8",
            )
        columns = frame.columns
    except (PySparkException, Py4JJavaError) as error:
        raise DataError(f"{path}: cannot be read as {kind} by Spark: {error}") from error
    shadowed, renames = contract_names(columns, mapping, path)
    return frame.drop(*shadowed).withColumnsRenamed(renames)
