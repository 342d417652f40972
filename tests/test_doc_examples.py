"""Every command example of README.md and docs/*.md runs against the demo, so the docs cannot
drift from the product (the conventions are in docs/api.md, "Trying the examples").

Each ```bash block is read line by line (a line ending in ``\\`` continues on the next):

* a command whose program is ``recsys``, ``curl`` or ``python`` (``uv run`` or not) runs, in
  document order, in one working directory holding a small demo (``recsys demo --no-serve``
  with :data:`DEMO_OPTIONS`, its MLflow store under ``data/``), while ``recsys serve`` serves
  it on a free port with the key :data:`KEY` in ``RECSYS_API_KEY``; ``uv run`` is dropped (the
  suite's environment is already the project's), ``http://127.0.0.1:8000`` becomes the test
  server's address, and ``curl`` gets ``--fail-with-body -sS`` so that an error status fails;
* a command with the marker ``# not run in doc tests: <why>`` on its line, or after a comment
  line holding only the marker (which covers the rest of its block), is reported as skipped
  with that reason;
* any other command, or a benchmark (``benchmarks/``), fails the test: run it, or mark it.

The ids and categories an example names must exist in the demo store, whose ids have the
format of the full ``make demo`` store's (M0001, I001) and are a subset of them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from features.synthetic import StoreConfig
from tests.serving_helpers import Server, recsys_serve

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "# not run in doc tests:"
RUNNABLE = {"recsys", "curl", "python"}
#: The address the examples use: where ``make demo`` serves.
DEMO_URL = "http://127.0.0.1:8000"
KEY = "doc-test-admin-key"
#: A demo small enough to train in seconds, with ids of the full demo's format.
DEMO_OPTIONS = {"members": 1000, "items": 120, "events": 12_000, "trials": 1}
BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Example:
    """One command of a ```bash block: where it is, its text, and why it is not run (if so)."""

    where: str
    command: str
    skip: str | None

    @property
    def program(self) -> str:
        words = self.command.split()
        if words[:2] == ["uv", "run"]:
            words = words[2:]
        return words[0] if words else ""


def _examples(path: Path) -> Iterator[Example]:
    lines = path.read_text().splitlines()
    inside, block_skip, pending, start = False, None, "", 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            inside, block_skip = stripped == "```bash" and not inside, None
            continue
        if not inside or (not pending and (not stripped or stripped.startswith("#"))):
            if inside and stripped.startswith(MARKER):
                block_skip = stripped[len(MARKER) :].strip()
            continue
        if not pending:
            start = number
        continued = line.rstrip().endswith("\\")
        pending += line.rstrip() + "\n"  # bash joins a trailing backslash's lines itself
        if continued or not _complete(pending):
            continue
        inline = pending.split(MARKER, 1)[1].strip() if MARKER in pending else None
        where = f"{path.relative_to(ROOT)}:{start}"
        yield Example(where, pending.strip(), inline or block_skip)
        pending = ""


def _complete(command: str) -> bool:
    """Whether ``command`` closes its quotes (a quoted JSON body may span lines)."""
    try:
        shlex.split(command, comments=True)
    except ValueError:
        return False
    return True


EXAMPLES = [example for path in DOCS for example in _examples(path)]


@dataclass
class Demo:
    work: Path
    server: Server
    environment: dict[str, str]
    members: set[str]
    items: set[str]
    categories: set[str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo built once, served by ``recsys serve`` with a known admin key."""
    work = tmp_path_factory.mktemp("doc-examples")
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RECSYS_", "MLFLOW_", "PROMETHEUS_"))
    }
    environment |= {
        "PATH": f"{BIN}{os.pathsep}{environment.get('PATH', '')}",
        "RECSYS_DATA_DIR": str(work / "data"),
        "RECSYS_API_KEY": KEY,
    }
    options = [f"--{name}={value}" for name, value in DEMO_OPTIONS.items()]
    built = subprocess.run(
        [str(BIN / "recsys"), "demo", "--no-serve", "--out", "data/demo", *options],
        cwd=work, env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    server = Server(
        {
            "RECSYS_API_KEYS": json.dumps({KEY: ["admin"]}),
            "RECSYS_DATA_DIR": str(work / "data"),
            "RECSYS_EVENTS_URL": "sqlite:///data/serving/events.db",  # the default, under work
        },
        work / "server.log",
        command=recsys_serve("--artifact", "data/demo/artifact"),
    ).wait()
    store = work / "data" / "demo"
    items = pl.read_parquet(store / "items.parquet")
    try:
        yield Demo(
            work, server, environment,
            set(pl.read_parquet(store / "members.parquet")["member_id"]),
            set(items["item_id"]), set(items["category"]),
        )  # fmt: skip
    finally:
        server.stop()


def test_the_demo_ids_are_those_of_the_full_demo() -> None:
    """Ids M0001... and I001... of the small demo exist in the full one, in the same format."""
    full = StoreConfig()
    assert len(str(DEMO_OPTIONS["members"])) == len(str(full.members))
    assert len(str(DEMO_OPTIONS["items"])) == len(str(full.items))
    assert DEMO_OPTIONS["members"] <= full.members and DEMO_OPTIONS["items"] <= full.items


def test_every_block_has_examples() -> None:
    """The parser finds the examples (a broken parser would pass every doc silently)."""
    assert len(EXAMPLES) > 20
    assert any(example.program == "curl" and example.skip is None for example in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.where for example in EXAMPLES])
def test_example_runs(example: Example, demo: Demo) -> None:
    if example.skip is not None:
        pytest.skip(f"{example.where}: {example.skip}")
    assert example.program in RUNNABLE, (
        f"{example.where}: `{example.command}` is neither a recsys, curl nor python command; "
        f"make it one or mark its line `{MARKER} <why>`"
    )
    assert "benchmarks/" not in example.command, (
        f"{example.where}: benchmarks are long and load the machine; mark the line `{MARKER} <why>`"
    )
    _check_names(example, demo)
    command = re.sub(r"\buv run ", "", example.command).replace(DEMO_URL, demo.server.url)
    command = re.sub(r"(^|[;&|]\s*)curl ", r"\1curl --fail-with-body -sS ", command)
    done = subprocess.run(
        ["bash", "-c", command], cwd=demo.work, env=demo.environment,
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"{example.where}: `{command}` exited {done.returncode}\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    )


def _check_names(example: Example, demo: Demo) -> None:
    """Member and item ids, and categories, that the example names are the demo's."""
    text = example.command
    for member in re.findall(r"\bM\d{4}\b", text):
        assert member in demo.members, f"{example.where}: member {member} is not in the demo"
    for item in re.findall(r"\bI\d{3}\b", text):
        assert item in demo.items, f"{example.where}: item {item} is not in the demo"
    named = [
        urllib.parse.unquote_plus(value) for value in re.findall(r"category=([^&'\"\s]+)", text)
    ]
    named += [
        value.strip("'\"") for value in re.findall(r"--category\s+('[^']+'|\"[^\"]+\"|\S+)", text)
    ]
    for category in named:
        assert category in demo.categories, (
            f"{example.where}: category {category!r} is not in the demo "
            f"(it has {sorted(demo.categories)})"
        )
