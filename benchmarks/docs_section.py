"""Shared by the benchmark scripts: where figures go (docs/benchmarks.md) and what machine
produced them. Each script owns one ``## `` section and replaces only that one."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_DOC = REPO_ROOT / "docs" / "benchmarks.md"


def machine_description() -> str:
    """CPUs, memory, OS and Python: the context every figure needs."""
    memory_gib = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} CPUs ({cpu_model()}), {memory_gib:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, where there is one."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def update_section(doc: Path, title: str, section: str) -> None:
    """Replace the section headed ``title`` (a ``## `` line) in ``doc``, keeping the others."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        updated = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        updated = text.rstrip("\n") + "\n\n" + section
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(updated)
