"""Data commands: ``recsys generate`` writes a synthetic store, ``recsys validate`` checks a
file row by row, ``recsys pseudonymise`` writes the retailer's map from member ids to their
pseudonyms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.export import read_member_ids
from cli.options import (
    ColumnsOption,
    InteractionsOption,
    MaxBadShareOption,
    PresetOption,
    load_with_options,
    write_table,
)
from cli.render import console, counting_bar, print_validation_report
from features.errors import TooManyBadRowsError
from features.pseudonyms import MemberPseudonyms
from features.synthetic import StoreConfig, StoreSummary, generate_store
from features.validate import DEFAULT_MAX_BAD_SHARE

__all__ = ["generate", "generate_with_progress", "pseudonymise", "validate"]


def generate_with_progress(config: StoreConfig, out: Path) -> StoreSummary:
    """Write the synthetic store of ``config`` into ``out``, with a bar of events written."""
    with counting_bar("generating", config.events) as bar:
        return generate_store(config, out, on_progress=bar.to)


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
    summary = generate_with_progress(
        StoreConfig(members=members, items=items, events=events, seed=seed), out
    )
    console.print(summary.describe())


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


def pseudonymise(
    members: Annotated[
        Path,
        typer.Option(
            help="The member ids: a CSV/Parquet with member_id (a members file will do; only "
            "that column is read), or one id a line."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="The map to write (.csv or .parquet): member_id, pseudonym.")
    ],
) -> None:
    """Write each member id beside its pseudonym under the key in $RECSYS_MEMBER_ID_KEY: the
    retailer's way back from the pseudonyms of a model artifact, its exports and the event
    store to their members. It holds raw ids: keep it where the key is kept."""
    pseudonyms = MemberPseudonyms.from_environment(needed_by="recsys pseudonymise")
    ids = read_member_ids(members)
    write_table(pseudonyms.mapping(ids), out)
    console.print(
        f"{len(ids):,} member ids and their pseudonyms (key fingerprint "
        f"{pseudonyms.fingerprint}) written to {out}"
    )
