"""The documentation site cannot drift from the code.

Generated pages (models, scenario schema, benchmarks) equal what docs/gen_pages.py makes from
today's code; every public name has a docstring; every key a scenario table accepts is
documented, and the ranges the scenario page states are the ones the code enforces.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest

from cartkin.errors import ScenarioError

ROOT = Path(__file__).parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    pytest.importorskip("sympy")
    pytest.importorskip("griffe")
    return _load("gen_pages")


def test_generated_pages_are_up_to_date(gen):
    for path, text in gen.pages().items():
        assert path.is_file(), f"{path} missing: run python docs/gen_pages.py"
        assert path.read_text(encoding="utf-8") == text, f"{path}: run python docs/gen_pages.py"


def test_public_names_have_docstrings():
    assert _load("hooks").undocumented() == []


def test_every_scenario_key_is_documented(gen):
    keys = gen.scenario_key_lists()
    for table, notes in gen.KEY_NOTES.items():
        assert set(notes) == set(keys[table]), f"[{table}]: document exactly the accepted keys"
    page = (ROOT / "docs" / "reference" / "scenario.md").read_text(encoding="utf-8")
    assert "NOT DOCUMENTED" not in page
    for table in ("scenario", "solver", "data", "fit", "sweep", "outcomes", "case"):
        for key in keys[table]:
            assert f"| `{key}` |" in page, f"[{table}] {key}"


_RANGE = re.compile(r"in ([\[(])([-\d.e+]+), ([-\d.e+]+)([\])])")


def _outside(text):
    """Values just outside the range ``in [a, b]`` stated in a description."""
    m = _RANGE.search(text)
    if not m:
        return []
    lo, hi = float(m.group(2)), float(m.group(3))
    below = lo if m.group(1) == "(" else lo - max(abs(lo), 1.0) * 1e-3
    above = hi if m.group(4) == ")" else hi + max(abs(hi), 1.0) * 1e-3
    return [below, above]


def test_stated_ranges_are_enforced(gen):
    from cartkin import CarTDose, DialysisSchedule, Lymphodepletion, Patient

    person = dict(weight_kg=70.0, height_cm=170.0, age_years=40.0, sex="female")
    bases = {
        Patient: dict(person, egfr_ml_min_173m2=90.0),
        DialysisSchedule: dict(session_days=(-2.5,)),
        Lymphodepletion: {},
        CarTDose: dict(cells_per_kg=1e6),
    }
    kidney = ("egfr_ml_min_173m2", "crcl_ml_min", "serum_creatinine_mg_dl")
    checked = 0
    for cls, base in bases.items():
        for key, _, _, text in gen._dataclass_rows(cls):
            for value in _outside(text):
                kwargs = dict(person) if key in kidney else dict(base)
                kwargs[key] = value
                with pytest.raises(ScenarioError, match=key):
                    cls(**kwargs)
                checked += 1
    assert checked >= 16  # weight, height, age, 3 kidney keys, dialysis, doses: both ends


def test_metrics_page_lists_every_metric():
    import cartkin
    from cartkin.sweep.spec import available_metrics

    page = (ROOT / "docs" / "reference" / "metrics.md").read_text(encoding="utf-8")
    for name in available_metrics(cartkin.models.get("sle_cart")):
        assert f"`{name}`" in page, name
    for name in ("AUC0_28D_OBS", "THALF_INIT", "LAMZHL", "FLU_AUC_GE20", "TPR_PROT", "TDIAL_FREE"):
        assert f"`{name}`" in page, name


def test_every_tutorial_has_a_page_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    scripts = sorted((ROOT / "docs" / "tutorials").glob("*.py"))
    assert len(scripts) == 5
    for script in scripts:
        page = script.with_suffix(".md")
        assert page.is_file(), f"run python docs/run_tutorials.py {script.stem}"
        assert f"tutorials/{page.name}" in nav
        for figure in re.findall(r"\]\((figures/[^)]+)\)", page.read_text(encoding="utf-8")):
            assert (page.parent / figure).is_file(), figure


def test_tutorial_cells_split_like_jupytext():
    runner = _load("run_tutorials")
    cells = runner.cells("# %% [markdown]\n# # Title\n# text\n\n# %%\nx = 1\n")
    assert cells == [("markdown", "# Title\ntext"), ("code", "x = 1")]
    shown = runner._includes("see\n@include examples/my_model.py\n")
    assert shown.startswith("see\n```python\n") and "MODEL = Description(" in shown


def test_model_pages_typeset_every_equation(gen):
    from cartkin import modeldoc, models

    for name in models.available():
        model = models.get(name)
        tex = gen.equations_tex(model)
        lines = modeldoc.parse_equations(model)
        if all(line.kind != "other" for line in lines):
            typeset = [line for line in lines if line.kind != "input"]
            assert tex.count("&=") == len(typeset), name
    assert gen.tex_symbol("delta_E") == "\\delta_{E}"
    assert gen.tex_symbol("k_IL6_ref") == "k_{\\mathrm{IL6,ref}}"
    assert dataclasses.is_dataclass(modeldoc.Symbol)


def test_description_models_are_documented(gen):
    """A model written as a Description (examples/my_model.py) gets a full page."""
    import cartkin
    from cartkin import modeldoc

    model = cartkin.models.load(ROOT / "examples" / "my_model.py")
    assert modeldoc.undefined_symbols(model) == []
    kinds = {line.kind for line in modeldoc.parse_equations(model)}
    assert kinds >= {"intermediate", "rate", "initial", "input"}
    tex = gen.equations_tex(model)
    assert "\\frac{dE}{dt}" in tex and "B(t_0)" in tex and "cart on day:" in tex
