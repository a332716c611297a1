"""Summary-target metrics against cartkin.metrics.compute, and target terms in closed form."""

import math

import numpy as np
import pytest
from scipy import stats

from cartkin import metrics
from cartkin.errors import ScenarioError
from cartkin.fit.targets import Target, metric_values
from cartkin.patient import Patient
from cartkin.regimen import Regimen, build_context
from cartkin.simulate import simulate_context


@pytest.fixture(scope="module")
def curve():
    patient = Patient(weight_kg=60, height_cm=165, age_years=22, sex="female",
                      egfr_ml_min_173m2=100)  # fmt: skip
    ctx = build_context(patient, Regimen(cart={"cells_per_kg": 1e6}))
    t = np.arange(0.0, 365.0 + 0.125, 0.25)
    return simulate_context("sle_cart", ctx, t)


@pytest.mark.parametrize(
    ("metric", "tol"), [("TMAX", 0.05), ("CMAX", 1e-3), ("TRECOV", 0.05), ("TAPLASIA", 0.05),
                        ("B_NADIR", 1e-3)],
)  # fmt: skip
def test_metrics_match_cartkin_metrics(curve, metric, tol):
    table = metrics.compute(curve)  # dense 0.02-day grid
    target = Target(metric, "interval", lower=1e-3)
    obs = target.observable_for(curve.model)
    got = metric_values(target, curve.t_days, curve.observables[obs][None, :])[0]
    assert got == pytest.approx(table.value(metric), rel=tol, abs=tol)


def test_value_target_interpolates_the_observable(curve):
    t = Target("VALUE", "normal", mean=1.0, sd=0.1, observable="b_cells_per_ul", day=100.1)
    got = metric_values(t, curve.t_days, curve.observables["b_cells_per_ul"][None, :])[0]
    want = np.interp(100.1, curve.t_days, curve.observables["b_cells_per_ul"])
    assert got == pytest.approx(want, rel=1e-12)


def test_target_terms_in_closed_form():
    x = np.array([5.0, 8.0, 13.0, 20.0])
    normal = Target("TMAX", "normal", mean=9.3, sd=2.0)
    np.testing.assert_allclose(
        normal.neg2ll(x, 365.0), -2.0 * stats.norm.logpdf(x, 9.3, 2.0), rtol=1e-12
    )
    window = Target("TMAX", "interval", lower=7.0, upper=14.0, sd=0.5)
    p = stats.norm.cdf((14.0 - x) / 0.5) - stats.norm.cdf((7.0 - x) / 0.5)
    np.testing.assert_allclose(window.neg2ll(x, 365.0), -2.0 * np.log(p), rtol=1e-9)
    above = Target("CMAX", "interval", lower=15.0, log=True, sd=0.3)
    want = -2.0 * stats.norm.logcdf((np.log(x) - math.log(15.0)) / 0.3)
    np.testing.assert_allclose(above.neg2ll(x, 365.0), want, rtol=1e-9)
    # B cells not back by the horizon: right-censored at it (M3), not dropped
    recov = Target("TRECOV", "normal", mean=110.0, sd=32.0)
    got = recov.neg2ll(np.array([np.nan]), 270.0)[0]
    assert got == pytest.approx(-2.0 * stats.norm.logsf(270.0, 110.0, 32.0), rel=1e-9)


def test_bad_targets_name_the_problem():
    with pytest.raises(ScenarioError, match="needs a finite mean"):
        Target("TMAX", "normal", sd=1.0)
    with pytest.raises(ScenarioError, match=r"lower = 14\.0 must be below upper = 7\.0"):
        Target("TMAX", "interval", lower=14.0, upper=7.0)
    with pytest.raises(ScenarioError, match="VALUE target needs observable and day"):
        Target("VALUE", "normal", mean=1.0, sd=1.0)
    with pytest.raises(ScenarioError, match="must be positive with log = true"):
        Target("CMAX", "interval", lower=-1.0, log=True)
