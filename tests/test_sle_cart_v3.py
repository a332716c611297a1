"""sle_cart v3 (issue 15): answers set by data rather than by structure.

One test (or a few) per Done-when point of the issue; ``test_v2_fails_what_v3_fixes`` runs the
same checks on ``sle_cart_v2`` and shows each fails there. Scenarios: the calibration's
lymphoma regimen (70 kg, eGFR 90, Flu 30/Cy 500 mg/m2 x3), the Erlangen SLE regimen (Flu 25
mg/m2 x3, Cy 1000 mg/m2, ``scenarios/erlangen_sle_1e6.toml``) and the motivating case on
hemodialysis (``scenarios/adolescent_hemodialysis_1e5.toml``).
"""

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from cartkin import batch, metrics, models
from cartkin.covariates.patient import DialysisSchedule, Patient
from cartkin.covariates.regimen import CarTDose, Lymphodepletion, Regimen, build_context
from cartkin.errors import ScenarioError
from cartkin.models import sle_cart
from cartkin.scenario import load_scenario
from cartkin.simulate import simulate_context

ROOT = Path(__file__).resolve().parents[1]
MODEL = models.get("sle_cart")
T_SHORT = np.arange(0.0, 60.0, 0.05)
T_YEAR = np.arange(0.0, 366.0, 0.25)
LYMPHOMA_CMAX = 16.14  # cells/uL, median flow peak of axi-cel at 2e6/kg (Blood Adv 2021;5:2523)


def lymphoma(cells_per_kg=2e6):
    patient = Patient(weight_kg=70.0, height_cm=170.0, age_years=30.0, sex="female",
                      egfr_ml_min_173m2=90.0)  # fmt: skip
    ld = Lymphodepletion(flu_mg_m2_per_day=30.0, flu_days=(-5, -4, -3), cy_mg_m2=500.0,
                         cy_days=(-5, -4, -3))  # fmt: skip
    return build_context(patient, Regimen(lymphodepletion=ld,
                                          cart=CarTDose(cells_per_kg=cells_per_kg)))  # fmt: skip


def adolescent(egfr=2.5, sessions=None, removal=0.5, flu_rule="none", cells_per_kg=1e5,
               flu_mg_m2=25.0):
    dialysis = None
    if sessions is not None:
        dialysis = DialysisSchedule(session_days=sessions, duration_h=4.0,
                                    flu_removal_fraction=removal)  # fmt: skip
    patient = Patient(weight_kg=50.0, height_cm=160.0, age_years=16.0, sex="female",
                      egfr_ml_min_173m2=egfr, dialysis=dialysis)  # fmt: skip
    ld = Lymphodepletion(flu_mg_m2_per_day=flu_mg_m2, flu_days=(-5, -4, -3), cy_mg_m2=1000.0,
                         cy_days=(-3,), flu_rule=flu_rule)  # fmt: skip
    return build_context(patient, Regimen(lymphodepletion=ld,
                                          cart=CarTDose(cells_per_kg=cells_per_kg)))  # fmt: skip


def erlangen(cells_per_kg=1e6):
    patient = Patient(weight_kg=60.0, height_cm=165.0, age_years=22.0, sex="female",
                      egfr_ml_min_173m2=100.0)  # fmt: skip
    ld = Lymphodepletion(flu_mg_m2_per_day=25.0, flu_days=(-5, -4, -3), cy_mg_m2=1000.0,
                         cy_days=(-3,))  # fmt: skip
    return build_context(patient, Regimen(lymphodepletion=ld,
                                          cart=CarTDose(cells_per_kg=cells_per_kg)))  # fmt: skip


@functools.cache
def run(model, where, *args, t="short"):
    ctx = {"lymphoma": lymphoma, "erlangen": erlangen, "adolescent": adolescent}[where](*args)
    return simulate_context(model, ctx, T_SHORT if t == "short" else T_YEAR)


def cmax(res):
    return float(res.role("cart").max())


