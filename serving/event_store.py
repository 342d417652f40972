"""The event store: what members did (events) and what they were shown (served lists).

SQLAlchemy Core over SQLite by default, PostgreSQL by URL; the schema is created on start
(``IF NOT EXISTS``, and on PostgreSQL behind an advisory lock, so that several workers or
replicas starting together do not race).

* ``recsys_events``: one row per posted event, ``event_id`` unique, so that a retried event
  is stored once (``INSERT ... ON CONFLICT DO NOTHING``). Indexed by (member, time the event
  occurred): every recommendation request reads the member's events that occurred after the
  artifact's data ended (its ``data_end``), which is how fresh behaviour shapes the next
  answer in every worker, however long after its data the artifact was built or loaded.
* ``recsys_served``: one row per served list (its recommendation id, variant, model, version,
  the member's segment, how many items), written in batches from memory; clicks and
  purchases join it through ``recommendation_id`` for the CTR report.
* ``recsys_reload_requests``: one row per ``POST /v1/admin/reload``, which reaches one worker;
  every other worker (and replica) sharing the store sees the newest row and reloads too.
* ``recsys_campaigns`` and ``recsys_campaign_sends``: the campaign ledger
  (:mod:`training.campaigns.ledger`). A row per campaign export (its id, family and send time),
  and a row per member of it, treated or held out, with the items (joined by
  :data:`ITEM_SEPARATOR`) and the offer. A send names its campaign by the campaign row's
  integer key, so that a million sends do not each repeat the campaign's id, family and time.
  Sends are indexed by (member, campaign) for the frequency caps of the next export, and by
  campaign for its report.
* ``recsys_erasures``: one row per member erased on request (:mod:`serving.erasure`): every
  worker stops answering with what the artifact knows of them, exports leave them out, and the
  next ``recsys train`` drops their rows from its input. Keyed by member id: an erasure is
  recorded once.
* ``recsys_audit``: one row per admin or write action (:mod:`serving.audit`): who (an API
  key's id, never the key, or the command line's user), what, when, and the outcome.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the
process being killed (``kill -9``); only a power loss or kernel crash can lose the last
commits (``RECSYS_EVENTS_URL`` on PostgreSQL when that matters). Times are UTC epoch seconds.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    case,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateIndex, CreateTable

from features import columns as col
from features.errors import ConfigError
from training.campaigns.ledger import (
    GROUPS,
    ITEM_SEPARATOR,
    SEND_SCHEMA,
    CampaignSend,
)

__all__ = [
    "AUDIT",
    "CAMPAIGNS",
    "CAMPAIGN_SENDS",
    "ERASURES",
    "EVENTS",
    "RELOAD_REQUESTS",
    "SERVED",
    "CtrCounts",
    "EventStore",
    "StoredEvent",
]

_ID = 128

metadata = MetaData()

EVENTS = Table(
    "recsys_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(_ID), nullable=False, unique=True),
    Column("event", String(16), nullable=False),
    Column("member_id", String(_ID), nullable=False),
    Column("item_id", String(_ID), nullable=False),
    Column("recommendation_id", String(_ID), nullable=True, index=True),
    Column("occurred_at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_recsys_events_member_occurred", "member_id", "occurred_at"),
)
#: The index of live history before it followed the time events occurred; dropped at start
#: (stores created by earlier versions), since no query reads it any more.
_RETIRED_INDEXES = ("ix_recsys_events_member_received",)

SERVED = Table(
    "recsys_served",
    metadata,
    Column("recommendation_id", String(_ID), primary_key=True),
    Column("served_at", Float, nullable=False, index=True),
    Column("day", String(10), nullable=False),
    Column("member_id", String(_ID), nullable=True),
    Column("item_id", String(_ID), nullable=True),
    Column("variant", String(64), nullable=False),
    Column("model", String(64), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("segment", String(64), nullable=True),
    Column("fallback", Boolean, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("item_ids", Text, nullable=False),
)

RELOAD_REQUESTS = Table(
    "recsys_reload_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requested_at", Float, nullable=False),
    #: The variant asked for; null for all of them.
    Column("variant", String(64), nullable=True),
)

CAMPAIGNS = Table(
    "recsys_campaigns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(_ID), nullable=False, unique=True),
    Column("family", String(64), nullable=False),
    Column("sent_at", Float, nullable=False),
)
CAMPAIGN_SENDS = Table(
    "recsys_campaign_sends",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign", Integer, ForeignKey(CAMPAIGNS.c.id), nullable=False, index=True),
    Column("member_id", String(_ID), nullable=False),
    #: ``treatment`` or ``holdout`` (``group`` is an SQL keyword).
    Column("send_group", String(16), nullable=False),
    Column("items", Text, nullable=False),
    Column("offer_id", String(_ID), nullable=True),
    Column("offer_reason", Text, nullable=True),
    Index("ix_recsys_campaign_sends_member_campaign", "member_id", "campaign"),
)
ERASURES = Table(
    "recsys_erasures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(_ID), nullable=False, unique=True),
    Column("erased_at", Float, nullable=False),
    #: Who asked (:func:`serving.audit.key_actor` or :func:`serving.audit.cli_actor`).
    Column("actor", String(_ID), nullable=False),
    #: What the erasure deleted: events, campaign sends, and served lists it unlinked.
    Column("events_deleted", Integer, nullable=False),
    Column("sends_deleted", Integer, nullable=False),
    Column("served_unlinked", Integer, nullable=False),
)

AUDIT = Table(
    "recsys_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("actor", String(_ID), nullable=False),
    Column("action", String(64), nullable=False, index=True),
    #: What the action was on (a variant, a model version, a campaign), when it names one.
    Column("target", Text, nullable=True),
    #: ``ok``, ``refused`` (the caller's request was wrong or not allowed) or ``failed``.
    Column("outcome", String(16), nullable=False),
    #: A JSON object of what else the action reports (counts, versions, the error).
    Column("detail", Text, nullable=False),
)

#: The advisory lock key that serialises schema creation on PostgreSQL (any constant of ours).
_SCHEMA_LOCK = 0x7265637379730001
#: Member ids per ledger query: under SQLite's oldest limit of bound parameters (999).
_LEDGER_QUERY_MEMBERS = 900

_DIALECT_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
)

#: The report groups served lists by one of these columns.
GROUP_COLUMNS = {
    "model": SERVED.c.model,
    "variant": SERVED.c.variant,
    "segment": SERVED.c.segment,
    "day": SERVED.c.day,
}


@dataclass(frozen=True)
class StoredEvent:
    """A member's event as live history reads it."""

    member_id: str
    item_id: str
    event: str
    occurred_at: float


