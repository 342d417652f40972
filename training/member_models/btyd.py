"""BG/NBD and Gamma-Gamma by maximum likelihood: how often a member will buy, and for how much.

The models are Fader, Hardie & Lee's (2005, "Counting your customers the easy way", FHL below)
and Fader & Hardie's note "The Gamma-Gamma model of monetary value". Per member, all times in
days:

* ``x``: repeat purchases (orders - 1); ``t_x``: days from the first to the last purchase (0
  when ``x`` = 0); ``t_obs``: days from the first purchase to the scoring date (FHL's ``T``);
  ``m``: the mean value of the member's *repeat* orders (FHL's choice: the first order is
  often unlike the others, and ``x`` is then the number of values averaged).
* BG/NBD: while alive, a member buys at a Poisson rate lambda ~ Gamma(r, alpha); right after
  each repeat purchase they drop out for good with probability p ~ Beta(a, b). A member who
  has not bought again has had no chance to drop out, so P(alive) = 1 when ``x`` = 0. That is
  the model's assumption, not something the data shows.
* Gamma-Gamma: a member's order values are Gamma(p, nu) with nu ~ Gamma(q, gamma) across
  members, independent of when they buy. Only members with ``x`` >= 1 and ``m`` > 0 inform it.

Why our own fit rather than pymc-marketing's: its default priors pull fits on day-measured
data away from the likelihood's maximum (on Online Retail a little for BG/NBD, far for
Gamma-Gamma), its ``expected_probability_no_purchase`` contradicts its own P(alive) = 1 for
one-time buyers, and scoring a million members leaves a few seconds for the fits, with no PyMC
graph to build and compile. benchmarks/btyd_reference.py compares the two on the same data
(docs/benchmarks.md).

A fit maximises the exact log-likelihood with L-BFGS-B over log-parameters, with the analytic
gradient, on the distinct input rows weighted by their counts (day-resolution data repeats rows
a lot) and with the terms that depend on ``x`` alone computed once per distinct ``x``. Times are
divided by their mean and values by theirs, so that every parameter starts near 1 whatever the
unit; parameters and log-likelihoods are reported in the caller's units (days, currency).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

from features.errors import DataError

__all__ = [
    "BetaGeoFit",
    "FitError",
    "GammaGammaFit",
    "beta_geo_log_likelihood",
    "fit_beta_geo",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
]

#: Log-parameters (on the scaled data) are kept within +-15: a fit that runs into the bound has
#: no interior maximum, so the data do not identify the model.
_LOG_BOUND: Final = 15.0
#: The largest gradient component (log-likelihood per member, per unit log-parameter) of a
#: usable optimum: beyond it the optimiser stopped short of a maximum.
_USABLE_GRADIENT: Final = 1e-5

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


class FitError(DataError):
    """A model cannot be fitted to the data as given; the message says what data it needs."""


@dataclass(frozen=True)
class BetaGeoFit:
    """A fitted BG/NBD model, times in days. ``converged`` is the optimiser's own verdict; a
    fit is only returned at a maximum (gradient ~ 0), so ``False`` means it stopped on its
    precision limit there, and the parameters are usable."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_members: int
    converged: bool

    def p_alive(self, x: ArrayLike, t_x: ArrayLike, t_obs: ArrayLike) -> np.ndarray:
        """P(alive at ``t_obs`` | history), FHL eq. 11; exactly 1 for ``x`` = 0 (see module)."""
        x, t_x, t_obs = _as_float_arrays(x, t_x, t_obs)
        log_odds = np.full(x.shape, -np.inf)
        repeat = x > 0
        xr = x[repeat]
        log_odds[repeat] = (
            np.log(self.a)
            - np.log(self.b + xr - 1.0)
            + (self.r + xr)
            * (np.log(self.alpha + t_obs[repeat]) - np.log(self.alpha + t_x[repeat]))
        )
        return expit(-log_odds)

    def p_no_purchase(
        self, x: ArrayLike, t_x: ArrayLike, t_obs: ArrayLike, horizon_days: ArrayLike
    ) -> np.ndarray:
        """P(no purchase in (t_obs, t_obs + horizon]): a dropped-out member never buys; one
        alive, who cannot drop out before buying again, buys at a rate ~ Gamma(r + x, alpha +
        t_obs). For ``x`` = 0 it is ((alpha + t_obs) / (alpha + t_obs + horizon)) ** r."""
        x, t_x, t_obs, horizon = _as_float_arrays(x, t_x, t_obs, horizon_days)
        buys_if_alive = -np.expm1(-(self.r + x) * np.log1p(horizon / (self.alpha + t_obs)))
        return 1.0 - self.p_alive(x, t_x, t_obs) * buys_if_alive

    def expected_purchases(
        self, x: ArrayLike, t_x: ArrayLike, t_obs: ArrayLike, horizon_days: ArrayLike
    ) -> np.ndarray:
        """E[purchases in (t_obs, t_obs + horizon] | history], FHL eq. 10.

        Its hypergeometric term ``(1 - z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)`` has an equal form
        by Euler's transformation, ``(1 - z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``, and each
        member's is taken in the form with the smaller power of ``(1 - z)``: a large power
        underflows while its series overflows, and the product is NaN. As printed, that
        happens to frequent buyers (x in the hundreds); through Euler's form, to fits near the
        limit of a fixed dropout probability (a and b in the thousands: Online Retail before
        2011-06-11 gives a = 1271, b = 669141). tests/test_btyd.py checks both against mpmath
        and that limit. (Singular at a = 1 exactly, as eq. 10 is.)
        """
        x, t_x, t_obs, horizon = _as_float_arrays(x, t_x, t_obs, horizon_days)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = horizon / (alpha + t_obs + horizon)
        euler = a - 1.0 <= r + x
        power = np.where(euler, a - 1.0, r + x)
        series = np.exp(power * np.log1p(-z)) * hyp2f1(
            np.where(euler, a + b - 1.0 - r, r + x),
            np.where(euler, a - 1.0, b + x),
            a + b + x - 1.0,
            z,
        )
        return (a + b + x - 1.0) / (a - 1.0) * (1.0 - series) * self.p_alive(x, t_x, t_obs)


