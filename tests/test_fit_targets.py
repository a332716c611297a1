"""Summary-target metrics against cartkin.metrics.compute, and target terms in closed form."""

import math

import numpy as np
import pytest
from scipy import stats

from cartkin import metrics
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import Regimen, build_context
from cartkin.errors import ScenarioError
from cartkin.fit.targets import Target, metric_values
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


def test_fold_and_post_peak_half_life_as_stein_defines_them(curve):
    c = curve.observables["cart_cells_per_ul"]
    t = curve.t_days
    fold = metric_values(Target("FOLD", "interval", lower=1.0), t, c[None, :])[0]
    assert fold == pytest.approx(c.max() / curve.parameters["C_E0"], rel=1e-9)
    thalf = metric_values(Target("THALF", "interval", lower=1.0), t, c[None, :])[0]
    tmax = t[np.argmax(c)]
    sel = (t >= tmax) & (t <= tmax + 21.0)
    slope = np.polyfit(t[sel], np.log(c[sel]), 1)[0]
    assert thalf == pytest.approx(math.log(2.0) / -slope, rel=1e-9)
    # a curve that never declines has no half-life
    rising = metric_values(Target("THALF", "interval", lower=1.0), t, (1.0 + t)[None, :])[0]
    assert np.isnan(rising)


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


# -- OUTCOME targets: derived lupus-nephritis outcomes (cartkin.outcomes) --------------------


@pytest.fixture(scope="module")
def dialysis_curves():
    """sle_cart curves of a patient on dialysis (chronicity 7/12) at two healing rates."""
    from cartkin.outcomes.report import OUTCOME_ROLES

    patient = Patient(weight_kg=50, height_cm=160, age_years=16, sex="female",
                      egfr_ml_min_173m2=2.5)  # fmt: skip
    ctx = build_context(patient, Regimen(cart={"cells_per_kg": 1e5}))
    t = np.arange(0.0, 300.0 + 0.125, 0.25)
    runs = [simulate_context("sle_cart", ctx, t, {"k_heal": k, "CI": 7.0})
            for k in (0.01155, 0.0008)]  # fmt: skip
    model = runs[0].model
    names = [model.roles[r] for r in OUTCOME_ROLES if model.roles.get(r)]
    curves = {n: np.stack([r.observables[n] for r in runs])[:, None, :] for n in names}
    return model, t, runs, curves


def test_outcome_targets_match_the_outcome_layer_per_set(dialysis_curves):
    from cartkin.fit.targets import add_outcome_curves
    from cartkin.outcomes import sledai_of
    from cartkin.outcomes.dialysis import KDOQI_STEPWISE

    model, t, runs, curves = dialysis_curves
    targets = [Target("OUTCOME", "normal", mean=4.0, sd=1.0, quantity="sledai2k", day=270.0),
               Target("OUTCOME", "normal", mean=1.0, sd=0.5, quantity="dialysis_sessions_per_week",
                      day=270.0),
               Target("OUTCOME", "interval", lower=5.0, upper=10.0, quantity="dialysis_interval_days",
                      day=270.0)]  # fmt: skip
    add_outcome_curves(model, t, curves, targets)
    k = int(np.searchsorted(t, 270.0))
    kf_name = model.roles["kidney_function"]
    for i, run in enumerate(runs):  # one set at a time, through the per-result outcome API
        sessions = KDOQI_STEPWISE.sessions(run.observables[kf_name][k])
        want = {"sledai2k": sledai_of(run).total[k], "dialysis_sessions_per_week": sessions,
                "dialysis_interval_days": 7.0 / sessions if sessions > 0 else np.inf}  # fmt: skip
        for target in targets:
            name = target.observable_for(model)
            got = metric_values(target, t, curves[name][:, 0, :])[i]
            assert got == pytest.approx(want[target.quantity]), target.label
    # the slow-healing set still needs dialysis at 9 months, the default one does not
    spw = metric_values(targets[1], t, curves["outcome:dialysis_sessions_per_week"][:, 0, :])
    assert spw[0] == 0.0 and spw[1] > 0.0
    # so the sessions target prefers the slow-healing set; an inf interval is out of range
    assert targets[1].neg2ll(spw, 300.0)[1] < targets[1].neg2ll(spw, 300.0)[0]
    interval = metric_values(targets[2], t, curves["outcome:dialysis_interval_days"][:, 0, :])
    assert np.isinf(interval[0]) and targets[2].neg2ll(interval, 300.0)[0] == 1e10


def test_problem_objective_reads_outcome_targets():
    from cartkin.fit.problem import Problem

    patient = Patient(weight_kg=50, height_cm=160, age_years=16, sex="female",
                      egfr_ml_min_173m2=2.5)  # fmt: skip
    ctx = build_context(patient, Regimen(cart={"cells_per_kg": 1e5}))
    target = Target("OUTCOME", "interval", lower=0.5, upper=1.5, sd=0.25,
                    quantity="dialysis_sessions_per_week", day=270.0)  # fmt: skip
    problem = Problem("sle_cart", {"case": ctx}, free=["k_heal"], theta={"CI": 7.0},
                      targets=[target], horizon_days=280.0)  # fmt: skip
    x = np.log([[0.01155], [0.0008]])  # all sets in one batched call
    _, tgt, _ = problem.terms(x)
    assert tgt[1] < tgt[0] - 1.0
    assert "outcome:dialysis_sessions_per_week" not in problem.observables


def test_bad_outcome_targets_name_the_problem():
    with pytest.raises(ScenarioError, match="quantity = 'sledai'; expected one of"):
        Target("OUTCOME", "normal", mean=4.0, sd=1.0, quantity="sledai", day=270.0)
    with pytest.raises(ScenarioError, match="day = None; expected a day >= 0"):
        Target("OUTCOME", "normal", mean=4.0, sd=1.0, quantity="sledai2k")
    with pytest.raises(ScenarioError, match="quantity = 'sledai2k' is only for OUTCOME"):
        Target("VALUE", "normal", mean=4.0, sd=1.0, quantity="sledai2k", observable="x", day=1.0)
    from cartkin.fit.problem import Problem

    patient = Patient(
        weight_kg=60, height_cm=165, age_years=22, sex="female", egfr_ml_min_173m2=100
    )
    ctx = build_context(patient, Regimen(cart={"cells_per_kg": 1e6}))
    target = Target(
        "OUTCOME", "normal", mean=1.0, sd=1.0, quantity="dialysis_sessions_per_week", day=270.0
    )
    with pytest.raises(ScenarioError, match="plays no outcome role it is derived from"):
        Problem("sle_cart_v1", {"case": ctx}, free=["rho"], targets=[target])
