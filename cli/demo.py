"""``recsys demo``: the whole product on a synthetic store in one command (``make demo``)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from cli.data import generate_with_progress
from cli.render import console, print_segment_summary, print_validation_report
from cli.serve import serve
from cli.train import train_and_publish
from features import columns as col
from features.members import compute_member_profiles, segment_summary
from features.splits import parse_split_spec
from features.synthetic import StoreConfig
from features.validate import load_interactions, load_items, load_members
from training.config import DEFAULT_SPLIT, TuningBudget

__all__ = ["demo"]

_DEMO_HOST, _DEMO_PORT = "127.0.0.1", 8000


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
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the demo server.")] = (
        _DEMO_PORT
    ),
) -> None:
    """Generate the demo store, validate it, segment its members, train on it and serve it."""
    from training.member_report import MEMBER_REPORT_FILE
    from training.tracking import default_tracking_uri
    from training.train import TrainConfig

    config = StoreConfig(members=members, items=items, events=events, seed=seed)
    summary = generate_with_progress(config, out)
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
    member = loaded.frame[col.MEMBER_ID][0]
    console.print(
        f"\nReport: {(artifact / 'report.html').resolve()}\n"
        f"Member report: {(artifact / MEMBER_REPORT_FILE).resolve()}\n"
        f"Try:    uv run recsys recommend --artifact {artifact} --member {member}\n"
        f"MLflow: uv run mlflow ui --backend-store-uri {default_tracking_uri()} "
        "-> http://127.0.0.1:5000"
    )
    if serve_after:
        _serve_demo(artifact, member, str(loaded.frame[col.ITEM_ID][0]), port)


def _serve_demo(artifact: Path, member: str, item: str, port: int) -> None:
    """Serve the demo model artifact in the foreground, after saying where to look.

    Write and admin routes always need a key, so the demo makes one (an admin key, new each
    run, printed once) unless ``RECSYS_API_KEYS`` already holds the caller's own keys."""
    base = f"http://{_DEMO_HOST}:{port}"
    console.print(
        f"\nServing the demo model: API docs at {base}/docs (Ctrl-C to stop)\n"
        f"Try:    curl '{base}/v1/members/{member}/recommendations?n=5'\n"
        f"        curl '{base}/v1/members/{member}/profile'"
    )
    if "RECSYS_API_KEYS" in os.environ:
        console.print("API keys: those of RECSYS_API_KEYS")
    else:
        key = secrets.token_urlsafe(18)
        os.environ["RECSYS_API_KEYS"] = json.dumps({key: ["admin"]})
        console.print(
            f"Demo API key (admin: events and reloads): {key}\n"
            f"Try:    curl -X POST '{base}/v1/events' -H 'X-API-Key: {key}' "
            "-H 'Content-Type: application/json' "
            f"""-d '{{"event": "click", "member_id": "{member}", "item_id": "{item}"}}'""",
            markup=False,
            highlight=False,
            soft_wrap=True,  # one line, to copy whole
        )
    serve(artifact=artifact, host=_DEMO_HOST, port=port)