def post_peak_half_life(res):
    t, c = res.t_days, res.role("cart")
    tmax = t[int(np.argmax(c))]
    sel = (t >= tmax) & (t <= tmax + 21.0)
    return math.log(2.0) / -np.polyfit(t[sel], np.log(c[sel]), 1)[0]


def terminal_half_life(res):
    """Log-linear half-life over days 180-365 (the issue's definition)."""
    t, c = res.t_days, res.role("cart")
    sel = (t >= 180.0) & (t <= 365.0)
    return math.log(2.0) / -np.polyfit(t[sel], np.log(c[sel]), 1)[0]


# -- the generated code is the documented model ------------------------------------------------
@functools.cache
def _individual():
    return MODEL.individualize({"CI": 7.0}, adolescent(2.5, (-4.5, -2.5, 2.5)))


@settings(max_examples=40, deadline=None)
@given(y=st.lists(st.floats(0.0, 500.0), min_size=30, max_size=30), t=st.floats(-5.0, 300.0))
def test_rhs_matches_independent_oracle(y, t):
    """The generated rhs against the equations typed again in tests/reference.py."""
    ind = _individual()
    y = np.array(y)
    k = [MODEL.state_index(s) for s in ("D", "S", "G", "J_k", "G_1", "G_2", "H")]
    y[k] = np.clip(y[k], 0.0, 1.0)  # flags and fractions
    dydt = np.empty(30)
    MODEL.rhs(t, y, ind.p, dydt)
    expected = ref.sle_cart_v3_derivatives(t, y, MODEL.kernel_values(ind.p))
    np.testing.assert_allclose(dydt, expected, rtol=1e-11, atol=1e-9)


def test_kidney_derived_entries_match_oracle():
    ind = _individual()
    q = MODEL.kernel_values(ind.p)
    s_irr, cap, j0, u_l = ref.sle_cart_v3_kidney(q, 2.5)
    assert q["s_irr"] == pytest.approx(s_irr, rel=1e-12)
    assert q["GFR_cap"] == pytest.approx(cap, rel=1e-12)
    assert q["J_0"] == pytest.approx(j0, rel=1e-12)
    assert q["u_L"] == pytest.approx(u_l, rel=1e-12)


# -- 1. absolute scale from flow data -----------------------------------------------------------
def test_blood_level_after_infusion_is_kimmels_blood_fraction():
    """Kimmel 2021: about 0.36 cells/uL right after about 2e6 cells/kg (f_blood 0.011)."""
    q = run("sle_cart", "lymphoma", 2e6).parameters
    assert q["f_blood"] == 0.011
    assert q["C_E0"] == pytest.approx(0.36, rel=0.2)


def test_lymphoma_peak_in_cells_per_ul_matches_flow_data():
    """Median peak 16.14 cells/uL after axi-cel 2e6/kg (Blood Adv 2021;5:2523): within a
    factor 1.5 (the calibration target; the between-patient spread is far wider)."""
    peak = cmax(run("sle_cart", "lymphoma", 2e6))
    assert LYMPHOMA_CMAX / 1.5 < peak < LYMPHOMA_CMAX * 1.5, peak


def test_copies_per_ug_follow_the_modelled_nucleated_cells():
    """copies/ug = vcn x C / (N + B + C + M) x cells per ug DNA: not a fixed factor, so the
    copies per CAR-T cell/uL change as the white count falls and recovers."""
    res = run("sle_cart", "erlangen", 1e6, t="year")
    c, copies = res.role("cart"), res.role("cart_copies")
    q = res.parameters
    nucleated = res.observables["nucleated_cells_per_ul"]
    np.testing.assert_allclose(copies, q["vcn"] * c / nucleated * 1e6 / 6.6, rtol=1e-12)
    factor = copies[1:] / c[1:]
    assert factor.max() > 2.0 * factor.min()
    pct = res.role("cart_percent_t")
    np.testing.assert_allclose(pct, 100.0 * c / (c + res.state("N")), rtol=1e-12)


