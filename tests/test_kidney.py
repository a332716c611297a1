"""Kidney function and fludarabine exposure (cartkin.covariates.kidney)."""

import itertools
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from cartkin.covariates import kidney
from cartkin.covariates.patient import DialysisSchedule, Patient
from cartkin.covariates.regimen import Lymphodepletion, Regimen
from cartkin.errors import ScenarioError

# The brief's reference patient: 50 kg, BSA 1.45 m2 (Mosteller: height = 1.45^2 * 3600 / 50).
HEIGHT_BSA_145_CM = 1.45**2 * 3600.0 / 50.0
MODELS = kidney.CLEARANCE_MODELS


def patient(**kw):
    base = dict(weight_kg=50.0, height_cm=HEIGHT_BSA_145_CM, age_years=16.0, sex="female")
    base.update(kw)
    if not any(
        k in kw for k in ("egfr_ml_min_173m2", "crcl_ml_min", "serum_creatinine_mg_dl", "dialysis")
    ):
        base["egfr_ml_min_173m2"] = 90.0
    return Patient(**base)


def auc(p, model="langenhorst2019", **ld):
    return kidney.fludarabine_exposure(
        p, Regimen(lymphodepletion=Lymphodepletion(**ld)), model
    ).auc_mg_h_per_l


# ---------------------------------------------------------------------------------------------
# Body size and kidney function
# ---------------------------------------------------------------------------------------------


def test_bsa_mosteller():
    assert kidney.body_surface_area_m2(patient()) == pytest.approx(1.45, rel=1e-12)
    p = patient(weight_kg=70.0, height_cm=170.0)
    assert kidney.body_surface_area_m2(p) == pytest.approx(math.sqrt(170 * 70 / 3600), rel=1e-12)


def test_bedside_schwartz_for_adolescents():
    # NKF worked example: height 100 cm, Scr 0.4 mg/dL -> 103 mL/min/1.73 m2.
    p = patient(age_years=8.0, height_cm=100.0, weight_kg=20.0, serum_creatinine_mg_dl=0.4)
    assert kidney.egfr_for(p) == pytest.approx(103.25, abs=1e-9)


def test_ckd_epi_2021_for_adults():
    # 50-year-old man, Scr 1.0 mg/dL: about 92 mL/min/1.73 m2 (CKD-EPI 2021 calculators).
    p = patient(
        age_years=50.0, sex="male", weight_kg=80.0, height_cm=180.0, serum_creatinine_mg_dl=1.0
    )
    assert kidney.egfr_for(p) == pytest.approx(92.0, abs=0.5)
    # Women get the 1.012 factor and a lower kappa: higher eGFR at the same Scr below 0.7.
    f = patient(
        age_years=50.0, sex="female", weight_kg=80.0, height_cm=180.0, serum_creatinine_mg_dl=0.6
    )
    assert kidney.egfr_for(f) > kidney.egfr_for(p)


def test_cockcroft_gault():
    m = patient(
        age_years=60.0, sex="male", weight_kg=70.0, height_cm=175.0, serum_creatinine_mg_dl=1.0
    )
    assert kidney.creatinine_clearance_ml_min(m) == pytest.approx(80 * 70 / 72, rel=1e-12)
    f = patient(
        age_years=60.0, sex="female", weight_kg=70.0, height_cm=175.0, serum_creatinine_mg_dl=1.0
    )
    assert kidney.creatinine_clearance_ml_min(f) == pytest.approx(0.85 * 80 * 70 / 72, rel=1e-12)


def test_egfr_crcl_conversion_by_bsa():
    p = patient(egfr_ml_min_173m2=120.0)
    assert kidney.creatinine_clearance_ml_min(p) == pytest.approx(120 * 1.45 / 1.73, rel=1e-12)
    q = patient(crcl_ml_min=120.0 * 1.45 / 1.73)
    assert kidney.egfr_for(q) == pytest.approx(120.0, rel=1e-12)


def test_dialysis_residual_egfr():
    p = patient(dialysis=DialysisSchedule(session_days=(-4.0,)))
    assert kidney.egfr_for(p) == kidney.DIALYSIS_RESIDUAL_EGFR_ML_MIN_173M2
    q = patient(dialysis=DialysisSchedule(session_days=(-4.0,)), egfr_ml_min_173m2=12.0)
    assert kidney.egfr_for(q) == 12.0


# ---------------------------------------------------------------------------------------------
# The brief's numbers and the published formulas
# ---------------------------------------------------------------------------------------------


