"""SBML reading and writing (cartkin.models.sbml): math, units, the intermediate form, refusals.

The model-level tests (export of the built-in models, import as a cartkin model, libRoadRunner
cross-checks of ``model.solve``) are in tests/test_sbml_models.py.
"""

from __future__ import annotations

from pathlib import Path

import libsbml
import numpy as np
import pytest
import sympy

from cartkin.errors import ScenarioError
from cartkin.models.sbml.ir import to_ode
from cartkin.models.sbml.mathml import TIME, ast_to_sympy, formula, math_ast
from cartkin.models.sbml.read import read_sbml
from cartkin.models.sbml.units import parse_unit, unit_definition_id
from cartkin.models.sbml.write import sbml_string
from tests.sbml_tools import roadrunner_run, scipy_solve

DATA = Path(__file__).parent / "data" / "sbml"
HAND = DATA / "two_compartment_reactions.xml"


def _sym(name):
    return sympy.Symbol(name)


# ------------------------------------------------------------------------------------ math ----
@pytest.mark.parametrize(
    "text",
    [
        "a * b / (c + 1)",
        "pow(a, 2.5) - exp(-k * time)",
        "piecewise(1, lt(time, 2), 3, geq(a, b) && b > 0, 0)",
        "max(a, 1e-300) + min(b, 2, c)",
        "ln(a) + log10(b) + sqrt(c) + abs(a - b) + floor(c) + ceil(a)",
        "piecewise(a, or(lt(a, b), not(gt(c, 1))), b)",
        "-a^2 + 1/(b*c)",
    ],
)
def test_math_round_trip_keeps_value(text):
    """L3 formula -> sympy -> L3 formula -> sympy evaluates to the same number."""
    ast = libsbml.parseL3Formula(text)
    assert ast is not None, libsbml.getLastParseL3Error()
    expr = ast_to_sympy(ast)
    doc = libsbml.SBMLDocument(3, 2)
    again = ast_to_sympy(math_ast(expr, doc.createModel()))
    values = {_sym("a"): 1.7, _sym("b"): 0.4, _sym("c"): 2.2, _sym("k"): 0.3, TIME: 1.5}
    assert float(again.subs(values)) == pytest.approx(float(expr.subs(values)), rel=1e-15)


def test_math_model_ids_win_over_builtin_names():
    """A parameter called 'e' or 'pi' is that parameter, not the constant."""
    doc = libsbml.SBMLDocument(3, 2)
    model = doc.createModel()
    for pid in ("e", "pi", "beta"):
        p = model.createParameter()
        p.setId(pid)
        p.setConstant(True)
    expr = sympy.Symbol("e") * sympy.Symbol("pi") + sympy.Symbol("beta")
    assert ast_to_sympy(math_ast(expr, model)) == expr


def test_math_time_and_refused_functions():
    assert ast_to_sympy(libsbml.parseL3Formula("time * 2")) == 2 * TIME
    with pytest.raises(ValueError, match="delay"):
        ast_to_sympy(libsbml.parseL3Formula("delay(x, 2)"))
    assert "piecewise" in formula(sympy.Piecewise((1, TIME < 2), (0, True)))


# ----------------------------------------------------------------------------------- units ----
def test_units_parse_known_strings():
    per_day = parse_unit("1/day")
    assert per_day == [(libsbml.UNIT_KIND_SECOND, 0, 86400.0, -1)]
    kinds = {(k, s, e) for k, s, _, e in parse_unit("pg/mL/day per (cells/uL)^2")}
    assert (libsbml.UNIT_KIND_GRAM, -12, 1) in kinds
    assert (libsbml.UNIT_KIND_ITEM, 0, -2) in kinds
    assert (libsbml.UNIT_KIND_LITRE, -6, 2) in kinds
    assert parse_unit("-") == []
    assert parse_unit("mg.h/L") is not None
    assert parse_unit("mL/min/1.73m2") is None  # unknown word: no unit definition
    assert unit_definition_id("cells/uL") == "u_cells_per_uL"


