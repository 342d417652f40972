"""Training commands: ``recsys train`` writes a model artifact (and registers it in MLflow),
``recsys evaluate`` scores an artifact on a test file, ``recsys promote`` moves a registry
alias by hand."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import polars as pl
import typer

from cli.options import (
    MAPPABLE,
    ArtifactOption,
    ColumnsOption,
    InteractionsOption,
    MaxBadShareOption,
    PresetOption,
    load_with_options,
    names,
    open_artifact,
)
from cli.privacy import Erasures, audited_command
from cli.render import (
    SHORT_NAMES,
    console,
    err_console,
    metric_table,
    print_failures,
    print_model_table,
    print_protocol,
    print_rules_quality,
    print_validation_report,
    step_bar,
    timed_status,
)
from features.columns import MEMBER_ID
from features.errors import ConfigError
from features.ingest import parse_column_mapping
from features.presets import get_preset
from features.pseudonyms import KEY_VARIABLE, MemberPseudonyms
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
    DEFAULT_HORIZON_DAYS,
    DEFAULT_LIST_DEPTH,
    DEFAULT_PROMOTION_MARGIN,
    DEFAULT_SPARK_MASTER,
    DEFAULT_SPLIT,
    ENGINES,
    SPARK_MASTER_VARIABLE,
    SPARK_MODELS,
    TARGETS,
    TuningBudget,
    default_lineup,
    parse_spark_conf,
    spark_lineup,
)

if TYPE_CHECKING:
    from training.tracking.runs import OpenRun
    from training.train import TrainConfig, TrainOutcome

    #: What trains: :func:`training.train.run_training`'s signature.
    Trainer = Callable[..., TrainOutcome]

__all__ = ["evaluate", "promote", "train", "train_and_publish"]


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


def train(
    interactions: InteractionsOption,
    out: Annotated[Path, typer.Option(help="The model artifact directory to write.")],
    items: Annotated[Path | None, typer.Option(help="Item catalog (CSV or Parquet).")] = None,
    members: Annotated[
        Path | None,
        typer.Option(
            help="Member table (CSV or Parquet): member_id, joined_at, tier, region and "
            "birth_date are read; other columns (names, e-mails, ...) are dropped unread."
        ),
    ] = None,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    split: Annotated[
        str | None,
        typer.Option(
            help="temporal:YYYY-MM-DD, last-days:N, leave-last:K, last-baskets:K, last-share:R "
            f"or ratio:R[:member|item][:SEED] (default {DEFAULT_SPLIT})."
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
            help="Refit every model on train + test for the served model artifact (--no-refit: "
            "serve the train-only fits, for research).",
        ),
    ] = True,
    target: Annotated[
        str,
        typer.Option(
            help="new-items: recommend what the member has not bought (purchases excluded, "
            "only new items are hits); next-basket: predict the next basket, repeats included "
            "(nothing excluded, figures split into repeat and explore).",
        ),
    ] = "new-items",
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated models (default: the target's lineup; new-items: "
            f"{', '.join(default_lineup('new-items'))}; next-basket: "
            f"{', '.join(default_lineup('next-basket'))}).",
        ),
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
        bool,
        typer.Option("--mlflow/--no-mlflow", help="Log the run and register the model artifact."),
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
            help="Precompute each member's top N of the chosen model into the model artifact; "
            "serving then reads a row instead of scoring (0: none). Longer lists, a category "
            "filter or another model are scored live.",
        ),
    ] = DEFAULT_LIST_DEPTH,
    horizon_days: Annotated[
        int,
        typer.Option(
            min=1,
            help="Horizon of the member scores written into the model artifact: churn risk is "
            "the probability of no purchase in the next H days.",
        ),
    ] = DEFAULT_HORIZON_DAYS,
    tier_rules: Annotated[
        Path | None,
        typer.Option(
            help="Tier ladder of the profiles' 'spend X more to reach tier Y' (.json or .toml; "
            "default: docs/members.md's ladder).",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="What fits the models: implicit (this process) or spark (Spark MLlib's ALS, "
            f"Spark for validation, popularity and rules; models {', '.join(SPARK_MODELS)} "
            "only). The model artifact is the same.",
        ),
    ] = "implicit",
    spark_master: Annotated[
        str,
        typer.Option(
            envvar=SPARK_MASTER_VARIABLE,
            help="Spark master URL of --engine spark: local[*], local[N], spark://host:7077, "
            "yarn, k8s://...",
        ),
    ] = DEFAULT_SPARK_MASTER,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option(
            help="A Spark setting of --engine spark as KEY=VALUE (repeat it), as spark-submit's "
            "--conf: e.g. spark.driver.memory=8g, spark.executor.memory=16g. A local master "
            "gets half this machine's memory as heap unless the driver memory is set.",
        ),
    ] = None,
    spark_scratch: Annotated[
        Path | None,
        typer.Option(
            envvar="RECSYS_SPARK_SCRATCH",
            help="Where --engine spark writes the validated interactions (a directory that the "
            "driver and the executors both see; default: a temporary directory).",
        ),
    ] = None,
    pseudonymise_members: Annotated[
        bool,
        typer.Option(
            "--pseudonymise-members",
            help=f"Replace every member id by a keyed hash of it (the key in ${KEY_VARIABLE}, "
            "never an option) before anything is written: the model artifact, MLflow and the "
            "exports hold no raw id. Serve it with the same key.",
        ),
    ] = False,
    events_url: Annotated[
        str | None,
        typer.Option(
            envvar="RECSYS_EVENTS_URL",
            help="The event store whose erasures (recsys members forget) the training honours: "
            "the erased members' rows are dropped from every input (default: the one serving "
            "uses, SQLite under data/serving/; none there: nobody was erased).",
        ),
    ] = None,
) -> None:
    """Tune every model on validation, evaluate on test, and write the model artifact (with
    every member's scores, profile and the member report)."""
    from features.tier_rules import TierRules, load_tier_rules
    from training.member_files import MemberFilesConfig
    from training.train import TrainConfig

    mapping = parse_column_mapping(columns, MAPPABLE)
    if target not in TARGETS:
        raise ConfigError(f"--target: {target!r} is not one of {', '.join(TARGETS)}")
    if engine not in ENGINES:
        raise ConfigError(f"--engine: {engine!r} is not one of {', '.join(ENGINES)}")
    if spark_conf and engine != "spark":
        raise ConfigError("--spark-conf: Spark settings are for --engine spark")
    spark_settings = parse_spark_conf(spark_conf)
    if pseudonymise_members and engine == "spark":
        raise ConfigError(
            "--pseudonymise-members works with --engine implicit only: the Spark engine trains "
            "on the ids of the file it reads; pseudonymise the file first (recsys pseudonymise)"
        )
    pseudonyms = (
        MemberPseudonyms.from_environment(needed_by="--pseudonymise-members")
        if pseudonymise_members
        else None
    )
    lineup = spark_lineup(names(models)) if engine == "spark" else names(models)
    config = TrainConfig(
        target=target,  # type: ignore[arg-type]
        **({"models": lineup} if lineup else {}),
        primary_metric=primary_metric,
        budget=TuningBudget(trials=trials, seconds=tune_seconds),
        max_eval_members=max_eval_members,
        seed=seed,
        refit=refit,
        validation=validation,
        members=MemberFilesConfig(
            horizon_days=horizon_days,
            tier_rules=load_tier_rules(tier_rules) if tier_rules else TierRules(),
        ),
    )
    reports: dict[str, ValidationReport] = {}
    erasures = Erasures.of_store(events_url)

    def shown(name: str, table: ValidatedTable) -> pl.DataFrame:
        """The accepted rows (member ids pseudonymised when asked, erased members' rows
        dropped), the report printed."""
        print_validation_report(table.report)
        reports[name] = table.report
        frame = table.frame
        if pseudonyms is not None and MEMBER_ID in frame.columns:  # not the catalog's rows
            frame = pseudonyms.in_column(frame)
        return erasures.drop(name, frame)

    def load_test(path: Path) -> pl.DataFrame:
        return shown("test", load_interactions(path, mapping, get_preset(preset), max_bad_share))

    with ExitStack() as stack:
        trainer: Trainer | None = None
        if engine == "spark":
            loaded, trainer = _load_in_spark(
                stack, interactions, mapping, preset, max_bad_share, spark_master,
                spark_settings, spark_scratch,
            )  # fmt: skip
        else:
            loaded = load_with_options(interactions, preset, columns, max_bad_share)
        frame = shown("interactions", loaded)
        split_data, spec = _split_for_training(frame, split, test_file, load_test)
        # The split holds the rows now; a second copy of 20M events is 1.7 GB of peak.
        del frame, loaded
        item_table = shown("items", load_items(items)) if items else None
        member_table = shown("members", load_members(members)) if members else None
        train_and_publish(
            split_data, spec, config, item_table, member_table, out,
            tracking=mlflow, tracking_uri=tracking_uri, registered_model=registered_model,
            list_depth=list_depth, input_reports=reports, promotion_margin=promotion_margin,
            trainer=trainer, member_key=pseudonyms.fingerprint if pseudonyms else None,
            erasures=erasures.record(), events_url=events_url,
        )  # fmt: skip


def _load_in_spark(
    stack: ExitStack,
    interactions: Path,
    mapping: Mapping[str, str],
    preset: str | None,
    max_bad_share: float,
    master: str,
    conf: Mapping[str, str],
    scratch: Path | None,
) -> tuple[ValidatedTable, Trainer]:
    """The interactions loaded by Spark on ``master``, and the Spark engine's trainer of them;
    the session and the scratch directory last as long as ``stack``. Spark is imported here
    only, so that the other commands never pay for it."""
    from training.spark import load_interactions as load_with_spark
    from training.spark import running_session, train_in_spark

    session = stack.enter_context(running_session(master, conf))
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="recsys-", dir=scratch))
    with timed_status(f"validating {interactions.name} with Spark ({master})"):
        loaded = load_with_spark(
            session, interactions, Path(directory), mapping, get_preset(preset), max_bad_share
        )
    return loaded.validated, partial(train_in_spark, loaded.spark)


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
    trainer: Trainer | None = None,
    member_key: str | None = None,
    erasures: Mapping[str, Any] | None = None,
    events_url: str | None = None,
) -> None:
    """Train, write the model artifact (with ``list_depth`` items precomputed per member) and
    (optionally) log and register it in MLflow. ``input_reports``: the validation report of
    each loaded file, stored in metrics.json (``inputs``) beside what was learned from them;
    ``trainer``: what trains (default :func:`training.train.run_training`; the Spark engine's
    takes the split of the interactions it loaded); ``member_key``: the key fingerprint of
    pseudonymised member ids (None: raw ids), recorded in the manifest; ``erasures``: what
    the erasures of the event store at ``events_url`` dropped, stored in metrics.json, where an
    automatic promotion is audited too."""
    from training.publish import write_training_artifact
    from training.train import run_training

    with ExitStack() as stack:
        # The MLflow run starts with the training, so that it lasts as long and shows its steps.
        run = stack.enter_context(_open_run(config, spec, tracking_uri)) if tracking else None
        # One step per pipeline message: the validation split, a tuning, a test fit and a refit
        # per model (and the baseline's), the fit on train, and the model artifact.
        with step_bar("training", 5 + 3 * len(config.models)) as advance:

            def progress(message: str) -> None:
                advance(message)
                if run is not None:
                    run.step(message)

            outcome = (trainer or run_training)(
                split_data, spec, config, items=items, members=members, progress=progress
            )
            outcome.metrics["inputs"] = {
                name: report.to_dict() for name, report in (input_reports or {}).items()
            }
            outcome.metrics["erasures"] = dict(erasures or {})
            progress("writing the model artifact")
            write_training_artifact(
                outcome, out, items, list_depth=list_depth, members=members, member_key=member_key
            )
        print_protocol(outcome.metrics)
        print_model_table(outcome.metrics)
        print_failures(outcome.metrics["failed"])
        print_rules_quality(outcome.metrics["rules"])
        console.print(f"Model artifact, metrics.json and report.html written to {out}")
        if run is None:
            return
        from training.tracking import log_training_run

        with timed_status("logging to MLflow"):
            result = log_training_run(
                outcome.metrics, out, registered_model=registered_model,
                promotion_margin=promotion_margin, run=run,
            )  # fmt: skip
    if result.became_champion:
        target = f"{registered_model}@champion -> version {result.model_version}"
        with audited_command(events_url, "promote", target) as (_, audit):
            audit.detail.update(automatic=True, reason=result.reason, run_id=result.run_id)
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


