"""Scenario loader: every shipped scenario loads, and every error path names file, key, form."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import numpy as np
import pytest

from cartkin.errors import ScenarioError
from cartkin.scenario import load_scenario, scenario_from_dict

SCENARIOS = sorted((Path(__file__).parents[1] / "scenarios").glob("*.toml"))

BASE = {
    "scenario": {"name": "t", "model": "sle_cart", "t_end_days": 10.0, "output_step_days": 0.5},
    "patient": {
        "weight_kg": 60.0,
        "height_cm": 165.0,
        "age_years": 30.0,
        "sex": "female",
        "egfr_ml_min_173m2": 90.0,
    },
    "cart": {"cells_per_kg": 1e6},
}


def with_(path, value):
    """BASE with the dotted ``path`` set to ``value`` (None deletes it)."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    if value is None:
        del node[last]
    else:
        node[last] = value
    return data


def test_there_are_scenarios():
    names = {p.stem for p in SCENARIOS}
    assert {
        "adolescent_hemodialysis_1e5",
        "erlangen_sle_1e6",
        "stein2019_tisagenlecleucel",
        "kidney_function_comparison",
    } <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_loads(path):
    s = load_scenario(path)
    assert s.t_days[0] == 0.0 and np.all(np.diff(s.t_days) > 0)
    assert s.arms and all(a.label for a in s.arms)
    text = path.read_text()
    assert text.lstrip().startswith("#"), "a scenario opens with a comment naming its sources"
    assert "ASSUMPTION" in text or "Source" in text or "source" in text


def test_kidney_comparison_variants_replace_kidney_spec():
    s = load_scenario(Path(__file__).parents[1] / "scenarios" / "kidney_function_comparison.toml")
    labels = [a.label for a in s.arms]
    assert labels[:4] == ["eGFR 120", "eGFR 60", "eGFR 30", "eGFR 15"]
    assert [a.patient.egfr_ml_min_173m2 for a in s.arms[:4]] == [120.0, 60.0, 30.0, 15.0]
    dialysis = s.arms[4].patient
    assert dialysis.on_dialysis and dialysis.egfr_ml_min_173m2 is None
    assert s.arms[5].regimen.lymphodepletion.flu_rule == "renal_bands"


def test_a_new_dialysis_schedule_keeps_the_residual_function_of_a_dialysis_patient():
    raw = copy.deepcopy(BASE)
    raw["patient"] |= {"egfr_ml_min_173m2": 2.5,
                       "dialysis": {"session_days": [-4.5, -2.5], "flu_removal_fraction": 0.5}}
    raw["variant"] = [
        {"label": "later sessions", "patient": {"dialysis": {"session_days": [2.5, 4.5]}}},
        {"label": "off dialysis", "patient": {"egfr_ml_min_173m2": 30.0}},
    ]  # fmt: skip
    s = scenario_from_dict(raw)
    later, off = s.arms
    assert later.patient.egfr_ml_min_173m2 == 2.5 == s.base.patient.egfr_ml_min_173m2
    assert later.patient.dialysis.session_days == (2.5, 4.5)
    assert off.patient.egfr_ml_min_173m2 == 30.0 and not off.patient.on_dialysis


def test_minimal_dict_loads_with_defaults():
    s = scenario_from_dict(copy.deepcopy(BASE))
    assert len(s.t_days) == 21
    assert s.solver["method"] == "rodas5"
    # no [lymphodepletion] table: none (never a silent Flu/Cy); an empty table asks for Flu/Cy
    assert not s.base.regimen.lymphodepletion.given
    s = scenario_from_dict(copy.deepcopy(BASE) | {"lymphodepletion": {}})
    assert s.base.regimen.lymphodepletion.flu_days == (-5.0, -4.0, -3.0)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.toml")


