"""Coverage of the uplift report's 95% intervals over seeded trials of a planted campaign effect.

Protocol (issue 15): per scenario one generated store; per trial a fresh campaign on all of
its members (seeded holdout of half, 3 random items each, sent when the store's period ends)
and purchases planted after it (``features.synthetic.campaign``: holdout members buy a sent
item with the base rate, treated members with the treated rate, everyone buys something unsent
with 10%). The report (``training.uplift.campaign_uplift``, 14-day window) is run on the
store's history plus the planted purchases, and each interval is checked against the truth
the effect planted. Side by side, the textbook Wald interval of the same difference
(p1 - p0 ± 1.96 √(p1q1/n1 + p0q0/n0)) on the same counts: the reference a hand-rolled report
would use. Target: coverage at least 90%.

    uv run python benchmarks/campaign_uplift.py [--trials 300] [--doc '']
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from docs_section import BENCHMARKS_DOC, machine_description, update_section

from features.synthetic import StoreConfig, generate_store
from features.synthetic.campaign import CampaignEffect
from training.planted_campaign import plant_store_campaign
from training.uplift import campaign_uplift
from training.uplift_intervals import proportion

SECTION_TITLE = "## Campaign uplift: interval coverage"
TARGET = 0.90
#: Column label -> (report metric, truth conversion, absolute or relative).
CHECKS = {
    "sent item, absolute": ("sent_item_conversion", "sent_item", "absolute"),
    "sent item, relative": ("sent_item_conversion", "sent_item", "relative"),
    "any purchase, absolute": ("conversion", "any_purchase", "absolute"),
    "any purchase, relative": ("conversion", "any_purchase", "relative"),
}


@dataclass(frozen=True)
class Scenario:
    members: int
    base_rate: float
    treated_rate: float

    @property
    def label(self) -> str:
        return f"{self.members:,} members, {self.base_rate:.0%} → {self.treated_rate:.0%}"


SCENARIOS = (
    Scenario(300, 0.02, 0.04),
    Scenario(1_500, 0.05, 0.08),
    Scenario(1_500, 0.02, 0.03),
    Scenario(10_000, 0.05, 0.06),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="Seeded trials per scenario.")
    parser.add_argument(
        "--doc", default=str(BENCHMARKS_DOC), help="Markdown file to update ('' = print only)."
    )
    return parser.parse_args(argv)


def wald_holds(report: dict, truth: float) -> bool:
    """Whether the Wald interval of the sent-item difference, on the report's counts, holds
    ``truth``."""
    treated, held = report["overall"]["treatment"], report["overall"]["holdout"]
    p1 = treated["sent_item_converted"] / treated["members"]
    p0 = held["sent_item_converted"] / held["members"]
    spread = 1.959964 * math.sqrt(
        p1 * (1 - p1) / treated["members"] + p0 * (1 - p0) / held["members"]
    )
    return p1 - p0 - spread <= truth <= p1 - p0 + spread


def run_scenario(scenario: Scenario, trials: int, workdir: Path) -> dict:
    store = generate_store(
        StoreConfig(members=scenario.members, items=200, events=scenario.members * 8, seed=11),
        workdir / f"store-{scenario.members}",
    )
    hits = {label: 0 for label in (*CHECKS, "Wald (reference)")}
    no_interval = 0
    widths: list[float] = []
    seconds: list[float] = []
    for seed in range(trials):
        effect = CampaignEffect(
            base_rate=scenario.base_rate, treated_rate=scenario.treated_rate, seed=seed
        )
        planted = plant_store_campaign(store.out_dir, effect)
        started = time.perf_counter()
        report = campaign_uplift(
            planted.sends, planted.purchases, window_days=effect.window_days,
            attributes=planted.attributes,
        ).as_dict()  # fmt: skip
        seconds.append(time.perf_counter() - started)
        uplift = {part["metric"]: part for part in report["overall"]["uplift"]}
        for label, (metric, conversion, kind) in CHECKS.items():
            estimate = uplift[metric][kind]
            truth = getattr(effect.truth(conversion), kind)  # type: ignore[arg-type]
            hits[label] += (
                estimate["low"] is not None and estimate["low"] <= truth <= estimate["high"]
            )
        no_interval += uplift["sent_item_conversion"]["relative"]["low"] is None
        absolute = uplift["sent_item_conversion"]["absolute"]
        widths.append(absolute["high"] - absolute["low"])
        hits["Wald (reference)"] += wald_holds(report, effect.truth("sent_item").absolute)
    return {
        "scenario": scenario,
        "hits": hits,
        "no_interval": no_interval,
        "median_width": float(np.median(widths)),
        "median_report_s": float(np.median(seconds)),
    }


def coverage_cell(hits: int, trials: int) -> str:
    estimate = proportion(hits, trials)
    cell = f"{estimate.value:.1%} ({estimate.low:.1%}–{estimate.high:.1%})"
    return f"**{cell}**" if estimate.value is not None and estimate.value < TARGET else cell


def render(results: list[dict], trials: int, wall_s: float) -> str:
    labels = [*CHECKS, "Wald (reference)"]
    lines = [
        SECTION_TITLE,
        "",
        "Share of seeded trials whose 95% interval holds the planted uplift, with the share's own",
        "95% Wilson interval (`benchmarks/campaign_uplift.py` docstring: protocol). Sent item:",
        "buying one of the member's sent (holdout: would-be) items, Newcombe's interval for the",
        "difference and Katz's for the ratio; any purchase: the same with background buying.",
        "Wald (reference): the textbook interval of the sent-item difference on the same counts.",
        "A trial without an interval (a ratio when the holdout had no conversion; column",
        "'no interval': trials of the sent-item ratio) counts as a miss.",
        f"Target: at least {TARGET:.0%}. Bold: below target.",
        "",
        "| | |",
        "|---|---|",
        f"| date | {datetime.now(UTC):%Y-%m-%d} |",
        "| command | `uv run python benchmarks/campaign_uplift.py` |",
        f"| machine | {machine_description()} |",
        f"| trials per scenario | {trials} |",
        f"| wall time | {wall_s:.0f} s |",
        "",
        "| scenario | "
        + " | ".join(labels)
        + " | no interval | median width (sent item, abs.) | median report |",
        "|---|" + "---:|" * (len(labels) + 3),
    ]
    for result in results:
        cells = [coverage_cell(result["hits"][label], trials) for label in labels]
        lines.append(
            f"| {result['scenario'].label} | "
            + " | ".join(cells)
            + f" | {result['no_interval']} | {result['median_width']:.4f}"
            + f" | {result['median_report_s'] * 1e3:.0f} ms |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        results = [run_scenario(scenario, args.trials, Path(scratch)) for scenario in SCENARIOS]
    section = render(results, args.trials, time.perf_counter() - started)
    print(section)
    if args.doc:
        update_section(Path(args.doc), SECTION_TITLE, section)
    below = [
        result["scenario"].label
        for result in results
        for label in CHECKS
        if result["hits"][label] / args.trials < TARGET
    ]
    return 1 if below else 0


if __name__ == "__main__":
    raise SystemExit(main())
