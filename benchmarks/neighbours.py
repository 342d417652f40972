"""The member neighbour search of user_knn and tifu_knn: exact against FAISS, by store size,
beside scikit-learn's brute-force ``NearestNeighbors`` (the search TIFU-KNN's authors use).

``training.models.neighbours.EXACT_BELOW`` says from how many members FAISS takes over. What
decides is the cost of a pass and the neighbours it finds. Exact, the time per query grows with
the members, so a pass over every member (the artifact's lists, an export) grows with their
square, and an evaluation pass (a tuning trial, a test: at most ``max_eval_members``) with the
members; FAISS pays a build (a truncated SVD and an HNSW graph), then about the same time per
query at any size, and finds only part of the exact neighbours. This script measures both per
query, at several store sizes, with the neighbours of the two models (cosine over binary
histories at k = 51, user_knn's 50 and the member itself; Euclidean over weighted vectors at
k = 301, tifu_knn's 300 and itself), and FAISS's recall of the exact neighbours.

Members are seeded synthetic rows: ``--per-member`` items each, 70% from one of 200 tastes
of 100 items, the rest by a Zipf popularity over ``--items`` items. Each timing is the median
of ``--repeat`` runs on the same ``--queries`` members; "pass" is the per-query time times
the members (plus the build, for FAISS).

    uv run python benchmarks/neighbours.py [--members 50000 100000 200000 400000] [--queries N]

Results go to docs/benchmarks.md ("Member neighbour search").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section
from sklearn.neighbors import NearestNeighbors

sys.path.insert(0, str(REPO_ROOT))

from training.models.neighbours import EXACT_BELOW, MemberNeighbours, Metric, NeighbourConfig
from training.train import TrainConfig

SECTION_TITLE = "## Member neighbour search (user_knn, tifu_knn)"
#: (metric, k, weighted rows) of each model's search.
SEARCHES: dict[str, tuple[Metric, int, bool]] = {
    "user_knn": ("cosine", 51, False),
    "tifu_knn": ("euclidean", 301, True),
}
TASTES, TASTE_ITEMS, OWN_SHARE = 200, 100, 0.7
#: Members an evaluation (a tuning trial, a test) searches at most.
EVALUATED: int = TrainConfig.model_fields["max_eval_members"].default


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--members", type=int, nargs="+", default=[50_000, 100_000, 200_000, 400_000]
    )
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--per-member", type=int, default=20)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--doc", type=type(BENCHMARKS_DOC), default=BENCHMARKS_DOC)
    return parser.parse_args(argv)


def member_rows(
    n_members: int, n_items: int, per_member: int, weighted: bool, seed: int
) -> sp.csr_matrix:
    """Members x items: taste-clustered purchases over a Zipf catalog (see the docstring),
    weights uniform in (0, 1] (time-decayed vectors) or 1 (binary histories)."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    favourites = rng.choice(n_items, size=(TASTES, TASTE_ITEMS), p=popularity)
    taste = rng.integers(0, TASTES, n_members)
    own = rng.random((n_members, per_member)) < OWN_SHARE
    items = np.where(
        own,
        favourites[taste[:, None], rng.integers(0, TASTE_ITEMS, (n_members, per_member))],
        rng.choice(n_items, size=(n_members, per_member), p=popularity),
    )
    rows = np.repeat(np.arange(n_members), per_member)
    matrix = sp.csr_matrix(
        (np.ones(rows.size, np.float32), (rows, items.ravel())), shape=(n_members, n_items)
    )
    matrix.sum_duplicates()
    matrix.data = (1.0 - rng.random(matrix.nnz) if weighted else np.ones(matrix.nnz)).astype(
        np.float32
    )
    return matrix


def median_seconds(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median wall time of ``repeat`` runs, and the last run's result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def neighbour_recall(
    found_scores: np.ndarray, exact_ids: np.ndarray, exact_scores: np.ndarray
) -> float:
    """Share of the exact neighbours (ids >= 0) matched by as near a member found
    approximately: slot by slot, a found score (re-scored exactly) at least the exact k-th
    score. Ties make the set of nearest members ambiguous (many members share a cosine of
    binary histories), so ids alone would count an equally near member as a miss."""
    valid = exact_ids >= 0
    kth = np.where(valid, exact_scores, np.inf).min(axis=1, keepdims=True)
    tolerance = 1e-5 * np.maximum(np.abs(kth), 1.0)
    return float((found_scores >= kth - tolerance)[valid].mean())


