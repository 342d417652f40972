"""Child processes of the benchmarks: their wall time and their own peak RSS."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

#: How often a child's memory high-water mark is read.
_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class ChildResult:
    """Wall time, peak RSS and exit status of one child process.

    ``peak_tree_rss_bytes`` is the largest sum of the RSS of the child and its descendants seen
    at one poll: the figure for a child that starts processes of its own (the JVM that
    pyspark's driver launches), whose own ``VmHWM`` would leave them out.
    """

    wall_s: float
    peak_rss_bytes: int
    returncode: int
    peak_tree_rss_bytes: int = 0


def run_child(command: list[str], stdout: Path, cwd: Path) -> ChildResult:
    """Run ``command`` with its output to ``stdout``.

    The peak RSS is the child's ``VmHWM`` (the high-water mark of its own address space, which
    exec starts afresh), read every 20 ms until it exits. ``ru_maxrss`` from ``wait4`` would not
    do: Linux carries the parent's high-water mark into a child across fork and exec, so a
    benchmark holding a large model artifact in memory would report its own size for every child.
    """
    with stdout.open("w") as sink:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
        status = Path(f"/proc/{child.pid}/status")
        peak = tree_peak = 0
        while child.poll() is None:
            peak = max(peak, _high_water_mark(status))
            tree_peak = max(tree_peak, _tree_rss(child.pid))
            time.sleep(_POLL_SECONDS)
        wall_s = time.perf_counter() - started
    return ChildResult(wall_s, peak, child.returncode, max(tree_peak, peak))


def _tree_rss(pid: int) -> int:
    """The summed RSS of a process and its descendants now (0 once it has exited)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def _high_water_mark(status: Path) -> int:
    """``VmHWM`` of a process in bytes (0 once it has exited)."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return 0