@dataclass(frozen=True)
class GammaGammaFit:
    """A fitted Gamma-Gamma spend model (values in the data's currency); ``n_members`` counts
    the members that informed it (``x`` >= 1, ``m`` > 0). ``converged`` as in BetaGeoFit."""

    p: float
    q: float
    gamma: float
    log_likelihood: float
    n_members: int
    converged: bool

    @property
    def mean_order_value(self) -> float:
        """The population's mean order value, p * gamma / (q - 1): the estimate for x = 0."""
        return self.p * self.gamma / (self.q - 1.0)

    def expected_order_value(self, x: ArrayLike, m: ArrayLike) -> np.ndarray:
        """E[order value | x, m] = p (gamma + x m) / (p x + q - 1): the member's own mean,
        shrunk toward the population's the fewer orders it rests on. ``m`` is ignored (may be
        NaN) where ``x`` = 0, which gives :attr:`mean_order_value`."""
        x, m = _as_float_arrays(x, m)
        own = np.where(x > 0, x * m, 0.0)
        return self.p * (self.gamma + own) / (self.p * x + self.q - 1.0)


def fit_beta_geo(x: ArrayLike, t_x: ArrayLike, t_obs: ArrayLike) -> BetaGeoFit:
    """Fit BG/NBD by maximum likelihood to one row per member (times in days).

    Raises :class:`FitError` when no member bought twice or the likelihood has no usable
    maximum, and :class:`DataError` on inconsistent inputs.
    """
    x, t_x, t_obs = _beta_geo_inputs(x, t_x, t_obs)
    if not (x > 0).any():
        raise FitError(
            f"BG/NBD: none of the {x.size} buyers bought more than once, so nothing says how "
            "often members buy or when they stop. It needs repeat buyers: a longer history "
            "before the scoring date, or data where members order more than once."
        )
    (x, t_x, t_obs), weights = _distinct_rows(x, t_x, t_obs)
    scale = float(np.average(t_obs, weights=weights))
    if scale <= 0:
        raise FitError("BG/NBD: every buyer's first purchase is at the scoring date itself.")
    objective = _beta_geo_objective(x, t_x / scale, t_obs / scale, weights)
    rate = float(np.average(x, weights=weights))  # repeat purchases per unit of scaled time
    start = np.log([1.0, 1.0 / rate, 1.0, 2.0])
    log_params, mean_log_lik, converged = _maximise(objective, start, "BG/NBD")
    r, alpha, a, b = np.exp(log_params)
    # Scaling times by c scales alpha by c and each member's likelihood (a density in the x
    # purchase times) by c^x.
    log_lik = mean_log_lik * weights.sum() - np.log(scale) * (weights @ x)
    return BetaGeoFit(
        r=float(r),
        alpha=float(alpha * scale),
        a=float(a),
        b=float(b),
        log_likelihood=float(log_lik),
        n_members=int(weights.sum()),
        converged=converged,
    )


