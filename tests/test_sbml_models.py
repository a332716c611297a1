"""SBML export and import of whole models, cross-checked with libRoadRunner.

For each model: export one patient (doses as SBML events) -> libRoadRunner simulates the file ->
it matches ``cartkin.simulate`` of the original model; the file imported back
(``cartkin.models.load``) and solved with ``model.solve`` gives the same states and observables.
libRoadRunner is an optional test dependency: those checks skip cleanly without it.

Relative differences are ``|a - b| / max(|b|, 1e-6 * max_t |b|)`` per state: values below a
millionth of the state's peak (B cells killed to 1e-70 cells/uL, far below the solvers'
absolute tolerances) are compared absolutely, at 1e-12 of the peak.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import libsbml
import numpy as np
import pytest

import cartkin
from cartkin import models
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import CarTDose, Regimen
from cartkin.errors import ScenarioError
from cartkin.export.sbml import model_ir, sbml_text
from cartkin.models.sbml.ir import to_ode
from cartkin.models.sbml.load import SbmlWarning
from cartkin.models.sbml.read import read_sbml
from cartkin.models.sbml.write import sbml_string
from tests.sbml_tools import roadrunner_run, scipy_solve

ROOT = Path(__file__).parent.parent
HAND = Path(__file__).parent / "data" / "sbml" / "two_compartment_reactions.xml"

#: The cross-check tolerance of issue 14 (relative, libRoadRunner vs cartkin).
RTOL = 1e-6

#: Models cross-checked in the default run (their kernels are compiled by other tests too) and
#: the output days. Two CAR-T doses (day 0 and day 7) so that the files carry events.
MODELS = ("stein2019", "sle_cart_v1", "cart4")
T_DAYS = np.linspace(0.0, 120.0, 61)

#: Round trips (export -> import -> solve): each import compiles a kernel of its own, so only
#: the smallest runs by default.
ROUND_TRIPS = (
    "stein2019",
    pytest.param("sle_cart_v1", marks=pytest.mark.slow),
    pytest.param("cart4", marks=pytest.mark.slow),
)


def _has_roadrunner() -> bool:
    try:
        import roadrunner  # noqa: F401
    except ImportError:
        return False
    return True


def _patient_regimen():
    patient = Patient(weight_kg=62.0, height_cm=165.0, age_years=35.0, sex="female",
                      egfr_ml_min_173m2=85.0)  # fmt: skip
    return patient, Regimen(cart=CarTDose(cells_per_kg=1e6, days=(0.0, 7.0), fractions=(0.6, 0.4)))


def _model(name):
    return models.load(name) if name.endswith(".py") else models.get(name)


def rel_diff(a, b) -> float:
    """Largest ``|a - b| / max(|b|, 1e-6 * max_t |b|)`` over times and columns."""
    a, b = np.atleast_2d(np.asarray(a, float).T).T, np.atleast_2d(np.asarray(b, float).T).T
    floor = np.maximum(1e-6 * np.max(np.abs(b), axis=0), 1e-300)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor)))


@functools.cache
def _case(name):
    """(original model, its cartkin.simulate result, exported SBML text)."""
    model = _model(name)
    patient, regimen = _patient_regimen()
    ref = cartkin.simulate(model, patient, regimen, T_DAYS, rtol=1e-10, atol=1e-12)
    return model, ref, sbml_text(model, patient, regimen)


@pytest.fixture(params=MODELS)
def case(request):
    return _case(request.param)


def _imported(name, tmp_path):
    model, _, text = _case(name)
    path = tmp_path / f"{model.name}.xml"
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SbmlWarning)
        return models.load(path)


def test_exported_file_is_valid_sbml_with_units_and_events(case):
    model, _, text = case
    doc = libsbml.readSBMLFromString(text)
    assert doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    m = doc.getModel()
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    assert {m.getRule(k).getVariable() for k in range(m.getNumRules()) if m.getRule(k).isRate()} \
        == set(model.state_symbols)  # fmt: skip
    for p in model.parameters:
        el = m.getParameter(p.name)
        assert el is not None and el.getConstant() and el.getValue() == pytest.approx(p.default)
    assert m.getNumEvents() >= 1  # the day-7 dose at least
    assert m.getTimeUnits() and m.getUnitDefinition(m.getTimeUnits()).getName() == "day"


def test_roadrunner_matches_cartkin(case):
    """The exported file simulated by libRoadRunner equals cartkin (states and observables)."""
    pytest.importorskip("roadrunner")
    model, ref, text = case
    obs = list(ref.observables)
    rr = roadrunner_run(text, T_DAYS, [*model.state_symbols, *obs])
    n = model.n_states
    assert rel_diff(rr[:, :n], ref.states) < RTOL
    assert rel_diff(rr[:, n:], np.column_stack([ref.observables[o] for o in obs])) < RTOL


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_round_trip_export_import_gives_the_same_outputs(name, tmp_path):
    """export -> models.load -> solve: states and observables equal cartkin.simulate's, and
    libRoadRunner's run of the file equals the imported model's solve."""
    model, ref, text = _case(name)
    imported = _imported(name, tmp_path)
    assert imported.state_symbols == model.state_symbols
    sol = imported.solve(T_DAYS, rtol=1e-10, atol=1e-12)
    assert sol.state_names == model.state_symbols
    assert rel_diff(sol.y, ref.states) < RTOL
    obs = imported.observe(sol.y, imported.kernel_vector())
    for obs_name, values in ref.observables.items():
        assert rel_diff(obs[obs_name], values) < RTOL, obs_name
    assert imported.parameters.names[: len(model.parameters)] == model.parameters.names
    for p in model.parameters:  # the table survives: value, unit, bounds, source
        q = imported.parameters[p.name]
        assert (q.default, q.unit, q.lower, q.upper, q.source) == (
            p.default,
            p.unit,
            p.lower,
            p.upper,
            p.source,
        )
    assert imported.roles == model.roles
    if _has_roadrunner():
        rr = roadrunner_run(text, T_DAYS, list(model.state_symbols))
        assert rel_diff(sol.y, rr) < RTOL


def test_representative_export_starts_with_the_dose(case):
    """Without a scenario the day-0 dose is in the initial state, so the file shows the
    expansion when simulated as it is."""
    model = case[0]
    ir = model_ir(model)
    times = [e.trigger.args[1] for e in ir.events]
    assert not any(t.is_number and float(t) == 0.0 for t in times)  # no day-0 event left
    pytest.importorskip("roadrunner")
    cart = roadrunner_run(sbml_string(ir), np.linspace(0.0, 60.0, 61), [model.roles["cart"]])
    assert cart[0, 0] > 0.0 and cart.max() > 2.0 * cart[0, 0]


def test_sle_cart_scenario_with_infusions_matches_roadrunner():
    """sle_cart (v2) for the hemodialysis case: it starts at the first lymphodepletion day
    (SBML time 0 is day -5), fludarabine infusions are rate switches (two events each),
    cyclophosphamide and CAR-T are boluses."""
    pytest.importorskip("roadrunner")
    from cartkin.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "adolescent_hemodialysis_1e5.toml")
    arm = sc.base
    ref = cartkin.simulate(
        sc.model, arm.patient, arm.regimen, T_DAYS, theta=arm.theta,
        clearance_model=arm.clearance_model, rtol=1e-10, atol=1e-12,
    )  # fmt: skip
    ir = model_ir(sc.model, arm.patient, arm.regimen, arm.theta, arm.clearance_model)
    t_start = float(ir.info["t_start_day"])
    assert t_start == ref.individual.t0 < 0.0
    rr = roadrunner_run(sbml_string(ir), T_DAYS - t_start, list(sc.model.state_symbols))
    assert rel_diff(rr, ref.states) < RTOL


# ----------------------------------------------------------------------------- hand-written ----
def test_hand_written_sbml_solves_like_roadrunner():
    """Reactions, assignment rules, a function definition, local parameters and an event:
    ``model.solve`` against libRoadRunner (and, with or without it, against scipy's solution of
    the flattened equations, tests/sbml_tools.py)."""
    with pytest.warns(SbmlWarning, match="no observable has the role 'cart'"):
        model = models.load(HAND)
    t = np.linspace(0.0, 5.0, 21)
    sol = model.solve(t, rtol=1e-10, atol=1e-12)
    assert sol.state_names == ("A_c", "A_p", "M", "R")
    assert rel_diff(sol.y, scipy_solve(to_ode(read_sbml(HAND)), t)) < RTOL
    # a parameter override reaches the event: without the second dose A_c only falls
    no_dose = model.solve(t, params={"dose2": 0.0})
    assert np.all(np.diff(no_dose.y[:, 0]) < 0) and np.any(np.diff(sol.y[:, 0]) > 0)
    # cartkin.simulate applies the events too (the patient does not enter this model)
    patient, regimen = _patient_regimen()
    sim = cartkin.simulate(model, patient, regimen, t, rtol=1e-10, atol=1e-12)
    assert rel_diff(sim.states, sol.y) < 1e-12
    if not _has_roadrunner():
        pytest.skip("libRoadRunner is not installed (optional test dependency)")
    rr = roadrunner_run(HAND.read_text(), t, list(sol.state_names), amounts={"M"})
    assert rel_diff(sol.y, rr) < RTOL
    obs = model.observe(sol.y, model.kernel_vector())
    rr_obs = roadrunner_run(HAND.read_text(), t, ["effect", "total_drug"])
    assert rel_diff(np.column_stack([obs["effect"], obs["total_drug"]]), rr_obs) < RTOL


def test_load_refuses_math_outside_the_expression_language(tmp_path):
    text = HAND.read_text().replace(
        "<apply><divide/><ci>A_c</ci><apply><plus/><ci>EC50</ci><ci>A_c</ci></apply></apply>",
        "<apply><floor/><ci>A_c</ci></apply>",
    )
    path = tmp_path / "floor.xml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=r"floor.xml: the assignment rule of 'effect': floor"):
        models.load(path)


def test_load_refuses_unsupported_sbml_by_element(tmp_path):
    text = HAND.read_text().replace(
        '<event id="second_dose" useValuesFromTriggerTime="true">',
        '<event id="second_dose" useValuesFromTriggerTime="true"><delay><math '
        'xmlns="http://www.w3.org/1998/Math/MathML"><cn>1</cn></math></delay>',
    )
    path = tmp_path / "delayed.xml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=r"delayed.xml: event 'second_dose' has a delay"):
        models.load(path)


# ------------------------------------------------------------------------------------- CLI ----
def test_cli_export_writes_a_file_and_refuses_a_bad_directory(tmp_path, capsys):
    from cartkin.cli import main

    out = tmp_path / "model.xml"
    assert main(["export", str(ROOT / "examples" / "my_model.py"), "--sbml", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert libsbml.readSBMLFromFile(str(out)).getModel().getNumRules() >= 3
    assert main(["export", "sle_cart", "--sbml", str(tmp_path / "no" / "x.xml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_export_scenario_writes_the_patient_and_its_doses(tmp_path, capsys):
    from cartkin.cli import main

    scenario = tmp_path / "two_doses.toml"
    scenario.write_text(
        "[scenario]\n"
        'name = "two doses (synthetic test scenario)"\n'
        f'model = "{(ROOT / "examples" / "my_model.py").as_posix()}"\n'
        "t_end_days = 30.0\n"
        "[patient]\n"
        "weight_kg = 50.0\nheight_cm = 160.0\nage_years = 16.0\n"
        'sex = "female"\negfr_ml_min_173m2 = 60.0\n'
        "[cart]\ncells_per_kg = 1.0e5\ndays = [0.0, 3.0]\n"
        "[parameters]\nrho = 1.5\n"
    )
    out = tmp_path / "patient.xml"
    model = str(ROOT / "examples" / "my_model.py")
    assert main(["export", model, "--sbml", str(out), "--scenario", str(scenario)]) == 0
    m = libsbml.readSBMLFromFile(str(out)).getModel()
    assert m.getParameter("rho").getValue() == 1.5  # the scenario's override
    assert m.getParameter("weight_kg").getValue() == 50.0  # its patient
    triggers = sorted(
        libsbml.formulaToL3String(m.getEvent(k).getTrigger().getMath())
        for k in range(m.getNumEvents())
    )
    assert triggers == ["time >= 0", "time >= 3"]  # both doses are events
    assert main(["export", "stein2019", "--sbml", str(out), "--scenario", str(scenario)]) == 2
    assert "the scenario's model is 'my_model', not 'stein2019'" in capsys.readouterr().err


def test_an_imported_model_exports_again_with_its_events(tmp_path):
    """SBML -> cartkin -> SBML keeps the reactions' dynamics (as rate rules) and the event."""
    pytest.importorskip("roadrunner")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SbmlWarning)
        model = models.load(HAND)
    patient, regimen = _patient_regimen()
    text = sbml_text(model, patient, regimen)
    assert text.count("<event ") == 1
    t = np.linspace(0.0, 5.0, 21)
    again = roadrunner_run(text, t, ["A_c", "A_p", "M", "R"])
    original = roadrunner_run(HAND.read_text(), t, ["A_c", "A_p", "M", "R"], amounts={"M"})
    assert rel_diff(again, original) < RTOL
