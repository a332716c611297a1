"""simulate(): trajectories against the scipy oracle, Stein's closed form, invariants, and the
calibration of sle_cart (v2, and v1 kept as sle_cart_v1) to the Erlangen SLE cohort
(Mackensen 2022)."""

import dataclasses

import numpy as np
import pytest
import reference as ref

from cartkin import metrics
from cartkin.covariates.patient import DialysisSchedule, Patient
from cartkin.covariates.regimen import CarTDose, Lymphodepletion, Regimen, build_context
from cartkin.errors import ScenarioError, SolverError
from cartkin.models import sle_cart_v1
from cartkin.simulate import SimulationResult, simulate, simulate_context

ADULT = Patient(
    weight_kg=70.0, height_cm=170.0, age_years=22.0, sex="female", egfr_ml_min_173m2=100
)
ERLANGEN = Regimen(lymphodepletion=Lymphodepletion(), cart=CarTDose(cells_per_kg=1e6))
T_YEAR = np.arange(0.0, 366.0)


def regimen(cells_per_kg=1e6, days=(0.0,), flu_mg_m2=25.0, cy_mg_m2=1000.0):
    return Regimen(
        lymphodepletion=Lymphodepletion(flu_mg_m2_per_day=flu_mg_m2, cy_mg_m2=cy_mg_m2),
        cart=CarTDose(cells_per_kg=cells_per_kg, days=days),
    )


def adult(egfr=100.0):
    return dataclasses.replace(ADULT, egfr_ml_min_173m2=egfr)


# -- against the oracle -----------------------------------------------------------------------
@pytest.mark.parametrize("method", ["rodas5", "tsit5"])
def test_sle_cart_v1_matches_oracle(method):
    theta = {"K_B": 500.0, "delta_M": 0.08}
    t = np.linspace(0.0, 200.0, 401)
    res = simulate("sle_cart_v1", adult(60.0), regimen(days=(0.0, 3.0)), t, theta=theta,
                   method=method, rtol=1e-8, atol=1e-10)  # fmt: skip
    q = sle_cart_v1.PARAMETERS.values(theta)
    k_il6 = res.parameters["k_IL6"]
    expected = ref.sle_cart_solve(
        q, t, weight_kg=70.0, doses=[(0.0, 3.5e7), (3.0, 3.5e7)],
        flu_auc_mg_h_per_l=res.exposure.auc_mg_h_per_l, cy_mg_m2=1000.0, k_il6_per_day=k_il6,
    )  # fmt: skip
    assert res.success
    scale = np.max(np.abs(expected), axis=0)
    np.testing.assert_allclose(res.states, expected, rtol=1e-5, atol=1e-6 * scale.max())
    # and relative to each state's own range
    err = np.max(np.abs(res.states - expected), axis=0) / scale
    assert np.all(err < 1e-5), err


def test_stein_matches_oracle_and_closed_form():
    t = np.linspace(0.0, 400.0, 801)
    res = simulate("stein2019", ADULT, ERLANGEN, t, rtol=1e-10, atol=1e-10)
    q = res.theta
    copies = res.observables["transgene_copies_per_ug"]
    closed = ref.stein_closed_form(
        t, q["cmax"], q["foldx"], q["tmax"], q["alpha"], q["fb"], q["beta"]
    )
    oracle = ref.stein_solve(q, t).sum(axis=1)
    np.testing.assert_allclose(oracle, closed, rtol=1e-8)
    np.testing.assert_allclose(copies, closed, rtol=1e-7)
    # after the peak: Cmax[(1-FB) e^{-alpha(t-Tmax)} + FB e^{-beta(t-Tmax)}], Stein 2019
    after = t >= 9.3
    tail = 24000 * (
        0.9921 * np.exp(-0.16 * (t[after] - 9.3)) + 0.0079 * np.exp(-0.0032 * (t[after] - 9.3))
    )
    np.testing.assert_allclose(copies[after], tail, rtol=1e-7)
    np.testing.assert_allclose(res.observables["cart_cells_per_ul"], copies / 2000.0)


