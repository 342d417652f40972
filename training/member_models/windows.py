"""Which dates the member models learn from, are checked on, and score at.

Window k (k = 1 is the last complete one) has its features at ``t_k = as_of - k H`` and its
outcome in ``[t_k, t_k + H)``. A model fit on window k is applied to the features of window
k - 1 and judged on its outcome, so that it is always checked on a future it has not seen:

* validation (model choice, tuning): fit on window 3 (pooled with 4, 5, ..), evaluate on
  window 2;
* test (the figures reported): fit on window 2 (pooled with 3, 4, ..), evaluate on window 1;
* shipping: fit on window 1 (pooled with 2, 3, ..), score at ``as_of``.

Each fit pools as many usable windows as the data has from its first on, up to ``pooled``: the
same rule at every step, so that the test fit may pool a window more than the validation fit
when the data is just long enough for it.

Window 1 is never used to choose or tune. A window is usable when its feature date has at least
``min_history_days`` of events before it and ``min_window_buyers`` buyers. With two usable
windows only, validation falls back to a seeded member split of window 2 (fit on some of its
members, evaluate on the others); with fewer, scoring is refused, naming the history needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from features.errors import DataError

__all__ = ["Window", "WindowPlan", "plan_windows"]


@dataclass(frozen=True)
class Window:
    """Window ``index``: features at ``features_at``, outcome in ``[features_at, outcome_end)``."""

    index: int
    features_at: datetime
    outcome_end: datetime
    buyers: int


@dataclass(frozen=True)
class WindowPlan:
    """The windows of each step; ``validation_eval`` None means a member split of
    ``validation_fit``'s window (too little history for a third window)."""

    as_of: datetime
    horizon_days: int
    windows: tuple[Window, ...]
    validation_fit: tuple[int, ...]
    validation_eval: int | None
    test_fit: tuple[int, ...]
    ship_fit: tuple[int, ...]

    @property
    def member_split(self) -> bool:
        return self.validation_eval is None

    def window(self, index: int) -> Window:
        return self.windows[index - 1]

    def describe(self) -> list[dict[str, Any]]:
        """One entry per window used: its dates, buyers and roles (JSON-able)."""
        roles: dict[int, list[str]] = {}
        split = "validation (a seeded member split: fit on some members, evaluate on the rest)"
        for index in self.validation_fit:
            roles.setdefault(index, []).append(split if self.member_split else "validation fit")
        if self.validation_eval is not None:
            roles.setdefault(self.validation_eval, []).append("validation evaluation")
        for index in self.test_fit:
            roles.setdefault(index, []).append("test fit")
        roles.setdefault(1, []).append("test evaluation")
        for index in self.ship_fit:
            roles.setdefault(index, []).append("shipping fit")
        return [
            {
                "window": index,
                "features_at": self.window(index).features_at.isoformat(),
                "outcome_end": self.window(index).outcome_end.isoformat(),
                "buyers": self.window(index).buyers,
                "roles": roles[index],
            }
            for index in sorted(roles)
        ]


def plan_windows(
    first_purchases: np.ndarray,
    data_start: datetime,
    as_of: datetime,
    horizon_days: int,
    *,
    pooled: int = 1,
    min_history_days: float,
    min_window_buyers: int,
) -> WindowPlan:
    """The windows of a scoring run. ``first_purchases``: each buyer's first purchase time
    (numpy datetime64[us]); ``data_start``: the first event; ``pooled``: windows per fit."""
    horizon = timedelta(days=horizon_days)
    first = np.sort(np.asarray(first_purchases, dtype="datetime64[us]"))
    windows: list[Window] = []
    while True:
        index = len(windows) + 1
        start = as_of - index * horizon
        buyers = int(np.searchsorted(first, np.datetime64(start, "us"), side="left"))
        enough_history = start - data_start >= timedelta(days=min_history_days)
        if not (enough_history and buyers >= min_window_buyers):
            break
        windows.append(Window(index, start, start + horizon, buyers))
    usable = len(windows)
    if usable < 2:
        needed = 2 * horizon_days + min_history_days
        raise DataError(
            f"member models need two windows of H = {horizon_days} days after at least "
            f"{min_history_days:g} days of history with {min_window_buyers}+ buyers, that is "
            f"about {needed:g} days of events before as_of ({as_of:%Y-%m-%d}); the data covers "
            f"{(as_of - data_start).total_seconds() / 86_400:.0f} days. Use a longer history "
            "or a shorter --horizon-days."
        )

    def fit_windows(first: int) -> tuple[int, ...]:
        return tuple(range(first, min(first + pooled, usable + 1)))

    if usable == 2:
        return WindowPlan(as_of, horizon_days, tuple(windows), (2,), None, (2,), fit_windows(1))
    return WindowPlan(
        as_of,
        horizon_days,
        tuple(windows),
        validation_fit=fit_windows(3),
        validation_eval=2,
        test_fit=fit_windows(2),
        ship_fit=fit_windows(1),
    )