# -- timing ------------------------------------------------------------------------------------
def test_tmax_doubling_and_post_peak_half_life_in_published_ranges():
    """Tmax 7-14 d (Stein 2019: 9.3 d; ZUMA-1: peak within 2 weeks), post-peak half-life 3-7 d
    (Stein 2019 alpha 0.16/d: 4.3 d), expansion doubling time between the 6-8 h CD8 cell cycle
    (Yoon 2010) and 2 days (a fold expansion of at least 10 within Tmax)."""
    for res in (run("sle_cart", "lymphoma", 2e6), run("sle_cart", "erlangen", 1e6)):
        t, c = res.t_days, res.role("cart")
        tmax = t[int(np.argmax(c))]
        assert 7.0 <= tmax <= 14.0, tmax
        assert 3.0 <= post_peak_half_life(res) <= 7.0
        sel = (t >= 1.0) & (t <= tmax - 2.0)
        doubling = math.log(2.0) / np.polyfit(t[sel], np.log(c[sel]), 1)[0]
        assert 0.25 <= doubling <= 2.0, doubling


# -- 2. saturating expansion ---------------------------------------------------------------------
def test_cmax_is_weakly_dose_dependent():
    """Cmax at 3e6/kg below twice Cmax at 1e6/kg (Erlangen regimen), no hard cap (Cmax still
    rises with dose)."""
    low, mid, high = (cmax(run("sle_cart", "erlangen", d)) for d in (1e5, 1e6, 3e6))
    assert low < mid < high < 2.0 * mid


def test_expansion_is_not_clipped():
    """Density dependence slows growth smoothly: the peak stays below K_C and the per-day
    growth rate falls continuously as C approaches it (no jump to zero)."""
    res = run("sle_cart", "lymphoma", 2e6)
    c = res.role("cart")
    assert c.max() < res.parameters["K_C"]
    growth = np.diff(np.log(c)) / np.diff(res.t_days)
    assert np.max(np.abs(np.diff(growth))) < 0.05  # per 0.05-day step, no kink


# -- 3. persistence with B-cell return -----------------------------------------------------------
def test_terminal_half_life_above_100_days_with_b_cell_return_in_erlangen_window():
    """Erlangen scenario (scenarios/erlangen_sle_1e6.toml): terminal half-life over days 180-365
    above 100 d, and B cells back within Mackensen 2022's 110 +/- 32 d."""
    (res,) = load_scenario(ROOT / "scenarios" / "erlangen_sle_1e6.toml").run()
    assert terminal_half_life(res) > 100.0
    trecov = metrics.compute(res, b_cell_threshold_cells_per_ul=10.0).value("TRECOV")
    assert 110.0 - 32.0 <= trecov <= 110.0 + 32.0, trecov
    assert res.role("cart")[-1] > 0.05  # still above the flow LLOQ at a year


# -- 4. fludarabine kills the product ------------------------------------------------------------
AFTER_EACH = (-11.5, -9.5, -7.5, -4.5, -3.5, -2.5, 2.5, 4.5, 6.5, 9.5)
NONE_UNTIL = (-11.5, -9.5, -7.5, 2.5, 4.5, 6.5, 9.5)


def test_residual_fludarabine_at_infusion_kills_the_product():
    """Without any session until after infusion, F-ara-A left at infusion kills infused cells
    (the product kill state is fed only after infusion); the loss grows with the residual drug."""
    peaks = {}
    for label, sessions in (("after_each", AFTER_EACH), ("none_until", NONE_UNTIL)):
        ctx = adolescent(2.5, sessions)
        with_kill = simulate_context("sle_cart", ctx, T_SHORT)
        without = simulate_context("sle_cart", ctx, T_SHORT, {"phi_C": 0.0})
        assert with_kill.state("Kc_2")[0] == 0.0 and with_kill.state("Kc_2").max() > 0.0
        peaks[label] = cmax(with_kill) / cmax(without)
    assert peaks["none_until"] < peaks["after_each"] < 1.0
    assert peaks["none_until"] < 0.9