# ------------------------------------------------------------------------- read and flatten ----
def test_read_hand_written_model():
    ode = to_ode(read_sbml(HAND))
    assert ode.states == ["A_c", "A_p", "M", "R"]
    # concentration species: kinetic laws divided by the compartment size
    assert sympy.Symbol("central") in ode.rhs["A_p"].free_symbols
    # amount species (hasOnlySubstanceUnits): stoichiometry 2 times the rate, no division
    assert sympy.simplify(
        ode.rhs["M"] - 2 * 0.5 * _sym("central") * _sym("Vmax") * _sym("A_c")
        / (_sym("Km") + _sym("A_c"))
    ) == 0  # fmt: skip
    assert list(ode.rules) == ["effect", "total_drug"]
    assert ode.derived == {"kin": _sym("kout")}
    assert ode.initial["A_c"] == 10 / _sym("central")  # initialAmount 10 in size 2.5
    (event,) = ode.events
    assert (event.id, event.target, event.kind) == ("second_dose", "A_c", "add")
    assert event.time == _sym("t_dose2") and event.value == _sym("dose2") / _sym("central")


def test_read_hand_written_model_matches_roadrunner():
    """The flattened equations, solved by scipy, equal libRoadRunner's run of the file."""
    pytest.importorskip("roadrunner")
    ode = to_ode(read_sbml(HAND))
    t = np.linspace(0.0, 5.0, 11)
    ours = scipy_solve(ode, t)
    theirs = roadrunner_run(HAND.read_text(), t, ode.states, amounts={"M"})
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-12)
    assert ours[4, 0] > ours[3, 0] + 1.0  # the day-2 bolus is in both


def test_write_read_round_trip_keeps_the_model():
    ir = read_sbml(HAND)
    again = read_sbml(sbml_string(ir))
    a, b = to_ode(ir), to_ode(again)
    assert a.states == b.states and a.constants == b.constants
    for sid in a.states:
        assert sympy.simplify(a.rhs[sid] - b.rhs[sid]) == 0, sid
    assert [(e.id, e.target, e.kind) for e in a.events] == [
        (e.id, e.target, e.kind) for e in b.events
    ]
    assert again.entities["k12"].units == "1/day"


# -------------------------------------------------------------------------------- refusals ----
_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version{version}/core" level="3" version="{version}">
  <model id="m">
    <listOfCompartments>
      <compartment id="c" size="1" spatialDimensions="3" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="S" compartment="c" initialConcentration="1" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k" value="0.5" constant="true"/>
      <parameter id="x" value="0" constant="false"/>
    </listOfParameters>
    {rules}
    <listOfReactions>
      <reaction id="decay" reversible="false" {fast}>
        <listOfReactants>
          <speciesReference species="S" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML">{rate}</math>
        </kineticLaw>
      </reaction>
    </listOfReactions>
    {events}
  </model>