@dataclass(frozen=True)
class CtrCounts:
    """Counts of one report group."""

    key: str | None
    impressions: int
    clicks: int
    conversions: int
    #: The UTC day the lists were served, when the counts are per day too.
    day: str | None = None


class EventStore:
    """Reads and writes of its tables (the campaign ledger too); every method is synchronous
    (callers decide which thread runs it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect not in _DIALECT_INSERTS:
            raise ConfigError(
                f"the event store supports SQLite and PostgreSQL, not {self.dialect!r} "
                "(RECSYS_EVENTS_URL)"
            )
        insert = _DIALECT_INSERTS[self.dialect]
        self._insert_events = (
            insert(EVENTS).on_conflict_do_nothing(index_elements=[EVENTS.c.event_id])
            .returning(EVENTS.c.event_id)
        )  # fmt: skip
        self._insert_campaign = insert(CAMPAIGNS).on_conflict_do_nothing(
            index_elements=[CAMPAIGNS.c.campaign_id]
        )
        self._insert_served = insert(SERVED).on_conflict_do_nothing(
            index_elements=[SERVED.c.recommendation_id]
        )
        columns = (EVENTS.c.member_id, EVENTS.c.item_id, EVENTS.c.event, EVENTS.c.occurred_at)
        newer = EVENTS.c.occurred_at > bindparam("since")
        # One member (every page view) is an equality on the index; a batch an IN list.
        oldest_first = (EVENTS.c.occurred_at, EVENTS.c.id)
        self._one_member = (
            select(*columns)
            .where(EVENTS.c.member_id == bindparam("member"), newer)
            .order_by(*oldest_first)
        )
        self._members = (
            select(*columns)
            .where(EVENTS.c.member_id.in_(bindparam("members", expanding=True)), newer)
            .order_by(*oldest_first)
        )
        # On SQLite the two hot statements, the one-member read (every page view) and the
        # served-lists insert, go straight to the driver on a connection each thread keeps:
        # a read costs about 5 µs against 40 through SQLAlchemy's pool and result layers.
        # Each statement reads the latest committed data (WAL).
        self._connections = threading.local()
        self._connection_list: list[Any] = []
        self._connections_lock = threading.Lock()

    @classmethod
    def open(cls, url: str) -> EventStore:
        """Connect to ``url`` and create the schema if it is missing."""
        parsed = make_url(url)
        options: dict[str, Any] = {"pool_pre_ping": parsed.get_backend_name() != "sqlite"}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"check_same_thread": False, "timeout": 10}
        engine = create_engine(parsed, **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        store.create_schema()
        return store

    def create_schema(self) -> None:
        """Create what is missing. On PostgreSQL behind a transaction-scoped advisory lock:
        ``CREATE TABLE IF NOT EXISTS`` is not safe against itself there, and replicas or
        workers starting together would race (a unique violation in ``pg_type``)."""
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                connection.execute(lock, {"key": _SCHEMA_LOCK})
            legacy = _rename_legacy_ledger(connection)
            for table in metadata.sorted_tables:
                connection.execute(CreateTable(table, if_not_exists=True))
                for index in sorted(table.indexes, key=lambda index: str(index.name)):
                    connection.execute(CreateIndex(index, if_not_exists=True))
            for retired in _RETIRED_INDEXES:
                connection.execute(text(f"DROP INDEX IF EXISTS {retired}"))
            if legacy:
                _move_legacy_ledger(connection)

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connection_list:
                connection.close()
            self._connection_list.clear()
        self.engine.dispose()

    # -- events ------------------------------------------------------------------------------

    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        """Store events in one committed transaction; returns the event ids that were new
        (a repeat of a stored event_id is left as it was)."""
        if not rows:
            return set()
        with self.engine.begin() as connection:
            stored = connection.execute(self._insert_events, list(rows)).scalars().all()
        return set(stored)

    def member_events(self, member_ids: Sequence[str], since: float) -> list[StoredEvent]:
        """Events of ``member_ids`` that occurred after ``since`` (epoch seconds), oldest
        first. On SQLite the member list is one JSON parameter (``json_each``): an expanding
        list of bound ids costs SQLAlchemy a compiled name per id, seconds over a million."""
        if self.dialect == "sqlite":
            if len(member_ids) == 1:
                return self._sqlite_member_events(member_ids[0], since)
            parameters = (json.dumps(list(member_ids)), since)
            with self.engine.connect() as pooled:
                try:
                    rows = pooled.connection.driver_connection.execute(
                        _MEMBERS_SQL, parameters
                    ).fetchall()
                except sqlite3.Error as error:
                    raise OperationalError(_MEMBERS_SQL, parameters, error) from error
            return [StoredEvent(*row) for row in rows]
        if len(member_ids) == 1:
            statement, parameters = self._one_member, {"member": member_ids[0], "since": since}
        else:
            statement, parameters = self._members, {"members": list(member_ids), "since": since}
        with self.engine.connect() as connection:
            rows = connection.execute(statement, parameters).all()
        return [StoredEvent(*row) for row in rows]

    def _sqlite_member_events(self, member_id: str, since: float) -> list[StoredEvent]:
        try:
            rows = self._local_connection().execute(_ONE_MEMBER_SQL, (member_id, since)).fetchall()
        except sqlite3.Error as error:  # the same exception type as SQLAlchemy's reads raise
            raise OperationalError(_ONE_MEMBER_SQL, (member_id, since), error) from error
        return [StoredEvent(*row) for row in rows]

    def _local_connection(self) -> Any:
        """This thread's own SQLite connection (the pool's, so with the same pragmas)."""
        connection = getattr(self._connections, "connection", None)
        if connection is None:
            connection = self._connections.connection = self.engine.raw_connection()
            with self._connections_lock:
                self._connection_list.append(connection)
        return connection

    # -- reload requests ---------------------------------------------------------------------

    def request_reload(self, variant: str | None) -> int:
        """Record a reload asked for ``variant`` (None: all); returns its number."""
        with self.engine.begin() as connection:
            inserted = connection.execute(
                RELOAD_REQUESTS.insert().values(requested_at=time.time(), variant=variant)
            )
            return int(inserted.inserted_primary_key[0])

    def reload_requests_after(self, seen: int) -> list[tuple[int, str | None]]:
        """(number, variant) of every reload request after number ``seen``, oldest first."""
        return self._numbered_after(RELOAD_REQUESTS.c.id, RELOAD_REQUESTS.c.variant, seen)

    def erasures_after(self, seen: int) -> list[tuple[int, str]]:
        """(number, member id) of every erasure after number ``seen``, oldest first."""
        return self._numbered_after(ERASURES.c.id, ERASURES.c.member_id, seen)

    def _numbered_after(self, number: Column, value: Column, seen: int) -> list[tuple[int, Any]]:
        """(number, value) of the rows numbered after ``seen``, oldest first: what the workers
        follow of each other (:mod:`serving.following`)."""
        query = select(number, value).where(number > seen).order_by(number)
        with self.engine.connect() as connection:
            return [
                (int(row_number), row_value) for row_number, row_value in connection.execute(query)
            ]

    def last_reload_request(self) -> int:
        """The number of the newest reload request (0 when there is none)."""
        with self.engine.connect() as connection:
            newest = connection.execute(select(func.max(RELOAD_REQUESTS.c.id))).scalar()
        return int(newest or 0)

    # -- served lists and the report -----------------------------------------------------------

    def add_served(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record served lists (a repeat of a recommendation id is ignored). Each row's UTC
        ``day`` (the report's grouping) is worked out here, off the request path."""
        if not rows:
            return
        dated = [{**row, "day": _utc_day(row["served_at"])} for row in rows]
        if self.dialect == "sqlite":
            self._sqlite_add_served(dated)
            return
        with self.engine.begin() as connection:
            connection.execute(self._insert_served, dated)

    def _sqlite_add_served(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """The same insert straight through the driver: SQLAlchemy's per-row parameter
        processing cost more CPU than SQLite's own insert at storefront rates."""
        connection = self._local_connection()
        values = [tuple(row[name] for name in _SERVED_COLUMNS) for row in rows]
        try:
            connection.executemany(_INSERT_SERVED_SQL, values)
            connection.commit()
        except sqlite3.Error as error:
            connection.rollback()
            raise OperationalError(_INSERT_SERVED_SQL, values[:1], error) from error

    def ctr_counts(
        self, group_by: str, start: float | None, end: float | None, *, by_day: bool = False
    ) -> list[CtrCounts]:
        """Impressions, clicks and conversions per group of lists served in [start, end), and
        per UTC day of serving too when ``by_day``.

        A click or purchase counts once per (list, item), however often it was posted, and
        only when it quotes the recommendation id of a served list.
        """
        group = GROUP_COLUMNS[group_by]
        keys = (group, SERVED.c.day) if by_day else (group,)
        in_range = []
        if start is not None:
            in_range.append(SERVED.c.served_at >= start)
        if end is not None:
            in_range.append(SERVED.c.served_at < end)
        impressions = select(*keys, func.sum(SERVED.c.n_items)).where(*in_range).group_by(*keys)
        outcomes = (
            select(EVENTS.c.recommendation_id, EVENTS.c.item_id, EVENTS.c.event)
            .where(EVENTS.c.event.in_((col.CLICK, col.PURCHASE)))
            .where(EVENTS.c.recommendation_id.is_not(None))
            .distinct()
            .subquery()
        )
        attributed = (
            select(
                *keys,
                func.sum(case((outcomes.c.event == col.CLICK, 1), else_=0)),
                func.sum(case((outcomes.c.event == col.PURCHASE, 1), else_=0)),
            )
            .select_from(
                outcomes.join(SERVED, outcomes.c.recommendation_id == SERVED.c.recommendation_id)
            )
            .where(*in_range)
            .group_by(*keys)
        )
        with self.engine.connect() as connection:
            width = len(keys)  # (group, day) per day, else (group,) and no day
            shown = {
                (row[0], row[1] if by_day else None): int(row[width] or 0)
                for row in connection.execute(impressions)
            }
            acted = {
                (row[0], row[1] if by_day else None): (
                    int(row[width] or 0),
                    int(row[width + 1] or 0),
                )
                for row in connection.execute(attributed)
            }
        return [
            CtrCounts(key, shown[key, on], *acted.get((key, on), (0, 0)), day=on)
            for key, on in sorted(
                shown, key=lambda pair: (pair[0] is None, pair[0] or "", pair[1] or "")
            )
        ]

    # -- the campaign ledger (training.campaigns.ledger.CampaignLedger) -------------------------

    def record(self, sends: Sequence[CampaignSend]) -> None:
        """Store campaign sends in one committed transaction."""
        self.record_frame(
            pl.DataFrame(
                [
                    (
                        send.campaign_id,
                        send.family,
                        send.member_id,
                        send.group,
                        list(send.items),
                        send.offer_id,
                        send.sent_at,
                        send.offer_reason,
                    )
                    for send in sends
                ],
                schema=SEND_SCHEMA,
                orient="row",
            )
        )

    def record_frame(self, sends: pl.DataFrame) -> None:
        """Store sends given as a table (:data:`training.campaigns.ledger.SEND_SCHEMA`) in one
        committed transaction, each campaign's row first if it is new (its family and time
        from its first send). Safe from any thread: each call checks out a pooled connection
        (an export writes on a thread of its own, beside its answering).

        On SQLite the sends go in as one JSON document that SQLite unpacks itself
        (``json_each``): one statement, during which the driver lets go of Python's lock,
        where a bound row at a time would hold it for every row of a million."""
        if not sends.height:
            return
        with self.engine.connect() as pooled:
            try:
                keys = self._campaign_keys(pooled, sends)
                rows = sends.select(
                    pl.col("campaign_id").replace_strict(keys, return_dtype=pl.Int64)
                    .alias("campaign"),
                    pl.col("member_id"), pl.col("group"),
                    pl.col("items").list.join(ITEM_SEPARATOR), pl.col("offer_id"),
                    pl.col("offer_reason"),
                )  # fmt: skip
                if self.dialect == "sqlite":
                    pooled.connection.driver_connection.execute(
                        _INSERT_SENDS_SQL, (rows.write_json(),)
                    )
                else:
                    pooled.execute(
                        CAMPAIGN_SENDS.insert(),
                        [dict(zip(_SEND_COLUMNS, row, strict=True)) for row in rows.rows()],
                    )
                pooled.commit()
            except sqlite3.Error as error:
                pooled.rollback()
                raise OperationalError(_INSERT_SENDS_SQL, (), error) from error

    def _campaign_keys(self, connection: Connection, sends: pl.DataFrame) -> dict[str, int]:
        """The integer key of each campaign of ``sends``, its row inserted if new."""
        campaigns = sends.select("campaign_id", "family", "sent_at").unique(
            "campaign_id", keep="first", maintain_order=True
        )
        connection.execute(self._insert_campaign, campaigns.to_dicts())
        ids = campaigns.get_column("campaign_id").to_list()
        found = connection.execute(
            select(CAMPAIGNS.c.campaign_id, CAMPAIGNS.c.id).where(CAMPAIGNS.c.campaign_id.in_(ids))
        )
        return {campaign_id: key for campaign_id, key in found}

    def latest_sent_at(self) -> float | None:
        """When the newest campaign was sent (None: none yet)."""
        with self.engine.connect() as connection:
            latest = connection.execute(select(func.max(CAMPAIGNS.c.sent_at))).scalar()
        return float(latest) if latest is not None else None

    def frequent_members(
        self, *, member_ids: Sequence[str], since: float, at_least: int
    ) -> list[str]:
        """The members with ``at_least`` treatment sends at or after ``since``, counted by the
        database (only the capped come back): on SQLite in one statement, elsewhere a bounded
        chunk of members per query."""
        found: list[str] = []
        with self.engine.connect() as connection:
            if self.dialect == "sqlite":
                parameters = (json.dumps(list(member_ids)), since, at_least)
                try:
                    cursor = connection.connection.driver_connection.execute(
                        _FREQUENT_MEMBERS_SQL, parameters
                    )
                    return [member for (member,) in cursor.fetchall()]
                except sqlite3.Error as error:
                    raise OperationalError(_FREQUENT_MEMBERS_SQL, parameters, error) from error
            for chunk in _chunks(member_ids):
                query = (
                    select(CAMPAIGN_SENDS.c.member_id)
                    .select_from(_SENDS_JOIN)
                    .where(
                        CAMPAIGN_SENDS.c.member_id.in_(chunk), CAMPAIGNS.c.sent_at >= since,
                        CAMPAIGN_SENDS.c.send_group == "treatment",
                    )
                    .group_by(CAMPAIGN_SENDS.c.member_id)
                    .having(func.count() >= at_least)
                )  # fmt: skip
                found.extend(connection.execute(query).scalars())
        return found

    def sent_items(self, *, member_ids: Sequence[str], family: str, since: float) -> pl.DataFrame:
        """``member_id`` and ``items`` of the treatment sends of ``family`` to ``member_ids``
        at or after ``since``, on a pooled connection (an export reads ahead on a thread of
        its own). On SQLite one statement whose answer is one JSON document, built by SQLite
        and parsed by Polars; elsewhere a bounded chunk of members per query."""
        schema = {"member_id": pl.Utf8, "items": pl.Utf8}
        with self.engine.connect() as pooled:
            if self.dialect == "sqlite":
                parameters = (json.dumps(list(member_ids)), family, since)
                try:
                    cursor = pooled.connection.driver_connection.execute(
                        _SENT_ITEMS_SQL, parameters
                    )
                    (document,) = cursor.fetchone()
                except sqlite3.Error as error:
                    raise OperationalError(_SENT_ITEMS_SQL, parameters, error) from error
                frame = pl.read_json(io.StringIO(document), schema=schema)
            else:
                rows: list[Any] = []
                for chunk in _chunks(member_ids):
                    query = (
                        select(CAMPAIGN_SENDS.c.member_id, CAMPAIGN_SENDS.c["items"])
                        .select_from(_SENDS_JOIN)
                        .where(
                            CAMPAIGN_SENDS.c.member_id.in_(chunk), CAMPAIGNS.c.family == family,
                            CAMPAIGNS.c.sent_at >= since,
                            CAMPAIGN_SENDS.c.send_group == "treatment",
                        )
                    )  # fmt: skip
                    rows.extend(pooled.execute(query).all())
                frame = pl.DataFrame(rows, schema=schema, orient="row")
        return frame.with_columns(_split_items(pl.col("items")).alias("items"))

    def sends(
        self,
        *,
        campaign_id: str | None = None,
        family: str | None = None,
        member_ids: Sequence[str] | None = None,
        since: float | None = None,
    ) -> list[CampaignSend]:
        """The sends matching every filter given (``since``: sent at or after), oldest first;
        a member list is read a bounded chunk per query."""
        where = []
        if campaign_id is not None:
            where.append(CAMPAIGNS.c.campaign_id == campaign_id)
        if family is not None:
            where.append(CAMPAIGNS.c.family == family)
        if since is not None:
            where.append(CAMPAIGNS.c.sent_at >= since)
        query = _SENDS_QUERY.where(*where)
        chunks: list[Sequence[str] | None] = (
            [None] if member_ids is None else list(_chunks(member_ids))
        )
        rows: list[Any] = []
        with self.engine.connect() as connection:
            for chunk in chunks:
                chosen = (
                    query if chunk is None else query.where(CAMPAIGN_SENDS.c.member_id.in_(chunk))
                )
                rows.extend(connection.execute(chosen).all())
        rows.sort(key=lambda row: (row[6], row[-1]))  # sent at, then as recorded
        return [
            CampaignSend(
                campaign_id, family_name, member_id, group,
                tuple(items.split(ITEM_SEPARATOR)) if items else (), offer_id, sent_at,
                offer_reason,
            )
            for (
                campaign_id, family_name, member_id, group, items, offer_id, sent_at,
                offer_reason, _,
            ) in rows
        ]  # fmt: skip

    def campaigns(self) -> list[dict[str, Any]]:
        """One row per campaign (``campaign_id``, ``family``, ``created_at``: when it was
        sent, ``counts``: sends per group), oldest first."""
        sends = CAMPAIGN_SENDS
        per_group = [
            func.sum(case((sends.c.send_group == group, 1), else_=0)).label(group)
            for group in GROUPS
        ]
        query = (
            select(CAMPAIGNS.c.campaign_id, CAMPAIGNS.c.family, CAMPAIGNS.c.sent_at, *per_group)
            .select_from(CAMPAIGNS.outerjoin(sends, sends.c.campaign == CAMPAIGNS.c.id))
            .group_by(CAMPAIGNS.c.id, CAMPAIGNS.c.campaign_id, CAMPAIGNS.c.family)
            .order_by(CAMPAIGNS.c.sent_at, CAMPAIGNS.c.campaign_id)
        )
        with self.engine.connect() as connection:
            return [
                {
                    "campaign_id": row[0],
                    "family": row[1],
                    "created_at": float(row[2]),
                    "counts": {group: int(row[3 + i] or 0) for i, group in enumerate(GROUPS)},
                }
                for row in connection.execute(query)
            ]

    def discard(self, campaign_id: str) -> int:
        """Delete ``campaign_id`` and every send of it; returns how many sends there were."""
        key = select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.campaign_id == campaign_id)
        with self.engine.begin() as connection:
            deleted = connection.execute(
                CAMPAIGN_SENDS.delete().where(CAMPAIGN_SENDS.c.campaign.in_(key.scalar_subquery()))
            )
            connection.execute(CAMPAIGNS.delete().where(CAMPAIGNS.c.campaign_id == campaign_id))
        return int(deleted.rowcount)


