"""Members simulated from known BG/NBD and Gamma-Gamma parameters, with their future: the right
answers that tests/test_btyd.py and benchmarks/btyd_reference.py check our fits against.

The simulation follows the models' stories directly, not their formulas: a rate and a dropout
probability per member, the number of repeat purchases after which the member drops out
(geometric), Poisson purchase times, and Gamma order values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimulatedMembers:
    """Histories (``x``, ``t_x``, ``t_obs``, ``m``) and what happened after ``t_obs``."""

    x: np.ndarray
    t_x: np.ndarray
    t_obs: np.ndarray
    m: np.ndarray  # mean of the x repeat-order values; NaN where x = 0
    alive: np.ndarray  # still alive at t_obs
    future_purchases: np.ndarray  # purchases in (t_obs, t_obs + horizon]
    true_order_mean: np.ndarray  # p / nu: the member's expected order value


def simulate_members(
    n: int,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
    p: float = 6.0,
    q: float = 4.0,
    gamma: float = 15.0,
    t_obs_days: tuple[float, float] = (30.0, 540.0),
    horizon_days: float = 90.0,
    whole_days: bool = False,
    seed: int = 0,
) -> SimulatedMembers:
    """``n`` members whose first purchase is ``t_obs`` ~ Uniform(t_obs_days) days before the
    scoring date. ``whole_days`` floors the times to days, as day-resolution data have them."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(r, 1.0 / alpha, n)
    dropout = rng.beta(a, b, n)
    drops_after = rng.geometric(dropout)  # the repeat purchase after which the member stops
    t_obs = rng.uniform(*t_obs_days, n)
    if whole_days:
        t_obs = np.ceil(t_obs)
    possible = rng.poisson(rate * t_obs)  # purchases by t_obs had the member never dropped out
    x = np.minimum(drops_after, possible)
    # The x-th of `possible` uniform purchase times in (0, t_obs] is t_obs * Beta(x, possible-x+1).
    t_x = np.zeros(n)
    repeat = x > 0
    t_x[repeat] = t_obs[repeat] * rng.beta(x[repeat], possible[repeat] - x[repeat] + 1)
    if whole_days:
        t_x = np.floor(t_x)
    alive = drops_after > possible
    future = np.where(
        alive, np.minimum(drops_after - possible, rng.poisson(rate * horizon_days)), 0
    )
    nu = rng.gamma(q, 1.0 / gamma, n)
    m = np.full(n, np.nan)
    m[repeat] = rng.gamma(p * x[repeat], 1.0 / (nu[repeat] * x[repeat]))
    return SimulatedMembers(
        x=x.astype(np.float64),
        t_x=t_x,
        t_obs=t_obs,
        m=m,
        alive=alive,
        future_purchases=future.astype(np.float64),
        true_order_mean=p / nu,
    )