def fit_gamma_gamma(x: ArrayLike, m: ArrayLike) -> GammaGammaFit:
    """Fit Gamma-Gamma by maximum likelihood on the members with ``x`` >= 1 and ``m`` > 0 (the
    others are left out: one-time buyers have no repeat value, and a mean of 0 is an unknown
    price). Raises :class:`FitError` when none qualify, the likelihood has no usable maximum,
    or q <= 1 (the expected order value would be infinite)."""
    x, m = _as_float_arrays(x, m)
    informative = (x >= 1) & np.isfinite(m) & (m > 0)
    if not informative.any():
        raise FitError(
            "Gamma-Gamma: no member has a repeat order of known, positive value. The spend "
            "model needs repeat buyers and prices (the price column) on their orders."
        )
    (x, m), weights = _distinct_rows(x[informative], m[informative])
    scale = float(np.average(m, weights=weights))
    start = np.log([1.0, 3.0, 2.0])  # population mean p * gamma / (q - 1) = 1 = the scale
    log_params, mean_log_lik, converged = _maximise(
        _gamma_gamma_objective(x, m / scale, weights), start, "Gamma-Gamma"
    )
    p, q, gamma = np.exp(log_params)
    if q <= 1:
        raise FitError(
            f"Gamma-Gamma: the fitted q = {q:.3g} is at most 1, so the spread of spend across "
            "members is too heavy-tailed for a finite expected order value. Look for extreme "
            "order values (wholesale orders, unremoved returns) or use a simpler spend estimate."
        )
    return GammaGammaFit(
        p=float(p),
        q=float(q),
        gamma=float(gamma * scale),
        # scaling values by c scales gamma by c and each member's density of m by c
        log_likelihood=float((mean_log_lik - np.log(scale)) * weights.sum()),
        n_members=int(weights.sum()),
        converged=converged,
    )


def beta_geo_log_likelihood(
    x: ArrayLike, t_x: ArrayLike, t_obs: ArrayLike, *, r: float, alpha: float, a: float, b: float
) -> float:
    """The BG/NBD log-likelihood of the members at the given parameters (times in days), the
    figure to compare fits by, whoever made them."""
    (x, t_x, t_obs), weights = _distinct_rows(*_beta_geo_inputs(x, t_x, t_obs))
    mean = -_beta_geo_objective(x, t_x, t_obs, weights)(np.log([r, alpha, a, b]))[0]
    return float(mean) * float(weights.sum())


