"""The event store: what members did (events) and what they were shown (served lists).

SQLAlchemy Core over SQLite by default, PostgreSQL by URL; the schema is created on start
(``IF NOT EXISTS``, so that several workers starting together do not race).

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
* ``recsys_campaign_sends``: the campaign ledger (:mod:`training.campaigns.ledger`), one row per
  member of a campaign export, treated or held out, with the items (joined by
  :data:`ITEM_SEPARATOR`). Indexed by (member, time sent) for the frequency caps of the next
  export, and by campaign for its report.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
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
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateIndex, CreateTable

from features import columns as col
from features.errors import ConfigError
from training.campaigns.ledger import (
    GROUPS,
    ITEM_SEPARATOR,
    RECENT_SCHEMA,
    SEND_SCHEMA,
    CampaignSend,
)

__all__ = [
    "CAMPAIGN_SENDS",
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

CAMPAIGN_SENDS = Table(
    "recsys_campaign_sends",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(_ID), nullable=False, index=True),
    Column("family", String(64), nullable=False),
    Column("member_id", String(_ID), nullable=False),
    #: ``treatment`` or ``holdout`` (``group`` is an SQL keyword).
    Column("send_group", String(16), nullable=False),
    Column("items", Text, nullable=False),
    Column("offer_id", String(_ID), nullable=True),
    Column("sent_at", Float, nullable=False),
    Index("ix_recsys_campaign_sends_member_sent", "member_id", "sent_at"),
)
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
        with self.engine.begin() as connection:
            for table in metadata.sorted_tables:
                connection.execute(CreateTable(table, if_not_exists=True))
                for index in sorted(table.indexes, key=lambda index: str(index.name)):
                    connection.execute(CreateIndex(index, if_not_exists=True))
            for retired in _RETIRED_INDEXES:
                connection.execute(text(f"DROP INDEX IF EXISTS {retired}"))

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
        first."""
        if len(member_ids) == 1:
            if self.dialect == "sqlite":
                return self._sqlite_member_events(member_ids[0], since)
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
        query = (
            select(RELOAD_REQUESTS.c.id, RELOAD_REQUESTS.c.variant)
            .where(RELOAD_REQUESTS.c.id > seen)
            .order_by(RELOAD_REQUESTS.c.id)
        )
        with self.engine.connect() as connection:
            return [(int(number), variant) for number, variant in connection.execute(query)]

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
                    )
                    for send in sends
                ],
                schema=SEND_SCHEMA,
                orient="row",
            )
        )

    def record_frame(self, sends: pl.DataFrame) -> None:
        """Store sends given as a table (:data:`training.campaigns.ledger.SEND_SCHEMA`) in one
        committed transaction. Safe from any thread: each call checks out a pooled connection
        (an export writes on a thread of its own, beside its answering).

        On SQLite the whole table goes in as one JSON document that SQLite unpacks itself
        (``json_each``): one statement, during which the driver lets go of Python's lock,
        where a bound row at a time would hold it for every row of a million."""
        if not sends.height:
            return
        joined = sends.with_columns(pl.col("items").list.join(ITEM_SEPARATOR))
        with self.engine.connect() as pooled:
            if self.dialect != "sqlite":
                pooled.execute(
                    CAMPAIGN_SENDS.insert(),
                    [dict(zip(_SEND_COLUMNS, row, strict=True)) for row in joined.rows()],
                )
                pooled.commit()
                return
            connection = pooled.connection.driver_connection
            try:
                connection.execute(_INSERT_SENDS_SQL, (joined.write_json(),))
                connection.commit()
            except sqlite3.Error as error:
                connection.rollback()
                raise OperationalError(_INSERT_SENDS_SQL, (), error) from error

    def send_frame(self, *, member_ids: Sequence[str], since: float) -> pl.DataFrame:
        """The sends to ``member_ids`` at or after ``since`` as a table, on a pooled
        connection (an export reads ahead on a thread of its own). On SQLite one statement
        whose answer is one JSON document, built by SQLite and parsed by Polars; elsewhere a
        bounded chunk of members per query."""
        schema = {**RECENT_SCHEMA, "items": pl.Utf8}
        with self.engine.connect() as pooled:
            if self.dialect == "sqlite":
                parameters = (json.dumps(list(member_ids)), since)
                try:
                    cursor = pooled.connection.driver_connection.execute(
                        _SELECT_SENDS_SQL, parameters
                    )
                    (document,) = cursor.fetchone()
                except sqlite3.Error as error:
                    raise OperationalError(_SELECT_SENDS_SQL, parameters, error) from error
                frame = pl.read_json(io.StringIO(document), schema=schema)
            else:
                rows: list[Any] = []
                for start in range(0, len(member_ids), _LEDGER_QUERY_MEMBERS):
                    chunk = list(member_ids[start : start + _LEDGER_QUERY_MEMBERS])
                    query = select(*(CAMPAIGN_SENDS.c[name] for name in _RECENT_COLUMNS)).where(
                        CAMPAIGN_SENDS.c.member_id.in_(chunk), CAMPAIGN_SENDS.c.sent_at >= since
                    )
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
        table = CAMPAIGN_SENDS
        where = []
        if campaign_id is not None:
            where.append(table.c.campaign_id == campaign_id)
        if family is not None:
            where.append(table.c.family == family)
        if since is not None:
            where.append(table.c.sent_at >= since)
        query = select(*(table.c[name] for name in _SEND_COLUMNS)).where(*where)
        if member_ids is None:
            chunks: list[Sequence[str] | None] = [None]
        else:
            chunks = [
                member_ids[start : start + _LEDGER_QUERY_MEMBERS]
                for start in range(0, len(member_ids), _LEDGER_QUERY_MEMBERS)
            ]
        rows: list[Any] = []
        with self.engine.connect() as connection:
            for chunk in chunks:
                chosen = query if chunk is None else query.where(table.c.member_id.in_(chunk))
                rows.extend(connection.execute(chosen).all())
        rows.sort(key=lambda row: row[-1])
        return [
            CampaignSend(
                campaign_id, family_name, member_id, group,
                tuple(items.split(ITEM_SEPARATOR)) if items else (), offer_id, sent_at,
            )
            for campaign_id, family_name, member_id, group, items, offer_id, sent_at in rows
        ]  # fmt: skip

    def campaigns(self) -> list[dict[str, Any]]:
        """One row per campaign id (``campaign_id``, ``family``, ``created_at``: its first
        send, ``counts``: sends per group), oldest first."""
        table = CAMPAIGN_SENDS
        per_group = [
            func.sum(case((table.c.send_group == group, 1), else_=0)).label(group)
            for group in GROUPS
        ]
        query = (
            select(table.c.campaign_id, table.c.family, func.min(table.c.sent_at), *per_group)
            .group_by(table.c.campaign_id, table.c.family)
            .order_by(func.min(table.c.sent_at), table.c.campaign_id)
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
        """Delete every send of ``campaign_id``; returns how many there were."""
        with self.engine.begin() as connection:
            deleted = connection.execute(
                CAMPAIGN_SENDS.delete().where(CAMPAIGN_SENDS.c.campaign_id == campaign_id)
            )
        return int(deleted.rowcount)


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
_SEND_COLUMNS = (
    "campaign_id", "family", "member_id", "send_group", "items", "offer_id", "sent_at",
)  # fmt: skip
#: The table's columns and the send table's (SEND_SCHEMA) fields they come from.
_SEND_FIELDS = dict(zip(_SEND_COLUMNS, SEND_SCHEMA.names(), strict=True))
_INSERT_SENDS_SQL = (
    f"INSERT INTO {CAMPAIGN_SENDS.name} ({', '.join(_SEND_FIELDS)}) SELECT "
    + ", ".join(f"json_extract(value, '$.{field}')" for field in _SEND_FIELDS.values())
    + " FROM json_each(?)"
)
_RECENT_COLUMNS = ("member_id", "family", "send_group", "items", "sent_at")
_SELECT_SENDS_SQL = (
    "SELECT coalesce(json_group_array(json_object("
    + ", ".join(
        f"'{field}', {column}"
        for column, field in zip(_RECENT_COLUMNS, RECENT_SCHEMA.names(), strict=True)
    )
    + f")), '[]') FROM {CAMPAIGN_SENDS.name} "
    "WHERE member_id IN (SELECT value FROM json_each(?)) AND sent_at >= ?"
)
_ONE_MEMBER_SQL = (
    f"SELECT member_id, item_id, event, occurred_at FROM {EVENTS.name} "
    "WHERE member_id = ? AND occurred_at > ? ORDER BY occurred_at, id"
)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL (readers never wait for the writer), NORMAL sync (commits survive a killed
    process), and a busy timeout so that several workers writing take turns."""
    cursor = connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()
