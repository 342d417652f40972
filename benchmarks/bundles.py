"""Association-rule mining against pyfim, same rules, and the default thresholds on held-out
baskets. Results go to docs/benchmarks.md ("Bundles (association rules)").

Speed: ``training.rules.association_rules`` against pyfim (Christian Borgelt's C
implementation, ``fim.arules(..., mode="o")``, tests/rules_reference.py) on the same baskets
and thresholds, mining calls only (pyfim's transaction lists are built beforehand; our rule
table is not turned into anything either), ``--repeat`` alternating runs each, medians. The
rule sets must be identical: every single-consequent rule, each measure to 1e-9. On the
Online Retail invoices (validated purchases, ``online-retail`` preset) at min support 0.005,
itemsets of at most 3 items and min confidence 0.5 (the issue's settings); with ``--store``,
on the orders of a generated store at the default count threshold and confidence 0.5. The
target: ours at least as fast as pyfim on both.

Quality at the default thresholds (no min_confidence: the association test and popularity's
confidence, ``RuleConfig``): rules, funnel and why-text, and the held-out hit rate@5 of rules
then popular items against popular items alone (``training.rules_quality``), beside the old
fixed confidence floor 0.3, on a stand-in for a store of small baskets (the Groceries baskets
cut into baskets of 2 or 3 items, ``tests.rules_reference.small_baskets``) and on Online
Retail before and from 2011-09-01. With ``--store``, also the planted bundles the defaults find.

    uv run python benchmarks/bundles.py [--repeat 7] [--store DIR]

``--store DIR`` reuses a store written there by ``recsys generate``, or first generates one
there with ``--members 1000000 --items 100000 --events 20000000 --seed 42`` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section

sys.path.insert(0, str(REPO_ROOT))  # the references the tests use: tests/rules_reference.py

from features.baskets import Baskets, baskets_from_interactions, read_basket_file
from features.presets import get_preset
from features.synthetic import (
    BUNDLES_FILE,
    INTERACTIONS_FILE,
    MANIFEST_FILE,
    StoreConfig,
    generate_store,
)
from features.validate import load_interactions
from tests.rules_reference import (
    ONLINE_RETAIL_CUTOFF,
    last_fifth_held_out,
    online_retail_split,
    planted_pair_recall,
    pyfim_arules,
    pyfim_rule_set,
    rule_set,
    same_rules,
    small_baskets,
    transactions,
)
from training.config import RuleConfig
from training.rules import association_rules, count_threshold, mine_rules
from training.rules_quality import complement_quality

SECTION_TITLE = "## Bundles (association rules)"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ONLINE_RETAIL = SHARED_DATA / "online-retail" / "online_retail.csv.gz"
GROCERIES = SHARED_DATA / "groceries" / "groceries.csv"
#: The issue's settings on Online Retail.
ONLINE_RETAIL_CONFIG = RuleConfig(min_support=0.005, min_confidence=0.5, max_size=3)
#: On a generated store: the default count threshold, with an absolute confidence for pyfim.
STORE_CONFIG = RuleConfig(min_confidence=0.5, max_size=3)
#: The confidence floor that mined 0 rules from small baskets (the default before issue 14).
OLD_FLOOR = RuleConfig(min_confidence=0.3)
#: The baseline ranks compared on held-out baskets.
BASELINE_RANKS = (1, 3, 5, 8)
STORE_SIZE = StoreConfig(members=1_000_000, items=100_000, events=20_000_000, seed=42)


@dataclass(frozen=True)
class SpeedRun:
    """One side-by-side comparison: the baskets, the thresholds, both miners' times."""

    name: str
    baskets: Baskets
    min_count: int
    config: RuleConfig
    ours: list[float]
    pyfim: list[float]
    rules: int
    reference_rules: int
    problems: list[str]

    @property
    def ratio(self) -> float:
        """How many times as fast as pyfim ours is (medians)."""
        return statistics.median(self.pyfim) / statistics.median(self.ours)

    @property
    def meets(self) -> bool:
        return not self.problems and self.ratio >= 1.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ONLINE_RETAIL, help="Online Retail")
    parser.add_argument("--groceries", type=Path, default=GROCERIES)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--store", type=Path, default=None,
        help="A store of recsys generate (generated there first when missing).",
    )  # fmt: skip
    parser.add_argument("--doc", type=str, default=str(BENCHMARKS_DOC), help="'' for none")
    return parser.parse_args(argv)


def timed(mine: Callable[[], object]) -> float:
    started = time.perf_counter()
    mine()
    return time.perf_counter() - started