def _chunks(member_ids: Sequence[str]) -> Iterator[list[str]]:
    """``member_ids`` a bounded number at a time, for queries that bind each id."""
    for start in range(0, len(member_ids), _LEDGER_QUERY_MEMBERS):
        yield list(member_ids[start : start + _LEDGER_QUERY_MEMBERS])


def _split_items(items: pl.Expr) -> pl.Expr:
    """The stored joined item ids as a list (an empty string: no items)."""
    return (
        pl.when(items == "")
        .then(pl.lit([], dtype=pl.List(pl.Utf8)))
        .otherwise(items.str.split(ITEM_SEPARATOR))
    )


def _utc_day(epoch_seconds: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_seconds))


_SERVED_COLUMNS = tuple(column.name for column in SERVED.columns)
_INSERT_SERVED_SQL = (
    f"INSERT INTO {SERVED.name} ({', '.join(_SERVED_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_SERVED_COLUMNS))}) "
    "ON CONFLICT (recommendation_id) DO NOTHING"
)
_SEND_COLUMNS = ("campaign", "member_id", "send_group", "items", "offer_id", "offer_reason")
_INSERT_SENDS_SQL = (
    f"INSERT INTO {CAMPAIGN_SENDS.name} ({', '.join(_SEND_COLUMNS)}) SELECT "
    + ", ".join(
        f"json_extract(value, '$.{field}')"
        for field in ("campaign", "member_id", "group", "items", "offer_id", "offer_reason")
    )
    + " FROM json_each(?)"
)
_SENDS_JOIN = CAMPAIGN_SENDS.join(CAMPAIGNS, CAMPAIGN_SENDS.c.campaign == CAMPAIGNS.c.id)
_SENDS_QUERY = select(
    CAMPAIGNS.c.campaign_id, CAMPAIGNS.c.family, CAMPAIGN_SENDS.c.member_id,
    CAMPAIGN_SENDS.c.send_group, CAMPAIGN_SENDS.c["items"], CAMPAIGN_SENDS.c.offer_id,
    CAMPAIGNS.c.sent_at, CAMPAIGN_SENDS.c.offer_reason, CAMPAIGN_SENDS.c.id,
).select_from(_SENDS_JOIN)  # fmt: skip
_FREQUENT_MEMBERS_SQL = (
    f"SELECT s.member_id FROM {CAMPAIGN_SENDS.name} AS s JOIN {CAMPAIGNS.name} AS c "
    "ON c.id = s.campaign WHERE s.member_id IN (SELECT value FROM json_each(?)) "
    "AND c.sent_at >= ? AND s.send_group = 'treatment' GROUP BY s.member_id "
    "HAVING count(*) >= ?"
)
_SENT_ITEMS_SQL = (
    "SELECT coalesce(json_group_array(json_object('member_id', s.member_id, 'items', s.items)), "
    f"'[]') FROM {CAMPAIGN_SENDS.name} AS s JOIN {CAMPAIGNS.name} AS c ON c.id = s.campaign "
    "WHERE s.member_id IN (SELECT value FROM json_each(?)) AND c.family = ? AND c.sent_at >= ? "
    "AND s.send_group = 'treatment'"
)
#: The ledger's first format, one table with the campaign's id, family and time on every send:
#: renamed aside at start, its rows moved into the two tables, then dropped.
_LEGACY_LEDGER = "recsys_campaign_sends_legacy"
_ONE_MEMBER_SQL = (
    f"SELECT member_id, item_id, event, occurred_at FROM {EVENTS.name} "
    "WHERE member_id = ? AND occurred_at > ? ORDER BY occurred_at, id"
)
_MEMBERS_SQL = (
    f"SELECT member_id, item_id, event, occurred_at FROM {EVENTS.name} "
    "WHERE member_id IN (SELECT value FROM json_each(?)) AND occurred_at > ? "
    "ORDER BY occurred_at, id"
)


