"""The ``recsys`` command line (DESIGN section 6).

Commands are thin: they parse options, call the library, and print. Errors a user can cause
(:class:`~features.errors.RecsysError`) are printed as one message and exit with status 2, never
as a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features import columns as col
from features.errors import ConfigError, RecsysError, TooManyBadRowsError
from features.generate import StoreConfig, StoreSummary, generate_store
from features.ingest import parse_column_mapping
from features.members import compute_member_profiles, segment_summary
from features.presets import PRESETS, get_preset
from features.split_shapes import shape_numbers
from features.splits import Split, SplitSpec, explicit_split, parse_split_spec
from features.validate import (
    DEFAULT_MAX_BAD_SHARE,
    ValidatedTable,
    ValidationReport,
    load_interactions,
    load_items,
    load_members,
)
from training.config import (
    DEFAULT_LIST_DEPTH,
    DEFAULT_PROMOTION_MARGIN,
    DEFAULT_SPLIT,
    MODEL_NAMES,
    RuleConfig,
    TuningBudget,
)

if TYPE_CHECKING:
    from serving.event_store import EventStore
    from training.artifact import ModelArtifact
    from training.roster import Roster
    from training.train import TrainConfig

app = typer.Typer(
    name="recsys",
    help="member-recsys: recommendations, bundles and segments for membership programs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

_MAPPABLE = (
    *col.REQUIRED_INTERACTION_COLUMNS,
    *col.OPTIONAL_INTERACTION_COLUMNS,
    *col.CARRIED_ITEM_COLUMNS,
)

InteractionsOption = Annotated[
    Path, typer.Option("--interactions", "-i", help="Interactions file (CSV or Parquet).")
]
PresetOption = Annotated[
    str | None,
    typer.Option(help=f"Column mapping and rules of a known source: {', '.join(sorted(PRESETS))}."),
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Map your columns to the contract, e.g. member_id=CustomerID,item_id=StockCode.",
    ),
]
MaxBadShareOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Stop when more than this share of rows is invalid (a preset's known exclusions "
        "do not count).",
    ),
]


def load_with_options(
    interactions: Path,
    preset: str | None,
    columns: str | None,
    max_bad_share: float,
    quarantine: Path | None = None,
) -> ValidatedTable:
    """Load interactions the way every command does, from the shared CLI options."""
    return load_interactions(
        interactions,
        mapping=parse_column_mapping(columns, _MAPPABLE),
        preset=get_preset(preset),
        max_bad_share=max_bad_share,
        quarantine_path=quarantine,
    )


def print_validation_report(report: ValidationReport) -> None:
    """The human summary of a load: counts that add up, then the reasons."""
    table = Table(title=f"Validation of {report.source}", show_header=False)
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_row("read", f"{report.rows_read:,}")
    table.add_row("accepted", f"{report.accepted:,}")
    table.add_row(f"duplicates ({report.duplicate_kind})", f"{report.duplicates:,}")
    table.add_row("quarantined", f"{report.quarantined:,}")
    table.add_row("  of which expected exclusions", f"{report.expected_exclusions:,}")
    table.add_row("bad share (cap)", f"{report.bad_share:.2%} ({report.max_bad_share:.2%})")
    console.print(table)
    if report.reasons:
        reasons = Table(title="Quarantine reasons")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, count in report.reasons.items():
            reasons.add_row(reason, f"{count:,}")
        console.print(reasons)
        console.print(f"Quarantined rows with their reasons: {report.quarantine_path}")


@app.command()
def validate(
    interactions: InteractionsOption,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    quarantine: Annotated[
        Path | None,
        typer.Option(help="Where to write rejected rows (default data/quarantine/<file>.csv)."),
    ] = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check an interactions file row by row and print what was read, accepted and rejected."""
    try:
        loaded = load_with_options(interactions, preset, columns, max_bad_share, quarantine)
    except TooManyBadRowsError as exc:
        if as_json:
            typer.echo(json.dumps({**exc.report, "error": str(exc)}))
        raise
    if as_json:
        typer.echo(json.dumps(loaded.report.to_dict()))
    else:
        print_validation_report(loaded.report)


