"""Quality on UCI Online Retail: every model of ``recsys train`` beside the raw-library references.

Protocol (the issue's): temporal split at 2011-09-01; train on purchases before it; the test is,
per member, the items bought on or after it that the member had not bought before; top-10 with
purchased items excluded. ``recsys train`` tunes on a validation split carved from the training
period only; the test figures below are the first time the test period is looked at.

    uv run python benchmarks/quality.py [--data PATH] [--trials N] [--tune-seconds S]

Needs ../shared/data/online-retail/online_retail.csv.gz (or --data).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section

SECTION_TITLE = "## Quality on UCI Online Retail"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "online-retail" / "online_retail.csv.gz"
CUTOFF = "2011-09-01"
#: Raw-library figures on the same protocol, measured before the product existed (P@10, NDCG@10).
REFERENCES = {
    "popularity (raw)": (0.049, None),
    "implicit BM25 item-kNN (raw)": (0.0995, None),
    "implicit ALS, 64 factors (raw)": (0.1005, None),
    "EASE, lambda 500 (raw)": (0.109, 0.125),
    "best sweep, tuned on test (raw)": (0.110, None),
}
#: The floor: the chosen model must beat every reference; the aim is higher.
FLOOR_PRECISION, AIM_PRECISION, AIM_NDCG = 0.110, 0.115, 0.13
SHOWN = ("precision@10", "recall@10", "ndcg@10", "map", "hit_rate@10", "coverage@10")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--trials", type=int, default=None, help="Tuning trials per model.")
    parser.add_argument("--tune-seconds", type=float, default=None)
    parser.add_argument("--doc", type=Path, default=BENCHMARKS_DOC)
    return parser.parse_args(argv)


def train(args: argparse.Namespace, artifact: Path) -> tuple[dict, float, list[str]]:
    command = [
        str(Path(sys.executable).with_name("recsys")), "train", "-i", str(args.data),
        "--preset", "online-retail", "--split", f"temporal:{CUTOFF}", "--out", str(artifact),
        "--no-mlflow",
    ]  # fmt: skip
    if args.trials:
        command += ["--trials", str(args.trials)]
    if args.tune_seconds:
        command += ["--tune-seconds", str(args.tune_seconds)]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    return json.loads((artifact / "metrics.json").read_text()), elapsed, command[1:]


def render(metrics: dict, elapsed: float, command: list[str]) -> str:
    chosen = metrics["chosen"]
    rows = []
    for name, values in metrics["models"].items():
        label = f"**{name}** (chosen)" if name == chosen else name
        validation = metrics["validation"][name]["ndcg@10"]
        figures = " | ".join(f"{values[key]:.4f}" for key in SHOWN)
        rows.append(f"| {label} | {figures} | {validation:.4f} |")
    references = "\n".join(
        f"| {name} | {p:.4f} | - | {'-' if n is None else f'{n:.3f}'} | - | - | - | - |"
        for name, (p, n) in REFERENCES.items()
    )
    best = metrics["models"][chosen]
    verdict = (
        f"chosen model P@10 {best['precision@10']:.4f} "
        f"{'beats' if best['precision@10'] > FLOOR_PRECISION else 'does **not** beat'} the floor "
        f"({FLOOR_PRECISION}); aim P@10 >= {AIM_PRECISION}: "
        f"{'met' if best['precision@10'] >= AIM_PRECISION else 'not met'}, aim NDCG@10 >= "
        f"{AIM_NDCG}: {'met' if best['ndcg@10'] >= AIM_NDCG else 'not met'}"
    )
    protocol = metrics["protocol"]
    return f"""{SECTION_TITLE}

Temporal split at {CUTOFF}; test = per member, items bought on or after it that the member had not
bought before; top-10 with purchased items excluded; {protocol["evaluated_members"]:,} members
evaluated. Tuning and the choice of model used only a validation split carved from the training
period. Date {datetime.now(UTC).date().isoformat()}, {machine_description()}; `recsys train` took
{elapsed:.0f} s in all. Command: `uv run recsys {" ".join(command)}` (via
`uv run python benchmarks/quality.py`).

| model | P@10 | R@10 | NDCG@10 | MAP | HR@10 | coverage@10 | validation NDCG@10 |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
{references}

Verdict: {verdict}.

{rules_paragraph(metrics["rules"])}
"""


def rules_paragraph(rules: dict) -> str:
    """The bundle rules of the same run on the test period's invoices (training.rules_quality)."""
    test = rules["test"]
    n = test["n"]
    rows = "\n".join(
        f"| {name.replace('_', ' ')} | {test['hit_rate'][name]:.4f} | {test['recall'][name]:.4f} |"
        for name in ("rules", "rules_then_popular", "popular")
    )
    return f"""Bundles, same run: {rules["rules"]:,} rules mined from {rules["baskets"]:,} training
invoices at the default thresholds (itemsets in at least {rules["min_count"]} invoices). On the
{test["test_baskets"]:,} test-period invoices with two or more known items, each item in turn
asks for {n} complements ({test["anchors"]:,} queries; rules exist for {test["coverage"]:.0%}
of them); a hit is a list holding another item of the invoice (docs/metrics.md, "Bundles"):

| list | hit rate@{n} | recall@{n} |
|---|---|---|
{rows}"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.exists():
        print(f"{args.data} not found; pass --data", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="recsys-quality-") as scratch:
        metrics, elapsed, command = train(args, Path(scratch) / "artifact")
    section = render(metrics, elapsed, command)
    update_section(args.doc, SECTION_TITLE, section)
    print(section)
    chosen = metrics["models"][metrics["chosen"]]
    return 0 if chosen["precision@10"] > FLOOR_PRECISION else 1


if __name__ == "__main__":
    raise SystemExit(main())
