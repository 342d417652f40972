"""Member scoring at scale: ``recsys members score`` on a generated store of 1,000,000 members.

The target (issue 13): scoring 1M generated members (churn risk and expected value, every model
fit on its windows, chosen on validation, refit on the latest window and applied to every member)
takes at most 2 minutes and at most 2 GB peak RSS. Three child processes on the same file (wall
time and their own peak RSS: ``benchmarks/child_process.py``), ``--repeat`` alternating rounds,
medians:

* ``score_members`` on a Parquet scan of the generated events: the scoring itself, what the
  target is about;
* ``recsys members score``: the same, after loading and validating the file, which holds it
  whole in memory (streaming the validation is issue 16's work);
* the reference, ``recsys segments``: that same loading plus one pass of RFM figures and
  lifecycle segments, the least any per-member command must do.

Results go to docs/benchmarks.md ("Member scoring").

    uv run python benchmarks/members_scoring.py [--members 1000000 --items 20000
        --events 20000000] [--repeat 1] [--work DIR --reuse]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from child_process import ChildResult, run_child
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section

from features.synthetic import StoreConfig, generate_store
from training.artifact import MEMBERS_METRICS_FILE

SECTION_TITLE = "## Member scoring"
RECSYS = Path(sys.executable).with_name("recsys")
#: The issue's limits.
WALL_LIMIT_S = 120.0
RSS_LIMIT_BYTES = 2 * 10**9


#: The library path: score_members on a scan, the members file read whole (it is small).
_LIBRARY_SCORING = """
import sys, polars as pl
from training.member_models import score_members
store, out, horizon = sys.argv[1], sys.argv[2], int(sys.argv[3])
scores = score_members(pl.scan_parquet(f"{store}/interactions.parquet"), horizon_days=horizon,
                       members=pl.read_parquet(f"{store}/members.parquet"))
scores.frame.write_parquet(out)
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--horizon-days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=1, help="Alternating rounds; medians.")
    parser.add_argument("--work", type=Path, default=None, help="Keep the store here.")
    parser.add_argument("--reuse", action="store_true", help="Reuse the store in --work.")
    parser.add_argument("--doc", type=str, default=str(BENCHMARKS_DOC), help="'' for none")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="recsys-members-bench-"))
    store = work / "store"
    if not (args.reuse and (store / "interactions.parquet").exists()):
        config = StoreConfig(
            members=args.members, items=args.items, events=args.events, seed=args.seed
        )
        generate_store(config, store)
    inputs = [
        "-i",
        str(store / "interactions.parquet"),
        "--members",
        str(store / "members.parquet"),
    ]
    scoring = [
        str(RECSYS), "members", "score", *inputs, "--horizon-days", str(args.horizon_days),
        "--out", str(work / "scores.parquet"),
    ]  # fmt: skip
    reference = [str(RECSYS), "segments", *inputs, "--out", str(work / "segments.parquet")]
    library = [
        sys.executable, "-c", _LIBRARY_SCORING, str(store), str(work / "library.parquet"),
        str(args.horizon_days),
    ]  # fmt: skip
    runs: dict[str, list[ChildResult]] = {"library": [], "score": [], "segments": []}
    for round_number in range(args.repeat):
        for name, command in (("segments", reference), ("library", library), ("score", scoring)):
            result = run_child(command, work / f"{name}-{round_number}.log", REPO_ROOT)
            if result.returncode != 0:
                log = (work / f"{name}-{round_number}.log").read_text()[-3000:]
                raise SystemExit(f"{name} failed (exit {result.returncode}):\n{log}")
            runs[name].append(result)
            print(
                f"{name}: {result.wall_s:.1f} s, peak RSS {result.peak_rss_bytes / 2**20:,.0f} MiB"
            )
    scores = pl.read_parquet(work / "scores.parquet")
    metrics = json.loads((work / MEMBERS_METRICS_FILE).read_text())
    section = render_section(args, runs, scores, metrics)
    print(section)
    if args.doc:
        update_section(Path(args.doc), SECTION_TITLE, section)


def _verdict(wall_s: float, rss_bytes: float) -> str:
    return "meets" if wall_s <= WALL_LIMIT_S and rss_bytes <= RSS_LIMIT_BYTES else "**misses**"


def _median(results: list[ChildResult], field: str) -> float:
    return statistics.median(getattr(result, field) for result in results)


def render_section(
    args: argparse.Namespace,
    runs: dict[str, list[ChildResult]],
    scores: pl.DataFrame,
    metrics: dict,
) -> str:
    score_s, score_rss = _median(runs["score"], "wall_s"), _median(runs["score"], "peak_rss_bytes")
    ref_s, ref_rss = (
        _median(runs["segments"], "wall_s"),
        _median(runs["segments"], "peak_rss_bytes"),
    )
    lib_s, lib_rss = _median(runs["library"], "wall_s"), _median(runs["library"], "peak_rss_bytes")
    churn, value = metrics["churn"], metrics["value"]
    chosen_test = churn["test"].get(churn["chosen"], {})
    auc = chosen_test.get("roc_auc")
    lines = [
        SECTION_TITLE,
        "",
        "Scoring every member (every churn and value model fit on its windows, the chosen ones "
        "refit on the latest window and applied to every member) as a library call on a Parquet "
        "scan and as the command, against `recsys segments` (the same loading and one RFM pass), "
        f"each a child process, {args.repeat} alternating round(s), medians.",
        "",
        "| | |",
        "|---|---|",
        f"| date | {datetime.now(UTC).date().isoformat()} |",
        f"| command | `uv run python benchmarks/members_scoring.py --members {args.members} "
        f"--items {args.items} --events {args.events} --seed {args.seed} "
        f"--horizon-days {args.horizon_days}` |",
        f"| machine | {machine_description()} |",
        f"| members scored | {scores.height:,} |",
        f"| `score_members` on a Parquet scan | {lib_s:.1f} s, peak RSS "
        f"{lib_rss / 2**20:,.0f} MiB: {_verdict(lib_s, lib_rss)} the target (2 min, 2 GB) |",
        f"| `recsys members score` (load, validate, score) | {score_s:.1f} s, peak RSS "
        f"{score_rss / 2**20:,.0f} MiB: {_verdict(score_s, score_rss)} the target |",
        f"| `recsys segments` (reference: load, validate, RFM) | {ref_s:.1f} s, peak RSS "
        f"{ref_rss / 2**20:,.0f} MiB |",
        f"| ratio `recsys members score` / `recsys segments` | {score_s / ref_s:.1f}x time, "
        f"{score_rss / ref_rss:.2f}x memory: the command's peak is the loading's |",
        f"| churn model chosen | {churn['chosen']} (informative: {churn['informative']}; test "
        f"ROC AUC {'-' if auc is None else f'{auc:.3f}'}) |",
        f"| value model chosen | {value['chosen']} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