def measure(n_members: int, model: str, args: argparse.Namespace) -> dict[str, float]:
    """Per-query seconds of the three searches, FAISS's build and recall, for one size."""
    metric, k, weighted = SEARCHES[model]
    rows = member_rows(n_members, args.items, args.per_member, weighted, args.seed)
    queries = rows[np.random.default_rng(args.seed + 1).choice(n_members, args.queries, False)]
    exact = MemberNeighbours.build(rows, metric, NeighbourConfig(exact_below=n_members + 1))
    exact_s, (exact_ids, exact_scores) = median_seconds(
        lambda: exact.search(queries, k), args.repeat
    )
    started = time.perf_counter()
    approximate = MemberNeighbours.build(rows, metric, NeighbourConfig(exact_below=0))
    build_s = time.perf_counter() - started
    faiss_s, (_, faiss_scores) = median_seconds(lambda: approximate.search(queries, k), args.repeat)
    reference = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(rows)
    sklearn_s, _ = median_seconds(lambda: reference.kneighbors(queries), args.repeat)
    return {
        "exact": exact_s / args.queries,
        "faiss": faiss_s / args.queries,
        "sklearn": sklearn_s / args.queries,
        "build": build_s,
        "recall": neighbour_recall(faiss_scores, exact_ids, exact_scores),
    }


def render(results: dict[str, dict[int, dict[str, float]]], args: argparse.Namespace) -> str:
    header = (
        "| search | members | exact ms/query | FAISS ms/query | scikit-learn brute ms/query "
        "| FAISS build s | FAISS recall@k | full pass s, exact / FAISS "
        f"| evaluation pass ({EVALUATED:,} members) s, exact / FAISS |"
    )
    lines = [header, "|" + "---|" * 9]
    for model, by_size in results.items():
        metric, k, _ = SEARCHES[model]
        for size, result in by_size.items():
            evaluated = min(size, EVALUATED)
            lines.append(
                f"| {model} ({metric}, k={k}) | {size:,} | {1e3 * result['exact']:.2f} "
                f"| {1e3 * result['faiss']:.2f} | {1e3 * result['sklearn']:.2f} "
                f"| {result['build']:.1f} | {result['recall']:.3f} "
                f"| {result['exact'] * size:.0f} / {result['build'] + result['faiss'] * size:.0f} "
                f"| {result['exact'] * evaluated:.0f} / "
                f"{result['build'] + result['faiss'] * evaluated:.0f} |"
            )
    return f"""{SECTION_TITLE}

Per-query times of the member neighbour search (`training/models/neighbours.py`) on seeded
synthetic members ({args.items:,} items, {args.per_member} per member, 70% from one of
{TASTES} tastes), {args.queries:,} queries, medians of {args.repeat} runs. Exact is ours
(queries x every member in dense blocks through scikit-learn's `safe_sparse_dot`, then
`top_n`); scikit-learn's brute-force `NearestNeighbors` is the reference; FAISS is ours (SVD to
64 dimensions, HNSW, 3x candidates re-scored exactly), and its recall is the share of the
exact neighbours matched by one as near. A full pass (every member's neighbours: the lists of
the artifact, an export) is the per-query time x members, plus the build for FAISS; an
evaluation pass (a tuning trial, a test) searches at most {EVALUATED:,} sampled members
(`TrainConfig.max_eval_members`). The product switches to FAISS at `EXACT_BELOW` =
{EXACT_BELOW:,} members. Date {datetime.now(UTC).date().isoformat()}, {machine_description()}
(via `uv run python benchmarks/neighbours.py`).

{chr(10).join(lines)}
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, dict[int, dict[str, float]]] = {model: {} for model in SEARCHES}
    for model in SEARCHES:
        for size in args.members:
            results[model][size] = measure(size, model, args)
            print(model, size, results[model][size], flush=True)
    section = render(results, args)
    update_section(args.doc, SECTION_TITLE, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
