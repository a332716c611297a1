"""Fits: round trip, M3 vs deletion, unidentifiable parameters, summary targets, errors."""

import math

import numpy as np
import pytest

from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import Regimen, build_context
from cartkin.errors import DataError, ScenarioError
from cartkin.fit.estimate import fit
from cartkin.fit.likelihood import ErrorModel, LogNormalPrior
from cartkin.fit.targets import Target
from cartkin.simulate import simulate_context


def _context(cells_per_kg=1e6):
    patient = Patient(weight_kg=60, height_cm=165, age_years=22, sex="female",
                      egfr_ml_min_173m2=100)  # fmt: skip
    regimen = Regimen(
        lymphodepletion={"flu_mg_m2_per_day": 25.0, "flu_days": (-5, -4, -3),
                         "cy_mg_m2": 1000.0, "cy_days": (-3,)},
        cart={"cells_per_kg": cells_per_kg},
    )  # fmt: skip
    return build_context(patient, regimen)


def _records(model, ctx, t, truth, observable, sigma, lloq, seed):
    """Simulated data with log-normal noise, censored below ``lloq`` (M3 input)."""
    y = simulate_context(model, ctx, t, truth).observables[observable]
    dv = y * np.exp(np.random.default_rng(seed).normal(0.0, sigma, t.size))
    cens = (dv < lloq).astype(int)
    return {"id": np.zeros(t.size, int), "time_days": t, "observable": [observable] * t.size,
            "value": np.where(cens == 1, np.nan, dv), "cens": cens,
            "limit": np.full(t.size, lloq)}  # fmt: skip


def test_round_trip_sle_cart_with_censoring_recovers_truth():
    ctx = _context()
    truth = {"rho": 1.3, "delta_M": 0.05}
    t = np.array([1, 2, 4, 7, 9, 11, 14, 21, 28, 42, 56, 90, 120, 150.0])
    obs = _records("sle_cart_v1", ctx, t, truth, "cart_cells_per_ul", 0.25, 0.5, seed=3)
    assert obs["cens"].sum() >= 1  # the late records are below the LLOQ
    res = fit("sle_cart_v1", {0: ctx}, obs, list(truth), starts=3, seed=1, free_error="all")
    assert res.converged and res.starts_agree >= 2
    for name, value in truth.items():
        e = res[name]
        assert e.identifiable, e
        assert e.ci_low < value < e.ci_high, e
        assert abs(e.value / value - 1) < 0.3, e
        assert e.se is not None and 0 < e.se < e.value
    # the residual SD matches the noise actually drawn (RMS 0.35 for this seed, sd 0.25)
    eps = np.random.default_rng(3).normal(0.0, 0.25, t.size)
    sigma = res["cart_cells_per_ul.sigma_add"]
    assert abs(sigma.value / np.sqrt(np.mean(eps**2)) - 1) < 0.25
    assert sigma.ci_low < sigma.value < sigma.ci_high
    assert len(res.predictions) == t.size
    rec = res.predictions[-1]
    assert rec["cens"] == 1 and rec["ipred"] < 0.5 and math.isnan(rec["res"])


def test_m3_recovers_terminal_rate_and_deletion_is_biased():
    """Terminal rate beta of stein2019 from data about 70% below the LLOQ, over 4 seeds."""
    ctx = _context()
    truth = {"alpha": 0.16, "fb": 0.02, "beta": 0.03}
    t = np.arange(14.0, 250.0, 3.0)
    kw = {"theta": {"alpha": 0.16}, "free_error": "all", "starts": 1, "profile": False}
    bias_m3, bias_deleted = [], []
    for seed in range(4):
        obs = _records("stein2019", ctx, t, truth, "transgene_copies_per_ug", 0.5, 50.0, seed)
        assert obs["cens"].mean() > 0.6  # heavily censored
        keep = obs["cens"] == 0
        deleted = {k: np.asarray(v)[keep] for k, v in obs.items()}
        m3 = fit("stein2019", {0: ctx}, obs, ["fb", "beta"], **kw)
        dl = fit("stein2019", {0: ctx}, deleted, ["fb", "beta"], **kw)
        bias_m3.append(math.log(m3["beta"].value / truth["beta"]))
        bias_deleted.append(math.log(dl["beta"].value / truth["beta"]))
    # M3 within sampling error (SE of log beta about 0.2 per seed); deletion keeps only the
    # high values late on, so the terminal decline looks slower: beta biased low by > 40%
    assert abs(np.mean(bias_m3)) < 0.2
    assert np.mean(bias_deleted) < math.log(0.6)
    assert abs(np.mean(bias_deleted)) > 3 * abs(np.mean(bias_m3))


def test_three_rates_from_two_points_are_flagged_unidentifiable():
    ctx = _context()
    t = np.array([14.0, 60.0])
    obs = _records("stein2019", ctx, t, {}, "transgene_copies_per_ug", 0.2, 1.0, seed=2)
    res = fit("stein2019", {0: ctx}, obs, ["alpha", "fb", "beta"], starts=2,
              error_models={"transgene_copies_per_ug": ErrorModel("log", sigma_add=0.2)})  # fmt: skip
    assert res.unidentified  # at least one parameter cannot be pinned down
    for e in res.estimates:
        if not e.identifiable:
            assert e.ci_low is None or e.ci_high is None or e.se is None
            assert e.note


