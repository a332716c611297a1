"""No silent defaults: a scenario simulates lymphodepletion only when it asks for it, and
`cartkin simulate` says when it runs only the base patient of a sweep scenario."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cartkin.cli import main
from cartkin.covariates.regimen import Lymphodepletion, build_context
from cartkin.scenario import load_scenario

ROOT = Path(__file__).parents[1]

BASE = """
[scenario]
name = "no lymphodepletion"
model = "stein2019"
t_end_days = 28.0
output_step_days = 7.0

[patient]
weight_kg = 60.0
height_cm = 165.0
age_years = 30.0
sex = "female"
egfr_ml_min_173m2 = 90.0

[cart]
cells_per_kg = 1.0e6
"""


def _scenario(tmp_path, text):
    path = tmp_path / "case.toml"
    path.write_text(text)
    return load_scenario(path)


def _flu_auc(variant):
    return build_context(
        variant.patient, variant.regimen, variant.clearance_model
    ).flu_auc_mg_h_per_l


def test_scenario_without_lymphodepletion_table_simulates_none(tmp_path):
    s = _scenario(tmp_path, BASE)
    ld = s.base.regimen.lymphodepletion
    assert ld == Lymphodepletion.none() and not ld.given
    ctx = build_context(s.base.patient, s.base.regimen, s.base.clearance_model)
    assert ctx.flu_auc_mg_h_per_l == 0.0 and ctx.cy_mg_m2_total == 0.0


def test_an_empty_lymphodepletion_table_asks_for_the_usual_flu_cy(tmp_path):
    s = _scenario(tmp_path, BASE + "\n[lymphodepletion]\n")
    assert s.base.regimen.lymphodepletion == Lymphodepletion()
    assert _flu_auc(s.base) > 10.0  # 25 mg/m2/day x 3 days at eGFR 90


def test_a_variant_may_add_lymphodepletion_to_a_base_without_it(tmp_path):
    text = BASE + '\n[[variant]]\nlabel = "Flu/Cy"\nlymphodepletion = { cy_mg_m2 = 500.0 }\n'
    text += '\n[[variant]]\nlabel = "higher dose"\ncart = { cells_per_kg = 2.0e6 }\n'
    s = _scenario(tmp_path, text)
    flu_cy, higher = s.variants
    assert flu_cy.regimen.lymphodepletion == Lymphodepletion(cy_mg_m2=500.0)
    assert higher.regimen.lymphodepletion == Lymphodepletion.none()
    assert _flu_auc(flu_cy) > 10.0 and _flu_auc(higher) == 0.0


def test_no_lymphodepletion_with_flu_days_but_a_dose_needs_days():
    assert (
        Lymphodepletion(flu_mg_m2_per_day=0.0, flu_days=(), cy_mg_m2=0.0, cy_days=()).given is False
    )
    with pytest.raises(ValueError, match=r"flu_days = \(\): expected at least one day"):
        Lymphodepletion(flu_days=())


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_scenario_states_its_lymphodepletion(path):
    """They relied on the former default (Flu/Cy); each now writes it out, so outputs stay."""
    data = tomllib.loads(path.read_text())
    assert "lymphodepletion" in data, f"{path.name} has no [lymphodepletion] table"
    assert load_scenario(path).base.regimen.lymphodepletion.given


def test_user_model_example_simulates_no_lymphodepletion():
    s = load_scenario(ROOT / "examples" / "my_model_scenario.toml")
    assert _flu_auc(s.base) == 0.0  # the example model has no lymphodepletion


def test_simulate_on_a_sweep_scenario_says_it_runs_the_base_patient(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text(BASE + "\n[sweep]\nn_patients = 10\n")
    assert main(["simulate", str(path), "--format", "json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("[sweep] table" in n and "runs the base patient" in n for n in notes), notes
    assert main(["simulate", str(path)]) == 0
    assert "`cartkin sweep" in capsys.readouterr().out


def test_sweep_axis_on_lymphodepletion_needs_the_table():
    from cartkin.errors import ScenarioError
    from cartkin.sweep.spec import sweep_from_text

    sweep = '\n[sweep]\nn_patients = 2\nseed = 1\n[sweep.axes]\n"lymphodepletion.flu_rule" = ["none", "renal_bands"]\n'
    with pytest.raises(
        ScenarioError,
        match=r"s\.toml: \[sweep\.axes\] lymphodepletion\.flu_rule: .*no \[lymphodepletion\] table",
    ):
        sweep_from_text(BASE + sweep, source="s.toml")
    s = sweep_from_text(BASE + "\n[lymphodepletion]\n" + sweep, source="s.toml")
    assert [p.base.regimen.lymphodepletion.flu_rule for p in s.points] == ["none", "renal_bands"]