</sbml>
"""
_MATH = '<math xmlns="http://www.w3.org/1998/Math/MathML">{}</math>'
_TIME = (
    '<csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">time</csymbol>'
)
_KS = "<apply><times/><ci>k</ci><ci>S</ci></apply>"


def _model(*, version=2, rules="", fast="", rate=_KS, events=""):
    return _TEMPLATE.format(version=version, rules=rules, fast=fast, rate=rate, events=events)


def _event(trigger, assignment, extra=""):
    return (
        '<listOfEvents><event id="ev" useValuesFromTriggerTime="true">'
        f'<trigger initialValue="true" persistent="true">{_MATH.format(trigger)}</trigger>'
        f"{extra}<listOfEventAssignments>"
        f'<eventAssignment variable="S">{_MATH.format(assignment)}</eventAssignment>'
        "</listOfEventAssignments></event></listOfEvents>"
    )


_AT_2 = f"<apply><geq/>{_TIME}<cn>2</cn></apply>"
_ADD_1 = "<apply><plus/><ci>S</ci><cn>1</cn></apply>"


def test_template_reads():
    ode = to_ode(read_sbml(_model(events=_event(_AT_2, _ADD_1))))
    assert ode.states == ["S"] and ode.events[0].kind == "add"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"rules": "<listOfRules><algebraicRule>"
             + _MATH.format("<apply><minus/><ci>x</ci><ci>S</ci></apply>")
             + "</algebraicRule></listOfRules>"},
            r"algebraic rule number 1 \(0 = x - S\) is not supported",
        ),
        ({"version": 1, "fast": 'fast="true"'}, "reaction 'decay' is fast"),
        (
            {"events": _event(_AT_2, _ADD_1, "<delay>" + _MATH.format("<cn>1</cn>") + "</delay>")},
            "event 'ev' has a delay",
        ),
        (
            {"events": _event(_AT_2, _ADD_1, "<priority>" + _MATH.format("<cn>1</cn>")
                              + "</priority>")},
            "event 'ev' has a priority",
        ),
        (
            {"rate": "<apply><times/><ci>k</ci><apply><csymbol encoding='text' definitionURL="
             "'http://www.sbml.org/sbml/symbols/delay'>delay</csymbol><ci>S</ci><cn>1</cn>"
             "</apply></apply>"},
            "kinetic law of reaction 'decay' uses the delay",
        ),
        (
            {"events": _event("<apply><lt/><ci>S</ci><cn>0.5</cn></apply>", _ADD_1)},
            "event 'ev' has the trigger S < 0.5; cartkin maps events triggered at a fixed time",
        ),
        (
            {"events": _event(_AT_2, "<apply><times/><ci>S</ci><cn>2</cn></apply>")},
            "event 'ev' assigns S = 2.S",
        ),
    ],
)  # fmt: skip
def test_unsupported_elements_are_refused_by_name(kwargs, match):
    with pytest.raises(ScenarioError, match=match):
        to_ode(read_sbml(_model(**kwargs)))


def test_required_package_and_invalid_files_are_refused(tmp_path):
    comp = _model().replace(
        'level="3" version="2">',
        'xmlns:comp="http://www.sbml.org/sbml/level3/version1/comp/version1" '
        'comp:required="true" level="3" version="2">',
    )
    with pytest.raises(ScenarioError, match="requires the SBML package 'comp'"):
        read_sbml(comp)
    with pytest.raises(ScenarioError, match="no such SBML file"):
        read_sbml(tmp_path / "missing.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text(_model().replace('constant="true"/>', "/>", 1))
    with pytest.raises(ScenarioError, match=r"bad.xml: not valid SBML \(\d+ error"):
        read_sbml(bad)


# ---------------------------------------------------------------------------- build events ----
def _dosed_ir():
    from cartkin.models.sbml.parts import Dose, Quantity, build_ir

    S = sympy.Symbol
    return build_ir(
        "dosed",
        states=[
            Quantity("X", 0.0, "cells/uL", rate=-S("k") * S("X")),
            Quantity("P", 0.0, "-", rate=sympy.Integer(0)),
        ],
        parameters=[Quantity("k", 0.5, "1/day"), Quantity("d", 2.0, "cells/uL")],
        observables=[Quantity("obs", 2 * S("X") + S("P"), "cells/uL")],
        doses=[
            Dose("dose_0", 0.0, "X", S("d")),
            Dose("dose_1", 1.0, "X", S("d")),
            Dose("dose_1b", 1.0, "X", 1.0),
            Dose("switch", 2.0, "P", 1.0, "set"),
        ],
    )


def test_build_events_dose_at_start_simultaneous_doses_and_switch():
    """A dose at the start fires at the start; two doses at one time add up; a switch sets."""
    pytest.importorskip("roadrunner")
    text = sbml_string(_dosed_ir())
    ode = to_ode(read_sbml(text))
    assert [(e.target, e.kind) for e in ode.events] == [("X", "add"), ("X", "add"), ("P", "set")]
    t = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    rr = roadrunner_run(text, t, ["X", "P", "obs"])
    x1 = 2.0 * np.exp(-0.5) + 3.0  # both day-1 doses on top of the decayed first one
    assert rr[0, 0] == pytest.approx(2.0) and rr[2, 0] == pytest.approx(x1, rel=1e-9)
    np.testing.assert_allclose(rr[:, 1], [0, 0, 0, 0, 1, 1])
    np.testing.assert_allclose(scipy_solve(ode, t), rr[:, :2], rtol=1e-8)


def test_simultaneous_events_on_one_state_are_refused():
    text = _model(events=_event(_AT_2, _ADD_1)).replace(
        "</listOfEvents>",
        _event(_AT_2, _ADD_1).replace('id="ev"', 'id="ev2"')[len("<listOfEvents>") :],
    )
    with pytest.raises(ScenarioError, match="events 'ev' and 'ev2' both assign 'S' at time 2"):
        to_ode(read_sbml(text))


def test_level2_file_is_converted_and_reads_the_same():
    doc = libsbml.readSBMLFromFile(str(HAND))
    assert doc.setLevelAndVersion(2, 4, False)
    level2 = libsbml.writeSBMLToString(doc)
    assert 'level="2"' in level2
    a, b = to_ode(read_sbml(HAND)), to_ode(read_sbml(level2))
    assert a.states == b.states and a.constants == b.constants
    for sid in a.states:
        assert sympy.simplify(a.rhs[sid] - b.rhs[sid]) == 0, sid


def test_set_events_become_jumps_from_the_previous_value():
    """x = c on a parameter without dynamics: the jump is c minus the value before it."""
    from cartkin.models.sbml.load import SbmlWarning, _TimedEvents, description_from_sbml

    switch = (
        "<listOfEvents>"
        + "".join(
            f'<event id="{eid}" useValuesFromTriggerTime="true"><trigger initialValue="true" '
            f'persistent="true">{_MATH.format(f"<apply><geq/>{_TIME}<cn>{t}</cn></apply>")}'
            f'</trigger><listOfEventAssignments><eventAssignment variable="x">'
            f"{_MATH.format(f'<cn>{v}</cn>')}</eventAssignment></listOfEventAssignments></event>"
            for eid, t, v in (("later", 4, 0.3), ("first", 2, 0.1))
        )
        + "</listOfEvents>"
    )
    text = _model(rate="<apply><times/><ci>k</ci><ci>x</ci><ci>S</ci></apply>", events=switch)
    text = text.replace('<parameter id="x" value="0" constant="false"/>',
                        '<parameter id="x" value="0.5" constant="false"/>')  # fmt: skip
    ir = read_sbml(text)
    with pytest.warns(SbmlWarning, match="no observable has the role 'cart'"):
        description, events = description_from_sbml(ir)
    assert description.state_symbols == ("S", "x")
    timed = _TimedEvents(description, events)
    p = np.array([[1.0, 0.5]])  # c, k
    t_ev, jumps = timed.stops(p, np.zeros(1), np.array([[1.0, 0.5]]))
    np.testing.assert_allclose(t_ev[0], [2.0, 4.0])
    np.testing.assert_allclose(jumps[0, :, 1], [0.1 - 0.5, 0.3 - 0.1])
    assert not jumps[0, :, 0].any()


def test_a_model_without_dynamics_is_refused_and_unused_sizes_are_not_needed():
    start, end = _model().index("<listOfReactions>"), _model().index("</listOfReactions>")
    static = _model()[:start] + _model()[end + len("</listOfReactions>") :]
    with pytest.raises(ScenarioError, match="the model has no dynamics"):
        to_ode(read_sbml(static))
    sizeless = _model().replace(
        "</listOfCompartments>",
        '<compartment id="unused" spatialDimensions="3" constant="true"/></listOfCompartments>',
    )
    assert "unused" not in to_ode(read_sbml(sizeless)).constants