def test_langenhorst_formula_retyped():
    # Langenhorst 2019 abstract: CL = (3.24 + 0.782 * eGFR[L/h]) * (WT/70)^0.75, eGFR cap 140.
    for egfr in (0.0, 5.0, 60.0, 120.0, 140.0, 180.0):
        p = patient(egfr_ml_min_173m2=egfr)
        expected = (3.24 + 0.782 * 0.06 * min(egfr, 140.0)) * (50 / 70) ** 0.75
        assert kidney.fludarabine_clearance_l_h(p, "langenhorst2019") == pytest.approx(
            expected, rel=1e-12
        )


def test_varela_formula_retyped():
    # Varela 2025 (MODEL.md): CL = (4.4 or 3.9 + 1.7 * CrCL/96) * (WT/70)^0.75.
    for crcl in (0.0, 5.0, 96.0, 150.0):
        p = patient(crcl_ml_min=crcl)
        axi = (4.4 + 1.7 * crcl / 96) * (50 / 70) ** 0.75
        tisa = (3.9 + 1.7 * crcl / 96) * (50 / 70) ** 0.75
        assert kidney.fludarabine_clearance_l_h(p, "varela2025") == pytest.approx(axi, rel=1e-12)
        assert kidney.fludarabine_clearance_l_h(p, "varela2025_tisacel") == pytest.approx(
            tisa, rel=1e-12
        )


@pytest.mark.parametrize(
    ("model", "spec", "value", "brief"),
    [
        # Brief: about 16 mg.h/L at eGFR 120 under both models, about 41 vs 24 at eGFR 5.
        # Varela's CrCL is taken numerically equal to the eGFR, as in the brief's arithmetic.
        ("langenhorst2019", "egfr_ml_min_173m2", 120.0, 16.0),
        ("langenhorst2019", "egfr_ml_min_173m2", 5.0, 41.0),
        ("varela2025", "crcl_ml_min", 120.0, 16.7),
        ("varela2025", "crcl_ml_min", 5.0, 24.3),
    ],
)
def test_brief_reference_numbers(model, spec, value, brief):
    # Tolerance 1 mg.h/L: a wrong dose basis moves these by 22 % (3.5 to 9 mg.h/L), a wrong
    # eGFR unit or allometric exponent by more.
    p = patient(**{spec: value})
    ex = kidney.fludarabine_exposure(p, Regimen(), model)
    assert ex.bsa_m2 == pytest.approx(1.45, rel=1e-12)
    assert sum(ex.daily_doses_mg) == pytest.approx(3 * 25 * 1.45, rel=1e-12)
    assert ex.auc_mg_h_per_l == pytest.approx(brief, abs=1.0)


def test_dose_basis_is_explicit():
    assert kidney.FLUDARABINE_DOSE_BASIS["langenhorst2019"] == "phosphate"
    assert kidney.FLUDARABINE_DOSE_BASIS["varela2025"] == "f_ara_a"
    assert kidney.F_ARA_A_MG_PER_PHOSPHATE_MG == pytest.approx(0.781, abs=5e-4)
    p = patient(egfr_ml_min_173m2=90.0)
    assert kidney.fludarabine_pk_parameters(p, "langenhorst2019").dose_factor == 1.0
    assert (
        kidney.fludarabine_pk_parameters(p, "varela2025").dose_factor
        == kidney.F_ARA_A_MG_PER_PHOSPHATE_MG
    )


def test_marks():
    p = patient(egfr_ml_min_173m2=120.0)
    ex = kidney.fludarabine_exposure(p, Regimen(), "langenhorst2019")  # about 15.8 mg.h/L
    assert ex.marks == {13.8: True, 14.0: True, 20.0: False}
    assert ex.marks[14] is True


# ---------------------------------------------------------------------------------------------
# PK engine
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("egfr", [0.0, 30.0, 120.0, 200.0])
def test_auc_equals_dose_over_cl_without_dialysis(model, egfr):
    p = patient(egfr_ml_min_173m2=egfr, weight_kg=63.0, height_cm=160.0)
    ld = Lymphodepletion(flu_mg_m2_per_day=30.0, flu_days=(-6, -5, -4, -3))
    ex = kidney.fludarabine_exposure(p, Regimen(lymphodepletion=ld), model)
    pk = kidney.fludarabine_pk_parameters(p, model)
    expected = sum(ex.daily_doses_mg) * pk.dose_factor / pk.cl_l_h
    assert ex.auc_mg_h_per_l == pytest.approx(expected, rel=1e-9)
    assert ex.auc_no_dialysis_mg_h_per_l == pytest.approx(expected, rel=1e-9)