def gamma_gamma_log_likelihood(
    x: ArrayLike, m: ArrayLike, *, p: float, q: float, gamma: float
) -> float:
    """The Gamma-Gamma log-likelihood at the given parameters, over the members a fit uses."""
    x, m = _as_float_arrays(x, m)
    informative = (x >= 1) & np.isfinite(m) & (m > 0)
    (x, m), weights = _distinct_rows(x[informative], m[informative])
    mean = -_gamma_gamma_objective(x, m, weights)(np.log([p, q, gamma]))[0]
    return float(mean) * float(weights.sum())


def _as_float_arrays(*values: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(*values)]


def _beta_geo_inputs(x: ArrayLike, t_x: ArrayLike, t_obs: ArrayLike) -> list[np.ndarray]:
    """The inputs as flat float arrays, refused (naming the field) when they cannot be a
    purchase history: a fit on them would be silently wrong."""
    x, t_x, t_obs = (v.ravel() for v in _as_float_arrays(x, t_x, t_obs))
    problems = {
        "are not finite": ~(np.isfinite(x) & np.isfinite(t_x) & np.isfinite(t_obs)),
        "have x (repeat purchases) negative or fractional": (x < 0) | (x != np.round(x)),
        "have t_x < 0 or t_x > t_obs (last purchase before the first or after the date)": (
            (t_x < 0) | (t_x > t_obs)
        ),
    }
    for what, bad in problems.items():
        if bad.any():
            raise DataError(
                f"BG/NBD inputs: {int(bad.sum())} of {x.size} members {what}; take them from "
                "the btyd_x, btyd_t_x and btyd_T columns of features.member_features."
            )
    if x.size == 0:
        raise FitError("BG/NBD: no buyers before the scoring date; it needs purchase history.")
    return [x, t_x, t_obs]


def _distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of equal-length columns and how many times each occurs."""
    if np.unique(columns[-1]).size == columns[-1].size:  # exact times: every row is distinct,
        return list(columns), np.ones(columns[-1].size)  # and one sort finds it cheaply
    order = np.lexsort(columns[::-1])
    ordered = [column[order] for column in columns]
    repeats_previous = np.ones(max(order.size - 1, 0), dtype=bool)
    for column in ordered:
        repeats_previous &= column[1:] == column[:-1]
    first = np.flatnonzero(np.concatenate([[order.size > 0], ~repeats_previous]))
    counts = np.diff(np.append(first, order.size)).astype(np.float64)
    return [column[first] for column in ordered], counts


def _per_level(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``x`` and the weight of each: terms in ``x`` alone are summed
    over these instead of over every row."""
    levels, index = np.unique(x, return_inverse=True)
    return levels, np.bincount(index, weights=weights)


def _beta_geo_objective(
    x: np.ndarray, t_x: np.ndarray, t_obs: np.ndarray, weights: np.ndarray
) -> Objective:
    """Minus the mean BG/NBD log-likelihood and its gradient, in log-parameters.

    Per member, ln L = ln Gamma(r+x) - ln Gamma(r) + r ln alpha + ln B(a, b+x) - ln B(a, b)
    + ln[(alpha+T)^-(r+x) + [x>0] a/(b+x-1) (alpha+t_x)^-(r+x)], the last term a
    log-sum-exp (FHL's A4 would overflow as a plain sum on day-measured data).
    """
    levels, level_weights = _per_level(x, weights)
    total = float(weights.sum())
    once = x == 0
    t_obs0, w0 = t_obs[once], weights[once]
    x1, t_x1, t_obs1, w1 = x[~once], t_x[~once], t_obs[~once], weights[~once]

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(log_params)
        log_alpha = np.log(alpha)
        level_ll = (
            gammaln(r + levels) - gammaln(r) + r * log_alpha + betaln(a, b + levels) - betaln(a, b)
        )
        grad = np.array(
            [
                level_weights @ (digamma(r + levels) - digamma(r) + log_alpha),
                total * r / alpha,
                level_weights @ (digamma(a + b) - digamma(a + b + levels)),
                level_weights
                @ (digamma(b + levels) - digamma(a + b + levels) - digamma(b) + digamma(a + b)),
            ]
        )
        log_t0 = np.log(alpha + t_obs0)
        ll = level_weights @ level_ll - r * (w0 @ log_t0)
        grad[0] -= w0 @ log_t0
        grad[1] -= r * (w0 @ (1.0 / (alpha + t_obs0)))

        rx = r + x1
        log_t, log_tx = np.log(alpha + t_obs1), np.log(alpha + t_x1)
        alive = -rx * log_t
        dropped = np.log(a) - np.log(b + x1 - 1.0) - rx * log_tx
        both = np.logaddexp(alive, dropped)
        share_alive, share_dropped = np.exp(alive - both), np.exp(dropped - both)
        ll += w1 @ both
        grad[0] -= w1 @ (share_alive * log_t + share_dropped * log_tx)
        grad[1] -= w1 @ (rx * (share_alive / (alpha + t_obs1) + share_dropped / (alpha + t_x1)))
        grad[2] += (w1 @ share_dropped) / a
        grad[3] -= w1 @ (share_dropped / (b + x1 - 1.0))
        return -ll / total, -grad * np.array([r, alpha, a, b]) / total

    return objective