def print_segment_summary(summary: pl.DataFrame) -> None:
    """Members per lifecycle segment and value tier, as analysts read them."""
    table = Table(title="Member segments")
    for name in ("group", "name", "members", "share", "mean monetary"):
        table.add_column(name, justify="left" if name in ("group", "name") else "right")
    for row in summary.iter_rows(named=True):
        mean = row["mean_monetary"]
        table.add_row(
            row["group"],
            row["name"],
            f"{row['members']:,}",
            f"{row['share']:.1%}",
            "-" if mean is None else f"{mean:,.2f}",
        )
    console.print(table)


def _write_table(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    elif path.suffix == ".csv":
        frame.write_csv(path)
    else:
        raise ConfigError(f"--out {path}: use a .csv or .parquet file name")


@app.command()
def bundles(
    out: Annotated[Path, typer.Option(help="The rules, one per row (.csv or .parquet).")],
    interactions: Annotated[
        Path | None,
        typer.Option(
            "--interactions", "-i", help="Interactions file: baskets are its purchase orders."
        ),
    ] = None,
    baskets: Annotated[
        Path | None,
        typer.Option(help="Basket file instead: one basket per line, items comma-separated."),
    ] = None,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    min_support: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of baskets an itemset must be in (default: --min-count baskets, raised "
            "until at most 20,000 pairs pass).",
        ),
    ] = None,
    min_count: Annotated[
        int, typer.Option(min=1, help="Baskets an itemset must be in, without --min-support.")
    ] = RuleConfig().min_count,
    min_confidence: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Least P(consequent | antecedents).")
    ] = RuleConfig().min_confidence,
    max_size: Annotated[
        int, typer.Option(min=2, max=10, help="Most items in a rule (antecedents + consequent).")
    ] = RuleConfig().max_size,
) -> None:
    """Frequently-bought-together rules: support, confidence, lift, leverage, conviction."""
    from features.baskets import baskets_from_interactions, read_basket_file
    from training.rules import association_rules, count_threshold

    if (interactions is None) == (baskets is None):
        raise ConfigError("give either --interactions or --baskets (one of them)")
    if baskets is not None:
        found = read_basket_file(baskets)
    else:
        assert interactions is not None
        loaded = load_with_options(interactions, preset, columns, max_bad_share)
        found = baskets_from_interactions(loaded.frame)
    config = RuleConfig(
        min_support=min_support, min_count=min_count, min_confidence=min_confidence,
        max_size=max_size,
    )  # fmt: skip
    rules = association_rules(found, config)
    threshold = count_threshold(found, config)
    if out.suffix == ".csv":  # CSV has no lists: antecedents joined by " | "
        rules = rules.with_columns(pl.col("antecedents").list.join(" | "))
    _write_table(rules, out)
    console.print(
        f"{rules.height:,} rules from {found.n_baskets:,} baskets and {found.n_items:,} items "
        f"(itemsets in at least {threshold:,} baskets) written to {out}"
    )


