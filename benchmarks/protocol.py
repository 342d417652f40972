"""The training protocol on test files of each shape: is the model chosen on validation the one
that does best on the test?

For each data set (a generated store, and UCI Online Retail when it is present) and each split
shape (a global time cut, each member's last 20% of events, a random 25% of each item's
events), the benchmark splits the validated interactions itself, writes train and test as two
files, and runs ``recsys train -i TRAIN --test-file TEST`` as a user reproducing a published
protocol would: no split spec, so the validation split's shape is inferred from the files. It
reports the inferred shape, the chosen model and its test figure beside the best model's on the
test (the primary metric, NDCG@10, and P@10), and writes the table to the "Training protocol"
section of ``docs/benchmarks.md``.

    uv run python benchmarks/protocol.py                      # store + Online Retail, all models
    uv run python benchmarks/protocol.py --models popular,ease,item_knn --doc ''
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section

from features.presets import get_preset
from features.splits import parse_split_spec
from features.synthetic import INTERACTIONS_FILE, ITEMS_FILE, MEMBERS_FILE, StoreConfig
from features.synthetic import generate_store as write_store
from features.validate import load_interactions

SECTION_TITLE = "## Training protocol"
ONLINE_RETAIL = REPO_ROOT.parent / "shared" / "data" / "online-retail" / "online_retail.csv.gz"
#: (label, split spec per data set): the three shapes of published protocols.
SHAPES = (
    ("global time cut", {"store": "last-days:30", "online-retail": "temporal:2011-09-01"}),
    ("each member's last 20%", {"store": "last-share:0.2", "online-retail": "last-share:0.2"}),
    ("random 25% per item", {"store": "ratio:0.25:item:7", "online-retail": "ratio:0.25:item:7"}),
)
STORE = StoreConfig(members=10_000, items=1_000, events=400_000, seed=42)
#: The chosen model should be within this share of the best model on test.
TOLERANCE = 0.03


@dataclass(frozen=True)
class Outcome:
    data: str
    shape: str
    inferred: dict
    chosen: str
    primary: str
    models: dict[str, dict[str, float]]
    failed: list[dict[str, str]]
    seconds: float

    @property
    def best(self) -> str:
        return max(self.models, key=lambda name: self.models[name][self.primary])

    @property
    def share_of_best(self) -> float:
        best = self.models[self.best][self.primary]
        return self.models[self.chosen][self.primary] / best if best > 0 else 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="Comma-separated (default: all).")
    parser.add_argument("--online-retail", type=Path, default=ONLINE_RETAIL)
    parser.add_argument("--doc", default=str(BENCHMARKS_DOC), help="'' to skip writing.")
    return parser.parse_args(argv)


def data_sets(args: argparse.Namespace, scratch: Path) -> dict[str, tuple[pl.DataFrame, list]]:
    """Validated interactions per data set, with the extra ``recsys train`` options."""
    store = scratch / "store"
    write_store(STORE, store)
    sets = {
        "store": (
            load_interactions(store / INTERACTIONS_FILE).frame,
            ["--items", store / ITEMS_FILE, "--members", store / MEMBERS_FILE],
        )
    }
    if args.online_retail.exists():
        retail = load_interactions(args.online_retail, preset=get_preset("online-retail"))
        sets["online-retail"] = (retail.frame, [])
    else:
        print(f"protocol: {args.online_retail} is absent; Online Retail skipped", file=sys.stderr)
    return sets


def run_one(
    data: str, frame: pl.DataFrame, extra: list, shape: str, spec: str, args: argparse.Namespace,
    scratch: Path,
) -> Outcome:  # fmt: skip
    split = parse_split_spec(spec).split(frame)
    work = scratch / f"{data}-{spec.replace(':', '_')}"
    work.mkdir()
    split.train.write_parquet(work / "train.parquet")
    split.test.write_parquet(work / "test.parquet")
    command = [
        str(Path(sys.executable).with_name("recsys")), "train", "-i", work / "train.parquet",
        "--test-file", work / "test.parquet", *extra, "--out", work / "artifact", "--no-mlflow",
        "--list-depth", "0", *(["--models", args.models] if args.models else []),
    ]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"protocol: {data} {spec} failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((work / "artifact" / "metrics.json").read_text())
    return Outcome(
        data, shape, metrics["protocol"]["validation_shape"], metrics["chosen"],
        metrics["primary_metric"], metrics["models"], metrics["failed"], seconds,
    )  # fmt: skip


def shape_text(shape: dict) -> str:
    extra = shape.get("group") or (
        f"{shape['window_days']:.0f} days" if "window_days" in shape else None
    )
    extra = extra or (f"last {shape['per_member']}" if "per_member" in shape else None)
    return f"{shape['kind']}, share {shape['share']:.2f}" + (f", {extra}" if extra else "")


def render(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    rows = []
    for outcome in outcomes:
        chosen, best = outcome.models[outcome.chosen], outcome.models[outcome.best]
        rows.append(
            f"| {outcome.data} | {outcome.shape} | {shape_text(outcome.inferred)} | "
            f"{outcome.chosen} | {chosen[outcome.primary]:.4f} / {chosen['precision@10']:.4f} | "
            f"{outcome.best} | {best[outcome.primary]:.4f} / {best['precision@10']:.4f} | "
            f"{outcome.share_of_best:.1%} | "
            f"{outcome.models['popular'][outcome.primary]:.4f} | {outcome.seconds:.0f} s |"
        )
    failures = sorted({f"{o.data}/{o.shape}: {f['model']} ({f['stage']})"
                       for o in outcomes for f in o.failed})  # fmt: skip
    models = args.models or "all (default)"
    command = "uv run python benchmarks/protocol.py" + (
        f" --models {args.models}" if args.models else ""
    )
    store = (
        f"generated store: {STORE.members:,} members, {STORE.items:,} items, "
        f"{STORE.events:,} events, seed {STORE.seed}"
    )
    header = (
        "| data | test shape | inferred validation shape | chosen | NDCG@10 / P@10 "
        "| best on test | NDCG@10 / P@10 | of best | popular | time |"
    )
    return f"""{SECTION_TITLE}