def _gamma_gamma_objective(x: np.ndarray, m: np.ndarray, weights: np.ndarray) -> Objective:
    """Minus the mean Gamma-Gamma log-likelihood and its gradient, in log-parameters.

    Per member, ln f(m | x) = ln Gamma(px+q) - ln Gamma(px) - ln Gamma(q) + q ln gamma
    + (px - 1) ln m + px ln x - (px+q) ln(gamma + m x); only the last term needs every row.
    """
    levels, level_weights = _per_level(x, weights)
    total = float(weights.sum())
    sum_x_log_mx = weights @ (x * np.log(m * x))
    sum_log_m = weights @ np.log(m)
    mx = m * x

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, gamma = np.exp(log_params)
        log_spend = np.log(gamma + mx)
        shape = p * levels + q
        ll = (
            level_weights @ (gammaln(shape) - gammaln(p * levels))
            - total * (gammaln(q) - q * np.log(gamma))
            + p * sum_x_log_mx
            - sum_log_m
            - weights @ ((p * x + q) * log_spend)
        )
        grad = np.array(
            [
                level_weights @ (levels * (digamma(shape) - digamma(p * levels)))
                + sum_x_log_mx
                - weights @ (x * log_spend),
                level_weights @ digamma(shape)
                - total * (digamma(q) - np.log(gamma))
                - weights @ log_spend,
                total * q / gamma - weights @ ((p * x + q) / (gamma + mx)),
            ]
        )
        return -ll / total, -grad * np.array([p, q, gamma]) / total

    return objective


def _maximise(
    objective: Objective, start: np.ndarray, model: str
) -> tuple[np.ndarray, float, bool]:
    """The log-parameters at the likelihood's maximum, the mean log-likelihood there, and
    whether the optimiser said it converged. Raises :class:`FitError` when there is no usable
    interior maximum."""
    # One BLAS thread: the work is element-wise and a few dot products, and L-BFGS-B's small
    # BLAS calls waited on idle threads, 7x slower on Online Retail on a busy 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * start.size,
            options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8},
        )
    if not np.isfinite(result.fun) or np.abs(result.jac).max() > _USABLE_GRADIENT:
        raise FitError(
            f"{model}: the likelihood maximisation did not reach a maximum ({result.message}). "
            "The data may be too few or too uniform to identify the model."
        )
    if (np.abs(result.x) >= _LOG_BOUND - 1e-6).any():
        raise FitError(
            f"{model}: a parameter ran to the edge of its range (log-parameters "
            f"{np.round(result.x, 2).tolist()} on scaled data), so the likelihood has no "
            "interior maximum: the data do not identify the model (typically, no sign that "
            "members stop buying, or too few members)."
        )
    return result.x, -float(result.fun), bool(result.success)