@app.command()
def segments(
    interactions: InteractionsOption,
    members: Annotated[
        Path | None,
        typer.Option(help="Member table (joined_at, tier) to include members without events."),
    ] = None,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Reference date of the profiles (default: the last event)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write one profile row per member (.csv or .parquet).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """RFM scores, lifecycle segments and value tiers of every member."""
    loaded = load_with_options(interactions, preset, columns, max_bad_share)
    member_table = load_members(members).frame if members else None
    profiles = compute_member_profiles(loaded.frame, reference_time=as_of, members=member_table)
    summary = segment_summary(profiles)
    if out:
        _write_table(profiles, out)
    if as_json:
        typer.echo(json.dumps(summary.to_dicts()))
        return
    print_segment_summary(summary)
    if out:
        console.print(f"Profiles of {profiles.height:,} members written to {out}")


def _split_for_training(
    frame: pl.DataFrame,
    split: str | None,
    test_file: Path | None,
    load_test: Callable[[Path], pl.DataFrame],
) -> tuple[Split, SplitSpec | None]:
    if split and test_file:
        raise ConfigError("give either --split or --test-file, not both")
    if test_file:
        return explicit_split(frame, load_test(test_file)), None
    spec = parse_split_spec(split or DEFAULT_SPLIT)
    return spec.split(frame), spec


def _names(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


@app.command()
def train(
    interactions: InteractionsOption,
    out: Annotated[Path, typer.Option(help="The bundle directory to write.")],
    items: Annotated[Path | None, typer.Option(help="Item catalog (CSV or Parquet).")] = None,
    members: Annotated[Path | None, typer.Option(help="Member table (CSV or Parquet).")] = None,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    split: Annotated[
        str | None,
        typer.Option(
            help="temporal:YYYY-MM-DD, last-days:N, leave-last:K or ratio:R[:member|item][:SEED] "
            f"(default {DEFAULT_SPLIT})."
        ),
    ] = None,
    test_file: Annotated[
        Path | None,
        typer.Option(help="Evaluate on this file only; train on --interactions only."),
    ] = None,
    validation: Annotated[
        str | None,
        typer.Option(
            help="Validation split of train, in --split syntax (default: shaped like the test, "
            "inferred from the files with --test-file)."
        ),
    ] = None,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit/--no-refit",
            help="Refit every model on train + test for the served bundle (--no-refit: serve "
            "the train-only fits, for research).",
        ),
    ] = True,
    models: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated models (default all: {', '.join(MODEL_NAMES)})."),
    ] = None,
    primary_metric: Annotated[str, typer.Option(help="Picks the model on validation.")] = "ndcg@10",
    trials: Annotated[
        int, typer.Option(min=1, help="Tuning trials per model.")
    ] = TuningBudget().trials,
    tune_seconds: Annotated[
        float, typer.Option(min=1, help="Tuning time budget per model, in seconds.")
    ] = TuningBudget().seconds,
    max_eval_members: Annotated[
        int, typer.Option(min=1, help="Evaluate on at most this many members (seeded sample).")
    ] = 50_000,
    seed: Annotated[int, typer.Option(help="Seed of tuning and sampling.")] = 42,
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log the run and register the bundle.")
    ] = True,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: SQLite under data/).")
    ] = None,
    registered_model: Annotated[
        str, typer.Option(help="MLflow registered model name.")
    ] = "member-recsys",
    promotion_margin: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Gate for a version not comparable with the champion: the chosen model must "
            "beat popularity on its own test by this share of popularity's figure.",
        ),
    ] = DEFAULT_PROMOTION_MARGIN,
    list_depth: Annotated[
        int,
        typer.Option(
            min=0,
            help="Precompute each member's top N of the chosen model into the bundle; serving "
            "then reads a row instead of scoring (0: none). Longer lists, a category filter "
            "or another model are scored live.",
        ),
    ] = DEFAULT_LIST_DEPTH,
) -> None:
    """Tune every model on validation, evaluate on test, and write the model bundle."""
    from training.train import TrainConfig

    mapping = parse_column_mapping(columns, _MAPPABLE)
    config = TrainConfig(
        **({"models": _names(models)} if models else {}),
        primary_metric=primary_metric,
        budget=TuningBudget(trials=trials, seconds=tune_seconds),
        max_eval_members=max_eval_members,
        seed=seed,
        refit=refit,
        validation=validation,
    )
    reports: dict[str, ValidationReport] = {}

    def shown(name: str, table: ValidatedTable) -> pl.DataFrame:
        print_validation_report(table.report)
        reports[name] = table.report
        return table.frame

    frame = shown("interactions", load_with_options(interactions, preset, columns, max_bad_share))

    def load_test(path: Path) -> pl.DataFrame:
        return shown("test", load_interactions(path, mapping, get_preset(preset), max_bad_share))

    split_data, spec = _split_for_training(frame, split, test_file, load_test)
    item_table = shown("items", load_items(items)) if items else None
    member_table = shown("members", load_members(members)) if members else None
    train_and_publish(
        split_data, spec, config, item_table, member_table, out,
        tracking=mlflow, tracking_uri=tracking_uri, registered_model=registered_model,
        list_depth=list_depth, input_reports=reports, promotion_margin=promotion_margin,
    )  # fmt: skip


