"""The child programs of ``benchmarks/train.py``: ``recsys train`` with timing hooks, the members'
serving lists on its model artifact, and the raw-library reference fits.

Each is Python source run as ``python -c PROGRAM`` in a child process of its own, so that its
wall time and peak RSS are its own (``benchmarks/child_process.py``) and nothing the benchmark
itself imported or allocated is counted.
"""

from __future__ import annotations

#: The test window of ``recsys train --split last-days:N``, which the reference replays.
SPLIT_DAYS = 30

#: Runs ``recsys train`` (``cli.main:main``, as the console script does) with timing hooks.
#: argv: the JSON-lines log path, then the ``recsys`` arguments. Each hooked call logs its
#: stage, its inclusive time and its time minus the hooked calls nested in it, so that stages
#: add up without double counting (fits happen inside tuning, for example).
PRODUCT_PROGRAM = r"""
import functools, importlib, json, resource, sys, time

log = open(sys.argv[1], "w")
stack = []

def hooked(function, stage):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        stack.append(0.0)
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            nested = stack.pop()
            if stack:
                stack[-1] += elapsed
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            record = {"stage": stage, "inclusive_s": elapsed, "exclusive_s": elapsed - nested,
                      "peak_rss_bytes": peak}
            log.write(json.dumps(record) + "\n")
            log.flush()
    return wrapper

HOOKS = json.loads(sys.argv[2])
for module_name, owner, attribute, stage in HOOKS:
    try:
        target = importlib.import_module(module_name)
        if owner:
            target = getattr(target, owner)
        setattr(target, attribute, hooked(getattr(target, attribute), stage))
    except (ImportError, AttributeError) as error:
        print(f"benchmark: no timing hook for {module_name}.{owner}.{attribute}: {error}",
              file=sys.stderr)

from cli.main import main
sys.argv = ["recsys", *sys.argv[3:]]
main()
"""

#: (module, class or "", attribute, stage). Stages not hooked (start-up, imports, printing)
#: end up in "other". Fits are hooked on the model classes, so tuning fits count as fits.
HOOKS: list[tuple[str, str, str, str]] = [
    ("cli.train", "", "load_with_options", "load + validate interactions"),
    ("cli.train", "", "load_items", "load + validate items and members"),
    ("cli.train", "", "load_members", "load + validate items and members"),
    ("cli.train", "", "_split_for_training", "train/test split"),
    ("training.train", "", "carve_validation", "validation split"),
    ("features.splits", "Split", "describe", "split summaries (row and id counts) x2"),
    ("training.train", "", "_training_data", "training data (segments, id maps, matrix) x3"),
    ("training.train", "", "_task", "evaluation tasks x2"),
    ("training.models.popular", "PopularityRecommender", "fit", "fit popular"),
    ("training.models.item_knn", "ItemKNNRecommender", "fit", "fit item_knn"),
    ("training.models.als", "ALSRecommender", "fit", "fit als"),
    ("training.tune", "", "evaluate_model", "evaluation (validation and test)"),
    ("training.lineup", "", "recommended_lists", "evaluation (validation and test)"),
    ("training.lineup", "", "evaluate_recommended", "evaluation (validation and test)"),
    ("training.lineup", "", "evaluate_by_segment", "evaluation (validation and test)"),
    ("training.lineup", "", "build_indexes", "FAISS index + recall"),
    ("training.publish", "", "write_training_artifact", "model artifact writing"),
]

#: Precomputing the members' serving lists on the run's model artifact, timed on its own. argv:
#: the artifact directory. ``recsys train`` runs with ``--list-depth 0`` above: the lists are a
#: serving cache computed after training, not part of the fit-versus-overhead comparison, so
#: their cost at this size is reported beside it instead.
LISTS_PROGRAM = r"""
import json, sys, time
from pathlib import Path
from training.artifact import load_artifact
from training.config import DEFAULT_LIST_DEPTH
from training.models import MODEL_CLASSES
from training.recommend import ArtifactRecommender

artifact = load_artifact(Path(sys.argv[1]), verify=False, model_classes=MODEL_CLASSES)
started = time.perf_counter()
lists = ArtifactRecommender(artifact).member_lists(DEFAULT_LIST_DEPTH)
print(json.dumps({"seconds": time.perf_counter() - started, "members": len(artifact.member_ids),
                  "depth": lists.depth, "model": lists.model}))
"""

