"""The Spark session a training run uses, and how ``metrics.json`` records it.

A local master (``local[*]``, ``local[4]``) runs Spark in a JVM of this machine, its Python
workers started from this interpreter (unless ``PYSPARK_PYTHON`` names another), so that they
import the project from the same environment. Any
other master URL (``spark://host:7077``, ``yarn``, ``k8s://...``) is used as given: its executors
need the project installed (the same image, or the wheel shipped with ``spark.submit.pyFiles``),
because validation runs the project's own row checks in them.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

__all__ = ["engine_record", "running_session"]


def _start(master: str) -> SparkSession:
    builder = (
        SparkSession.builder.master(master)
        .appName("recsys train")
        # Interaction timestamps are naive UTC (DESIGN section 3): no other zone may shift them.
        .config("spark.sql.session.timeZone", "UTC")
        # The CLI shows its own progress; Spark's stage bars would garble it.
        .config("spark.ui.showConsoleProgress", "false")
    )
    if master.startswith("local"):
        # The workers' interpreter: this one, with the project's packages (a session started
        # from Python reads it from the environment only; ``spark.pyspark.python`` is
        # spark-submit's). A shuffle in as many parts as there are cores: Spark's 200 are for
        # clusters, and cost a local run most of its time in tasks of a few rows.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.sql.shuffle.partitions", str(_local_cores(master)))
    # PySpark 4.3 warns on every Arrow exchange that pandas 3 is newer than it knows; the
    # engine exchanges Arrow tables only (mapInArrow, toArrow), never pandas frames.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    return builder.getOrCreate()


def _local_cores(master: str) -> int:
    """The cores of a ``local``, ``local[N]`` or ``local[*]`` master."""
    inside = master.partition("[")[2].partition("]")[0].partition(",")[0]
    return int(inside) if inside.isdigit() else os.cpu_count() or 1


@contextmanager
def running_session(master: str) -> Iterator[SparkSession]:
    """A session on ``master`` for the block, stopped after it unless one was running before
    (a notebook's or a test's, which the block then shares)."""
    already = SparkSession.getActiveSession()
    session = _start(master)
    try:
        yield session
    finally:
        if already is None:
            session.stop()


def engine_record(session: SparkSession) -> dict[str, str]:
    """What ``metrics.json`` and the manifest say about the engine: Spark, its master and
    version, so that an artifact tells which engine and cluster trained it."""
    return {"name": "spark", "master": session.sparkContext.master, "version": session.version}
