"""``recsys export``: campaign files of recommendations, bundles or buy-again lists for every
member, a list of members or a segment, streamed from a model artifact (and the live events
since its data)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer

from cli.options import ArtifactOption, artifact_pseudonyms, open_artifact
from cli.render import console, counting_bar, err_console
from features import columns as col
from features.errors import ConfigError

if TYPE_CHECKING:
    from features.pseudonyms import MemberPseudonyms
    from serving.event_store import EventStore
    from training.artifact import ModelArtifact
    from training.roster import Roster
    from training.targeting import ScoreThresholds

__all__ = [
    "campaign_members",
    "event_store_session",
    "export",
    "open_event_store",
    "read_member_ids",
    "require_kind",
]


KindOption = Annotated[
    str,
    typer.Option(
        help="recommendations (one row per item), bundles (one per bundle) or buy-again "
        "(one per past item due again, most due first)."
    ),
]
CountOption = Annotated[
    int, typer.Option("--n", "-n", min=1, max=1000, help="Items (or bundles) per member.")
]
MembersOption = Annotated[
    Path | None,
    typer.Option(help="Only these members: a CSV/Parquet with member_id, or one id a line."),
]
SegmentOption = Annotated[
    str | None, typer.Option(help="Only the model artifact's members of this segment.")
]
MinChurnRiskOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Only members whose churn risk (as scored at training) is at least this.",
    ),
]
MinExpectedValueOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        help="Only members whose expected spend over the scores' horizon is at least this.",
    ),
]
ModelOption = Annotated[str | None, typer.Option(help="Model name (default: the chosen one).")]
AsOfOption = Annotated[
    datetime | None,
    typer.Option(
        help="buy-again: judge due dates as of this time (UTC; e.g. the send date; not "
        "before the data's end). Default: each member's latest live event, else the "
        "data's end, as the API judges them.",
    ),
]
BatchOption = Annotated[int, typer.Option(min=1, help="Members answered at once.")]
EventsUrlOption = Annotated[
    str | None,
    typer.Option(
        envvar="RECSYS_EVENTS_URL",
        help="Event store whose events after the model artifact's data_end the lists take "
        "in, as the API does (default: the one serving uses, SQLite under data/serving/; "
        "none there: the model artifact alone).",
    ),
]


def export(
    artifact: ArtifactOption,
    out: Annotated[Path, typer.Option(help="Output file (.csv or .parquet), written whole.")],
    kind: KindOption = "recommendations",
    n: CountOption = 10,
    members: MembersOption = None,
    segment: SegmentOption = None,
    min_churn_risk: MinChurnRiskOption = None,
    min_expected_value: MinExpectedValueOption = None,
    model: ModelOption = None,
    as_of: AsOfOption = None,
    batch: BatchOption = 4096,
    events_url: EventsUrlOption = None,
) -> None:
    """Recommendations, bundles or buy-again lists for every member (or a list, a segment, or
    the members whose churn risk and expected value pass thresholds: a win-back campaign),
    streamed to a file in batches: memory holds one batch, whatever the number of members."""
    from serving.erasure import erased_member_ids
    from training.export import export_members
    from training.roster import Roster
    from training.targeting import ScoreThresholds

    require_kind(kind)
    opened = open_artifact(artifact)
    roster = Roster(opened)
    thresholds = ScoreThresholds(min_churn_risk, min_expected_value)
    chosen = campaign_members(opened, roster, members, segment, thresholds)
    total = len(opened.member_ids) + len(roster) if chosen is None else len(chosen)
    with event_store_session(events_url) as store, counting_bar("exporting", total) as bar:
        summary = export_members(
            opened, out, kind=kind, n=n, member_ids=chosen, model=model,  # type: ignore[arg-type]
            batch=batch, events=store, progress=bar.advance, as_of=as_of,
            erased=erased_member_ids(store) if store is not None else (),
        )  # fmt: skip
    answered = (
        "nothing to buy again unless they bought since"
        if kind == "buy-again"
        else "popularity, flagged fallback"
    )
    unknown = (
        f" ({summary.unknown_members:,} without history in the model artifact: {answered})"
        if summary.unknown_members
        else ""
    )
    live = "" if store is None else f"; {summary.live_members:,} with events since its data"
    if summary.erased_members:
        live += f"; {summary.erased_members:,} erased on request left out"
    console.print(
        f"{summary.rows:,} rows for {summary.members:,} members{unknown}{live} written to {out} "
        f"in {summary.seconds:.2f} s"
    )


def require_kind(kind: str) -> None:
    """Refuse a ``--kind`` the export does not know, naming those it does."""
    from training.export import EXPORT_KINDS

    if kind not in EXPORT_KINDS:
        known = ", ".join(repr(name) for name in EXPORT_KINDS)
        raise ConfigError(f"--kind: {kind!r} is not one of {known}")


def open_event_store(url: str | None, *, create: bool = False) -> EventStore | None:
    """The event store at ``url``, else serving's default one; None when it is the default
    and there is none (a campaign machine without a local store answers from the model
    artifact), unless ``create`` (a campaign's ledger must be kept somewhere)."""
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
    if database and database != ":memory:" and not Path(database).is_file() and not create:
        if url is None:
            err_console.print(
                f"no event store at {database}: exporting from the model artifact alone"
            )
            return None
        raise ConfigError(f"--events-url {url}: no such file {database}")
    try:
        return EventStore.open(chosen)
    except event_store_errors() as error:
        raise ConfigError(
            f"--events-url {chosen}: cannot open the event store ({error}); fix the URL or "
            "RECSYS_EVENTS_URL, or start the database"
        ) from None


@contextmanager
def event_store_session(url: str | None, *, create: bool = False) -> Iterator[EventStore | None]:
    """:func:`open_event_store` for the length of a block: closed after it, and a failure of
    the store inside the block (a lost connection, a locked file) turned into an error that
    says what to fix, not a traceback."""
    store = open_event_store(url, create=create)
    try:
        yield store
    except event_store_errors() as error:
        raise ConfigError(
            f"--events-url: the event store failed ({error}); fix the URL or "
            "RECSYS_EVENTS_URL, or start the database"
        ) from None
    finally:
        if store is not None:
            store.close()


def event_store_errors() -> tuple[type[Exception], ...]:
    """What a failing event store raises: SQLAlchemy's errors, or a missing database driver."""
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, ImportError)


