"""Results as data: to_dataframe (long and wide), to_xarray and short reprs on simulation
results, metric tables, fit results and population fit results."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import xarray as xr

import cartkin
from cartkin import metrics
from cartkin.fit.popresult import PopulationFitResult
from cartkin.fit.result import Estimate, FitResult

T = np.array([0.0, 3.0, 7.0, 14.0, 28.0])
LONG_FLOAT = re.compile(r"\d\.\d{6,}")  # a float printed with more than 5 digits after the point


@pytest.fixture(scope="module")
def result():
    patient = cartkin.Patient(weight_kg=60, height_cm=165, age_years=30, sex="female",
                              egfr_ml_min_173m2=90)  # fmt: skip
    return cartkin.simulate("stein2019", patient, cartkin.Regimen(), T)


def test_simulation_result_frames(result):
    wide = result.to_dataframe()
    assert list(wide.columns) == list(result.to_columns())
    assert wide.shape == (T.size, 1 + len(result.observables) + len(result.model.states))
    assert np.array_equal(wide["t_days"], T)
    cart = result.model.roles["cart"]
    assert np.array_equal(wide[cart], result.observables[cart])
    assert wide.attrs["units"][cart] == "cells/uL" and wide.attrs["model"] == "stein2019"

    long = result.to_dataframe("long")
    assert list(long.columns) == ["t_days", "variable", "value", "unit"]
    assert len(long) == T.size * (wide.shape[1] - 1)
    rows = long[long["variable"] == cart]
    assert np.array_equal(rows["value"], result.observables[cart])
    assert set(rows["unit"]) == {"cells/uL"}
    with pytest.raises(ValueError, match=r"layout = 'tall': expected 'long' or 'wide'"):
        result.to_dataframe("tall")


def test_simulation_result_xarray(result):
    ds = result.to_xarray()
    assert isinstance(ds, xr.Dataset) and np.array_equal(ds["t_days"], T)
    cart = result.model.roles["cart"]
    assert np.array_equal(ds[cart].values, result.observables[cart])
    assert ds[cart].attrs["units"] == "cells/uL" and ds["t_days"].attrs["units"] == "day"
    assert ds.attrs["model"] == "stein2019" and ds.attrs["solver_method"] == "rodas5"
    assert float(ds[cart].sel(t_days=7.0)) == result.observables[cart][2]


def test_simulation_result_repr_is_a_short_summary(result):
    text = repr(result)
    assert len(text) < 300, text
    assert text.startswith("SimulationResult(model='stein2019'")
    assert "5 times" in text and "peak" in text and not LONG_FLOAT.search(text)


def test_metric_table_frames_and_repr(result):
    table = metrics.compute(result)
    long = table.to_dataframe()
    assert list(long.columns) == ["name", "value", "unit", "note"]
    assert long["name"].tolist() == table.names
    cmax = table["CMAX"]
    assert long.set_index("name").loc["CMAX", "value"] == cmax.value
    wide = table.to_dataframe("wide")
    assert wide.shape == (1, len(table)) and wide.loc[0, "CMAX"] == cmax.value
    assert wide.attrs["units"]["CMAX"] == cmax.unit
    ds = table.to_xarray()
    assert float(ds["CMAX"]) == cmax.value and ds["CMAX"].attrs["units"] == cmax.unit
    text = repr(table)
    assert "CMAX" in text and not LONG_FLOAT.search(text), text
    assert f"{cmax.value:.4g}" in text


def _fit_result():
    estimates = [
        Estimate("alpha", 0.123456789, "1/day", 0.0123456, 0.1, 0.15, True),
        Estimate("beta", 0.0098765, "1/day", None, None, None, False, note="flat profile"),
    ]
    predictions = [
        {"id": "1", "time": 7.0, "observable": "cart", "dv": 2.0, "pred": 1.5, "ipred": 1.9,
         "cens": 0, "limit": None, "res": 0.05, "wres": 0.2},
        {"id": "1", "time": 14.0, "observable": "cart", "dv": 1.0, "pred": 0.8, "ipred": 1.1,
         "cens": 0, "limit": None, "res": -0.1, "wres": -0.3},
    ]  # fmt: skip
    return FitResult(model="stein2019", estimates=estimates, objective=12.3456789,
                     objective_prior=0.0, n_records=2, n_free=2, converged=True, starts=[],
                     starts_agree=1, predictions=predictions)  # fmt: skip


def test_fit_result_frames_and_repr():
    fit = _fit_result()
    long = fit.to_dataframe()
    assert long["name"].tolist() == ["alpha", "beta"]
    assert long.loc[0, "se"] == 0.0123456 and math.isnan(long.loc[1, "se"])
    assert long.loc[1, "note"] == "flat profile"
    wide = fit.to_dataframe("wide")
    assert wide.loc[0, "alpha"] == 0.123456789 and wide.attrs["units"]["beta"] == "1/day"
    pred = fit.to_dataframe("wide", table="predictions")
    assert pred["ipred"].tolist() == [1.9, 1.1] and math.isnan(pred.loc[0, "limit"])
    pred_long = fit.to_dataframe("long", table="predictions")
    assert set(pred_long["variable"]) == {"dv", "pred", "ipred", "res", "wres"}
    assert len(pred_long) == 2 * 5
    with pytest.raises(ValueError, match=r"table = 'starts'"):
        fit.to_dataframe(table="starts")
    ds = fit.to_xarray()
    assert ds["value"].sel(name="alpha") == 0.123456789 and ds["unit"].sel(name="beta") == "1/day"
    assert ds.attrs["objective"] == 12.3456789
    text = repr(fit)
    assert text.startswith("FitResult(stein2019, maximum-likelihood estimate: alpha = 0.1235 1/day")
    assert "(SE 0.01235)" in text and "-2LL 12.35" in text and len(text) < 300


def test_population_fit_result_frames_and_repr():
    pop = PopulationFitResult(
        model="sle_cart_v1",
        estimates={"rho": {"value": 0.4567891, "unit": "1/day", "se": 0.01, "ci_low": 0.43,
                           "ci_high": 0.48}},
        omega={"rho": {"omega2": 0.0912345, "se": 0.02, "cv_percent": 31.1, "shrinkage": 0.1}},
        error_models={}, ebes={"id": np.array(["1"]), "rho": np.array([0.5])},
        columns={"id": np.array(["1"]), "time": np.array([7.0]), "observable": np.array(["cart"]),
                 "dv": np.array([2.0]), "pred": np.array([1.5]), "ipred": np.array([1.9]),
                 "cens": np.array([0]), "limit": np.array([np.nan]), "iwres": np.array([0.1]),
                 "npde": np.array([np.nan])},
        objective=100.123456, loglik_mc_se=0.1, aic=104.0, bic=105.0, n_parameters=2,
        n_subjects=1, n_obs=1, converged=False, convergence="not converged",
        trajectory=np.zeros((300, 2)), trajectory_names=("rho", "omega2:rho"), acceptance={},
        methods={}, elapsed_s=1.0, n_solves=10,
    )  # fmt: skip
    long = pop.to_dataframe()
    assert long["name"].tolist() == ["rho", "omega2:rho"]
    assert long.loc[1, "value"] == 0.0912345 and long.loc[1, "cv_percent"] == 31.1
    assert pop.to_dataframe("wide").loc[0, "rho"] == 0.4567891
    pred = pop.to_dataframe(table="predictions", layout="wide")
    assert pred.loc[0, "ipred"] == 1.9
    assert pop.to_xarray()["se"].sel(name="rho") == 0.01
    text = repr(pop)
    assert "rho = 0.4568 1/day (SE 0.01)" in text and "converged: False" in text
    assert len(text) < 300, text
