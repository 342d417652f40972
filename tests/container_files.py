"""Readers of the container files for tests/test_container.py: the Dockerfile's stages and
instructions, the build context that .dockerignore lets through, compose's ``${VAR:-default}``
interpolation, and the settings and command options the files are checked against.

No Docker engine runs in CI, so the suite reads these files the way Docker does, as far as this
project's files use them, and runs what they say outside Docker. Whatever the readers do not
understand (a shell-form CMD, a glob in COPY, a legacy ``ENV key value``) is an error naming the
line, never silently skipped, so the Dockerfile cannot use a form the suite does not run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "ContainerPaths",
    "Dockerfile",
    "Instruction",
    "Stage",
    "build_context",
    "interpolate",
    "known_settings",
    "parse_duration",
    "parse_options",
]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    rest: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT, CMD or HEALTHCHECK CMD."""
        text = self.rest
        if self.keyword == "HEALTHCHECK":
            text = self.healthcheck()[1]
        if not text.startswith("["):
            raise ValueError(f"Dockerfile:{self.line}: {self.keyword} must be in exec (JSON) form")
        return json.loads(text)

    def healthcheck(self) -> tuple[dict[str, str], str]:
        """(options such as ``interval``, the command text after ``CMD``)."""
        match = re.fullmatch(r"((?:--[\w-]+=\S+\s+)*)CMD\s+(.*)", self.rest, re.DOTALL)
        if match is None:
            raise ValueError(f"Dockerfile:{self.line}: HEALTHCHECK without options + CMD")
        options = dict(option[2:].split("=", 1) for option in match.group(1).split())
        return options, match.group(2).strip()

    def run_parts(self) -> tuple[list[dict[str, str]], list[str]]:
        """A RUN's ``--mount`` flags (as dicts) and its command's words."""
        words = shlex.split(self.rest)
        mounts = []
        while words and words[0].startswith("--mount="):
            spec = words.pop(0).removeprefix("--mount=")
            mounts.append(dict(part.split("=", 1) for part in spec.split(",")))
        return mounts, words

    def copy_parts(self) -> tuple[dict[str, str], list[str], str]:
        """A COPY's flags (``from``, ``chown``...), its sources and its destination."""
        if self.rest.startswith("["):
            raise ValueError(f"Dockerfile:{self.line}: use the plain COPY form")
        words = shlex.split(self.rest)
        flags = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        return flags, words[:-1], words[-1]


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [step for step in self.instructions if step.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        if not found:
            raise ValueError(f"stage {self.name or self.image} has no {keyword}")
        return found[-1]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The stage's ENV, in order, with ``$VAR``/``${VAR}`` expanded as Docker does (from the
        stage's earlier variables, else ``base``: the base image's, such as PATH)."""
        values: dict[str, str] = {}
        for step in self.all("ENV"):
            for word in shlex.split(step.rest):
                if "=" not in word:
                    raise ValueError(f"Dockerfile:{step.line}: write ENV as KEY=value")
                key, value = word.split("=", 1)
                values[key] = re.sub(
                    r"\$\{?(\w+)\}?",
                    lambda match: values.get(match.group(1), base.get(match.group(1), "")),
                    value,
                )
        return values


class Dockerfile:
    """A Dockerfile's stages; ``stage(name)`` finds one by its ``AS`` name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stages: list[Stage] = []
        for step in _instructions(path.read_text()):
            if step.keyword == "FROM":
                words = step.rest.split()
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
                self.stages.append(Stage(words[0], name))
            elif not self.stages:
                raise ValueError(f"{path}:{step.line}: {step.keyword} before the first FROM")
            else:
                self.stages[-1].instructions.append(step)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"{self.path} has no stage named {name!r}")


