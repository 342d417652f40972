"""The store on disk: file names, the interactions schema, and the writers of every file.

``planted_bundles.csv`` is the planted truth (which items were bundled), so that bundle mining
can be checked against it; ``store.json`` records the config and the counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.columns import (
    EVENT,
    EVENTS,
    ITEM_ID,
    MEMBER_ID,
    ORDER_ID,
    PRICE,
    QUANTITY,
    TIMESTAMP,
)
from features.synthetic.catalog import Catalog
from features.synthetic.config import StoreConfig
from features.synthetic.members import Members
from features.synthetic.period import PERIOD_END, PERIOD_START
from features.synthetic.sampling import STREAM_EVENTS, random_stream
from features.synthetic.sessions import ChunkEvents, simulate_chunk

__all__ = [
    "BUNDLES_FILE",
    "BUNDLE_ID",
    "BUNDLE_ITEM_IDS",
    "BUNDLE_SIZE",
    "INTERACTIONS_FILE",
    "INTERACTIONS_SCHEMA",
    "ITEMS_FILE",
    "MANIFEST_FILE",
    "MEMBERS_FILE",
    "formatted_ids",
    "id_width",
    "write_bundles",
    "write_interactions",
    "write_manifest",
]

INTERACTIONS_FILE: Final = "interactions.parquet"
ITEMS_FILE: Final = "items.parquet"
MEMBERS_FILE: Final = "members.parquet"
BUNDLES_FILE: Final = "planted_bundles.csv"
MANIFEST_FILE: Final = "store.json"

#: Columns of ``planted_bundles.csv``.
BUNDLE_ID: Final = "bundle_id"
BUNDLE_ITEM_IDS: Final = "item_ids"
BUNDLE_SIZE: Final = "size"

INTERACTIONS_SCHEMA: Final = pa.schema(
    [
        (MEMBER_ID, pa.string()),
        (ITEM_ID, pa.string()),
        (EVENT, pa.string()),
        (TIMESTAMP, pa.timestamp("us")),
        (QUANTITY, pa.int32()),
        (PRICE, pa.float64()),
        (ORDER_ID, pa.string()),
    ]
)


def formatted_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Ids like ``M0000042`` built by arrow kernels (no Python formatting per row); -1 -> null."""
    digits = pa.array(numbers, mask=numbers < 0).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(digits, width, "0"), "")


def id_width(count: int) -> int:
    return len(str(count))


def _events_table(
    events: ChunkEvents, member_ids: pa.Array, item_ids: pa.Array, order_width: int
) -> pa.Table:
    """Arrow columns by ``take`` from prebuilt id arrays: no per-row string formatting."""
    return pa.Table.from_arrays(
        [
            member_ids.take(events.member),
            item_ids.take(events.item),
            pa.array(EVENTS).take(events.step),
            pa.array(events.timestamp, type=pa.timestamp("us")),
            pa.array(events.quantity, type=pa.int32()),
            pa.array(events.price, type=pa.float64()),
            formatted_ids("O", np.where(events.order >= 0, events.order + 1, -1), order_width),
        ],
        schema=INTERACTIONS_SCHEMA,
    )


def write_interactions(
    config: StoreConfig,
    catalog: Catalog,
    members: Members,
    member_ids: pa.Array,
    item_ids: pa.Array,
    path: Path,
    on_progress: Callable[[int], None] | None,
) -> tuple[np.ndarray, int]:
    """Simulate and append one chunk of members at a time; returns event counts and orders."""
    step_counts = np.zeros(len(EVENTS), dtype=np.int64)
    orders = 0
    order_width = id_width(config.events)
    with pq.ParquetWriter(path, INTERACTIONS_SCHEMA, compression="zstd") as writer:
        for chunk, first_member in enumerate(range(0, config.members, config.members_per_chunk)):
            if not members.budget[first_member : first_member + config.members_per_chunk].any():
                continue
            rng = random_stream(config.seed, STREAM_EVENTS, chunk)
            events = simulate_chunk(config, catalog, members, first_member, orders, rng)
            writer.write_table(_events_table(events, member_ids, item_ids, order_width))
            step_counts += np.bincount(events.step, minlength=len(EVENTS))
            orders += events.orders
            if on_progress is not None:
                on_progress(int(step_counts.sum()))
    return step_counts, orders


def write_bundles(catalog: Catalog, item_ids: pa.Array, path: Path) -> None:
    """The planted truth: which items were bundled, for checking bundle mining later."""
    slots = catalog.bundle_items
    columns = [item_ids.take(pa.array(slots[:, k], mask=slots[:, k] < 0)) for k in range(3)]
    bundle_numbers = np.arange(1, len(slots) + 1)
    truth = pa.table(
        {
            BUNDLE_ID: formatted_ids("B", bundle_numbers, id_width(len(slots))),
            BUNDLE_ITEM_IDS: pc.binary_join_element_wise(*columns, "|", null_handling="skip"),
            BUNDLE_SIZE: pa.array((slots >= 0).sum(axis=1), type=pa.int64()),
        }
    )
    pl.from_arrow(truth).write_csv(path)


def write_manifest(config: StoreConfig, counts: dict[str, int], path: Path) -> None:
    """``store.json``: the config and the counts, with file names relative to the store."""
    manifest = {
        "config": asdict(config),
        "period": {"start": str(PERIOD_START), "end_exclusive": str(PERIOD_END)},
        "files": {
            "interactions": INTERACTIONS_FILE,
            "items": ITEMS_FILE,
            "members": MEMBERS_FILE,
            "planted_bundles": BUNDLES_FILE,
        },
        "summary": counts,
    }
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