def test_kidney_function_has_an_optimum_for_expansion():
    """More fludarabine exposure deepens lymphodepletion (more IL-15) but leaves drug at
    infusion: the CAR-T peak is highest at an intermediate kidney function (no dialysis)."""
    peaks = {e: cmax(run("sle_cart", "adolescent", e)) for e in (120.0, 30.0, 2.5)}
    assert peaks[30.0] > peaks[120.0] and peaks[30.0] > peaks[2.5], peaks


@pytest.mark.xfail(strict=True, reason=(
    "not met by v3 with the sourced product sensitivity (phi_C 2.4, Beyer 2005): the "
    "extra lymphodepletion of the arm without sessions (+21% with phi_C 0; the benefit does "
    "not saturate above the published AUC thresholds) offsets the product kill (68% vs 87% "
    "survive); see docs/models/sle_cart_v3_science.md section 7"))  # fmt: skip
def test_no_session_until_infusion_lowers_the_peak_by_5_percent():
    """The issue's Done-when: on hemodialysis with removal > 0, no session from the first
    fludarabine dose until after infusion gives a CAR-T peak at least 5% lower than sessions
    after each fludarabine dose (same doses)."""
    after = cmax(simulate_context("sle_cart", adolescent(2.5, AFTER_EACH), T_SHORT))
    none = cmax(simulate_context("sle_cart", adolescent(2.5, NONE_UNTIL), T_SHORT))
    assert none <= 0.95 * after


def test_dialysis_timing_scenario_runs_four_arms():
    scenario = load_scenario(ROOT / "scenarios" / "hemodialysis_fludarabine_timing.toml")
    results = scenario.run()
    assert len(results) == 4
    auc = [r.exposure.auc_mg_h_per_l for r in results]
    assert auc[0] < auc[1] and auc[2] < auc[0] and auc[3] < auc[1]  # sessions, dose rule
    residual = [r.evaluate([0.0]).observables["fludarabine_mg_per_l"][0] for r in results]
    assert residual[1] > 2.0 * residual[0]
    # the arms differ only in sessions and dose rule: same residual kidney function (a variant
    # that sets the dialysis schedule replaces the base's kidney keys, so it must repeat it)
    function = [r.role("kidney_function")[0] for r in results]
    np.testing.assert_allclose(function, 2.5, rtol=1e-3)



def test_a_session_after_cyclophosphamide_removes_it_as_published():
    """Sessions remove cyclophosphamide (k_DC), whether or not they remove fludarabine: a dose
    given at the start of a 4-h session loses 37% to the dialyser (the source of k_DC), and a
    session outside the cyclophosphamide window adds no stop."""
    t = np.array([-3.0, -3.0 + 4.0 / 24.0])
    on = simulate_context("sle_cart", adolescent(2.5, (-3.0,), removal=0.0), t)
    off = simulate_context("sle_cart", adolescent(2.5, (-3.5,), removal=0.0), t)
    q = MODEL.kernel_values(MODEL.individualize({}, adolescent(2.5)).p)
    k_c, k_dc = q["k_C"], q["k_DC"]
    dose = on.state("X_C")[0]
    assert dose == off.state("X_C")[0] == 1000.0
    np.testing.assert_allclose(off.state("X_C")[1], dose * math.exp(-k_c / 6.0), rtol=1e-6)
    removed = k_dc / (k_c + k_dc) * (1.0 - on.state("X_C")[1] / dose)
    assert abs(removed - 0.37) < 0.005
    # sessions count for cyclophosphamide from the first dose to 2 days after its last dose
    ind = MODEL.individualize({}, adolescent(2.5, (-6.0, -4.5, -2.5, -0.5, 2.5), removal=0.0))
    d = MODEL.state_index("D")
    switched = sorted(set(ind.t_stops[ind.jumps[:, d] != 0.0].round(6)))
    np.testing.assert_allclose(switched, [-4.5, -4.5 + 4 / 24, -2.5, -2.5 + 4 / 24], atol=1e-6)