def campaign_members(
    artifact: ModelArtifact,
    roster: Roster,
    path: Path | None,
    segment: str | None,
    thresholds: ScoreThresholds,
) -> list[str] | None:
    """The members an export is for: a file's, a segment's (the models' members and the
    model artifact's members without events), those whose scores pass the thresholds (most at
    risk first), the intersection of those given, or all (None)."""
    from training.targeting import members_by_scores

    chosen: list[str] | None = None
    if path is not None:
        chosen = read_member_ids(path, pseudonyms=artifact_pseudonyms(artifact))
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
    if thresholds.any:
        passing = members_by_scores(artifact, thresholds)
        if chosen is None:
            return passing
        wanted = set(chosen)
        chosen = [member for member in passing if member in wanted]
    return chosen


def read_member_ids(
    path: Path, option: str = "--members", *, pseudonyms: MemberPseudonyms | None = None
) -> list[str]:
    """Member ids from a CSV or Parquet file's member_id column, or a text file, one per line;
    each once (in first-seen order), so that a repeated id is one member of the campaign.
    ``option`` names the file in errors; ``pseudonyms`` (those of a pseudonymised artifact,
    :func:`cli.options.artifact_pseudonyms`) turn the retailer's ids into the artifact's."""
    if not path.is_file():
        raise ConfigError(f"{option} {path}: no such file")
    if path.suffix in (".csv", ".parquet"):
        frame = (
            pl.read_parquet(path)
            if path.suffix == ".parquet"
            else pl.read_csv(path, infer_schema=False)
        )
        if col.MEMBER_ID not in frame.columns:
            raise ConfigError(
                f"{option} {path}: no {col.MEMBER_ID!r} column (columns: {frame.columns})"
            )
        ids = frame.get_column(col.MEMBER_ID).cast(pl.Utf8)
    else:
        ids = pl.Series(path.read_text().splitlines(), dtype=pl.Utf8)
    stripped = ids.str.strip_chars()
    given = stripped.filter(stripped.is_not_null() & (stripped != "")).to_list()
    return list(dict.fromkeys(pseudonyms.of_all(given) if pseudonyms is not None else given))