#: The raw-library reference. argv: store directory, model artifact directory, output JSON path.
#: It rebuilds the run's three matrices from the parquet files and times only the library fits.
REFERENCE_PROGRAM = r"""
import json, sys, time, warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from implicit.utils import ParameterWarning
from threadpoolctl import threadpool_limits

store, artifact, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
split_days = int(sys.argv[4])
manifest = json.loads((artifact / "manifest.json").read_text())
config = json.loads((artifact / "metrics.json").read_text())["config"]
params = manifest["params"]
weights = config["event_weights"]
if config.get("half_life_days") is not None or params["als"].get("bm25_weighting"):
    sys.exit("reference: time decay and BM25-weighted ALS are not replayed")

# The validated interactions: the generated store is clean, so validation only drops exact
# repeats of a whole row.
raw = pl.read_parquet(store / "interactions.parquet")
frame = raw.unique(maintain_order=True).select("member_id", "item_id", "event", "timestamp")
del raw
catalog = pl.read_parquet(store / "items.parquet", columns=["item_id"]).get_column("item_id")

def last_days(frame, days):
    cutoff = frame.get_column("timestamp").max() - timedelta(days=days)
    return frame.filter(pl.col("timestamp") < cutoff), frame.filter(pl.col("timestamp") >= cutoff)

train, test = last_days(frame, split_days)
# The validation window of features.split_shapes: as long as the test's, but no larger a share
# of the training events than the test's share of all events.
stamps = train.get_column("timestamp")
window = test.get_column("timestamp").max() - test.get_column("timestamp").min()
share = test.height / (train.height + test.height)
cutoff = max(stamps.max() - window, stamps.quantile(1.0 - share, interpolation="higher"))
inner = train.filter(pl.col("timestamp") < cutoff)

def matrix(part):
    members = part.get_column("member_id").unique(maintain_order=True)
    items = part.get_column("item_id").unique(maintain_order=True)
    unseen = catalog.filter(~catalog.is_in(items.implode())).unique(maintain_order=True)
    items = pl.concat([items, unseen])
    codes = part.select(
        pl.col("member_id").replace_strict(members, pl.int_range(len(members), eager=True)),
        pl.col("item_id").replace_strict(items, pl.int_range(len(items), eager=True)),
        pl.col("event").replace_strict(weights, return_dtype=pl.Float64),
    )
    summed = sp.csr_matrix(
        (codes["event"].to_numpy(), (codes["member_id"].to_numpy(), codes["item_id"].to_numpy())),
        shape=(len(members), len(items)), dtype=np.float64,
    )
    return summed.astype(np.float32)

matrices = {"validation-train": matrix(inner), "train": matrix(train), "all": matrix(frame)}
del frame, train, test, inner
fits = []

def timed(model, part, call):
    started = time.perf_counter()
    call()
    fits.append({"model": model, "matrix": part, "seconds": time.perf_counter() - started})

for part, user_items in matrices.items():
    timed("popular", part, lambda: np.asarray((user_items > 0).sum(axis=0)).ravel())
    knn = params["item_knn"]
    neighbours = (
        CosineRecommender(K=knn["neighbors"]) if knn["similarity"] == "cosine"
        else BM25Recommender(K=knn["neighbors"], K1=knn["bm25_k1"], B=knn["bm25_b"])
    )
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)
        timed("item_knn", part, lambda: neighbours.fit(user_items, show_progress=False))
    als = params["als"]
    factorisation = AlternatingLeastSquares(
        factors=als["factors"], regularization=als["regularization"], alpha=als["alpha"],
        dtype=np.float32, iterations=als["iterations"], calculate_training_loss=False,
        random_state=als["random_state"],
    )
    with threadpool_limits(1, "blas"):
        timed("als", part, lambda: factorisation.fit(user_items, show_progress=False))

full = matrices["all"]
indptr = np.load(artifact / "histories" / "indptr.npy", mmap_mode="r")
data = np.load(artifact / "histories" / "data.npy", mmap_mode="r")
out.write_text(json.dumps({
    "fits": fits,
    "shapes": {part: list(m.shape) + [int(m.nnz)] for part, m in matrices.items()},
    "same_matrix_as_artifact": bool(
        list(full.shape) == [manifest["n_members"], manifest["n_items"]]
        and int(indptr[-1]) == full.nnz
        and np.isclose(float(np.sum(data, dtype=np.float64)), float(full.sum(dtype=np.float64)))
    ),
}))
"""
