"""BG/NBD and Gamma-Gamma: parameter recovery on simulated members, the likelihood and the
predictions against Fader-Hardie-Lee's formulas as printed, and errors a caller can record."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from scipy.optimize import minimize
from scipy.special import beta as beta_function
from scipy.special import gamma as gamma_function
from scipy.special import hyp2f1

from features.columns import EVENT, ITEM_ID, MEMBER_ID, ORDER_ID, PRICE, QUANTITY, TIMESTAMP
from features.errors import DataError
from features.member_features import (
    BTYD_COLUMNS,
    BTYD_M,
    BTYD_T,
    BTYD_TX,
    BTYD_X,
    IS_BUYER,
    member_features,
)
from tests.btyd_simulation import SimulatedMembers, simulate_members
from training.member_models.btyd import (
    BetaGeoFit,
    FitError,
    beta_geo_log_likelihood,
    fit_beta_geo,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
)

#: FHL's CDNOW estimates (r = 0.243, alpha = 4.414 weeks, a = 0.793, b = 2.426), alpha in days.
DAYS = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}
SPEND = {"p": 6.0, "q": 4.0, "gamma": 15.0}
HORIZON = 90.0


@pytest.fixture(scope="module")
def population() -> SimulatedMembers:
    return simulate_members(20_000, **DAYS, **SPEND, horizon_days=HORIZON, seed=7)


@pytest.fixture(scope="module")
def truth() -> BetaGeoFit:
    """The simulating parameters as a fit, to test the formulas without estimation error."""
    return BetaGeoFit(**DAYS, log_likelihood=np.nan, n_members=0, converged=True)


def standard_errors(log_likelihood, log_params: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Standard errors of the log-parameters from the observed information (a central-
    difference Hessian of the log-likelihood at the maximum)."""
    k = log_params.size
    hessian = np.empty((k, k))
    shifts = np.eye(k) * step
    for i in range(k):
        for j in range(i, k):
            hessian[i, j] = hessian[j, i] = (
                log_likelihood(log_params + shifts[i] + shifts[j])
                - log_likelihood(log_params + shifts[i] - shifts[j])
                - log_likelihood(log_params - shifts[i] + shifts[j])
                + log_likelihood(log_params - shifts[i] - shifts[j])
            ) / (4 * step**2)
    return np.sqrt(np.diag(np.linalg.inv(-hessian)))


def test_beta_geo_recovers_simulated_parameters_within_four_standard_errors(
    population: SimulatedMembers,
) -> None:
    # The tolerance is the fit's own uncertainty: each log-parameter within 4 standard errors
    # (a false alarm has odds of about 1 in 16,000 per parameter). At 20,000 members the
    # standard errors are 3-12% of the parameters, so a wrong unit or scaling would show.
    fit = fit_beta_geo(population.x, population.t_x, population.t_obs)
    estimate = np.log([fit.r, fit.alpha, fit.a, fit.b])

    def log_likelihood(log_params: np.ndarray) -> float:
        r, alpha, a, b = np.exp(log_params)
        return beta_geo_log_likelihood(
            population.x, population.t_x, population.t_obs, r=r, alpha=alpha, a=a, b=b
        )

    errors = standard_errors(log_likelihood, estimate)
    true = np.log([DAYS["r"], DAYS["alpha"], DAYS["a"], DAYS["b"]])
    assert np.all(errors < 0.15), errors
    assert np.all(np.abs(estimate - true) < 4 * errors), (np.exp(estimate), errors)
    assert fit.n_members == 20_000
    assert fit.log_likelihood == pytest.approx(log_likelihood(estimate), rel=1e-12)
    assert fit.log_likelihood > log_likelihood(true)


def test_gamma_gamma_recovers_simulated_parameters_within_four_standard_errors(
    population: SimulatedMembers,
) -> None:
    fit = fit_gamma_gamma(population.x, population.m)
    estimate = np.log([fit.p, fit.q, fit.gamma])

    def log_likelihood(log_params: np.ndarray) -> float:
        p, q, gamma = np.exp(log_params)
        return gamma_gamma_log_likelihood(population.x, population.m, p=p, q=q, gamma=gamma)

    errors = standard_errors(log_likelihood, estimate)
    true = np.log([SPEND["p"], SPEND["q"], SPEND["gamma"]])
    assert np.all(np.abs(estimate - true) < 4 * errors), (np.exp(estimate), errors)
    assert fit.n_members == int((population.x > 0).sum())
    assert fit.log_likelihood == pytest.approx(log_likelihood(estimate), rel=1e-12)


def fhl_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, t_obs: np.ndarray):
    """FHL eq. 6 as printed, member by member, without logs: fine on week-scaled times."""
    r, alpha, a, b = params
    common = gamma_function(r + x) * alpha**r / gamma_function(r)
    alive = beta_function(a, b + x) / beta_function(a, b) / (alpha + t_obs) ** (r + x)
    dropped = np.where(
        x > 0,
        beta_function(a + 1, b + np.maximum(x, 1) - 1)
        / beta_function(a, b)
        / (alpha + t_x) ** (r + x),
        0.0,
    )
    return np.log(common * (alive + dropped))


def test_compressed_weighted_fit_equals_the_row_by_row_fit_of_the_printed_likelihood() -> None:
    weeks = simulate_members(
        2_000, r=0.243, alpha=4.414, a=0.793, b=2.426, t_obs_days=(4, 40), whole_days=True
    )  # times in whole weeks: rows repeat, so the fit's compression has work to do
    x, t_x, t_obs = weeks.x, weeks.t_x, weeks.t_obs
    fit = fit_beta_geo(x, t_x, t_obs)
    ours = np.array([fit.r, fit.alpha, fit.a, fit.b])
    assert fit.log_likelihood == pytest.approx(fhl_log_likelihood(ours, x, t_x, t_obs).sum())

    reference = minimize(
        lambda log_params: -fhl_log_likelihood(np.exp(log_params), x, t_x, t_obs).sum(),
        np.log(ours) + 0.3,
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 5000},
    )
    np.testing.assert_allclose(ours, np.exp(reference.x), rtol=1e-3)
    assert fit.log_likelihood >= -reference.fun - 1e-6

    tripled = fit_beta_geo(np.tile(x, 3), np.tile(t_x, 3), np.tile(t_obs, 3))
    np.testing.assert_allclose([tripled.r, tripled.alpha, tripled.a, tripled.b], ours, rtol=1e-5)
    assert tripled.log_likelihood == pytest.approx(3 * fit.log_likelihood)
    assert tripled.n_members == 3 * fit.n_members


def test_gamma_gamma_likelihood_is_the_note_s_density_member_by_member() -> None:
    x = np.array([1.0, 2.0, 5.0, 0.0, 3.0])
    m = np.array([12.0, 30.0, 8.5, np.nan, 0.0])  # x = 0 and m = 0 do not count
    p, q, gamma = 2.0, 3.5, 40.0
    used = slice(0, 3)
    density = (
        gamma_function(p * x + q)
        / (gamma_function(p * x) * gamma_function(q))
        * gamma**q
        * m ** (p * x - 1)
        * x ** (p * x)
        / (gamma + m * x) ** (p * x + q)
    )
    expected = np.log(density[used]).sum()
    assert gamma_gamma_log_likelihood(x, m, p=p, q=q, gamma=gamma) == pytest.approx(expected)


def test_expected_purchases_match_the_simulated_future_within_four_standard_errors(
    population: SimulatedMembers, truth: BetaGeoFit
) -> None:
    # At the simulating parameters, the sum over members of E[future | history] is the
    # expected simulated total; its standard error is the root of the summed squared residuals.
    # Checked for one-time, occasional and frequent buyers apart, since eq. 10 differs by x.
    s = population
    expected = truth.expected_purchases(s.x, s.t_x, s.t_obs, HORIZON)
    no_purchase = truth.p_no_purchase(s.x, s.t_x, s.t_obs, HORIZON)
    alive = truth.p_alive(s.x, s.t_x, s.t_obs)
    for group in (s.x == 0, (s.x >= 1) & (s.x <= 3), s.x > 3):
        assert group.sum() > 1_000
        for predicted, observed in (
            (expected, s.future_purchases),
            (no_purchase, s.future_purchases == 0),
            (alive, s.alive),
        ):
            residual = observed[group] - predicted[group]
            assert abs(residual.sum()) <= 4 * np.sqrt((residual**2).sum())  # 0 = 0: x = 0 alive


def test_euler_transformed_eq_10_equals_eq_10_as_printed() -> None:
    x = np.array([0.0, 1.0, 2.0, 5.0, 9.0])
    t_x = np.array([0.0, 3.0, 10.0, 20.0, 31.0])
    t_obs = np.array([5.0, 12.0, 30.0, 33.0, 40.0])
    for r, alpha, a, b in ((0.243, 4.414, 0.793, 2.426), (1.3, 20.0, 2.5, 4.0)):
        fit = BetaGeoFit(r, alpha, a, b, log_likelihood=np.nan, n_members=0, converged=True)
        horizon = 26.0
        printed = (
            (a + b + x - 1)
            / (a - 1)
            * (
                1
                - ((alpha + t_obs) / (alpha + t_obs + horizon)) ** (r + x)
                * hyp2f1(r + x, b + x, a + b + x - 1, horizon / (alpha + t_obs + horizon))
            )
            / (1 + (x > 0) * a / (b + x - 1) * ((alpha + t_obs) / (alpha + t_x)) ** (r + x))
        )
        np.testing.assert_allclose(fit.expected_purchases(x, t_x, t_obs, horizon), printed)


#: The BG/NBD fit of Online Retail's buyers before 2011-06-11 (a and b in the thousands: the
#: dropout probability is all but fixed, a / (a + b) = 0.0019), with E[purchases in 90 days]
#: for members (x, t_x, T) computed once with mpmath 1.3.0 at 30 digits, by eq. 10 with
#: mpmath.hyp2f1 and, agreeing to 1e-24, by quadrature of E[(1 - (1 + p w)^-(r+x)) / p] over
#: p ~ Beta(a, b + x), w = 90 / (alpha + T). Euler's form of eq. 10 alone gave 0 * inf = NaN
#: for every one-time buyer of that date (751 of 2,811).
NEAR_FIXED_DROPOUT = {"r": 0.620, "alpha": 43.10, "a": 1271.1, "b": 669141.4}
MPMATH_EXPECTED = (
    # x, t_x, T, E[purchases in 90 days]
    (0.0, 0.0, 22.26, 0.85193187254060509),
    (0.0, 0.0, 50.45, 0.59559260164313491),
    (0.0, 0.0, 1.57, 1.245308211064792),
    (2.0, 30.0, 100.0, 1.6262943031598976),
    (40.0, 150.0, 160.0, 17.431591219672261),
    (200.0, 180.0, 190.0, 5.3122542003269187),
)


def test_expected_purchases_near_a_fixed_dropout_probability_match_mpmath() -> None:
    fit = BetaGeoFit(**NEAR_FIXED_DROPOUT, log_likelihood=np.nan, n_members=0, converged=True)
    x, t_x, t_obs, expected = np.array(MPMATH_EXPECTED).T
    np.testing.assert_allclose(fit.expected_purchases(x, t_x, t_obs, 90.0), expected, rtol=1e-11)


