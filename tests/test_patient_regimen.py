"""Patient, DialysisSchedule, Lymphodepletion, CarTDose, Regimen, Context: validation and use."""

import pytest

from cartkin.covariates import kidney
from cartkin.covariates.patient import DialysisSchedule, Patient
from cartkin.covariates.regimen import CarTDose, Context, Lymphodepletion, Regimen, build_context
from cartkin.errors import ScenarioError

BASE = dict(weight_kg=50.0, height_cm=151.4, age_years=16.0, sex="female")


def make_patient(**kw):
    args = dict(BASE, egfr_ml_min_173m2=90.0)
    args.update(kw)
    return Patient(**args)


# ---------------------------------------------------------------------------------------------
# Patient
# ---------------------------------------------------------------------------------------------


def test_patient_accepts_each_kidney_spec_and_ints():
    assert make_patient(weight_kg=50).weight_kg == 50.0
    assert isinstance(make_patient(weight_kg=50).weight_kg, float)
    p = Patient(**BASE, crcl_ml_min=80)
    assert p.kidney_function_given == "crcl_ml_min" and not p.on_dialysis
    p = Patient(**BASE, serum_creatinine_mg_dl=0.8)
    assert p.kidney_function_given == "serum_creatinine_mg_dl"


def test_patient_dialysis_from_dict_like_toml():
    p = Patient(
        **BASE,
        dialysis={"session_days": [-6, -4, -2], "duration_h": 4, "flu_removal_fraction": 0.2},
    )
    assert isinstance(p.dialysis, DialysisSchedule)
    assert p.dialysis.session_days == (-6.0, -4.0, -2.0)
    assert p.on_dialysis and p.kidney_function_given is None


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(weight_kg=500.0), r"Patient.weight_kg = 500 kg: expected a number in \[2, 300\] kg"),
        (dict(weight_kg=1.0), r"Patient.weight_kg = 1 kg"),
        (dict(weight_kg="50"), r"Patient.weight_kg = '50': expected a number"),
        (dict(weight_kg=True), r"Patient.weight_kg = True"),
        (dict(weight_kg=float("nan")), r"Patient.weight_kg = nan kg"),
        (dict(height_cm=1.5), r"Patient.height_cm = 1.5 cm: expected a number in \[40, 250\] cm"),
        (dict(age_years=130.0), r"Patient.age_years = 130 years: expected a number in \[0, 120\]"),
        (dict(age_years=-1.0), r"Patient.age_years = -1 years"),
        (dict(sex="f"), r"Patient.sex = 'f': expected one of \('female', 'male'\)"),
        (
            dict(egfr_ml_min_173m2=250.0),
            r"egfr_ml_min_173m2 = 250 mL/min/1.73m2: expected .*\[0, 200\]",
        ),
        (dict(egfr_ml_min_173m2=-5.0), r"egfr_ml_min_173m2 = -5 mL/min/1.73m2"),
    ],
)
def test_patient_field_errors(kw, match):
    with pytest.raises(ScenarioError, match=match):
        make_patient(**kw)


def test_patient_crcl_and_creatinine_ranges():
    with pytest.raises(
        ScenarioError, match=r"Patient.crcl_ml_min = 400 mL/min: expected .*\[0, 300\]"
    ):
        Patient(**BASE, crcl_ml_min=400.0)
    with pytest.raises(
        ScenarioError, match=r"serum_creatinine_mg_dl = 70 mg/dL: expected .*\[0.1, 20\]"
    ):
        Patient(**BASE, serum_creatinine_mg_dl=70.0)  # umol/L given as mg/dL


def test_patient_needs_exactly_one_kidney_spec():
    with pytest.raises(ScenarioError, match=r"got none; expected exactly one of egfr_ml_min_173m2"):
        Patient(**BASE)
    with pytest.raises(
        ScenarioError, match=r"got \['egfr_ml_min_173m2', 'crcl_ml_min'\]; expected exactly one"
    ):
        Patient(**BASE, egfr_ml_min_173m2=90.0, crcl_ml_min=80.0)


def test_dialysis_patient_kidney_spec_rules():
    dial = DialysisSchedule(session_days=(-2.0,))
    assert Patient(**BASE, dialysis=dial).dialysis is dial
    assert Patient(**BASE, dialysis=dial, crcl_ml_min=4.0).crcl_ml_min == 4.0
    with pytest.raises(ScenarioError, match="not at steady state on dialysis"):
        Patient(**BASE, dialysis=dial, serum_creatinine_mg_dl=6.0)
    with pytest.raises(ScenarioError, match="expected at most one residual value"):
        Patient(**BASE, dialysis=dial, egfr_ml_min_173m2=5.0, crcl_ml_min=4.0)