def train_and_publish(
    split_data: Split,
    spec: SplitSpec | None,
    config: TrainConfig,
    items: pl.DataFrame | None,
    members: pl.DataFrame | None,
    out: Path,
    *,
    tracking: bool,
    tracking_uri: str | None = None,
    registered_model: str = "member-recsys",
    list_depth: int = DEFAULT_LIST_DEPTH,
    input_reports: Mapping[str, ValidationReport] | None = None,
    promotion_margin: float = DEFAULT_PROMOTION_MARGIN,
) -> None:
    """Train, write the bundle (with ``list_depth`` items precomputed per member) and
    (optionally) log and register it in MLflow. ``input_reports``: the validation report of
    each loaded file, stored in metrics.json (``inputs``) beside what was learned from them."""
    from training.publish import write_training_artifact
    from training.train import run_training

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    # One step per pipeline message: the validation split, a tuning, a test fit and a refit per
    # model (and the baseline's), the fit on train, and the bundle.
    steps = 5 + 3 * len(config.models)
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("training", total=steps)

        def advance(message: str) -> None:
            bar.update(task, description=message, advance=1)

        outcome = run_training(
            split_data, spec, config, items=items, members=members, progress=advance
        )
        outcome.metrics["inputs"] = {
            name: report.to_dict() for name, report in (input_reports or {}).items()
        }
        advance("writing the bundle")
        write_training_artifact(outcome, out, items, list_depth=list_depth, members=members)
    print_protocol(outcome.metrics)
    print_model_table(outcome.metrics)
    print_failures(outcome.metrics["failed"])
    print_rules_quality(outcome.metrics["rules"])
    console.print(f"Bundle, metrics.json and report.html written to {out}")
    if not tracking:
        return
    from training.tracking import log_training_run

    with console.status("logging to MLflow"):
        result = log_training_run(
            outcome.metrics, out, tracking_uri=tracking_uri, registered_model=registered_model,
            promotion_margin=promotion_margin,
        )  # fmt: skip
    verdict = "is now champion" if result.became_champion else "is not champion"
    champion = result.champion_version
    holder = f"champion: version {champion}" if champion else "no version is champion"
    console.print(
        f"MLflow run {result.run_id}: {registered_model} version {result.model_version} "
        f"{verdict} ({holder})"
    )
    console.print(f"Promotion: {result.reason}", markup=False, highlight=False)
    if champion is None:
        console.print(
            f"Nothing serves models:/{registered_model}@champion until a version passes; "
            f"`recsys promote {result.model_version}` makes this one champion anyway",
            markup=False,
        )


def print_protocol(metrics: dict[str, Any]) -> None:
    """How validation was shaped and what the bundle serves: the two facts that say what the
    table's figures mean."""
    shape = metrics["protocol"]["validation_shape"]
    how = "inferred from the files" if shape.get("inferred") else "from the split"
    if shape["kind"] == "given":
        how = f"given: {shape['spec']}"
    console.print(
        f"Validation shaped like the test: {shape['kind']} ({how}; {shape_numbers(shape)})"
    )
    if metrics["chosen_because"] != "best on validation":
        console.print(f"Chosen: {metrics['chosen']}, {metrics['chosen_because']}")
    refit = metrics["refit"]
    console.print(
        f"Served models fit on {refit['on']} ({refit['rows']:,} rows, data until "
        f"{refit['data_end']}); the test figures below are the train-only fits'"
    )


def print_model_table(metrics: dict[str, Any]) -> None:
    """Test figures of every model beside the popularity baseline; the chosen one marked."""
    primary = metrics["primary_metric"]
    table = Table(title=f"Test metrics; * = chosen on validation by {primary}")
    table.add_column("model")
    for label in (*_SHORT_NAMES.values(), f"val {primary}"):
        table.add_column(label, justify="right")
    for name, values in metrics["models"].items():
        label = f"{name} *" if name == metrics["chosen"] else name
        validation = metrics["validation"].get(name, {}).get(primary)
        shown = "not tuned" if validation is None else f"{validation:.4f}"
        table.add_row(label, *(f"{values[m]:.4f}" for m in _SHORT_NAMES), shown)
    console.print(table)


def print_failures(failures: list[dict[str, str]]) -> None:
    """Every failed fit or trial, after the table, so that a missing row is never a mystery."""
    if not failures:
        return
    table = Table(title=f"{len(failures)} failure(s), also in metrics.json 'failed'")
    for column in ("model", "stage", "reason"):
        table.add_column(column)
    for failure in failures:
        table.add_row(failure["model"], failure["stage"], failure["reason"])
    err_console.print(table)


def print_rules_quality(rules: dict[str, Any]) -> None:
    """The mined rules, and how well they proposed the rest of held-out baskets."""
    test = rules["test"]
    line = (
        f"{rules['rules']:,} bundle rules from {rules['baskets']:,} training baskets "
        f"(itemsets in at least {rules['min_count']} baskets)"
    )
    if test["anchors"]:
        hits, n = test["hit_rate"], test["n"]
        line += (
            f"; on {test['test_baskets']:,} test baskets, hit rate@{n} "
            f"{hits['rules_then_popular']:.3f} (rules, then popular) against "
            f"{hits['popular']:.3f} (popular); rules for {test['coverage']:.0%} of items"
        )
    console.print(line)


