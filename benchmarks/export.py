"""Campaign export: bundles and recommendations for every member, in batches, against a loop of
single-member calls.

Generates a store (1,000,000 members, 20,000 items, 10,000,000 events by default), trains
popularity and ALS on it (one tuning trial, no MLflow, each member's top 50 precomputed), then
in one run:

1. on a seeded sample of ``--sample`` members, in this process: the loop a campaign would
   otherwise run (one ``BundleComposer.for_members([member])`` or
   ``ArtifactRecommender.recommend([member])`` call per member, what one API request computes)
   against one batched call for the whole sample; ``--repeat`` alternating rounds after a
   warm-up, medians; the batch's answers must equal the loop's;
2. ``recsys export`` of every member's bundles (``-n 5``) and recommendations (``-n 10``) to
   Parquet, each in a child process: wall time, peak RSS (the child's own high-water mark,
   ``benchmarks/child_process.py``) and rows written;
3. ``recsys campaign export`` of the same recommendations, twice in one family on a fresh
   ledger (10% holdout, a suppression list of 2% of the members, a 7-day item cap, at most 3
   sends per 7 days), the second a day later so that the item cap bites on every member:
   wall and peak RSS against the plain export of step 2 (target: at most 1.3x, 2 GB).

Results go to docs/benchmarks.md ("Campaign export").

    uv run python benchmarks/export.py [--members 1000000 --items 20000 --events 10000000]
                                       [--sample 2000] [--repeat 3] [--work DIR --reuse]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from child_process import run_child
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section
from stores import trained_artifact

from serving.event_store import CAMPAIGNS, EventStore
from training.artifact import RULES_FILE, ModelArtifact, load_artifact
from training.campaigns import manifest_path
from training.member_bundles import BundleComposer
from training.models import MODEL_CLASSES
from training.recommend import ArtifactRecommender

SECTION_TITLE = "## Campaign export"
CAMPAIGN_FAMILY = "nightly"
SUPPRESSED_SHARE = 0.02
WALL_RATIO_TARGET = 1.3
PEAK_RSS_TARGET = 2e9
RECSYS = Path(sys.executable).with_name("recsys")
BUNDLES_PER_MEMBER = 5
ITEMS_PER_MEMBER = 10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sample", type=int, default=2_000, help="Members of the loop/batch test.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="Keep the store and artifact here.")
    parser.add_argument("--reuse", action="store_true", help="Reuse the model artifact in --work.")
    parser.add_argument("--doc", type=str, default=str(BENCHMARKS_DOC), help="'' for none")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class LoopAgainstBatch:
    """Seconds per member of a loop of single calls and of one batched call (medians)."""

    what: str
    loop_s: list[float]
    batch_s: list[float]
    members: int

    @property
    def loop_us(self) -> float:
        return 1e6 * statistics.median(self.loop_s) / self.members

    @property
    def batch_us(self) -> float:
        return 1e6 * statistics.median(self.batch_s) / self.members

    @property
    def speedup(self) -> float:
        return self.loop_us / self.batch_us


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def compare_bundles(artifact: ModelArtifact, sample: list[str], repeat: int) -> LoopAgainstBatch:
    rules_path = artifact.extra_files.get(RULES_FILE)
    rules = pl.read_parquet(rules_path) if rules_path is not None else None
    composer = BundleComposer(ArtifactRecommender(artifact), rules)
    batch = composer.for_members(sample, BUNDLES_PER_MEMBER)  # warms the stand-in table too
    for row, member in enumerate(sample):
        alone = composer.for_members([member], BUNDLES_PER_MEMBER)
        if not (np.array_equal(alone.anchors[0], batch.anchors[row])
                and np.array_equal(alone.complements[0], batch.complements[row])):  # fmt: skip
            raise SystemExit(f"member {member}: the batch's bundles differ from a single call's")
    loop_s, batch_s = [], []
    for _ in range(repeat):
        loop_s.append(
            timed(lambda: [composer.for_members([m], BUNDLES_PER_MEMBER) for m in sample])
        )
        batch_s.append(timed(lambda: composer.for_members(sample, BUNDLES_PER_MEMBER)))
    return LoopAgainstBatch("bundles", loop_s, batch_s, len(sample))


def compare_recommendations(
    artifact: ModelArtifact, sample: list[str], repeat: int
) -> LoopAgainstBatch:
    recommender = ArtifactRecommender(artifact)
    batch = recommender.ranked(sample, ITEMS_PER_MEMBER)
    for row, member in enumerate(sample):
        [alone] = recommender.recommend([member], ITEMS_PER_MEMBER)
        if alone.item_indices != [i for i in batch.items[row].tolist() if i >= 0]:
            raise SystemExit(f"member {member}: the batch's list differs from a single call's")
    loop_s, batch_s = [], []
    for _ in range(repeat):
        loop_s.append(timed(lambda: [recommender.recommend([m], ITEMS_PER_MEMBER) for m in sample]))
        batch_s.append(timed(lambda: recommender.ranked(sample, ITEMS_PER_MEMBER)))
    return LoopAgainstBatch("recommendations", loop_s, batch_s, len(sample))


@dataclass(frozen=True)
class ExportRun:
    kind: str
    n: int
    wall_s: float
    peak_rss_bytes: int
    rows: int
    members: int
    #: A campaign export's counts by outcome (its manifest's).
    counts: dict[str, int] | None = None


def run_export(
    artifact: Path, kind: str, n: int, out: Path, log: Path, events_url: str | None = None
) -> ExportRun:
    """``recsys export`` in a child process, with its own peak RSS."""
    command = [str(RECSYS), "export", "--artifact", str(artifact), "--out", str(out),
               "--kind", kind, "-n", str(n)]  # fmt: skip
    if events_url is not None:
        command += ["--events-url", events_url]
    child = run_child(command, log, REPO_ROOT)
    if child.returncode != 0:
        raise SystemExit(f"recsys export failed: {log.read_text()[-2000:]}")
    rows = pq.ParquetFile(out).metadata.num_rows
    members = pl.scan_parquet(out).select(pl.col("member_id").n_unique()).collect().item()
    return ExportRun(kind, n, child.wall_s, child.peak_rss_bytes, rows, members)


def run_campaign_export(
    artifact: Path, work: Path, suppress: Path, ledger: Path, day: int
) -> ExportRun:
    """``recsys campaign export`` of the recommendations in a child process; export ``day``
    of the family (the ledger's earlier sends moved back a day each time: :func:`age_ledger`)."""
    out = work / f"campaign-{day}.parquet"
    command = [str(RECSYS), "campaign", "export", "--campaign", CAMPAIGN_FAMILY,
               "--artifact", str(artifact), "--out", str(out), "-n", str(ITEMS_PER_MEMBER),
               "--holdout", "0.1", "--suppress", str(suppress), "--item-cap-days", "7",
               "--max-sends", "3", "--per-days", "7",
               "--events-url", f"sqlite:///{ledger}"]  # fmt: skip
    child = run_child(command, work / f"export-campaign-{day}.log", REPO_ROOT)
    if child.returncode != 0:
        log = (work / f"export-campaign-{day}.log").read_text()
        raise SystemExit(f"recsys campaign export failed: {log[-2000:]}")
    rows = pq.ParquetFile(out).metadata.num_rows
    counts = json.loads(manifest_path(out).read_text())["counts"]
    return ExportRun(f"campaign, export {day + 1}", ITEMS_PER_MEMBER, child.wall_s,
                     child.peak_rss_bytes, rows, counts["sent"], counts)  # fmt: skip


def age_ledger(ledger: Path, days: float) -> None:
    """Move every recorded send ``days`` back, as if the next export ran that much later."""
    with sqlite3.connect(ledger) as connection:
        connection.execute(f"UPDATE {CAMPAIGNS.name} SET sent_at = sent_at - ?", (days * 86_400.0,))


def gb(value: int) -> str:
    return f"{value / 1e9:.2f} GB"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="recsys-export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    artifact_path, build_s = trained_artifact(
        work, members=args.members, items=args.items, events=args.events, seed=args.seed,
        models=("popular", "als"), reuse=args.reuse,
    )  # fmt: skip
    artifact = load_artifact(artifact_path, mmap=True, model_classes=MODEL_CLASSES)
    members = artifact.member_ids.external_ids
    sample = random.Random(args.seed).sample(members.tolist(), min(args.sample, len(members)))
    comparisons = [
        compare_bundles(artifact, sample, args.repeat),
        compare_recommendations(artifact, sample, args.repeat),
    ]
    exports = [
        run_export(artifact_path, "bundles", BUNDLES_PER_MEMBER, work / "bundles.parquet",
                   work / "export-bundles.log"),
        run_export(artifact_path, "recommendations", ITEMS_PER_MEMBER,
                   work / "recommendations.parquet", work / "export-recommendations.log"),
    ]  # fmt: skip
    suppress = work / "suppressed.csv"
    rng = random.Random(args.seed + 1)
    pl.DataFrame(
        {"member_id": rng.sample(members.tolist(), int(SUPPRESSED_SHARE * len(members)))}
    ).write_csv(suppress)
    ledger = work / "campaign-ledger.db"
    for stale in work.glob("campaign-ledger.db*"):
        stale.unlink()
    EventStore.open(f"sqlite:///{ledger}").close()
    # The plain export again, on the campaign's event store: both read its (absent) live events.
    plain = run_export(
        artifact_path, "recommendations", ITEMS_PER_MEMBER, work / "plain.parquet",
        work / "export-plain.log", f"sqlite:///{ledger}",
    )  # fmt: skip
    first = run_campaign_export(artifact_path, work, suppress, ledger, 0)
    age_ledger(ledger, 1)
    second = run_campaign_export(artifact_path, work, suppress, ledger, 1)
    campaign_rows = "\n".join(
        f"| {run.kind} | {run.counts['sent']:,} | {run.counts['holdout']:,} | "
        f"{run.counts['suppressed']:,} | {run.counts['capped']:,} | "
        f"{run.counts['items_capped']:,} | {run.rows:,} | {run.wall_s:.1f} s | "
        f"**{run.wall_s / plain.wall_s:.2f}x** | {gb(run.peak_rss_bytes)} |"
        for run in (first, second)
    )
    worst = max(first.wall_s, second.wall_s) / plain.wall_s
    peak = max(first.peak_rss_bytes, second.peak_rss_bytes)
    verdict = (
        f"The slower campaign export took {worst:.2f}x the plain export's wall time "
        f"({'meets' if worst <= WALL_RATIO_TARGET else 'misses'} the {WALL_RATIO_TARGET}x "
        f"target) with a peak RSS of {gb(peak)} "
        f"({'meets' if peak <= PEAK_RSS_TARGET else 'misses'} the 2 GB target)."
    )
    rules = artifact.extra_files.get(RULES_FILE)
    n_rules = pl.scan_parquet(rules).select(pl.len()).collect().item() if rules else 0
    comparison_rows = "\n".join(
        f"| {c.what} | {c.loop_us:.0f} µs | {c.batch_us:.1f} µs | **{c.speedup:.0f}x** | "
        f"{c.loop_us * len(members) / 60e6:.1f} min |"
        for c in comparisons
    )
    export_rows = "\n".join(
        f"| {e.kind} (n={e.n}) | {e.members:,} | {e.rows:,} | {e.wall_s:.1f} s | "
        f"{gb(e.peak_rss_bytes)} |"
        for e in exports
    )
    section = f"""{SECTION_TITLE}

Every member's bundles and recommendations to a file (`recsys export`), on a generated
store ({args.members:,} members, of whom the {len(members):,} with events before the test
window are in the model artifact; {len(artifact.item_ids):,} items; {args.events:,} events;
popularity + ALS, each member's top 50 precomputed; {n_rules:,} rules mined at the default
thresholds). First the same answers computed by a loop of single-member calls (what one API request
computes, called once per member) against one batched call, on {len(sample):,} sampled
members, {args.repeat} alternating rounds after a warm-up (medians; the batch's answers equal
the loop's, checked member by member); then the whole export, each kind in a child process.

| | |
|---|---|
| date | {datetime.now(UTC).date().isoformat()} |
| command | `uv run python benchmarks/export.py` |
| machine | {machine_description()} |
| store and training | {f"{build_s:.0f} s" if build_s else "reused"} |

| answers | loop, per member | batch, per member | speed-up | loop for every member |
|---|---:|---:|---:|---:|
{comparison_rows}

| export | members | rows | wall | peak RSS |
|---|---:|---:|---:|---:|
{export_rows}

Campaign exports (`recsys campaign export --kind recommendations -n {ITEMS_PER_MEMBER}`),
in the same run, against the plain recommendations export run again on the same (empty) event
store just before them ({plain.wall_s:.1f} s, peak RSS {gb(plain.peak_rss_bytes)}): 10% holdout,
{SUPPRESSED_SHARE:.0%} of the members suppressed, `--item-cap-days 7 --max-sends 3 --per-days 7`,
a fresh SQLite ledger. The second export is a day after the first (its sends
moved back a day), so the item cap takes every item of the first from each member, whose list
is ranked deeper, and lists them in the reasons file.

| export | sent | holdout | suppressed | capped | items capped | rows | wall | to plain | peak RSS |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{campaign_rows}

{verdict}
"""
    print(section)
    if args.doc:
        update_section(Path(args.doc), SECTION_TITLE, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
