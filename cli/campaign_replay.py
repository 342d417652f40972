"""Replay a campaign against a running server: members react with a planted effect, and the
server's uplift report is read back against that truth (``recsys simulate --campaign``).

The campaign is one that ``recsys campaign export`` wrote into the server's event store: its
manifest names the campaign id and the files beside it, whose members (the sent rows' and the
reasons file's holdout rows) are the ones replayed. For each member the simulator asks the
server what the campaign sent them (``GET /v1/members/{id}/offers``: group, items, send time),
draws their purchases with :func:`features.synthetic.campaign.campaign_reactions` (a treated
member buys a sent item with ``treated_rate``, a held-out one a would-be sent item with
``base_rate``, anyone an item sent to somebody else with ``other_rate``), posts them as
purchase events stamped inside the conversion window, and then fetches
``GET /v1/reports/campaigns/{id}``: whether the report's interval holds the planted uplift is
the end-to-end check of export, ledger, events and report, through the server's own API.

A member whose latest campaign is a later one is skipped (the API answers the latest only).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import polars as pl

from cli.simulator import Client
from features import columns as col
from features.errors import ConfigError
from features.synthetic.campaign import GROUP, ITEMS, SENT_AT, CampaignEffect, campaign_reactions
from serving.schemas import MAX_EVENTS_PER_REQUEST, EventType
from training.artifact.manifest import sha256

__all__ = ["CampaignReplay", "campaign_members", "replay_campaign"]


@dataclass(frozen=True)
class CampaignReplay:
    """What a campaign replay posted, and the server's report of it."""

    campaign_id: str
    members: int
    treatment: int
    holdout: int
    #: Members not replayed: their latest campaign is a later one, or the ledger holds no item
    #: of theirs.
    skipped: int
    purchases: int
    failures: int
    seconds: float
    effect: CampaignEffect
    report: Mapping[str, Any] | None

    def planted(self) -> dict[str, dict[str, Any]]:
        """Per conversion, the planted absolute uplift, the report's estimate and interval, and
        whether the interval holds the truth."""
        found: dict[str, dict[str, Any]] = {}
        if self.report is None:
            return found
        uplift = {row["metric"]: row for row in self.report["overall"]["uplift"]}
        for metric, conversion in (
            ("sent_item_conversion", "sent_item"),
            ("conversion", "any_purchase"),
        ):
            truth = self.effect.truth(conversion)  # type: ignore[arg-type]
            estimate = uplift[metric]["absolute"]
            low, high = estimate.get("low"), estimate.get("high")
            found[metric] = {
                "planted": truth.absolute,
                "estimate": estimate.get("value"),
                "low": low,
                "high": high,
                "holds": low is not None and high is not None and low <= truth.absolute <= high,
            }
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "members": self.members,
            "treatment": self.treatment,
            "holdout": self.holdout,
            "skipped": self.skipped,
            "purchases": self.purchases,
            "failures": self.failures,
            "seconds": round(self.seconds, 3),
            "planted": self.planted(),
            "report": self.report,
        }


def campaign_members(manifest: Path) -> tuple[str, list[str]]:
    """The campaign id of a campaign export's manifest, and the members it sent to or held
    out (from the files beside it, checked against the manifest's checksums)."""
    try:
        document = json.loads(manifest.read_text())
        campaign_id, files = document["campaign_id"], document["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"--campaign {manifest}: not a campaign export manifest ({error}); give the "
            "<stem>.manifest.json that recsys campaign export wrote"
        ) from error
    frames = []
    for name, entry in files.items():
        path = manifest.with_name(name)
        if not path.is_file() or sha256(path) != entry["sha256"]:
            raise ConfigError(
                f"--campaign {manifest}: {path} is missing or changed since the export "
                "(its sha256 differs from the manifest's)"
            )
        frame = pl.read_csv(path) if path.suffix == ".csv" else pl.read_parquet(path)
        if "reason" in frame.columns:  # the reasons file: only the holdout are campaign members
            frame = frame.filter(pl.col("reason") == "holdout")
        frames.append(frame.select(pl.col(col.MEMBER_ID).cast(pl.Utf8)))
    members = pl.concat(frames).get_column(col.MEMBER_ID).unique(maintain_order=True)
    return str(campaign_id), members.to_list()


def replay_campaign(
    url: str,
    manifest: Path,
    effect: CampaignEffect,
    *,
    api_key: str | None = None,
    concurrency: int = 8,
    on_progress: Callable[[int], None] = lambda _: None,
) -> CampaignReplay:
    """Replay the campaign of ``manifest`` against the server at ``url`` with ``effect``."""
    campaign_id, member_ids = campaign_members(manifest)
    client = Client(url, api_key)
    started = time.perf_counter()
    sends, failures = _sends_of(client, campaign_id, member_ids, concurrency, on_progress)
    sent_items = sends.get_column(ITEMS).explode().unique().sort().to_list()
    reactions = campaign_reactions(sends, sent_items, effect)
    events = [
        {
            "event_id": f"replay-{campaign_id}-{effect.seed}-{number}",
            "event": EventType.PURCHASE.value,
            "member_id": member,
            "item_id": item,
            "timestamp": datetime.fromtimestamp(stamp, UTC).isoformat(),
        }
        for number, (member, item, stamp) in enumerate(reactions.iter_rows())
    ]
    for start in range(0, len(events), MAX_EVENTS_PER_REQUEST):
        chunk = events[start : start + MAX_EVENTS_PER_REQUEST]
        failures += client.request("POST", "/v1/events", chunk)[0] != 200
    query = urlencode({"window_days": effect.window_days})
    status, report = client.request(
        "GET", f"/v1/reports/campaigns/{quote(campaign_id, safe='')}?{query}"
    )
    groups = sends.get_column(GROUP)
    return CampaignReplay(
        campaign_id=campaign_id,
        members=len(member_ids),
        treatment=int((groups == "treatment").sum()),
        holdout=int((groups == "holdout").sum()),
        skipped=len(member_ids) - sends.height - failures,
        purchases=len(events),
        failures=failures + (status != 200),
        seconds=time.perf_counter() - started,
        effect=effect,
        report=report if status == 200 else None,
    )


def _sends_of(
    client: Client,
    campaign_id: str,
    member_ids: list[str],
    concurrency: int,
    on_progress: Callable[[int], None],
) -> tuple[pl.DataFrame, int]:
    """What the campaign sent each member, as the server answers it, in member order (a
    member whose latest campaign is another, or without items, is left out), and how many
    requests failed."""
    rows: list[tuple[str, str, list[str], float]] = []
    failures = done = 0
    lock = threading.Lock()

    def ask(member: str) -> None:
        nonlocal failures, done
        status, body = client.request("GET", f"/v1/members/{quote(member, safe='')}/offers")
        campaign = body.get("campaign") if status == 200 and body else None
        with lock:
            failures += status != 200
            if campaign is not None and campaign["campaign_id"] == campaign_id:
                sent_at = datetime.fromisoformat(campaign["sent_at"]).timestamp()
                rows.append((member, campaign["group"], campaign["items"], sent_at))
            done += 1
            on_progress(done)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(ask, member_ids))
    schema = {col.MEMBER_ID: pl.Utf8, GROUP: pl.Utf8, ITEMS: pl.List(pl.Utf8), SENT_AT: pl.Float64}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    # Sorted, so that a seed draws the same reactions whatever order the answers came in.
    return frame.filter(pl.col(ITEMS).list.len() > 0).sort(col.MEMBER_ID), failures