def _instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comment lines dropped (Docker drops
    them inside a continued instruction too)."""
    steps, buffer, start = [], "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        keyword, _, rest = (buffer + stripped).partition(" ")
        steps.append(Instruction(keyword.upper(), rest.strip(), start))
        buffer = ""
    return steps


def parse_duration(text: str) -> float:
    """Seconds of a Docker duration such as ``15s``, ``1m30s`` or ``500ms``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a Docker duration: {text!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


class ContainerPaths:
    """Maps the image's own absolute paths (``/app``, ``/data``...) under a host directory that
    stands for the container's root, in any string (``sqlite:////data/events.db`` too)."""

    def __init__(self, root: Path, tops: set[str]) -> None:
        self.root = root
        alternatives = "|".join(re.escape(top) for top in sorted(tops, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<![\w.-])({alternatives})(?=/|$|[\s:\"'])")

    def host(self, text: str) -> str:
        return self._pattern.sub(lambda match: f"{self.root}{match.group(1)}", text)

    def path(self, container_path: str) -> Path:
        return Path(self.host(container_path))


def _go_glob(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore pattern (Go ``filepath.Match`` plus ``**``) as a regex."""
    out, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def _ignore_rules(dockerignore: Path) -> list[tuple[bool, re.Pattern[str], str]]:
    rules = []
    for line in dockerignore.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).strip("/")
        rules.append((negated, _go_glob(pattern), pattern))
    return rules


def _excluded(relative: str, rules: list[tuple[bool, re.Pattern[str], str]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    excluded = False
    for negated, regex, _ in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def build_context(source: Path, dockerignore: Path, target: Path) -> Path:
    """Copy into ``target`` exactly the files of ``source`` that Docker would send as the build
    context under ``dockerignore``; returns ``target``."""
    rules = _ignore_rules(dockerignore)
    reincluded = [pattern for negated, _, pattern in rules if negated]
    for directory, subdirectories, files in os.walk(source):
        relative_dir = Path(directory).relative_to(source).as_posix()
        prefix = "" if relative_dir == "." else f"{relative_dir}/"
        kept = []
        for name in subdirectories:
            relative = prefix + name
            # An excluded directory is walked only when a `!` pattern may re-include below it.
            if not _excluded(relative, rules) or any(
                pattern.startswith(relative + "/") for pattern in reincluded
            ):
                kept.append(name)
        subdirectories[:] = kept
        for name in files:
            relative = prefix + name
            if not _excluded(relative, rules):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(directory) / name, target / relative)
    return target


def interpolate(value: str) -> str:
    """A compose value with ``${VAR:-default}``/``${VAR-default}`` given its default, the way a
    local stack with nothing set runs; a ``${VAR}`` without one is an error (nothing to run)."""

    def default(match: re.Match[str]) -> str:
        if match.group(2) is None:
            raise ValueError(f"{match.group(0)} has no default: a local stack cannot start")
        return match.group(3)

    return re.sub(r"\$\{(\w+)(:?-([^}]*))?\}", default, value)


def known_settings() -> set[str]:
    """The RECSYS_* variables serving/settings.py reads."""
    from serving.settings import Settings

    prefix = Settings.model_config["env_prefix"]
    return {prefix + name.upper() for name in Settings.model_fields}


#: Parses argv as `recsys serve`'s or `mlflow server`'s options (click raises on an unknown
#: option or a bad value) and prints the command's environment variables. In a process of its
#: own: tests/cli.py shadows the `cli` package here, and mlflow warns on import.
_PARSE = """
import json, sys, warnings
warnings.simplefilter("ignore")
kind, argv = sys.argv[1], json.loads(sys.argv[2])
if kind == "serve":
    from typer.main import get_command
    from cli.main import app
    command = get_command(app).commands["serve"]
else:
    from mlflow.cli import server as command
command.make_context(kind, argv)
print(json.dumps([param.envvar for param in command.params if isinstance(param.envvar, str)]))
"""


def parse_options(kind: str, argv: list[str]) -> set[str]:
    """Fails unless ``argv`` parses as options of ``kind``; returns its variables."""
    arguments = json.dumps([interpolate(word) for word in argv])
    result = subprocess.run(
        [sys.executable, "-c", _PARSE, kind, arguments], cwd=_ROOT, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"{kind} {argv}: {result.stderr[-2000:]}"
    return set(json.loads(result.stdout.strip().splitlines()[-1]))
