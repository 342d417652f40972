"""The simulated calendar: one fixed period, and the microsecond units the simulation counts in.

The period is fixed so that a store is a pure function of its config: nothing reads the clock.
Times are integers of microseconds (the unit of the parquet timestamps) so that the simulation
stays in vectorised numpy arithmetic.
"""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = [
    "END_US",
    "PERIOD_END",
    "PERIOD_START",
    "START_US",
    "US_PER_DAY",
    "US_PER_HOUR",
    "US_PER_SECOND",
]

#: The simulated period, fixed so that output never depends on the day it is generated.
PERIOD_START: Final = np.datetime64("2024-07-01", "us")
#: Exclusive end: the last simulated day is 2026-06-30.
PERIOD_END: Final = np.datetime64("2026-07-01", "us")

US_PER_SECOND: Final = 1_000_000
US_PER_HOUR: Final = 3_600 * US_PER_SECOND
US_PER_DAY: Final = 24 * US_PER_HOUR
START_US: Final = int(PERIOD_START.astype(np.int64))
END_US: Final = int(PERIOD_END.astype(np.int64))
