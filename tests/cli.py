"""Run the real ``recsys`` console script, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RECSYS = Path(sys.executable).with_name("recsys")


def run_recsys(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RECSYS), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )
