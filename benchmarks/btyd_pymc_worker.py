"""pymc-marketing's side of benchmarks/btyd_reference.py, run in its own environment.

pymc-marketing 1.3.0 needs Python >= 3.12 and the project runs on 3.11, so the reference script
starts this one through ``uv run --no-project --python 3.12 --with pymc-marketing==1.3.0``; it
imports nothing of ours. It reads the members' x, t_x, t_obs and m (``.npz``), fits
``BetaGeoModel`` and ``GammaGammaModel`` by MAP (``fit(method="map")``) with the library's
default priors and with flat ones (``HalfFlat``: the MAP is then the maximum-likelihood
estimate), and writes the parameters, fit seconds (model build and optimisation, after a
warm-up fit on 200 members has compiled the graph's operations) and its no-purchase and alive
probabilities for one-time buyers as JSON.

    python btyd_pymc_worker.py INPUT.npz OUTPUT.json HORIZON_DAYS
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pymc_marketing
from pymc_extras.prior import Prior
from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

FLAT_BETA_GEO = {name: Prior("HalfFlat") for name in ("r", "alpha", "a", "b")}
FLAT_GAMMA_GAMMA = {name: Prior("HalfFlat") for name in ("p", "q", "v")}


def point(model, names: tuple[str, ...]) -> dict[str, float]:
    posterior = model.fit_result
    return {name: float(posterior[name].values.ravel()[0]) for name in names}


def fit_beta_geo(data: pd.DataFrame, config: dict | None) -> tuple[BetaGeoModel, dict]:
    started = time.perf_counter()
    model = BetaGeoModel(model_config=config)
    model.fit(data, method="map", progressbar=False)
    seconds = time.perf_counter() - started
    return model, {**point(model, ("r", "alpha", "a", "b")), "seconds": seconds}


def fit_gamma_gamma(data: pd.DataFrame, config: dict | None) -> dict:
    started = time.perf_counter()
    model = GammaGammaModel(model_config=config)
    model.fit(data, method="map", progressbar=False)
    seconds = time.perf_counter() - started
    values = point(model, ("p", "q", "v"))
    return {"p": values["p"], "q": values["q"], "gamma": values["v"], "seconds": seconds}


def one_time_buyers(model: BetaGeoModel, data: pd.DataFrame, horizon: float) -> dict:
    """The library's own P(no purchase) and P(alive) for the members with x = 0."""
    once = data[data["frequency"] == 0]
    no_purchase = model.expected_probability_no_purchase(t=horizon, data=once)
    alive = model.expected_probability_alive(data=once)
    return {
        "customer_id": once["customer_id"].tolist(),
        "p_no_purchase": np.asarray(no_purchase).ravel().tolist(),
        "p_alive": np.asarray(alive).ravel().tolist(),
    }


def main(source: str, target: str, horizon: float) -> None:
    warnings.simplefilter("ignore")
    arrays = np.load(source)
    ids = np.arange(arrays["x"].size)
    members = pd.DataFrame(
        {
            "customer_id": ids,
            "frequency": arrays["x"],
            "recency": arrays["t_x"],
            "T": arrays["t_obs"],
        }
    )
    repeat = (arrays["x"] > 0) & (arrays["m"] > 0)
    spend = pd.DataFrame(
        {
            "customer_id": ids[repeat],
            "frequency": arrays["x"][repeat],
            "monetary_value": arrays["m"][repeat],
        }
    )
    results: dict = {"version": pymc_marketing.__version__}
    fit_beta_geo(members.head(200), None)  # warm-ups: compile once, time the fits after
    fit_gamma_gamma(spend.head(200), None)
    for label, beta_geo_config, gamma_gamma_config in (
        ("default priors", None, None),
        ("flat priors", FLAT_BETA_GEO, FLAT_GAMMA_GAMMA),
    ):
        model, beta_geo = fit_beta_geo(members, beta_geo_config)
        results[label] = {
            "beta_geo": beta_geo,
            "gamma_gamma": fit_gamma_gamma(spend, gamma_gamma_config),
            "one_time_buyers": one_time_buyers(model, members, horizon),
        }
    with open(target, "w") as out:
        json.dump(results, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
