"""Benchmark of the synthetic store generator: wall time and peak memory at a given size.

The generator runs in a child process so that its peak RSS is measured alone (not mixed with
this script's): its own high-water mark (``benchmarks/child_process.py``). The result is
printed and written to the "Synthetic store generation" section of ``docs/benchmarks.md``;
other sections of that file are kept.

    uv run python benchmarks/generate.py                       # 1M members, 100k items, 20M events
    uv run python benchmarks/generate.py --events 1000000 --out /tmp/store
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from child_process import run_child
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section

SECTION_TITLE = "## Synthetic store generation"
#: The hard requirement: peak RSS at the large size must stay at or below 4 GB.
RSS_TARGET_BYTES = 4 * 10**9

#: Runs in the child: generate the store and report its counts as JSON on stdout.
CHILD_PROGRAM = """
import json, sys
from pathlib import Path
from features.synthetic import StoreConfig, generate_store
summary = generate_store(StoreConfig(**json.loads(sys.argv[1])), Path(sys.argv[2]))
print(json.dumps(summary.counts()))
"""


@dataclass(frozen=True)
class Measurement:
    members: int
    items: int
    events: int
    seed: int
    wall_s: float
    peak_rss_bytes: int
    output_bytes: int
    counts: dict[str, int]

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def meets_target(self) -> bool:
        return self.peak_rss_bytes <= RSS_TARGET_BYTES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Keep the store here (default: a temporary directory under /tmp, deleted after).",
    )
    parser.add_argument("--doc", type=Path, default=BENCHMARKS_DOC, help="Markdown file to update.")
    return parser.parse_args(argv)


def measure(members: int, items: int, events: int, seed: int, out_dir: Path) -> Measurement:
    """Run the generator in a child process and measure its wall time and peak RSS."""
    config = {"members": members, "items": items, "events": events, "seed": seed}
    log = out_dir.with_name(f"{out_dir.name}.log")
    command = [sys.executable, "-c", CHILD_PROGRAM, json.dumps(config), str(out_dir)]
    child = run_child(command, log, REPO_ROOT)
    if child.returncode != 0:
        raise SystemExit(f"the generator failed: {log.read_text()[-2000:]}")
    return Measurement(
        members=members,
        items=items,
        events=events,
        seed=seed,
        wall_s=child.wall_s,
        peak_rss_bytes=child.peak_rss_bytes,
        output_bytes=sum(path.stat().st_size for path in out_dir.iterdir()),
        counts=json.loads(log.read_text().strip().splitlines()[-1]),
    )


def command_line(args: argparse.Namespace) -> str:
    return (
        f"uv run python benchmarks/generate.py --members {args.members} --items {args.items} "
        f"--events {args.events} --seed {args.seed}"
    )


def render_section(result: Measurement, command: str) -> str:
    verdict = "yes" if result.meets_target else "**no**"
    counts = result.counts
    return f"""{SECTION_TITLE}

`features.synthetic.generate_store` streams a synthetic store to parquet one chunk of members
at a time; the hard requirement is a peak RSS of at most 4 GB at 1M members / 100k items / 20M
events.

| | |
|---|---|
| date | {datetime.now(UTC).date().isoformat()} |
| command | `{command}` |
| machine | {machine_description()} |
| sizes | {result.members:,} members, {result.items:,} items, {result.events:,} events |
| wall time | {result.wall_s:.1f} s (child process, including interpreter start-up) |
| peak RSS | {result.peak_rss_bytes / 2**20:,.0f} MiB ({result.peak_rss_bytes / 1e9:.2f} GB) |
| throughput | {result.events_per_s:,.0f} events/s |
| output on disk | {result.output_bytes / 1e6:,.0f} MB |
| orders / purchases | {counts["orders"]:,} / {counts["purchases"]:,} |
| meets the 4 GB target | {verdict} |
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="recsys-generate-bench-", dir="/tmp"))
    try:
        result = measure(args.members, args.items, args.events, args.seed, out_dir)
    finally:
        if args.out is None:
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.with_name(f"{out_dir.name}.log").unlink(missing_ok=True)
    section = render_section(result, command_line(args))
    update_section(args.doc, SECTION_TITLE, section)
    print(section)
    print(f"Updated {args.doc}")
    return 0 if result.meets_target else 1


if __name__ == "__main__":
    raise SystemExit(main())
