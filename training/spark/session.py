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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psutil
from pyspark.sql import SparkSession

__all__ = ["engine_record", "local_driver_memory", "running_session"]

#: The share of this machine's memory a local master's JVM may take as heap, unless the
#: configuration says otherwise: Spark's own default (1 GB) runs out at about 5M events.
_LOCAL_HEAP_SHARE = 0.5
#: Settings of Spark whose value shows in ``metrics.json`` (the rest may hold credentials).
_RECORDED = ("spark.driver.memory", "spark.executor.memory", "spark.executor.cores")


def local_driver_memory() -> str:
    """The heap a local master's JVM gets by default: half this machine's memory (at least
    1 GB), in Spark's notation. In local mode the driver's JVM runs every task too, so its
    heap is all the memory Spark has; the JVM takes it only as it needs it."""
    megabytes = max(1024, int(psutil.virtual_memory().total * _LOCAL_HEAP_SHARE / 2**20))
    return f"{megabytes}m"


def _start(master: str, conf: Mapping[str, str]) -> SparkSession:
    builder = (
        SparkSession.builder.master(master)
        .appName("recsys train")
        # Interaction timestamps are naive UTC (DESIGN section 3): no other zone may shift them.
        .config("spark.sql.session.timeZone", "UTC")
        # The CLI shows its own progress; Spark's stage bars would garble it.
        .config("spark.ui.showConsoleProgress", "false")
    )
    given = dict(conf)
    if master.startswith("local") and not _driver_memory_set(given):
        given["spark.driver.memory"] = local_driver_memory()
    for key, value in given.items():
        builder = builder.config(key, value)
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


def _driver_memory_set(conf: Mapping[str, str]) -> bool:
    """Whether the user set the driver's memory (``--spark-conf``, ``SPARK_DRIVER_MEMORY``, or
    spark-submit's arguments in ``PYSPARK_SUBMIT_ARGS``): their choice wins over the default."""
    return (
        "spark.driver.memory" in conf
        or "SPARK_DRIVER_MEMORY" in os.environ
        or "driver-memory" in os.environ.get("PYSPARK_SUBMIT_ARGS", "")
        or "spark.driver.memory" in os.environ.get("PYSPARK_SUBMIT_ARGS", "")
    )


def _local_cores(master: str) -> int:
    """The cores of a ``local``, ``local[N]`` or ``local[*]`` master."""
    inside = master.partition("[")[2].partition("]")[0].partition(",")[0]
    return int(inside) if inside.isdigit() else os.cpu_count() or 1


@contextmanager
def running_session(master: str, conf: Mapping[str, str] | None = None) -> Iterator[SparkSession]:
    """A session on ``master`` with the settings ``conf`` for the block, stopped after it
    unless one was running before (a notebook's or a test's, which the block then shares, with
    its own settings: a JVM's memory is fixed when it starts)."""
    already = SparkSession.getActiveSession()
    session = _start(master, conf or {})
    try:
        yield session
    finally:
        if already is None:
            session.stop()


def engine_record(session: SparkSession) -> dict[str, Any]:
    """What ``metrics.json`` and the manifest say about the engine: Spark, its master and
    version, so that an artifact tells which engine and cluster trained it."""
    settings = session.sparkContext.getConf()
    recorded = {key: settings.get(key) for key in _RECORDED if settings.contains(key)}
    return {
        "name": "spark",
        "master": session.sparkContext.master,
        "version": session.version,
        "conf": recorded,
    }