def test_invalid_toml_names_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[patient\nweight_kg = 1")
    with pytest.raises(ScenarioError, match=r"bad\.toml: not valid TOML"):
        load_scenario(bad)


def test_error_names_the_file(tmp_path):
    f = tmp_path / "case.toml"
    f.write_text(
        '[scenario]\nmodel = "sle_cart"\n[patient]\nweight_kg = 60\n[cart]\ncells_per_kg = 1e6\n'
    )
    with pytest.raises(
        ScenarioError, match=r"case\.toml: \[patient\] missing required key 'height_cm'"
    ):
        load_scenario(f)


@pytest.mark.parametrize(
    ("path", "value", "pattern"),
    [
        ("pateint", {}, r"unknown key 'pateint'\. Did you mean 'patient'\?"),
        (
            "patient.wieght_kg",
            60.0,
            r"\[patient\] unknown key 'wieght_kg'.*Did you mean 'weight_kg'",
        ),
        (
            "patient.weight_lb",
            130.0,
            r"'weight_lb'.*takes 'weight_kg' \(the unit is part of the name",
        ),
        ("patient.weight_kg", "60 kg", r"\[patient\] weight_kg = '60 kg': expected a number"),
        (
            "patient.weight_kg",
            6000.0,
            r"\[patient\] Patient\.weight_kg = 6000 kg: expected a number in \[2, 300\] kg",
        ),
        ("patient.sex", "f", r"Patient\.sex = 'f': expected one of"),
        ("patient.height_cm", None, r"\[patient\] missing required key 'height_cm'"),
        ("patient.egfr_ml_min_173m2", None, r"kidney function: got none; expected exactly one"),
        ("cart", None, r"missing required key 'cart'"),
        ("cart.cells_per_kg", -1.0, r"\[cart\] CarTDose\.cells_per_kg = -1 cells/kg"),
        ("scenario.model", None, r"\[scenario\] missing required key 'model'"),
        ("scenario.model", "sle_cartt", r"\[scenario\] model = 'sle_cartt'.*sle_cart"),
        ("scenario.t_end_days", -5.0, r"t_end_days = -5\.0: expected a number > 0"),
        ("scenario.t_end_days", 10.3, r"not a whole number of output_step_days"),
        ("scenario.t_end_days", "ten", r"\[scenario\] t_end_days = 'ten': expected the horizon"),
        (
            "scenario.clearance_model",
            "langenhorst",
            r"clearance_model = 'langenhorst'.*Did you mean 'langenhorst2019'",
        ),
        ("scenario.colour", "red", r"\[scenario\] unknown key 'colour'"),
        ("solver.method", "rodas", r"\[solver\] method = 'rodas'.*Did you mean 'rodas5'"),
        ("solver.rtol", 0.5, r"rtol = 0\.5.*expected 2\.2e-14 <= rtol < 0\.1"),
        ("parameters.rhoo", 1.0, r"\[parameters\].*rhoo.*Did you mean 'rho'"),
        ("parameters.rho", 1e9, r"\[parameters\].*rho"),
        (
            "lymphodepletion.flu_days",
            [-3.0, -5.0],
            r"\[lymphodepletion\].*flu_days.*strictly increasing",
        ),
        (
            "patient.dialysis",
            {"session_days": [1.0], "removal": 0.1},
            r"\[patient\.dialysis\] unknown key 'removal'",
        ),
        ("variant", {"label": "x"}, r"\[variant\] must be an array of tables"),
        ("variant", [{"patient": {}}], r"\[\[variant\]\] #1 missing required key 'label'"),
        ("variant", [{"label": "a", "dose": 1}], r"\[\[variant\]\] #1 unknown key 'dose'"),
        ("variant", [{"label": "a"}, {"label": "a"}], r"labels repeat: \['a'\]"),
        (
            "variant",
            [{"label": "a", "patient": {"weight_kg": 1.0}}],
            r"\[\[variant\]\] #1 \[patient\] Patient\.weight_kg = 1 kg",
        ),
    ],
)
def test_error_paths(path, value, pattern):
    with pytest.raises(ScenarioError, match=pattern):
        scenario_from_dict(with_(path, value), source="case.toml")


def test_shipped_scenario_with_typo_is_caught(tmp_path):
    """A misspelt key in a copy of a real scenario is reported with its file and a suggestion."""
    src = SCENARIOS[0]
    data = tomllib.loads(src.read_text())
    data["patient"]["age_yrs"] = data["patient"].pop("age_years")
    with pytest.raises(ScenarioError, match=r"unknown key 'age_yrs'.*Did you mean 'age_years'"):
        scenario_from_dict(data, source=src)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_runs(path):
    """Each arm simulates successfully, states stay finite and metrics come out."""
    from cartkin import metrics

    s = load_scenario(path)
    results = s.run()
    assert [r.label for r in results] == [a.label for a in s.arms]
    for r in results:
        assert r.success
        assert np.all(np.isfinite(r.states))
        table = {m.name: m.value for m in metrics.compute(r)}
        assert table["CMAX"] > 0 and 0 < table["TMAX"] < s.t_days[-1]