# -- 5. the lupus kidney --------------------------------------------------------------------------
def test_irreversible_share_rises_with_the_chronicity_index():
    """The reversible share of lost function comes from the chronicity index (not from an
    equilibrium with activity): more chronicity, less function to recover."""
    caps = []
    for ci in (2.0, 7.0, 10.0):
        ind = MODEL.individualize({"CI": ci}, adolescent(2.5))
        q = MODEL.kernel_values(ind.p)
        caps.append(q["GFR_cap"])
        if ci == 7.0:
            assert q["s_irr"] > 0.5  # most of the dialysis-level loss is irreversible at CI 7
    assert caps[0] > caps[1] > caps[2]


def test_case_scenario_reports_the_case_at_nine_months():
    """`cartkin simulate scenarios/adolescent_hemodialysis_1e5.toml` with the case fit's
    parameters: proteinuria at day 270 within 2.5-3.1 g/24h, one session a week, SLEDAI-2K 4."""
    scenario = load_scenario(ROOT / "scenarios" / "adolescent_hemodialysis_1e5.toml")
    assert scenario.model.name == "sle_cart"
    (res,) = scenario.run()
    table = metrics.compute(res, outcomes=scenario.outcomes)
    assert 2.5 <= table.value("PROT_D270") <= 3.1
    assert table.value("DIAL_SPW_D270") == 1 and table.value("DIAL_INT_END") == 7
    assert table.value("SLEDAI_D0") == 8 and table.value("SLEDAI_D270") == 4


def test_proteinuria_below_3_reachable_at_ci_7_and_scaled_by_filtration():
    """At CI 7, proteinuria can fall below 3 g/24h (chronic damage no longer pins it at
    U_0 x CI/12), and at equal activity and damage it rises with filtration."""
    q = sle_cart.PARAMETERS.defaults()
    for gfr in (5.0, 10.0, 60.0):
        u_low = (q["u_C"] * 7.0) * gfr / (gfr + q["K_U"])
        assert u_low < 3.0
    res = simulate_context("sle_cart", adolescent(2.5), T_YEAR, {"CI": 7.0})
    assert res.role("proteinuria")[-1] < 3.0


# -- 7. names kept or a message naming the new name -----------------------------------------------
def test_v2_names_kept_or_renamed_with_a_message():
    names = sle_cart.PARAMETERS.names
    for kept in ("rho", "delta_E", "delta_M", "k_G", "k_L", "k_heal", "k_kill", "theta_M",
                 "f_blood", "CI", "B_pre"):  # fmt: skip
        assert kept in names
    obs = {o.name for o in MODEL.observables}
    assert {"cart_cells_per_ul", "b_cells_per_ul", "transgene_copies_per_ug",
            "cart_percent_of_t_cells", "proteinuria_g_per_24h"} <= obs  # fmt: skip
    with pytest.raises(ScenarioError, match="k_P"):
        MODEL.individualize({"C_50": 1.0}, erlangen())
    with pytest.raises(ScenarioError, match="CI_50"):
        MODEL.individualize({"f_irr_max": 0.5}, erlangen())
    with pytest.raises(ScenarioError, match="vcn"):
        MODEL.individualize({"copies_per_cell": 2000.0}, erlangen())
    table = metrics.compute(run("sle_cart", "erlangen", 1e6, t="year"))
    for code in ("CMAX", "TMAX", "CMAX_COPIES", "CMAX_PCT_T", "TRECOV", "TAPLASIA", "FLU_AUC"):
        assert code in table.names
    assert models.get("sle_cart_v2").name == "sle_cart_v2"


# -- 8. calibration kept apart from validation ----------------------------------------------------
def test_defaults_come_from_the_calibration_and_meet_its_targets():
    report = json.loads(sle_cart.CALIBRATION_FILE.read_text(encoding="utf-8"))
    for name, value in report["estimates"].items():
        assert sle_cart.PARAMETERS[name].default == value, name
    targets, achieved = report["targets"], report["achieved"]
    assert achieved["tmax_days"] == pytest.approx(targets["tmax_days"], abs=1.5)
    assert 3.0 <= achieved["thalf_post_peak_days"] <= 7.0
    for key in ("cmax_cells_per_ul_lymphoma_2e6", "cmax_cells_per_ul_lymphoma_2e5"):
        assert achieved[key] == pytest.approx(targets[key], rel=0.1), key
    assert achieved["b_cell_return_days"] == pytest.approx(110.0, abs=2.0)
    assert report["unidentified"] and set(report["sources"]) == set(targets)