def test_stein_infusion_day_shifts_the_curve():
    t = np.linspace(0.0, 60.0, 121)
    res = simulate("stein2019", ADULT, regimen(days=(2.0,)), t)
    q = res.theta
    closed = ref.stein_closed_form(t, q["cmax"], q["foldx"], q["tmax"], q["alpha"], q["fb"],
                                   q["beta"], t_infusion=2.0)  # fmt: skip
    np.testing.assert_allclose(res.observables["transgene_copies_per_ug"], closed, rtol=1e-6)


# -- invariants -------------------------------------------------------------------------------
def test_no_cart_dose_gives_no_cart():
    ctx = build_context(ADULT, ERLANGEN)
    ctx = dataclasses.replace(ctx, cart_doses=[])
    for name in ("sle_cart", "sle_cart_v1", "stein2019"):
        # explicit steps keep an exact zero; rodas5's linear solves leave rounding noise
        assert np.all(simulate_context(name, ctx, T_YEAR, method="tsit5").role("cart") == 0.0)
        assert np.max(np.abs(simulate_context(name, ctx, T_YEAR).role("cart"))) < 1e-12
    b = res_b = simulate_context("sle_cart_v1", ctx, T_YEAR).role("b_cells")
    assert np.all(np.diff(b) >= 0) and res_b[-1] == pytest.approx(150.0, rel=0.01)
    # v2 and v3 kill lymphocytes in time: B cells fall while fludarabine acts, then only
    # recover (v3 through its CD19+ precursors, which lymphodepletion also depleted: slower)
    t = np.arange(-5.0, 366.0)
    for name, rel in (("sle_cart_v2", 0.01), ("sle_cart", 0.1)):
        b2 = simulate_context(name, ctx, t).role("b_cells")
        k = int(np.argmin(b2))
        assert 0 < k and np.all(np.diff(b2[: k + 1]) < 0) and np.all(np.diff(b2[k:]) >= 0)
        assert b2[-1] == pytest.approx(150.0, rel=rel)


@pytest.mark.parametrize("model", ["sle_cart", "sle_cart_v1"])
@pytest.mark.parametrize("egfr", [120.0, 30.0, 5.0])
@pytest.mark.parametrize("cells_per_kg", [3e4, 1e6, 1e7])
def test_states_stay_non_negative(model, egfr, cells_per_kg):
    res = simulate(model, adult(egfr), regimen(cells_per_kg), T_YEAR, rtol=1e-6, atol=1e-9)
    assert res.states.min() > -1e-7


@pytest.mark.parametrize("model", ["sle_cart_v2", "sle_cart_v1"])
def test_more_fludarabine_exposure_never_gives_less_expansion(model):
    """v1 and v2 only: in v3 residual fludarabine kills the product, so kidney function has an
    optimum (tests/test_sle_cart_v3.py)."""
    cmax, auc = [], []
    for flu in (0.0, 5.0, 10.0, 15.0, 25.0, 30.0, 40.0):
        res = simulate(model, ADULT, regimen(flu_mg_m2=flu), np.linspace(0, 40, 401))
        auc.append(res.exposure.auc_mg_h_per_l)
        cmax.append(res.role("cart").max())
    assert np.all(np.diff(auc) > 0)
    assert np.all(np.diff(cmax) > 0), cmax
    # and lower kidney function (higher AUC) too
    by_egfr = [
        simulate(model, adult(e), ERLANGEN, np.linspace(0, 40, 401)).role("cart").max()
        for e in (120.0, 60.0, 30.0, 10.0)
    ]
    assert np.all(np.diff(by_egfr) > 0), by_egfr


