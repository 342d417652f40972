"""Association-rule mining speed on Online Retail invoices: ours against mlxtend, same rules.

The baskets are the invoices of the validated Online Retail purchases (the ``online-retail``
preset: cancellations, non-positive quantities or prices and rows without a customer are
left out), items by stock code. Both miners get the same basket matrix and the issue's
settings (min support 0.005, itemsets of at most 3 items, min confidence 0.5); only the mining
calls are timed (mlxtend: ``fpgrowth`` then ``association_rules``; ours:
``training.rules.association_rules``), each ``--repeat`` times in alternation, and medians
are compared. The single-consequent rules of both must be the same, with every measure equal
to 1e-9. The target: ours at least 10x faster. Results go to docs/benchmarks.md ("Bundles").

    uv run python benchmarks/bundles.py [--data PATH] [--repeat 3] [--store GENERATED_STORE]

With ``--store`` (a store written by ``recsys generate``), the section also reports how many of
its planted bundle pairs the default thresholds find among the top rules.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section

sys.path.insert(0, str(REPO_ROOT))  # the mlxtend adapter the tests use: tests/rules_reference.py

from features.baskets import baskets_from_interactions
from features.presets import get_preset
from features.synthetic import BUNDLES_FILE, INTERACTIONS_FILE, MANIFEST_FILE
from features.validate import load_interactions
from tests.rules_reference import (
    RuleSet,
    basket_frame,
    mlxtend_rules,
    planted_pair_recall,
    rule_set,
    same_rules,
)
from training.config import RuleConfig
from training.rules import association_rules, count_threshold

SECTION_TITLE = "## Bundles (association rules)"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "online-retail" / "online_retail.csv.gz"
CONFIG = RuleConfig(min_support=0.005, min_confidence=0.5, max_size=3)
SPEEDUP_TARGET = 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--store", type=Path, default=None,
        help="A store written by recsys generate: report the recall of its planted bundles "
        "at the default thresholds.",
    )  # fmt: skip
    parser.add_argument("--doc", type=str, default=str(BENCHMARKS_DOC), help="'' for none")
    return parser.parse_args(argv)


def planted_recall_lines(store: Path) -> str:
    """Rows of the section's table: planted pairs of a generated store found among the top
    rules at the training defaults (no --min-support)."""
    interactions = load_interactions(store / INTERACTIONS_FILE).frame
    started = time.perf_counter()
    baskets = baskets_from_interactions(interactions)
    config = RuleConfig()
    rules = association_rules(baskets, config)
    seconds = time.perf_counter() - started
    found, total = planted_pair_recall(rules, pl.read_csv(store / BUNDLES_FILE))
    generated = json.loads((store / MANIFEST_FILE).read_text())["config"]
    made_by = (
        f"`recsys generate --members {generated['members']} --items {generated['items']} "
        f"--events {generated['events']} --seed {generated['seed']}`"
    )
    return (
        f"| planted bundles | `--store` of {made_by}: {baskets.n_baskets:,} baskets; default "
        f"thresholds (itemsets in at least {count_threshold(baskets, config)} baskets, "
        f"confidence {config.min_confidence}): {rules.height:,} rules in {seconds:.1f} s "
        f"(baskets included); planted pairs among the top {2 * total} single-item rules: "
        f"**{found} of {total}** ({found / total:.0%}) |\n"
    )


def timed(mine: Callable[[], RuleSet]) -> tuple[float, RuleSet]:
    started = time.perf_counter()
    result = mine()
    return time.perf_counter() - started, result


def runs(seconds: list[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in seconds)


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.exists():
        print(f"Online Retail not found at {args.data} (pass --data)")
        return 2
    interactions = load_interactions(args.data, preset=get_preset("online-retail")).frame
    baskets = baskets_from_interactions(interactions)
    frame = basket_frame(baskets)
    our_times, reference_times = [], []
    for _ in range(args.repeat):
        seconds, our_rules = timed(lambda: rule_set(association_rules(baskets, CONFIG)))
        our_times.append(seconds)
        seconds, reference = timed(lambda: mlxtend_rules(frame, CONFIG))
        reference_times.append(seconds)
    problems = same_rules(our_rules, reference)
    identical = not problems
    ours_s, reference_s = statistics.median(our_times), statistics.median(reference_times)
    speedup = reference_s / ours_s
    meets = identical and speedup >= SPEEDUP_TARGET
    section = f"""{SECTION_TITLE}

Association rules on the Online Retail invoices ({baskets.n_baskets:,} baskets,
{baskets.n_items:,} items; validated purchases, `online-retail` preset) at min support
{CONFIG.min_support}, itemsets of at most {CONFIG.max_size} items and min confidence
{CONFIG.min_confidence}: `training.rules.association_rules` against mlxtend's `fpgrowth` +
`association_rules` on the same basket matrix, mining calls only, {args.repeat} alternating
runs each (medians). Single-consequent rules are compared, every measure to 1e-9.

| | |
|---|---|
| date | {datetime.now(UTC).date().isoformat()} |
| command | `uv run python benchmarks/bundles.py` |
| machine | {machine_description()} |
| rules | {len(our_rules):,} (mlxtend: {len(reference):,}); identical: {verdict(identical)} |
| ours | {ours_s:.3f} s (runs: {runs(our_times)}) |
| mlxtend | {reference_s:.3f} s (runs: {runs(reference_times)}) |
| speed-up | **{speedup:.1f}x** (target at least {SPEEDUP_TARGET:.0f}x): {verdict(meets)} |
"""
    if args.store is not None:
        section += planted_recall_lines(args.store)
    for problem in problems[:10]:
        print(problem)
    print(section)
    if args.doc:
        update_section(Path(args.doc), SECTION_TITLE, section)
    return 0 if meets else 1


if __name__ == "__main__":
    sys.exit(main())