def _open_run(
    config: TrainConfig, spec: SplitSpec | None, tracking_uri: str | None
) -> AbstractContextManager[OpenRun]:
    """The MLflow parent run of a training, with the params known before it starts."""
    from training.run_record import describe_spec
    from training.tracking.runs import training_run

    params = {"primary_metric": config.primary_metric, "protocol.split": describe_spec(spec)}
    return training_run(tracking_uri=tracking_uri, params=params)


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
    """Evaluate a model artifact's models on a test file, with purchased items excluded."""
    from training.evaluate_artifact import evaluate_artifact, seen_by_artifact

    test = load_with_options(test_file, preset, columns, max_bad_share).frame
    opened = open_artifact(artifact)
    seen = seen_by_artifact(opened, test)
    if seen:
        err_console.print(
            f"warning: {seen:,} of the {test.height:,} test events occurred before the "
            f"model artifact's data_end ({opened.manifest['data_end']}): it learned from them, "
            "so these figures flatter it. Train with --no-refit to score a model artifact on "
            "its own test period."
        )
    results = evaluate_artifact(opened, test, models=names(models), new_items_only=not all_items)
    if as_json:
        typer.echo(json.dumps(results))
        return
    table = metric_table(f"{artifact} on {test_file}")
    for name, values in results.items():
        table.add_row(name, *(f"{values[m]:.4f}" for m in SHORT_NAMES))
    console.print(table)


def promote(
    version: Annotated[str, typer.Argument(help="Registered model version to promote.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
    registered_model: Annotated[str, typer.Option(help="Registered model name.")] = "member-recsys",
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
    events_url: Annotated[
        str | None,
        typer.Option(
            envvar="RECSYS_EVENTS_URL",
            help="The event store whose audit log records the promotion (default: the one "
            "serving uses, SQLite under data/serving/).",
        ),
    ] = None,
) -> None:
    """Move a registry alias (default: champion) to a model version by hand, whatever the
    automatic promotion decided when it was registered. Recorded in the audit log."""
    from training.tracking import promote as move_alias

    target = f"{registered_model}@{alias} -> version {version}"
    with audited_command(events_url, "promote", target) as (_, audit):
        audit.detail["automatic"] = False
        reason = move_alias(
            version, registered_model=registered_model, alias=alias, tracking_uri=tracking_uri
        )
    console.print(f"{registered_model}@{alias} -> version {version}")
    if reason:
        console.print(f"At registration it was judged: {reason}", markup=False, highlight=False)