def test_patient_dialysis_type_errors():
    with pytest.raises(ScenarioError, match=r"Patient.dialysis = .*expected keys session_days"):
        Patient(**BASE, dialysis={"days": [1.0]})
    with pytest.raises(
        ScenarioError, match=r"Patient.dialysis = 'MWF': expected a DialysisSchedule"
    ):
        Patient(**BASE, dialysis="MWF")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(session_days=()), r"DialysisSchedule.session_days = \(\): expected at least one day"),
        (
            dict(session_days=(-2.0, -4.0)),
            r"session_days = \(-2.0, -4.0\) days: expected strictly increasing",
        ),
        (dict(session_days=(1.0, 1.0)), r"strictly increasing"),
        (dict(session_days=(1.0, "x")), r"entry 'x' is not a finite number"),
        (dict(session_days="Mon"), r"session_days = 'Mon': expected a sequence of days"),
        (dict(session_days=(1e5,)), r"day 100000 outside"),
        (
            dict(session_days=(1.0,), duration_h=0.0),
            r"DialysisSchedule.duration_h = 0 h: expected a number in \(0, 24\] h",
        ),
        (
            dict(session_days=(1.0,), flu_removal_fraction=1.0),
            r"flu_removal_fraction = 1: expected a number in \[0, 1\)",
        ),
        (dict(session_days=(1.0,), flu_removal_fraction=-0.1), r"flu_removal_fraction = -0.1"),
    ],
)
def test_dialysis_schedule_errors(kw, match):
    with pytest.raises(ScenarioError, match=match):
        DialysisSchedule(**kw)


# ---------------------------------------------------------------------------------------------
# Lymphodepletion
# ---------------------------------------------------------------------------------------------


def test_lymphodepletion_defaults_and_lists():
    ld = Lymphodepletion()
    assert ld.flu_days == (-5.0, -4.0, -3.0) and ld.cy_mg_m2_total == 1000.0
    ld = Lymphodepletion(flu_days=[-4, -3], cy_mg_m2=500, cy_days=[-4, -3])
    assert ld.flu_days == (-4.0, -3.0) and ld.cy_mg_m2_total == 1000.0
    assert Lymphodepletion(cy_mg_m2=0.0, cy_days=()).cy_mg_m2_total == 0.0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (
            dict(flu_mg_m2_per_day=250.0),
            r"flu_mg_m2_per_day = 250 mg/m2/day: expected a number in \[0, 100\]",
        ),
        (
            dict(flu_days=(-3, -4, -5)),
            r"Lymphodepletion.flu_days = \(-3.0, -4.0, -5.0\) days: expected strictly",
        ),
        (dict(flu_days=()), r"Lymphodepletion.flu_days = \(\): expected at least one day"),
        (
            dict(cy_mg_m2=5000.0),
            r"Lymphodepletion.cy_mg_m2 = 5000 mg/m2: expected a number in \[0, 3000\]",
        ),
        (dict(cy_days=()), r"cy_days = \(\): cy_mg_m2 = 1000 mg/m2 needs at least one day"),
        (dict(flu_rule="half"), r"Lymphodepletion.flu_rule = 'half': expected one of"),
        (
            dict(flu_rule="auc_target"),
            r"flu_target_auc_mg_h_per_l = None: flu_rule 'auc_target' needs a target",
        ),
        (
            dict(flu_rule="auc_target", flu_target_auc_mg_h_per_l=0.0),
            r"flu_target_auc_mg_h_per_l = 0 mg.h/L: expected a number in \(0, 100\]",
        ),
        (
            dict(flu_rule="auc_target", flu_target_auc_mg_h_per_l=20.0, flu_mg_m2_per_day=0.0),
            r"scales a positive starting dose",
        ),
        (
            dict(flu_rule="none", flu_target_auc_mg_h_per_l=20.0),
            r"a target is used only with flu_rule 'auc_target'",
        ),
    ],
)
def test_lymphodepletion_errors(kw, match):
    with pytest.raises(ScenarioError, match=match):
        Lymphodepletion(**kw)


# ---------------------------------------------------------------------------------------------
# CAR-T dose
# ---------------------------------------------------------------------------------------------