def test_summary_targets_give_a_scenario_not_an_estimate():
    ctx = _context()
    targets = [Target("TMAX", "interval", lower=7.0, upper=14.0, source="test"),
               Target("TRECOV", "normal", mean=110.0, sd=32.0, source="test")]  # fmt: skip
    priors = {"rho": LogNormalPrior(1.3, 0.5), "delta_M": LogNormalPrior(0.05, 0.5)}
    res = fit("sle_cart_v1", {0: ctx}, None, ["rho", "delta_M"], targets=targets, priors=priors,
              starts=2, profile=False)  # fmt: skip
    assert res.kind == "scenario"
    assert "not an estimate" in res.label and "not an estimate" in res.to_table()
    fitted = {t["label"]: t["fitted"] for t in res.target_values}
    assert 7.0 <= fitted["TMAX in [7, 14]"] <= 14.0
    assert abs(fitted["TRECOV ~ N(110, 32)"] - 110.0) < 32.0


def test_bad_fit_inputs_name_the_problem():
    ctx = _context()
    obs = {"id": [0], "time_days": [7.0], "observable": ["cart_cells_per_ul"], "value": [3.0],
           "cens": [0], "limit": [np.nan]}  # fmt: skip
    with pytest.raises(ScenarioError, match=r"free parameter 'rhoo'.*rho"):
        fit("sle_cart", {0: ctx}, obs, ["rhoo"])
    with pytest.raises(ScenarioError, match="no free parameters"):
        fit("sle_cart", {0: ctx}, obs, [])
    with pytest.raises(DataError, match=r"id\(s\) \[5\] have no context"):
        fit("sle_cart", {0: ctx}, dict(obs, id=[5]), ["rho"])
    with pytest.raises(DataError, match="missing column"):
        fit("sle_cart", {0: ctx}, {"id": [0]}, ["rho"])
    with pytest.raises(ScenarioError, match="prior on 'k_H', which is not free"):
        fit("sle_cart", {0: ctx}, obs, ["rho"], priors={"k_H": LogNormalPrior(0.3, 0.5)})
    with pytest.raises(ScenarioError, match=r"free error parameter 'il6\.sigma_add'"):
        fit("sle_cart", {0: ctx}, obs, ["rho"], free_error=["il6.sigma_add"])


def test_lockstep_starts_equal_sequential_starts():
    from cartkin.fit.estimate import minimize_objective, start_points
    from cartkin.fit.lockstep import run_lockstep
    from cartkin.fit.problem import Problem

    ctx = _context()
    t = np.array([3.0, 7, 10, 14, 28, 56, 90])
    obs = _records("stein2019", ctx, t, {}, "transgene_copies_per_ug", 0.3, 100.0, seed=4)
    problem = Problem("stein2019", {0: ctx}, obs, ["alpha", "beta"], free_error="all")
    x0s = start_points(problem, 3, seed=2)
    alone = [minimize_objective(problem, x0) for x0 in x0s]
    together = run_lockstep(problem, [lambda x0=x0: minimize_objective(problem, x0) for x0 in x0s])
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a["x"], b["x"])
        assert a["objective"] == b["objective"]


def test_proportional_error_round_trip_uses_the_general_optimizer():
    ctx = _context()
    truth = {"alpha": 0.16, "beta": 0.0032}
    t = np.array([10.0, 12, 14, 18, 21, 28, 35, 42, 56, 70, 90, 120, 150, 180])
    y = simulate_context("stein2019", ctx, t, truth).observables["transgene_copies_per_ug"]
    dv = y * (1.0 + np.random.default_rng(8).normal(0.0, 0.15, t.size))
    obs = {"id": np.zeros(t.size, int), "time_days": t,
           "observable": ["transgene_copies_per_ug"] * t.size, "value": dv,
           "cens": np.zeros(t.size, int), "limit": np.full(t.size, np.nan)}  # fmt: skip
    em = {"transgene_copies_per_ug": ErrorModel("proportional", sigma_prop=0.3)}
    res = fit("stein2019", {0: ctx}, obs, list(truth), error_models=em, free_error="all",
              starts=2)  # fmt: skip
    assert res.converged
    for name, value in truth.items():
        assert res[name].ci_low < value < res[name].ci_high
    assert res.error_models["transgene_copies_per_ug"]["kind"] == "proportional"
    assert 0.07 < res["transgene_copies_per_ug.sigma_prop"].value < 0.3


def test_targets_from_the_published_summary_table():
    from cartkin import data
    from cartkin.fit.targets import targets_from_summaries

    table = data.read_summary_targets(data.example_path("published_summary_targets.csv"))
    targets = targets_from_summaries(table)
    assert [t.label for t in targets] == ["TRECOV ~ N(110, 32)"]
    assert "Mackensen" in targets[0].source
    with pytest.raises(ScenarioError, match=r"'stein_tmax'.*without a spread"):
        targets_from_summaries(table, ["stein_tmax"])