def test_validation_against_data_not_used_in_calibration():
    import importlib.util
    import sys

    path = ROOT / "scripts" / "validate_sle_cart_v3.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("validate_sle_cart_v3", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        rows = module.rows()
    finally:
        sys.path.remove(str(path.parent))
    report = json.loads(sle_cart.CALIBRATION_FILE.read_text(encoding="utf-8"))
    assert not {row["quantity"] for row in rows} & set(report["targets"])
    assert set(module.KNOWN_MISSES) <= {row["quantity"] for row in rows}
    for row in rows:
        # a known miss must still be a miss: fixing it means moving it out of KNOWN_MISSES
        assert row["inside"] != bool(row["known_miss"]), row


# -- the batch engine equals simulate --------------------------------------------------------------
def test_batch_engine_equals_simulate():
    contexts = [erlangen(1e6), adolescent(2.5, AFTER_EACH)]
    bctx = batch.BatchContext.from_contexts(contexts)
    inds = batch.individualize(MODEL, None, bctx)
    t = np.array([0.0, 3.0, 9.0, 30.0, 120.0])
    sol = batch.solve(MODEL, inds, t, method="rodas5", rtol=1e-8, atol=1e-10)
    assert np.all(sol.status == 0)
    for i, ctx in enumerate(contexts):
        one = simulate_context("sle_cart", ctx, t, method="rodas5", rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(sol.y[i], one.states, rtol=1e-9, atol=1e-12)


# -- each point fails on v2 ---------------------------------------------------------------------
def test_v2_fails_what_v3_fixes():
    v2 = "sle_cart_v2"
    # 1. levels: far below the lymphoma flow peak; fixed copies factor
    assert cmax(run(v2, "lymphoma", 2e6)) < LYMPHOMA_CMAX / 1.5
    res = run(v2, "erlangen", 1e6, t="year")
    factor = res.role("cart_copies")[1:] / res.role("cart")[1:]
    assert factor.max() == pytest.approx(factor.min(), rel=1e-9)
    # 2. dose response: proportional to dose
    assert cmax(run(v2, "erlangen", 3e6)) > 2.0 * cmax(run(v2, "erlangen", 1e6))
    # 3. terminal half-life far below 100 d
    assert terminal_half_life(res) < 100.0
    # 4. fludarabine never touches the product: expansion rises monotonically as kidney
    #    function falls
    peaks = [cmax(run(v2, "adolescent", e)) for e in (120.0, 30.0, 2.5)]
    assert peaks[0] < peaks[1] < peaks[2]
    # 5. proteinuria floor U_0 x (CI/12 + (1 - CI/12) x 0.1) at CI 7 is above 3 g/24h
    q = models.get(v2).parameters.defaults()
    assert q["U_0"] * (7.0 / 12.0 + 5.0 / 12.0 * 0.1) > 3.0


@pytest.mark.slow
def test_calibration_script_reproduces_the_shipped_estimates(tmp_path):
    """Rerun scripts/calibrate_sle_cart_v3.py (a few minutes): same estimates as the JSON."""
    import importlib.util

    path = ROOT / "scripts" / "calibrate_sle_cart_v3.py"
    spec = importlib.util.spec_from_file_location("calibrate_sle_cart_v3", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "cal.json"
    assert module.main(["--out", str(out)]) == 0
    fresh = json.loads(out.read_text(encoding="utf-8"))["estimates"]
    shipped = json.loads(sle_cart.CALIBRATION_FILE.read_text(encoding="utf-8"))["estimates"]
    for name, value in shipped.items():
        assert fresh[name] == pytest.approx(value, rel=1e-2), name