@pytest.mark.parametrize("model", ["sle_cart", "sle_cart_v1"])
def test_more_cart_dose_never_gives_a_shallower_b_cell_nadir(model):
    nadirs = [
        simulate(model, ADULT, regimen(dose), np.linspace(0, 120, 1201)).role("b_cells").min()
        for dose in (1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7)
    ]
    assert np.all(np.diff(nadirs) < 0), nadirs


# -- calibration ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["sle_cart", "sle_cart_v1"])
def test_erlangen_scenario_matches_mackensen_2022(model):
    """Adult SLE, 1e6 cells/kg after Flu 25 mg/m2 x3 + Cy 1000 mg/m2, normal kidney function:
    peak within 7-14 days and B-cell reappearance (first return >= 10 cells/uL) within
    110 +/- 32 days (Mackensen 2022, mean +/- SD, n=5)."""
    res = simulate(model, ADULT, ERLANGEN, T_YEAR)
    table = metrics.compute(res)
    assert 7.0 <= table.value("TMAX") <= 14.0
    assert 110.0 - 32.0 <= table.value("TRECOV") <= 110.0 + 32.0
    assert table.value("B_NADIR") < 1.0  # deep depletion


@pytest.mark.parametrize("model", ["sle_cart", "sle_cart_v1"])
def test_motivating_case_runs_and_expands_more_than_normal_kidney_at_equal_dose(model):
    dialysis = Patient(weight_kg=50.0, height_cm=160.0, age_years=16.0, sex="female",
                       dialysis=DialysisSchedule(session_days=tuple(range(-60, 270, 3))))  # fmt: skip
    normal = dataclasses.replace(dialysis, dialysis=None, egfr_ml_min_173m2=110.0)
    low = regimen(1e5)
    on = simulate(model, dialysis, low, T_YEAR)
    off = simulate(model, normal, low, T_YEAR)
    assert on.exposure.auc_mg_h_per_l > 2 * off.exposure.auc_mg_h_per_l
    assert on.role("cart").max() > off.role("cart").max()
    assert on.observables["il6_pg_per_ml"][0] > off.observables["il6_pg_per_ml"][0]


# -- result and errors ------------------------------------------------------------------------
def test_result_columns_and_evaluate():
    res = simulate("sle_cart", ADULT, ERLANGEN, [0.0, 7.0, 28.0])
    assert isinstance(res, SimulationResult) and res.label == "sle_cart"
    cols = res.to_columns()
    assert list(cols)[:2] == ["t_days", "cart_cells_per_ul"]
    assert "state_effector_cells_per_ul" in cols and "state_il15_pg_per_ml" in cols
    assert all(len(v) == 3 for v in cols.values())
    again = res.evaluate([7.0])
    np.testing.assert_allclose(again.states[0], res.states[1], rtol=1e-6, atol=1e-9)
    later = simulate("sle_cart", ADULT, ERLANGEN, [7.0, 28.0])  # integrates from day -5
    np.testing.assert_allclose(later.states, res.states[1:], rtol=1e-6, atol=1e-9)


def test_bad_times_and_solver_failure_are_reported():
    with pytest.raises(ScenarioError, match=r"t_days\[0\] = -3 days"):
        simulate("sle_cart_v1", ADULT, ERLANGEN, [-3.0, 10.0])
    with pytest.raises(ScenarioError, match=r"t_days\[0\] = -10 days.*starts at day -5"):
        simulate("sle_cart", ADULT, ERLANGEN, [-10.0, 10.0])
    with pytest.raises(ScenarioError, match="strictly increasing"):
        simulate("sle_cart", ADULT, ERLANGEN, [0.0, 10.0, 5.0])
    with pytest.raises(SolverError, match=r"sle_cart \(sle_cart\)"):
        simulate("sle_cart", ADULT, ERLANGEN, T_YEAR, max_steps=5)
    with pytest.raises(ValueError, match="Did you mean 'stein2019'"):
        simulate("stein2009", ADULT, ERLANGEN, T_YEAR)
