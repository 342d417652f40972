"""The whole store, start to finish: :func:`generate_store` and what it reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.columns import AVAILABLE
from features.synthetic.catalog import Catalog, build_catalog, catalog_table
from features.synthetic.config import StoreConfig, validate_config
from features.synthetic.members import COLD, LAPSED, NEW, Members, build_members, members_table
from features.synthetic.sampling import STREAM_CATALOG, STREAM_MEMBERS, random_stream
from features.synthetic.writer import (
    BUNDLES_FILE,
    INTERACTIONS_FILE,
    ITEMS_FILE,
    MANIFEST_FILE,
    MEMBERS_FILE,
    formatted_ids,
    id_width,
    write_bundles,
    write_interactions,
    write_manifest,
)

__all__ = ["StoreSummary", "generate_store"]


@dataclass(frozen=True)
class StoreSummary:
    """What :func:`generate_store` wrote: where, and how much of each kind."""

    out_dir: Path
    interactions_path: Path
    items_path: Path
    members_path: Path
    bundles_path: Path
    manifest_path: Path
    events: int
    views: int
    clicks: int
    carts: int
    purchases: int
    orders: int
    members: int
    members_with_events: int
    lapsed_members: int
    new_members: int
    cold_members: int
    items: int
    cold_items: int
    unavailable_items: int
    bundles: int

    def counts(self) -> dict[str, int]:
        """The counts alone (no paths), as written to ``store.json``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.type == "int"}

    def describe(self) -> str:
        """A short human summary for the command line."""
        return (
            f"Wrote {self.events:,} events ({self.views:,} views, {self.clicks:,} clicks, "
            f"{self.carts:,} carts, {self.purchases:,} purchases in {self.orders:,} orders), "
            f"{self.members:,} members ({self.lapsed_members:,} lapsed, {self.new_members:,} new, "
            f"{self.cold_members:,} without events yet), {self.items:,} items "
            f"({self.cold_items:,} new without events) and {self.bundles:,} planted bundles "
            f"to {self.out_dir}"
        )


def generate_store(
    config: StoreConfig, out_dir: Path, on_progress: Callable[[int], None] | None = None
) -> StoreSummary:
    """Write a synthetic store into ``out_dir`` and return what was written.

    ``on_progress`` is called with the number of events written so far after every chunk.
    """
    validate_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    member_ids = formatted_ids("M", np.arange(1, config.members + 1), id_width(config.members))
    item_ids = formatted_ids("I", np.arange(1, config.items + 1), id_width(config.items))

    catalog_rng = random_stream(config.seed, STREAM_CATALOG)
    catalog = build_catalog(config, catalog_rng)
    items = catalog_table(config, catalog, item_ids, catalog_rng)
    pq.write_table(items, out_dir / ITEMS_FILE, compression="zstd")
    members = build_members(config, random_stream(config.seed, STREAM_MEMBERS))
    pq.write_table(members_table(members, member_ids), out_dir / MEMBERS_FILE, compression="zstd")
    write_bundles(catalog, item_ids, out_dir / BUNDLES_FILE)
    step_counts, orders = write_interactions(
        config, catalog, members, member_ids, item_ids, out_dir / INTERACTIONS_FILE, on_progress
    )
    summary = _summarise(config, out_dir, catalog, members, items, step_counts, orders)
    write_manifest(config, summary.counts(), summary.manifest_path)
    return summary


def _summarise(
    config: StoreConfig,
    out_dir: Path,
    catalog: Catalog,
    members: Members,
    items: pa.Table,
    step_counts: np.ndarray,
    orders: int,
) -> StoreSummary:
    views, clicks, carts, purchases = (int(count) for count in step_counts)
    return StoreSummary(
        out_dir=out_dir,
        interactions_path=out_dir / INTERACTIONS_FILE,
        items_path=out_dir / ITEMS_FILE,
        members_path=out_dir / MEMBERS_FILE,
        bundles_path=out_dir / BUNDLES_FILE,
        manifest_path=out_dir / MANIFEST_FILE,
        events=int(step_counts.sum()),
        views=views,
        clicks=clicks,
        carts=carts,
        purchases=purchases,
        orders=orders,
        members=config.members,
        members_with_events=int((members.budget > 0).sum()),
        lapsed_members=int((members.segment == LAPSED).sum()),
        new_members=int((members.segment == NEW).sum()),
        cold_members=int((members.segment == COLD).sum()),
        items=config.items,
        cold_items=int(catalog.cold.sum()),
        unavailable_items=int(len(items) - pc.sum(items.column(AVAILABLE)).as_py()),
        bundles=len(catalog.bundle_items),
    )
