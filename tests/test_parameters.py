"""ParameterTable: validation, kernel vectors, markdown."""

import numpy as np
import pytest

from cartkin.errors import ScenarioError
from cartkin.parameters import Parameter, ParameterTable


def table():
    return ParameterTable(
        [
            Parameter("rho", 1.3, "1/day", 0.1, 5.0, "proliferation", "assumption: test"),
            Parameter("delta_M", 0.05, "1/day", 0.0, 0.5, "memory loss", "Stein 2019, Table 1"),
        ]
    )


def test_vector_is_in_table_order_with_overrides():
    t = table()
    assert t.names == ("rho", "delta_M")
    np.testing.assert_array_equal(t.vector(), [1.3, 0.05])
    v = t.vector({"delta_M": 0.1})
    assert v.dtype == np.float64 and v.tolist() == [1.3, 0.1]
    assert t.defaults() == {"rho": 1.3, "delta_M": 0.05}
    assert t["rho"].is_assumption and not t["delta_M"].is_assumption
    assert t.index("delta_M") == 1
    np.testing.assert_array_equal(t.lower_bounds(), [0.1, 0.0])


def test_unknown_name_suggests_the_closest():
    with pytest.raises(
        ScenarioError, match=r"Unknown parameter 'delta_m'\. Did you mean 'delta_M'"
    ):
        table().vector({"delta_m": 0.1})


@pytest.mark.parametrize(
    ("value", "match"),
    [(9.0, r"'rho' = 9 1/day is outside its plausible bounds \[0.1, 5\]"), (float("nan"), "finite"),
     ("fast", "not a number")],
)  # fmt: skip
def test_bad_values_are_refused(value, match):
    with pytest.raises(ScenarioError, match=match):
        table().vector({"rho": value})


def test_parameter_checks_its_own_definition():
    with pytest.raises(ValueError, match="outside its bounds"):
        Parameter("k", 2.0, "1/day", 0.0, 1.0, "x", "assumption: x")
    with pytest.raises(ValueError, match="needs a source"):
        Parameter("k", 0.5, "1/day", 0.0, 1.0, "x", " ")
    with pytest.raises(ValueError, match="duplicate"):
        ParameterTable([table()["rho"], table()["rho"]])


def test_markdown_has_one_row_per_parameter():
    md = table().to_markdown()
    lines = md.strip().splitlines()
    assert lines[0].startswith("| parameter | default | unit | bounds |")
    assert len(lines) == 4
    assert "| `delta_M` | 0.05 | 1/day | [0, 0.5] | memory loss | Stein 2019, Table 1 |" in md
