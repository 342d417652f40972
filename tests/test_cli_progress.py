"""Progress when output is not a terminal: a log shows each long step with its time.

A rich bar draws nothing on a pipe, so a CI log or ``make demo > log`` once showed a minute of
training as silence. The script runs in a subprocess whose standard error is a pipe, as a log
would be."""

from __future__ import annotations

import re
import subprocess
import sys

_SCRIPT = """
import time
from cli import render
render.PLAIN_EVERY_SECONDS = 0.05
with render.step_bar("training", 2) as advance:
    advance("tuning als")
    time.sleep(0.2)
    advance("writing the model artifact, a message longer than the eighty columns of a pipe")
with render.counting_bar("exporting", 30) as bar:
    for _ in range(3):
        time.sleep(0.06)
        bar.advance(10)
with render.timed_status("logging to MLflow"):
    time.sleep(0.1)
"""


def test_steps_print_plain_timed_lines_when_stderr_is_a_pipe() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stderr.splitlines()
    assert "\x1b" not in result.stderr  # no bar, no colour: plain text for a log
    tuning = re.fullmatch(r"training: tuning als \((\d+\.\d) s\)", lines[0])
    assert tuning and float(tuning[1]) >= 0.2, lines
    assert re.fullmatch(r"training: writing the model artifact, .* pipe \(\d+\.\d s\)", lines[1])
    assert re.fullmatch(r"training: done in \d+\.\d s", lines[2])
    counts = [line for line in lines if line.startswith("exporting: ")]
    assert counts[-1].startswith("exporting: 30 of 30 (") and len(counts) >= 2, lines
    assert re.fullmatch(r"logging to MLflow \(\d+\.\d s\)", lines[-1])
    assert result.stdout == ""  # progress stays off the results' stream