def compare_speed(name: str, baskets: Baskets, config: RuleConfig, repeat: int) -> SpeedRun:
    """Ours and pyfim in alternation on the same baskets and count threshold."""
    min_count = count_threshold(baskets, config)
    tracts = transactions(baskets)
    ours, reference = [], []
    for _ in range(repeat):
        ours.append(timed(lambda: association_rules(baskets, config)))
        reference.append(timed(lambda: pyfim_arules(tracts, min_count, config)))
    our_rules = rule_set(association_rules(baskets, config))
    pyfim_rules = pyfim_rule_set(pyfim_arules(tracts, min_count, config), baskets.n_baskets)
    return SpeedRun(
        name, baskets, min_count, config, ours, reference, len(our_rules), len(pyfim_rules),
        same_rules(our_rules, pyfim_rules),
    )  # fmt: skip


def store_baskets(store: Path) -> Baskets:
    """The orders of the store at ``store``, generated there first when missing."""
    if not (store / INTERACTIONS_FILE).is_file():
        print(f"generating a store of {STORE_SIZE.events:,} events into {store}", flush=True)
        generate_store(STORE_SIZE, store)
    return baskets_from_interactions(load_interactions(store / INTERACTIONS_FILE).frame)


def seconds(values: list[float]) -> str:
    runs = ", ".join(f"{value:.3f}" for value in values)
    return f"{statistics.median(values):.3f} s (runs: {runs})"


def speed_table(runs: list[SpeedRun]) -> str:
    def row(label: str, cells: Callable[[SpeedRun], str]) -> str:
        return f"| {label} | " + " | ".join(cells(run) for run in runs) + " |\n"

    def thresholds(run: SpeedRun) -> str:
        support = (
            f"min support {run.config.min_support:g} ({run.min_count} baskets)"
            if run.config.min_support is not None
            else f"{run.min_count} baskets (the default count)"
        )
        config = run.config
        return f"{support}, at most {config.max_size} items, confidence {config.min_confidence}"

    def identical(run: SpeedRun) -> str:
        verdict = "yes" if not run.problems else f"**no** ({len(run.problems)} differences)"
        return f"{run.rules:,} (pyfim: {run.reference_rules:,}); identical: {verdict}"

    return (
        "| | " + " | ".join(run.name for run in runs) + " |\n"
        + "|---|" + "---|" * len(runs) + "\n"
        + row("baskets, items", lambda run: f"{run.baskets.n_baskets:,}, {run.baskets.n_items:,}")
        + row("thresholds", thresholds)
        + row("rules", identical)
        + row("ours", lambda run: seconds(run.ours))
        + row("pyfim", lambda run: seconds(run.pyfim))
        + row("ours against pyfim", lambda run: f"**{run.ratio:.2f}x** as fast")
        + row("at least as fast, same rules", lambda run: "yes" if run.meets else "**no**")
    )  # fmt: skip


def quality_rows(name: str, train: Baskets, test: Baskets) -> tuple[str, str | None]:
    """Table rows of the default thresholds and the old floor on held-out baskets, and the
    defaults' why-text (None when enough rules pass)."""
    lines, why = "", None
    for label, config in (("default", RuleConfig()), ("min_confidence 0.3", OLD_FLOOR)):
        mined = mine_rules(train, config)
        ruled, popular = hit_rates(mined.table, train, test)
        coverage = complement_quality(mined.table, train, test)["coverage"]
        lines += (
            f"| {name} | {train.n_baskets:,} / {test.n_baskets:,} | {label} | "
            f"{mined.table.height:,} | {ruled:.4f} | {popular:.4f} | {ruled - popular:+.4f} | "
            f"{coverage:.1%} |\n"
        )
        if label == "default":
            why = mined.funnel.why()
    return lines, why


def hit_rates(rules: pl.DataFrame, train: Baskets, test: Baskets) -> tuple[float, float]:
    """Held-out hit rate@5 of rules then popular items, and of popular items alone."""
    hits = complement_quality(rules, train, test)["hit_rate"]
    return hits["rules_then_popular"], hits["popular"]


def rank_row(name: str, train: Baskets, test: Baskets) -> str:
    """The change of hit rate@5 against popular items at each baseline rank."""
    cells = []
    for rank in BASELINE_RANKS:
        ruled, popular = hit_rates(mine_rules(train, RuleConfig(baseline_rank=rank)).table,
                                   train, test)  # fmt: skip
        cells.append(f"{ruled - popular:+.4f}")
    return f"| {name} | " + " | ".join(cells) + " |\n"