def _oracle_auc(p, model, dose_days, doses_mg, infusion_h, session_days, fraction):
    """3-compartment model re-typed from the paper, solved with solve_ivp piecewise."""
    pk = kidney.fludarabine_pk_parameters(p, model)
    cl, v1, v2, v3, q2, q3 = pk.cl_l_h, pk.v1_l, pk.v2_l, pk.v3_l, pk.q2_l_h, pk.q3_l_h

    def rate(t):
        return sum(
            d * pk.dose_factor / infusion_h
            for td, d in zip(dose_days, doses_mg, strict=True)
            if 24 * td <= t < 24 * td + infusion_h
        )

    def f(t, y, r):
        c1, c2, c3 = y[0] / v1, y[1] / v2, y[2] / v3
        return [
            r - cl * c1 - q2 * (c1 - c2) - q3 * (c1 - c3),
            q2 * (c1 - c2),
            q3 * (c1 - c3),
            c1,
        ]

    breaks = sorted(
        {24 * d for d in dose_days}
        | {24 * d + infusion_h for d in dose_days}
        | {24 * s for s in session_days}
        | {24 * dose_days[-1] + 2000.0}
    )
    y = np.zeros(4)
    for t0, t1 in itertools.pairwise(breaks):
        if any(abs(t0 - 24 * s) < 1e-12 for s in session_days):
            y[:3] *= 1 - fraction
        r = rate(0.5 * (t0 + t1))
        sol = solve_ivp(f, (t0, t1), y, args=(r,), method="LSODA", rtol=1e-11, atol=1e-12)
        y = sol.y[:, -1]
    return y[3]


@pytest.mark.parametrize("model", ["langenhorst2019", "varela2025"])
def test_closed_form_engine_matches_ode_oracle_with_dialysis(model):
    sessions = (-4.5, -2.5, 0.5)
    p = patient(
        egfr_ml_min_173m2=8.0,
        dialysis=DialysisSchedule(session_days=sessions, flu_removal_fraction=0.35),
    )
    ex = kidney.fludarabine_exposure(p, Regimen(), model)
    oracle = _oracle_auc(p, model, ex.dose_days, ex.daily_doses_mg, 0.5, sessions, 0.35)
    assert ex.auc_mg_h_per_l == pytest.approx(oracle, rel=1e-5)
    assert ex.auc_mg_h_per_l < ex.auc_no_dialysis_mg_h_per_l


def test_concentration_profile_integrates_to_auc_and_drops_at_sessions():
    sessions = (-4.5,)
    p = patient(
        egfr_ml_min_173m2=12.0,
        dialysis=DialysisSchedule(session_days=sessions, flu_removal_fraction=0.4),
    )
    reg = Regimen()
    t = np.linspace(-5.0, 40.0, 40_001)
    c = kidney.fludarabine_concentration_mg_per_l(p, reg, t)
    assert c[0] == 0.0 and np.all(c >= 0.0)
    auc_trap = np.trapezoid(c, 24.0 * t)
    assert auc_trap == pytest.approx(kidney.fludarabine_exposure(p, reg).auc_mg_h_per_l, rel=2e-3)
    before, after = kidney.fludarabine_concentration_mg_per_l(p, reg, [-4.5 - 1e-9, -4.5])
    assert after == pytest.approx(0.6 * before, rel=1e-6)


def test_dialysis_removal_lowers_auc_monotonically():
    sessions = (-4.5, -3.5, -2.5, -0.5)
    aucs = []
    for frac in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9):
        p = patient(dialysis=DialysisSchedule(session_days=sessions, flu_removal_fraction=frac))
        aucs.append(auc(p))
    assert all(b < a for a, b in itertools.pairwise(aucs))


def test_dialysis_before_first_dose_changes_nothing():
    p0 = patient(dialysis=DialysisSchedule(session_days=(-5.5,), flu_removal_fraction=0.0))
    p1 = patient(dialysis=DialysisSchedule(session_days=(-5.5,), flu_removal_fraction=0.9))
    assert auc(p1) == pytest.approx(auc(p0), rel=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_lower_egfr_never_lowers_auc(model):
    egfrs = np.linspace(200.0, 0.0, 41)
    aucs = [auc(patient(egfr_ml_min_173m2=float(e)), model) for e in egfrs]
    assert all(b >= a for a, b in itertools.pairwise(aucs))
    assert aucs[-1] > aucs[0]
    dial = DialysisSchedule(session_days=(-4.5, -2.5), flu_removal_fraction=0.3)
    # dialysis with a residual eGFR of at most 15 (cartkin refuses more: KDIGO G5)
    residual = np.linspace(15.0, 0.0, 16)
    aucs_d = [auc(patient(egfr_ml_min_173m2=float(e), dialysis=dial), model) for e in residual]
    assert all(b >= a for a, b in itertools.pairwise(aucs_d))


def test_langenhorst_cap_at_140():
    assert auc(patient(egfr_ml_min_173m2=140.0)) == auc(patient(egfr_ml_min_173m2=190.0))


# ---------------------------------------------------------------------------------------------
# Dose rules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("egfr", "factor"),
    [
        (200.0, 1.0),
        (60.0, 1.0),
        (59.999, 0.75),
        (45.0, 0.75),
        (44.999, 0.60),
        (30.0, 0.60),
        (10.0, 0.60),
        (9.999, 0.50),
        (0.0, 0.50),
    ],
)
def test_renal_bands_edges(egfr, factor):
    p = patient(egfr_ml_min_173m2=egfr)
    assert kidney.fludarabine_dose_adjustment(p, "renal_bands") == factor
    ex = kidney.fludarabine_exposure(
        p, Regimen(lymphodepletion=Lymphodepletion(flu_rule="renal_bands"))
    )
    assert ex.daily_doses_mg == pytest.approx((25 * 1.45 * factor,) * 3, rel=1e-12)