def test_cart_dose_per_kg_split_and_flat():
    d = CarTDose(cells_per_kg=1e5)
    assert d.expand(50.0) == [(0.0, 5e6)]
    d = CarTDose(cells_per_kg=1e6, days=[0, 1, 2], fractions=[0.1, 0.3, 0.6])
    doses = d.expand(50.0)
    assert [day for day, _ in doses] == [0.0, 1.0, 2.0]
    assert [c for _, c in doses] == pytest.approx([5e6, 1.5e7, 3e7], rel=1e-12)
    assert sum(c for _, c in doses) == pytest.approx(d.total_cells(50.0), rel=1e-12)
    eq = CarTDose(flat_cells=1e8, days=(0.0, 1.0))
    assert eq.fractions == (0.5, 0.5) and eq.expand(80.0) == [(0.0, 5e7), (1.0, 5e7)]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(), r"CarTDose: got cells_per_kg = None and flat_cells = None; expected exactly one"),
        (dict(cells_per_kg=1e6, flat_cells=1e8), r"expected exactly one of them"),
        (
            dict(cells_per_kg=0.0),
            r"CarTDose.cells_per_kg = 0 cells/kg: expected a number in \(0, 1e\+09\]",
        ),
        (dict(cells_per_kg=1e12), r"cells_per_kg = 1e\+12 cells/kg"),
        (dict(flat_cells=-1.0), r"CarTDose.flat_cells = -1 cells"),
        (
            dict(cells_per_kg=1e6, days=(1.0, 0.0)),
            r"CarTDose.days = \(1.0, 0.0\) days: expected strictly increasing",
        ),
        (
            dict(cells_per_kg=1e6, days=(0.0, 1.0), fractions=(1.0,)),
            r"expected 2 fraction\(s\), one per day",
        ),
        (
            dict(cells_per_kg=1e6, days=(0.0, 1.0), fractions=(0.5, 0.6)),
            r"sum 1.1; expected fractions summing to 1",
        ),
        (
            dict(cells_per_kg=1e6, days=(0.0, 1.0), fractions=(1.0, 0.0)),
            r"CarTDose.fractions\[1\] = 0",
        ),
    ],
)
def test_cart_dose_errors(kw, match):
    with pytest.raises(ScenarioError, match=match):
        CarTDose(**kw)


# ---------------------------------------------------------------------------------------------
# Regimen and Context
# ---------------------------------------------------------------------------------------------


def test_regimen_from_dicts_like_toml():
    r = Regimen(
        lymphodepletion={
            "flu_mg_m2_per_day": 30,
            "flu_days": [-6, -5, -4, -3],
            "flu_rule": "renal_bands",
        },
        cart={"cells_per_kg": 1e5},
    )
    assert isinstance(r.lymphodepletion, Lymphodepletion) and isinstance(r.cart, CarTDose)
    assert r.lymphodepletion.flu_rule == "renal_bands"


def test_regimen_errors():
    with pytest.raises(
        ScenarioError, match=r"Regimen.cart = .*unexpected keyword argument 'cells_per_m2'"
    ):
        Regimen(cart={"cells_per_m2": 1e6})
    with pytest.raises(
        ScenarioError, match=r"Regimen.lymphodepletion = 25: expected a Lymphodepletion"
    ):
        Regimen(lymphodepletion=25)
    with pytest.raises(ScenarioError, match=r"Lymphodepletion.flu_rule = 'x'"):
        Regimen(lymphodepletion={"flu_rule": "x"})


def test_build_context():
    p = make_patient(egfr_ml_min_173m2=30.0)
    r = Regimen(cart=CarTDose(cells_per_kg=1e5, days=(0.0, 1.0), fractions=(0.25, 0.75)))
    for model in kidney.CLEARANCE_MODELS:
        ctx = build_context(p, r, clearance_model=model)
        assert isinstance(ctx, Context)
        ex = kidney.fludarabine_exposure(p, r, model)
        assert ctx.flu_auc_mg_h_per_l == ex.auc_mg_h_per_l == ctx.exposure.auc_mg_h_per_l
        assert ctx.clearance_model == model
    assert ctx.weight_kg == 50.0 and ctx.egfr_ml_min_173m2 == 30.0
    assert ctx.cart_doses == [(0.0, 1.25e6), (1.0, 3.75e6)]
    assert ctx.cy_mg_m2_total == 1000.0
    assert ctx.bsa_m2 == pytest.approx(kidney.body_surface_area_m2(p))
    assert ctx.il6_elimination_per_day == pytest.approx(kidney.il6_elimination_rate_per_day(p))


def test_build_context_errors():
    with pytest.raises(ScenarioError, match=r"build_context: patient = .*expected a Patient"):
        build_context({"weight_kg": 50}, Regimen())
    with pytest.raises(ScenarioError, match=r"build_context: regimen = None; expected a Regimen"):
        build_context(make_patient(), None)
    with pytest.raises(ScenarioError, match=r"clearance_model = 'x'"):
        build_context(make_patient(), Regimen(), clearance_model="x")