#: Metric columns of the CLI tables, with headers short enough for an 80-column terminal.
_SHORT_NAMES = {
    "precision@10": "P@10",
    "recall@10": "R@10",
    "ndcg@10": "NDCG@10",
    "map": "MAP",
    "hit_rate@10": "HR@10",
    "coverage@10": "cov@10",
}


ArtifactOption = Annotated[
    Path, typer.Option("--artifact", help="A bundle written by recsys train.")
]


def _open_artifact(path: Path) -> ModelArtifact:
    from training.artifact import load_artifact
    from training.models import MODEL_CLASSES

    return load_artifact(path, model_classes=MODEL_CLASSES)


@app.command()
def evaluate(
    artifact: ArtifactOption,
    test_file: Annotated[Path, typer.Option(help="Test interactions (any published protocol).")],
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models (default all).")
    ] = None,
    all_items: Annotated[
        bool,
        typer.Option("--all-items", help="Count re-purchases as hits (default: new items only)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Evaluate a bundle's models on a test file, with purchased items excluded."""
    from training.evaluate_artifact import evaluate_artifact, seen_by_artifact

    test = load_with_options(test_file, preset, columns, max_bad_share).frame
    opened = _open_artifact(artifact)
    seen = seen_by_artifact(opened, test)
    if seen:
        err_console.print(
            f"warning: {seen:,} of the {test.height:,} test events occurred before the "
            f"bundle's data_end ({opened.manifest['data_end']}): it learned from them, so these "
            "figures flatter it. Train with --no-refit to score a bundle on its own test period."
        )
    results = evaluate_artifact(opened, test, models=_names(models), new_items_only=not all_items)
    if as_json:
        typer.echo(json.dumps(results))
        return
    table = Table(title=f"{artifact} on {test_file}")
    table.add_column("model")
    for label in _SHORT_NAMES.values():
        table.add_column(label, justify="right")
    for name, values in results.items():
        table.add_row(name, *(f"{values[m]:.4f}" for m in _SHORT_NAMES))
    console.print(table)


@app.command()
def recommend(
    artifact: ArtifactOption,
    member: Annotated[list[str], typer.Option(help="Member id; repeat for several.")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=1000, help="List length.")] = 10,
    model: Annotated[str | None, typer.Option(help="Model name (default: the chosen one).")] = None,
    category: Annotated[str | None, typer.Option(help="Only items of this category.")] = None,
    include_purchased: Annotated[
        bool, typer.Option("--include-purchased", help="Allow items the member already bought.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Top-n items for members, from a bundle."""
    from training.recommend import ArtifactRecommender

    opened = _open_artifact(artifact)
    answers = ArtifactRecommender(opened).recommend(
        member, n, model=model, category=category, exclude_purchased=not include_purchased
    )
    titles = _titles(opened)
    for answer in answers:
        if as_json:
            typer.echo(json.dumps(answer.__dict__))
            continue
        note = " (fallback: popularity)" if answer.fallback else ""
        table = Table(title=f"{answer.member_id}: {answer.model}{note}")
        for name in ("rank", "item", "title", "score"):
            table.add_column(name)
        for rank, (item, score) in enumerate(zip(answer.item_ids, answer.scores, strict=True), 1):
            table.add_row(str(rank), item, titles.get(item, ""), f"{score:.4f}")
        console.print(table)


@app.command()
def export(
    artifact: ArtifactOption,
    out: Annotated[Path, typer.Option(help="Output file (.csv or .parquet), written whole.")],
    kind: Annotated[
        str, typer.Option(help="recommendations (one row per item) or bundles (one per bundle).")
    ] = "recommendations",
    n: Annotated[
        int, typer.Option("--n", "-n", min=1, max=1000, help="Items (or bundles) per member.")
    ] = 10,
    members: Annotated[
        Path | None,
        typer.Option(help="Only these members: a CSV/Parquet with member_id, or one id a line."),
    ] = None,
    segment: Annotated[
        str | None, typer.Option(help="Only the bundle's members of this segment.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (default: the chosen one).")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Members answered at once.")] = 4096,
    events_url: Annotated[
        str | None,
        typer.Option(
            envvar="RECSYS_EVENTS_URL",
            help="Event store whose events after the bundle's data_end the lists take in, as "
            "the API does (default: the one serving uses, SQLite under data/serving/; "
            "none there: the bundle alone).",
        ),
    ] = None,
) -> None:
    """Recommendations or bundles for every member (or a list, or a segment), streamed to a
    file in batches: memory holds one batch, whatever the number of members."""
    from training.export import export_members
    from training.roster import Roster

    if kind not in ("recommendations", "bundles"):
        raise ConfigError(f"--kind: {kind!r} is not 'recommendations' or 'bundles'")
    opened = _open_artifact(artifact)
    roster = Roster(opened)
    chosen = _campaign_members(opened, roster, members, segment)
    total = len(opened.member_ids) + len(roster) if chosen is None else len(chosen)
    store = _open_event_store(events_url)
    columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err_console, transient=True) as progress:
            task = progress.add_task("members", total=total)
            summary = export_members(
                opened, out, kind=kind, n=n, member_ids=chosen, model=model,  # type: ignore[arg-type]
                batch=batch, events=store, progress=lambda done: progress.advance(task, done),
            )  # fmt: skip
    except _event_store_errors() as error:
        raise ConfigError(
            f"--events-url: reading the event store failed ({error}); fix the URL or "
            "RECSYS_EVENTS_URL, or start the database"
        ) from None
    finally:
        if store is not None:
            store.close()
    unknown = (
        f" ({summary.unknown_members:,} without history in the bundle: popularity, flagged "
        "fallback)"
        if summary.unknown_members
        else ""
    )
    live = "" if store is None else f"; {summary.live_members:,} with events since its data"
    console.print(
        f"{summary.rows:,} rows for {summary.members:,} members{unknown}{live} written to {out} "
        f"in {summary.seconds:.2f} s"
    )


def _open_event_store(url: str | None) -> EventStore | None:
    """The event store at ``url``, else serving's default one; None when it is the default
    and there is none (a campaign machine without a local store answers from the bundle)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from serving.event_store import EventStore
    from serving.settings import Settings

    chosen = url or str(Settings.model_fields["events_url"].default)
    try:
        parsed = make_url(chosen)
    except ArgumentError:
        raise ConfigError(
            f"--events-url {chosen!r}: not a database URL; use e.g. sqlite:///data/serving/"
            "events.db or postgresql+psycopg://user@host/db"
        ) from None
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not Path(database).is_file():
        if url is None:
            err_console.print(f"no event store at {database}: exporting from the bundle alone")
            return None
        raise ConfigError(f"--events-url {url}: no such file {database}")
    try:
        return EventStore.open(chosen)
    except _event_store_errors() as error:
        raise ConfigError(
            f"--events-url {chosen}: cannot open the event store ({error}); fix the URL or "
            "RECSYS_EVENTS_URL, or start the database"
        ) from None


def _event_store_errors() -> tuple[type[Exception], ...]:
    """What a failing event store raises: SQLAlchemy's errors, or a missing database driver."""
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, ImportError)


def _campaign_members(
    artifact: ModelArtifact, roster: Roster, path: Path | None, segment: str | None
) -> list[str] | None:
    """The members an export is for: a file's, a segment's (the models' members and the
    bundle's members without events), both (intersected), or all (None)."""
    chosen: list[str] | None = None
    if path is not None:
        chosen = _read_member_ids(path)
    if segment is not None:
        if segment not in artifact.segment_names or artifact.member_segments is None:
            known = ", ".join(artifact.segment_names) or "none (trained without member profiles)"
            raise ConfigError(f"--segment: unknown segment {segment!r}; known: {known}")
        code = artifact.segment_names.index(segment)
        in_segment = [
            *artifact.member_ids.external_ids[artifact.member_segments == code].tolist(),
            *roster.in_segment(code).tolist(),
        ]
        if chosen is None:
            chosen = in_segment
        else:
            wanted = set(in_segment)
            chosen = [member for member in chosen if member in wanted]
    return chosen


def _read_member_ids(path: Path) -> list[str]:
    """Member ids from a CSV or Parquet file's member_id column, or a text file, one per line;
    each once (in first-seen order), so that a repeated id is one member of the campaign."""
    if not path.is_file():
        raise ConfigError(f"--members {path}: no such file")
    if path.suffix in (".csv", ".parquet"):
        frame = (
            pl.read_parquet(path)
            if path.suffix == ".parquet"
            else pl.read_csv(path, infer_schema=False)
        )
        if col.MEMBER_ID not in frame.columns:
            raise ConfigError(
                f"--members {path}: no {col.MEMBER_ID!r} column (columns: {frame.columns})"
            )
        ids = frame.get_column(col.MEMBER_ID).cast(pl.Utf8)
    else:
        ids = pl.Series(path.read_text().splitlines(), dtype=pl.Utf8)
    stripped = ids.str.strip_chars()
    return (
        stripped.filter(stripped.is_not_null() & (stripped != ""))
        .unique(maintain_order=True)
        .to_list()
    )


def _titles(artifact: ModelArtifact) -> dict[str, str]:
    catalog = artifact.catalog
    if catalog is None or col.TITLE not in catalog.columns:
        return {}
    return dict(catalog.select(col.ITEM_ID, pl.col(col.TITLE).fill_null("")).iter_rows())


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Registered model version to promote.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
    registered_model: Annotated[str, typer.Option(help="Registered model name.")] = "member-recsys",
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
) -> None:
    """Move a registry alias (default: champion) to a model version by hand, whatever the
    automatic promotion decided when it was registered."""
    from training.tracking import promote as move_alias

    reason = move_alias(
        version, registered_model=registered_model, alias=alias, tracking_uri=tracking_uri
    )
    console.print(f"{registered_model}@{alias} -> version {version}")
    if reason:
        console.print(f"At registration it was judged: {reason}", markup=False, highlight=False)


def _generate_with_progress(config: StoreConfig, out: Path) -> StoreSummary:
    columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("events", total=config.events)
        return generate_store(
            config, out, on_progress=lambda written: progress.update(task, completed=written)
        )


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Directory to write the store into.")],
    members: Annotated[int, typer.Option(min=1, help="Number of members.")] = StoreConfig.members,
    items: Annotated[int, typer.Option(min=1, help="Number of catalog items.")] = StoreConfig.items,
    events: Annotated[
        int, typer.Option(min=1, help="Number of interactions.")
    ] = StoreConfig.events,
    seed: Annotated[
        int, typer.Option(help="Random seed; same seed, same store.")
    ] = StoreConfig.seed,
) -> None:
    """Write a synthetic store: interactions, items, members and the planted-bundle truth."""
    summary = _generate_with_progress(
        StoreConfig(members=members, items=items, events=events, seed=seed), out
    )
    console.print(summary.describe())


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Directory of the demo store.")] = Path("data/demo"),
    members: Annotated[int, typer.Option(min=1)] = StoreConfig.members,
    items: Annotated[int, typer.Option(min=1)] = StoreConfig.items,
    events: Annotated[int, typer.Option(min=1)] = StoreConfig.events,
    seed: Annotated[int, typer.Option()] = StoreConfig.seed,
    trials: Annotated[int, typer.Option(min=1, help="Tuning trials per model.")] = 4,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the model afterwards (Ctrl-C stops).")
    ] = True,
) -> None:
    """Generate the demo store, validate it, segment its members, train on it and serve it."""
    from training.train import TrainConfig

    config = StoreConfig(members=members, items=items, events=events, seed=seed)
    summary = _generate_with_progress(config, out)
    console.print(summary.describe())
    loaded = load_interactions(summary.interactions_path)
    print_validation_report(loaded.report)
    member_table = load_members(summary.members_path).frame
    profiles = compute_member_profiles(loaded.frame, members=member_table)
    print_segment_summary(segment_summary(profiles))
    item_table = load_items(summary.items_path).frame
    spec = parse_split_spec(DEFAULT_SPLIT)
    artifact = out / "artifact"
    train_and_publish(
        spec.split(loaded.frame), spec,
        TrainConfig(budget=TuningBudget(trials=trials, seconds=20)),
        item_table, member_table, artifact, tracking=True,
    )  # fmt: skip
    from training.tracking import default_tracking_uri

    member = loaded.frame[col.MEMBER_ID][0]
    console.print(
        f"\nReport: {(artifact / 'report.html').resolve()}\n"
        f"Try:    uv run recsys recommend --bundle {artifact} --member {member}\n"
        f"MLflow: uv run mlflow ui --backend-store-uri {default_tracking_uri()} "
        "-> http://127.0.0.1:5000"
    )
    if serve_after:
        _serve_demo(artifact, member)


