"""Model descriptions: parsing, errors naming file and line, generated code (issue 14)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import cartkin
from cartkin import batch
from cartkin.models import DescriptionError
from cartkin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]

GOOD = '''
from cartkin.models import Bolus, Description
from cartkin.parameters import Parameter, ParameterTable

A = "assumption: test value"
MODEL = Description(
    name="tiny",
    description="test model",
    parameters=ParameterTable([
        Parameter("k", 0.5, "1/day", 0.0, 10.0, "decay", A),
        Parameter("r", 2.0, "1/day", 0.0, 10.0, "growth", A),
    ]),
    states="""
        X  x_cells  [cells/uL]  cells
        Y  y_cells  [cells/uL]  other cells
    """,
    equations="""
        f = Y / (1.0 + Y)
        d/dt(X) = r * f * X - k * X
        d/dt(Y) = -k * X * Y
    """,
    initial="Y = 10.0",
    observables="cart_cells_per_ul [cells/uL] = X  # cells",
    roles={"cart": "cart_cells_per_ul"},
    inputs=[Bolus("cart", into="X", amount="dose / 1e6")],
)
'''


def _write(tmp_path, text, name="tiny.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _line(path, fragment):
    for k, line in enumerate(path.read_text().splitlines(), 1):
        if fragment in line:
            return k
    raise AssertionError(fragment)


@pytest.mark.parametrize(
    ("old", "new", "message", "fragment"),
    [
        ("d/dt(X) = r * f * X - k * X", "d/dt(X) = r * f * X - kk * X",
         "unknown symbol 'kk'", "kk * X"),
        ("        d/dt(Y) = -k * X * Y\n", "", "state 'Y' has no equation", "f = Y / (1.0 + Y)"),
        ('into="X"', 'into="Z"', "dose into unknown state 'Z'", 'into="Z"'),
        ("= X  # cells", "= X + Q  # cells", "unknown symbol 'Q'", "X + Q"),
        ('amount="dose / 1e6")', 'amount="dose / 1e6", unit="mg")', "does not match", 'unit="mg"'),
        ("[cells/uL] = X", "[mg/L] = X", r"declares \[mg/L\]", "[mg/L] = X"),
        ("f = Y / (1.0 + Y)", "f = foo(Y)", "unknown function 'foo'", "foo(Y)"),
    ],
)  # fmt: skip
def test_bad_description_names_file_and_line(tmp_path, old, new, message, fragment):
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(DescriptionError, match=message) as info:
        cartkin.models.load(path)
    assert f"{path}:{_line(path, fragment)}" in str(info.value)


def test_user_model_file_runs_from_scenario_and_batch(tmp_path):
    scenario = load_scenario(ROOT / "examples" / "my_model_scenario.toml")
    result = scenario.run()[0]
    model = scenario.model
    assert model.jac is not None and model.observe_roles is not None
    assert model.generated.JAC_PATTERN == ("x.x", "xx.", "x.x")
    cart = result.observables["cart_cells_per_ul"]
    assert cart[0] > 0 and np.all(np.isfinite(cart))
    bctx = batch.BatchContext.from_contexts([result.context] * 2)
    inds = batch.individualize(model, None, bctx)
    sol = batch.solve(model, inds, result.t_days, method="rodas5", rtol=1e-8, atol=1e-10)
    # batch and single paths agree (same kernel, same inputs)
    np.testing.assert_allclose(sol.y[0], result.states, rtol=1e-12, atol=1e-14)
    values = batch.metrics(model, inds, t_end_days=60.0)
    # the in-kernel peak is refined between output times: at or above the grid's, close to it
    assert cart.max() <= values["CMAX"][0] <= 1.05 * cart.max()


def test_generated_code_follows_the_description(tmp_path):
    path = _write(tmp_path, GOOD)
    model = cartkin.models.load(path)
    text = Path(model.generated.__file__).read_text()
    assert "_dydt[0] = r * f * X - k * X" in text  # as written, named locals
    assert "    k = _p[0]" in text and "    X = _y[0]" in text
    edited = _write(tmp_path, GOOD.replace("= -k * X * Y", "= -2.0 * k * X * Y"), "tiny2.py")
    model2 = cartkin.models.load(edited)
    assert model2.generated.__file__ != model.generated.__file__  # an edit is never stale
    y, p = np.array([1.0, 3.0]), np.array([0.5, 2.0])
    d1, d2 = np.zeros(2), np.zeros(2)
    model.rhs(0.0, y, p, d1)
    model2.rhs(0.0, y, p, d2)
    assert d1[1] == -0.5 * 1.0 * 3.0 and d2[1] == 2 * d1[1]
