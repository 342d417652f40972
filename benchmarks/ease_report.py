"""What ``benchmarks/ease_solve.py`` records of each solve, and the "EASE solve" section of
docs/benchmarks.md written from those records (runs reused from earlier passes included)."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import UTC, datetime

from docs_section import machine_description
from ease_candidates import CANDIDATES, DEFAULT_L2, PRODUCT, REFERENCE
from ease_data import MAX_EVALUATED_MEMBERS, STORE_SIZE

from training.models.ease import (
    USABLE_MEMORY_SHARE,
    available_memory_bytes,
    find_lapack64,
    largest_catalogue,
    solve_memory,
)

SECTION_TITLE = "## EASE solve"


@dataclass
class SolveRun:
    """One candidate at one size and λ: how it ended and, when it ended well, its figures."""

    candidate: str
    n_items: int
    l2: float
    returncode: int
    wall_s: float | None = None
    cpu_s: float | None = None
    load: float | None = None
    extra_bytes: int | None = None
    max_abs_error: float | None = None
    top10_agreement: float | None = None
    precision_at_10: float | None = None
    ndcg_at_10: float | None = None
    error_tail: str = ""

    @property
    def key(self) -> str:
        return run_key(self.candidate, self.n_items, self.l2)


def run_key(candidate: str, n_items: int, l2: float) -> str:
    return f"{candidate}|{n_items}|{l2:g}"


def outcome(run: SolveRun) -> str:
    if run.returncode == 0:
        return "ok"
    if run.returncode < 0:
        return f"crashed ({signal.Signals(-run.returncode).name})"
    return f"failed (exit {run.returncode})"


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**30:.2f}"


def _figure(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def render_section(solves: list[SolveRun], fits: list[dict[str, float]], command: str) -> str:
    order = list(CANDIDATES)
    solves = sorted(solves, key=lambda r: (-r.l2, r.n_items, order.index(r.candidate)))
    rows = [
        f"| {r.n_items:,} | {r.l2:g} | {r.candidate} | {outcome(r)} | {_figure(r.wall_s, '.1f')} | "
        f"{_figure(r.cpu_s, '.1f')} | {_figure(r.load, '.1f')} | {_gib(r.extra_bytes)} | "
        f"{_figure(r.max_abs_error, '.1e')} | {_figure(r.top10_agreement, '.4f')} | "
        f"{_figure(r.precision_at_10, '.4f')} | {_figure(r.ndcg_at_10, '.4f')} |"
        for r in solves
    ]
    fit_rows = [
        f"| {int(f['n_items']):,} | {f['wall_s']:.1f} | {f['load']:.1f} | "
        f"{_gib(f['extra_bytes'])} | {_gib(f['estimate_bytes'])} |"
        for f in sorted(fits, key=lambda f: f["n_items"])
    ]
    available = available_memory_bytes()
    memory = solve_memory(1, find_lapack64())
    largest = largest_catalogue(memory, int(available * USABLE_MEMORY_SHARE))
    return "\n".join(
        [
            SECTION_TITLE,
            "",
            "EASE inverts the item x item matrix XᵀX + λI. Each candidate solve ran in a child "
            "process of its own (a crash is an outcome, not the end of the run) on the Gram matrix "
            "of the n items with the most training members of a generated store "
            f"({STORE_SIZE['members']:,} members, {STORE_SIZE['items']:,} items, "
            f"{STORE_SIZE['events']:,} events, seed {STORE_SIZE['seed']}; binary histories; test: "
            f"the last 30 days, at most {MAX_EVALUATED_MEMBERS:,} evaluated members). Time: the "
            "solve and B = -P / diag(P) only, wall and CPU seconds, with the 1-minute load "
            "average as it started (the 2 cores are shared, so wall times vary by 2x or more "
            "between runs); memory: the child's peak above what it held with the Gram matrix "
            "loaded. Accuracy "
            f"against `{REFERENCE}`: the largest |ΔB| and the share of top-10 slots (training "
            "purchases excluded) holding the same item. Sizes above the main store's items come "
            "from a store with 2,000 items more (same members, events and seed); only float32 "
            "candidates run there. Runs recorded in the work directory are reused, so rows can "
            "come from different passes; the load column tells each one's conditions.",
            "",
            "| | |",
            "|---|---|",
            f"| date | {datetime.now(UTC).date().isoformat()} |",
            f"| command | `{command}` |",
            f"| machine | {machine_description()} |",
            "",
            "| n items | λ | solve | outcome | wall s | CPU s | load | extra GiB | max abs ΔB | "
            "top-10 agreement | P@10 | NDCG@10 |",
            "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            *_summary(solves),
            "",
            "The product's whole `EASERecommender.fit` (Gram matrix, solve, weights) in a child "
            "process, its peak memory above the training data it was handed, beside the estimate "
            "that `check_fits_in_memory` compares with the memory available (the peak is "
            "measured as VmHWM above the RSS before the fit, so memory freed earlier and reused "
            "is not counted):",
            "",
            "| n items | fit wall s | load | peak above data GiB | estimate GiB |",
            "|---:|---:|---:|---:|---:|",
            *fit_rows,
            "",
            f"With {available / 2**30:.1f} GiB available as this section was written, a fit may "
            f"plan {USABLE_MEMORY_SHARE:.0%} of it: the estimate admits up to about {largest:,} "
            "items; above, `EASERecommender.fit` refuses with the numbers before allocating "
            "anything quadratic.",
            "",
        ]
    )


def _summary(solves: list[SolveRun]) -> list[str]:
    """What crashed where, and the product against the reference at the largest size both ran."""
    crashed: dict[str, list[str]] = {}
    for run in solves:
        if run.returncode < 0:
            crashed.setdefault(run.candidate, []).append(f"{run.n_items:,}")
    lines = [
        "Crashed: "
        + "; ".join(f"`{name}` at {', '.join(sizes)}" for name, sizes in crashed.items())
        + f". `{PRODUCT}` completed at every size."
    ]
    finished = {
        (r.candidate, r.n_items): r for r in solves if r.returncode == 0 and r.l2 == DEFAULT_L2
    }
    both = [n for (c, n) in finished if c == PRODUCT and (REFERENCE, n) in finished]
    if both:
        n_items = max(both)
        product, reference = finished[PRODUCT, n_items], finished[REFERENCE, n_items]
        lines += [
            "",
            f"At {n_items:,} items the product took {product.wall_s:.0f} s and "
            f"{_gib(product.extra_bytes)} GiB above the Gram matrix, against "
            f"{reference.wall_s:.0f} s and {_gib(reference.extra_bytes)} GiB for `{REFERENCE}`, "
            f"with max |ΔB| {product.max_abs_error:.1e} and top-10 agreement "
            f"{product.top10_agreement:.4f}.",
        ]
    return lines
