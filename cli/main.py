"""The ``recsys`` entry point: every command, in the order of DESIGN section 6.

Commands are thin: they parse options, call the library, and print. Errors a user can cause
(:class:`~features.errors.RecsysError`) are printed as one message and exit with status 2, never
as a traceback.
"""

from __future__ import annotations

import typer

from cli import answers, campaign, data, demo, events, export, members, serve, train
from cli.render import err_console
from features.errors import RecsysError

__all__ = ["app", "main"]

app = typer.Typer(
    name="recsys",
    help="member-recsys: recommendations, bundles and segments for membership programs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for command in (
    data.generate,
    data.validate,
    data.pseudonymise,
    train.train,
    train.evaluate,
    train.promote,
    answers.recommend,
    answers.bundles,
    answers.segments,
    export.export,
    serve.serve,
    serve.simulate,
    events.backup,
    events.restore,
    demo.demo,
):
    app.command()(command)
app.add_typer(members.app)
app.add_typer(events.app, hidden=True)  # `recsys events backup`: the earlier name of `backup`
app.add_typer(campaign.app)


def main() -> None:
    """Console-script entry point: user errors become one message and exit status 2."""
    try:
        app()
    except RecsysError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