def _rename_legacy_ledger(connection: Connection) -> bool:
    """Set a ledger of the first format aside (True: there was one to move)."""
    inspector = inspect(connection)
    if not inspector.has_table(CAMPAIGN_SENDS.name):
        return False
    columns = {column["name"] for column in inspector.get_columns(CAMPAIGN_SENDS.name)}
    if "campaign_id" not in columns:
        return False
    for index in inspector.get_indexes(CAMPAIGN_SENDS.name):
        connection.execute(text(f"DROP INDEX IF EXISTS {index['name']}"))
    connection.execute(text(f"ALTER TABLE {CAMPAIGN_SENDS.name} RENAME TO {_LEGACY_LEDGER}"))
    return True


def _move_legacy_ledger(connection: Connection) -> None:
    """Move the set-aside ledger's rows into the two tables, keeping their order."""
    connection.execute(
        text(
            f"INSERT INTO {CAMPAIGNS.name} (campaign_id, family, sent_at) "
            f"SELECT campaign_id, min(family), min(sent_at) FROM {_LEGACY_LEDGER} "
            "GROUP BY campaign_id ORDER BY min(sent_at), campaign_id"
        )
    )
    connection.execute(
        text(
            f"INSERT INTO {CAMPAIGN_SENDS.name} "
            "(campaign, member_id, send_group, items, offer_id) "
            "SELECT c.id, old.member_id, old.send_group, old.items, old.offer_id "
            f"FROM {_LEGACY_LEDGER} AS old JOIN {CAMPAIGNS.name} AS c "
            "ON c.campaign_id = old.campaign_id ORDER BY old.id"
        )
    )
    connection.execute(text(f"DROP TABLE {_LEGACY_LEDGER}"))


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL (readers never wait for the writer), NORMAL sync (commits survive a killed
    process), and a busy timeout so that several workers writing take turns."""
    cursor = connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()