_DEMO_HOST, _DEMO_PORT = "127.0.0.1", 8000


def _serve_demo(artifact: Path, member: str) -> None:
    """Serve the demo bundle in the foreground, after saying where to look."""
    base = f"http://{_DEMO_HOST}:{_DEMO_PORT}"
    console.print(
        f"\nServing the demo model: API docs at {base}/docs (Ctrl-C to stop)\n"
        f"Try:    curl '{base}/v1/members/{member}/recommendations?n=5'"
    )
    serve(artifact=artifact, host=_DEMO_HOST, port=_DEMO_PORT)


@app.command()
def serve(
    artifact: Annotated[
        Path | None, typer.Option(help="Serve this bundle directory (RECSYS_ARTIFACT).")
    ] = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            help="Serve a registry version or alias, e.g. models:/member-recsys@champion."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    events_url: Annotated[
        str | None, typer.Option(help="Event store URL (default SQLite under data/serving/).")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
    poll_seconds: Annotated[
        float | None, typer.Option(min=0, help="Check the bundle source this often (0: off).")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the recommendation API; other settings come from RECSYS_* variables."""
    from serving.server import run_server

    settings = {
        # Absolute, not resolved: a symlink switched to another version must be followed.
        "RECSYS_ARTIFACT": artifact.absolute() if artifact else None,
        "RECSYS_MODEL_URI": model_uri,
        "RECSYS_EVENTS_URL": events_url,
        "RECSYS_TRACKING_URI": tracking_uri,
        "RECSYS_POLL_SECONDS": poll_seconds,
    }
    environment = {name: str(value) for name, value in settings.items() if value is not None}
    run_server(
        host=host, port=port, workers=workers, environment=environment, access_log=access_log
    )


@app.command()
def simulate(
    url: Annotated[str, typer.Option(help="Base URL of a running server.")],
    test_file: Annotated[Path, typer.Option(help="Test-period interactions to replay.")],
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="RECSYS_API_KEY",
            help="Key with the events role (and read, if the server requires one).",
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=100, help="List length.")] = 10,
    members: Annotated[
        int | None, typer.Option(min=1, help="Replay at most this many members.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Parallel clients.")] = 8,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Replay a test period against a server: recommendations, impressions, clicks and
    purchases of what members really took, then the CTR report (doubles as a load test)."""
    from serving.simulate import members_to_replay
    from serving.simulate import simulate as replay

    test = load_with_options(test_file, preset, columns, max_bad_share).frame
    truths = members_to_replay(test, members)
    columns_shown = (
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns_shown, console=err_console, transient=True) as progress:
        task = progress.add_task("members", total=len(truths))
        summary = replay(
            url, truths, api_key=api_key, n=n, concurrency=concurrency,
            on_progress=lambda done: progress.update(task, completed=done),
        )  # fmt: skip
    result = summary.as_dict()
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"Replay of {test_file} against {url}", show_header=False)
    for key, value in result.items():
        if key == "report":
            continue
        shown = (
            "-" if value is None else f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        )
        table.add_row(key.replace("_", " "), shown)
    console.print(table)
    if summary.report is not None:
        print_ctr_report(summary.report)


def print_ctr_report(report: dict[str, Any]) -> None:
    """The CTR report as a table, rates with their 95% intervals."""
    table = Table(title=f"CTR by {report['group_by']} (95% Wilson intervals)")
    for name in ("group", "impressions", "clicks", "CTR", "conversions", "conv. rate"):
        table.add_column(name, justify="left" if name == "group" else "right")

    def rate(value: dict[str, Any]) -> str:
        if value["value"] is None:
            return "-"
        return f"{value['value']:.2%} [{value['low']:.2%}, {value['high']:.2%}]"

    for row in [*report["groups"], report["total"]]:
        table.add_row(
            row["key"], f"{row['impressions']:,}", f"{row['clicks']:,}", rate(row["ctr"]),
            f"{row['conversions']:,}", rate(row["conversion_rate"]),
        )  # fmt: skip
    console.print(table)


def main() -> None:
    """Console-script entry point: user errors become one message and exit status 2."""
    try:
        app()
    except RecsysError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