def planted_line(store: Path, baskets: Baskets) -> str:
    """Planted pairs of a generated store found among the top rules at the defaults."""
    started = time.perf_counter()
    mined = mine_rules(baskets, RuleConfig())
    mining_s = time.perf_counter() - started
    found, total = planted_pair_recall(mined.table, pl.read_csv(store / BUNDLES_FILE))
    generated = json.loads((store / MANIFEST_FILE).read_text())["config"]
    return (
        f"On the generated store (`recsys generate --members {generated['members']} --items "
        f"{generated['items']} --events {generated['events']} --seed {generated['seed']}`), the "
        f"default thresholds mine {mined.table.height:,} rules in {mining_s:.2f} s (itemsets in at "
        f"least {mined.funnel.min_count} baskets); the planted pairs among the top {2 * total} "
        f"single-item rules: **{found} of {total}** ({found / total:.0%}).\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path in (args.data, args.groceries):
        if not path.exists():
            print(f"{path} not found (pass --data or --groceries)")
            return 2
    online_retail = baskets_from_interactions(
        load_interactions(args.data, preset=get_preset("online-retail")).frame
    )
    runs = [compare_speed("Online Retail invoices", online_retail, ONLINE_RETAIL_CONFIG,
                          args.repeat)]  # fmt: skip
    store = store_baskets(args.store) if args.store is not None else None
    if store is not None:
        runs.append(compare_speed("generated store (20M events)", store, STORE_CONFIG, args.repeat))
    groceries = read_basket_file(args.groceries)
    held_out = {
        "small-basket stand-in": small_baskets(groceries),
        "Groceries, last fifth held out": last_fifth_held_out(groceries),
        f"Online Retail, before / from {ONLINE_RETAIL_CUTOFF.date()}": online_retail_split(
            args.data
        ),
    }
    quality = {name: quality_rows(name, *baskets) for name, baskets in held_out.items()}
    why = quality["small-basket stand-in"][1]
    ranks = "".join(rank_row(name, *baskets) for name, baskets in held_out.items())
    defaults = RuleConfig()
    section = f"""{SECTION_TITLE}

Rule mining against pyfim (Christian Borgelt's C implementation: `fim.arules(..., mode="o")`)
on the same baskets and count threshold, mining calls only (pyfim's transaction lists are
built beforehand), {args.repeat} alternating runs each (medians). The rule sets must be
identical: every single-consequent rule, support, confidence, lift, leverage and conviction to
1e-9. Target: ours at least as fast as pyfim on both.

| | |
|---|---|
| date | {datetime.now(UTC).date().isoformat()} |
| command | `uv run python benchmarks/bundles.py{" --store DIR" if store is not None else ""}` |
| machine | {machine_description()} |

{speed_table(runs)}
The default thresholds (`RuleConfig()`: itemsets in at least {defaults.min_count} baskets; a rule
must be bought together more than {defaults.min_excess_sd:g} standard deviations above independence
and be right at least as often as the best seller of rank {defaults.baseline_rank} is in other
items' baskets) against the old fixed confidence floor of 0.3, on held-out baskets: hit rate@5
of the rules' consequents completed from the popular items, against the popular items alone
(`training/rules_quality.py`). The small-basket stand-in cuts the Groceries baskets into
baskets of 2 or 3 items (the last fifth held out; `tests.rules_reference.small_baskets`), like
the member-day grocery baskets of issue 14 where the old floor mined 0 rules.

| baskets | training / held-out | thresholds | rules | hit rate@5: rules, then popular | popular | change | anchors with a rule |
|---|---|---|---:|---:|---:|---:|---:|
{"".join(rows for rows, _ in quality.values())}
The change of hit rate@5 against the popular items alone, by `baseline_rank` (other thresholds
at their defaults):

| baskets | {" | ".join(f"rank {rank}" for rank in BASELINE_RANKS)} |
|---|{"---:|" * len(BASELINE_RANKS)}
{ranks}
Why-text of the defaults on the small-basket stand-in (`metrics.json`: `rules.why`, printed by
`recsys train` and `recsys bundles`):

> {why or "(none: enough rules passed)"}
"""  # noqa: E501
    if store is not None:
        assert args.store is not None
        section += "\n" + planted_line(args.store, store)
    for run in runs:
        for problem in run.problems[:10]:
            print(run.name, problem)
    print(section)
    if args.doc:
        update_section(Path(args.doc), SECTION_TITLE, section)
    return 0 if all(run.meets for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