def test_expected_purchases_tend_to_the_fixed_dropout_limit_as_a_and_b_grow() -> None:
    # With a, b -> inf and a / (a + b) = p fixed, every member drops out with probability p
    # after each purchase, so an alive member buys min(Poisson, Geometric(p)) times:
    # E = (1 - (1 + p w)^-(r+x)) / p with w = H / (alpha + T) (the NBD's (r + x) w as p -> 0),
    # times P(alive) with a / (b + x - 1) -> p / (1 - p). The gap is O(1 / (a + b)): 100
    # times smaller at a + b = 1e7 than at 1e5, as rounding errors would not be, and below
    # 1e-6 at 1e9 (where it nears rounding, 1e-12 for some members).
    x = np.array([0.0, 0.0, 1.0, 5.0, 40.0, 200.0])
    t_x = np.array([0.0, 0.0, 20.0, 80.0, 150.0, 180.0])
    t_obs = np.array([1.5, 50.0, 60.0, 100.0, 160.0, 190.0])
    r, alpha = 0.62, 43.1
    w, s = HORIZON / (alpha + t_obs), r + x
    for p in (0.002, 0.05, 0.3):
        alive = 1 / (1 + (x > 0) * p / (1 - p) * ((alpha + t_obs) / (alpha + t_x)) ** s)
        limit = -np.expm1(-s * np.log1p(p * w)) / p * alive
        gaps = []
        for size in (1e5, 1e7, 1e9):
            fit = BetaGeoFit(r, alpha, p * size, (1 - p) * size, np.nan, 0, converged=True)
            gaps.append(fit.expected_purchases(x, t_x, t_obs, HORIZON) / limit - 1)
        np.testing.assert_allclose(gaps[0], 100 * gaps[1], rtol=0.01)
        assert np.all(np.abs(gaps[2]) < 1e-6), (p, gaps)


def test_one_time_buyers_are_alive_and_buy_at_their_posterior_rate(truth: BetaGeoFit) -> None:
    t_obs = np.array([1.0, 30.0, 365.0, 1000.0])
    zeros = np.zeros_like(t_obs)
    assert np.all(truth.p_alive(zeros, zeros, t_obs) == 1.0)
    np.testing.assert_allclose(
        truth.p_no_purchase(zeros, zeros, t_obs, HORIZON),
        ((truth.alpha + t_obs) / (truth.alpha + t_obs + HORIZON)) ** truth.r,
        rtol=1e-12,
    )
    assert np.all(truth.p_no_purchase(zeros, zeros, t_obs, 0.0) == 1.0)
    assert np.all(truth.expected_purchases(zeros, zeros, t_obs, 0.0) == 0.0)


def test_p_alive_is_a_probability_that_falls_with_time_since_the_last_purchase(
    truth: BetaGeoFit,
) -> None:
    t_obs = 400.0
    t_x = np.linspace(400.0, 250.0, 61)  # last purchase ever longer ago
    for x in (1.0, 4.0, 30.0):
        alive = truth.p_alive(x, t_x, t_obs)
        assert np.all((alive > 0) & (alive <= 1))
        assert np.all(np.diff(alive) < 0)
        assert np.all(np.diff(truth.p_no_purchase(x, t_x, t_obs, HORIZON)) > 0)
        assert np.all(np.diff(truth.expected_purchases(x, t_x, t_obs, HORIZON)) < 0)


def test_expected_order_value_shrinks_toward_the_population_mean(
    population: SimulatedMembers,
) -> None:
    fit = fit_gamma_gamma(population.x, population.m)
    repeat = population.x > 0
    predicted = fit.expected_order_value(population.x, population.m)
    residual = population.true_order_mean[repeat] - predicted[repeat]
    assert abs(residual.sum()) < 4 * np.sqrt((residual**2).sum())
    assert np.all(predicted[~repeat] == pytest.approx(fit.mean_order_value))
    assert fit.mean_order_value == pytest.approx(
        SPEND["p"] * SPEND["gamma"] / (SPEND["q"] - 1), rel=0.1
    )


def test_data_without_repeat_buyers_is_refused_with_what_it_needs() -> None:
    once = np.zeros(50)
    with pytest.raises(FitError, match="bought more than once"):
        fit_beta_geo(once, once, np.full(50, 30.0))
    with pytest.raises(FitError, match="repeat buyers and prices"):
        fit_gamma_gamma(np.array([0.0, 2.0]), np.array([np.nan, 0.0]))
    assert issubclass(FitError, DataError)  # the CLI reports it as a data problem