@pytest.mark.parametrize(
    ("egfr", "factor"),
    [(70.001, 1.0), (70.0, 0.80), (30.0, 0.80), (29.999, 0.50), (0.0, 0.50)],
)
def test_label_bands_edges(egfr, factor):
    assert (
        kidney.fludarabine_dose_adjustment(patient(egfr_ml_min_173m2=egfr), "label_bands") == factor
    )


@pytest.mark.parametrize("rule", ["renal_bands", "label_bands"])
def test_dialysis_patients_get_the_lowest_band_whatever_the_residual(rule):
    # residual eGFR 15 is the highest cartkin accepts with dialysis (KDIGO G5)
    p = patient(dialysis=DialysisSchedule(session_days=(-4.0,)), egfr_ml_min_173m2=15.0)
    assert kidney.fludarabine_dose_adjustment(p, rule) == 0.50


def test_rule_none():
    assert kidney.fludarabine_dose_adjustment(patient(egfr_ml_min_173m2=3.0), "none") == 1.0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("target", [13.8, 20.0])
@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_auc_target_hits_target(model, target, fraction):
    dial = DialysisSchedule(session_days=(-4.5, -2.5), flu_removal_fraction=fraction)
    for egfr in (5.0, 60.0, 150.0):
        on_dialysis = fraction and egfr <= 15.0  # residual eGFR above 15 is refused with dialysis
        p = patient(egfr_ml_min_173m2=egfr, dialysis=dial if on_dialysis else None)
        ld = Lymphodepletion(flu_rule="auc_target", flu_target_auc_mg_h_per_l=target)
        ex = kidney.fludarabine_exposure(p, Regimen(lymphodepletion=ld), model)
        assert ex.auc_mg_h_per_l == pytest.approx(target, rel=1e-9)
        assert ex.adjustment_factor == pytest.approx(ex.daily_doses_mg[0] / (25 * 1.45), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# IL-6
# ---------------------------------------------------------------------------------------------


def test_il6_elimination():
    at_ref = kidney.il6_elimination_rate_per_day(patient(egfr_ml_min_173m2=100.0))
    assert at_ref == pytest.approx(3.96, rel=1e-12)
    anuric = kidney.il6_elimination_rate_per_day(patient(egfr_ml_min_173m2=0.0))
    assert anuric == pytest.approx(0.6 * 3.96, rel=1e-12)
    dial = patient(dialysis=DialysisSchedule(session_days=(1.0,)))
    k = kidney.il6_elimination_rate_per_day(dial, renal_fraction=0.5, egfr_ref=90.0)
    assert k == pytest.approx(
        3.96 * (0.5 + 0.5 * kidney.DIALYSIS_RESIDUAL_EGFR_ML_MIN_173M2 / 90.0)
    )


# ---------------------------------------------------------------------------------------------
# Error paths
# ---------------------------------------------------------------------------------------------


def test_unknown_clearance_model():
    with pytest.raises(ScenarioError, match=r"clearance_model = 'langenhorst'.*expected one of"):
        kidney.fludarabine_clearance_l_h(patient(), "langenhorst")
    with pytest.raises(ScenarioError, match="clearance_model"):
        kidney.fludarabine_exposure(patient(), Regimen(), "nope")


def test_unknown_rule_and_missing_target():
    with pytest.raises(ScenarioError, match=r"fludarabine rule = 'half'"):
        kidney.fludarabine_dose_adjustment(patient(), "half")
    with pytest.raises(ScenarioError, match=r"needs lymphodepletion\.flu_target_auc_mg_h_per_l"):
        kidney.fludarabine_dose_adjustment(patient(), "auc_target")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(k_total_ref=0.0), r"k_total_ref = 0.0 1/day"),
        (dict(renal_fraction=1.5), r"renal_fraction = 1.5: expected a number in \[0, 1\]"),
        (dict(egfr_ref=-1.0), r"egfr_ref = -1.0 mL/min/1.73m2"),
    ],
)
def test_il6_errors(kw, match):
    with pytest.raises(ScenarioError, match=match):
        kidney.il6_elimination_rate_per_day(patient(), **kw)