Is the model chosen on validation the best on test, whatever the test's shape? Each data set is
split three ways by the benchmark, and each split handed to `recsys train -i TRAIN --test-file
TEST` as two files (a published protocol), so the validation split's shape is inferred from the
files (`protocol.validation_shape` in metrics.json). Figures are the test's: primary metric
(NDCG@10) / P@10 of the train-only fits; "of best" is the chosen model's primary figure as a
share of the best model's (aim: within {TOLERANCE:.0%}). Popularity is the baseline's NDCG@10.

| | |
|---|---|
| date | {datetime.now(UTC).date().isoformat()} |
| command | `{command}` |
| machine | {machine_description()} |
| models | {models}; {store}; Online Retail with the `online-retail` preset |

{header}
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Failed fits: {", ".join(failures) or "none"}.
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="recsys-protocol-") as scratch_dir:
        scratch = Path(scratch_dir)
        for data, (frame, extra) in data_sets(args, scratch).items():
            for shape, specs in SHAPES:
                outcome = run_one(data, frame, extra, shape, specs[data], args, scratch)
                print(
                    f"{data:14} {shape:24} {shape_text(outcome.inferred):38} chosen "
                    f"{outcome.chosen} ({outcome.share_of_best:.1%} of best {outcome.best}) "
                    f"{outcome.seconds:.0f} s",
                    flush=True,
                )
                outcomes.append(outcome)
    section = render(outcomes, args)
    print(section)
    if args.doc:
        update_section(Path(args.doc), SECTION_TITLE, section)
    return 0 if all(o.share_of_best >= 1 - TOLERANCE for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