def test_spend_too_heavy_tailed_for_a_finite_mean_is_refused() -> None:
    heavy = simulate_members(20_000, **DAYS, p=2.0, q=0.6, gamma=15.0, seed=3)
    with pytest.raises(FitError, match=r"q = 0\.\d+ is at most 1"):
        fit_gamma_gamma(heavy.x, heavy.m)


def test_spend_without_variation_has_no_maximum_and_is_refused() -> None:
    # Every order worth the same: the likelihood grows without bound as p goes to infinity.
    x = np.tile([1.0, 2.0, 3.0], 100)
    with pytest.raises(FitError, match=r"did not reach a maximum.*too uniform"):
        fit_gamma_gamma(x, np.full(x.size, 10.0))


def test_impossible_histories_are_refused_naming_the_field() -> None:
    with pytest.raises(DataError, match="t_x > t_obs"):
        fit_beta_geo([1.0, 2.0], [40.0, 5.0], [30.0, 30.0])
    with pytest.raises(DataError, match="fractional"):
        fit_beta_geo([1.5, 2.0], [4.0, 5.0], [30.0, 30.0])


AS_OF = datetime(2024, 3, 1)


def test_inputs_count_orders_before_the_date_and_average_the_repeat_orders() -> None:
    day = timedelta(days=1)
    rows = [
        # member, event, timestamp, quantity, price, order_id
        ("ann", "purchase", AS_OF - 10 * day, 2.0, 5.0, "o1"),  # first order: 10 + 4 = 14
        ("ann", "purchase", AS_OF - 10 * day + timedelta(hours=1), 1.0, 4.0, "o1"),
        ("ann", "purchase", AS_OF - 4 * day, 1.0, 30.0, "o2"),
        ("ann", "purchase", AS_OF - 1.5 * day, 3.0, 10.0, "o3"),
        ("ann", "view", AS_OF - 0.5 * day, 1.0, 99.0, None),  # not a purchase
        ("ann", "purchase", AS_OF, 1.0, 500.0, "o4"),  # on the date: the future
        ("bob", "purchase", AS_OF - 20 * day, 1.0, 8.0, None),  # no order id: orders by day
        ("bob", "purchase", AS_OF - 20 * day + timedelta(hours=2), 1.0, 2.0, None),
        ("bob", "purchase", AS_OF - 2 * day, 1.0, None, None),  # unknown price counts 0
        ("cy", "purchase", AS_OF - 3 * day, 1.0, 7.0, "o9"),
        ("dee", "view", AS_OF - 3 * day, 1.0, 7.0, None),  # never bought: not a BTYD member
    ]
    frame = pl.DataFrame(
        [(member, "item", *rest) for member, *rest in rows],
        schema={
            MEMBER_ID: pl.Utf8,
            ITEM_ID: pl.Utf8,
            EVENT: pl.Utf8,
            TIMESTAMP: pl.Datetime("us"),
            QUANTITY: pl.Float64,
            PRICE: pl.Float64,
            ORDER_ID: pl.Utf8,
        },
        orient="row",
    )
    features = member_features(frame, AS_OF)
    inputs = features.filter(pl.col(IS_BUYER)).select(MEMBER_ID, *BTYD_COLUMNS)
    assert inputs.get_column(MEMBER_ID).to_list() == ["ann", "bob", "cy"]
    assert inputs.get_column(BTYD_X).to_list() == [2, 1, 0]
    np.testing.assert_allclose(inputs.get_column(BTYD_TX).to_numpy(), [8.5, 18.0, 0.0])
    np.testing.assert_allclose(inputs.get_column(BTYD_T).to_numpy(), [10.0, 20.0, 3.0])
    assert inputs.get_column(BTYD_M).to_list() == [pytest.approx(30.0), pytest.approx(0.0), None]
    assert features.filter(~pl.col(IS_BUYER)).get_column(MEMBER_ID).to_list() == ["dee"]
