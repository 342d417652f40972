"""The Spark training engine (``recsys train --engine spark``, DESIGN section 7): the same
protocol and the same model artifact as the default engine, for interactions that outgrow one
machine's memory.

What runs in Spark: reading and validating the interactions file (the Polars loader's row rules,
run by Spark's Python workers on Arrow batches; de-duplication, counts and the quarantine file in
Spark), each fit's id maps (distinct ids) and weighted member x item cells, ALS (MLlib),
popularity overall and per segment, and the itemset counts of the frequently-bought-together
rules. What runs on the driver: the validated rows read back from the scratch Parquet as a Polars
frame (the splits, member segments, evaluation and the artifact's member files, catalog and
fingerprint read it: the driver's memory floor), the compact CSR matrix of each fit, the models'
collected arrays, the rule selection on the collected itemset counts, FAISS indexes and the
artifact writer (:mod:`training.publish`).

Modules, one job each: :mod:`~training.spark.session` (the session), :mod:`~training.spark.read`
and :mod:`~training.spark.checks` / :mod:`~training.spark.validate` (loading),
:mod:`~training.spark.rows` and :mod:`~training.spark.cells` (a fit's rows, id maps, matrix),
:mod:`~training.spark.als`, :mod:`~training.spark.popularity`, :mod:`~training.spark.itemsets`
(the models and rules), :mod:`~training.spark.fit` (one fit), :mod:`~training.spark.engine`
(the protocol).
"""

from training.spark.engine import train_in_spark
from training.spark.session import engine_record, running_session
from training.spark.validate import SparkInteractions, SparkTable, load_interactions

__all__ = [
    "SparkInteractions",
    "SparkTable",
    "engine_record",
    "load_interactions",
    "running_session",
    "train_in_spark",
]
