"""Generated Jacobians of every built-in model against central differences of its rhs."""

from __future__ import annotations

import numpy as np
import pytest

import cartkin
from cartkin.kernel import codegen

MODELS = ("sle_cart", "sle_cart_v1", "stein2019", "cart4")


def _random_inputs(model, rng):
    """A kernel vector (defaults with a +-30% spread, derived entries drawn positive) and a
    positive state; flags (names starting with 'on_' or phase flags) drawn as 0 or 1."""
    table = model.parameters
    p = np.array([par.default for par in table], dtype=np.float64)
    p *= rng.uniform(0.7, 1.3, p.size)
    p = np.clip(p, [par.lower for par in table], [par.upper for par in table])
    derived = rng.uniform(0.1, 2.0, len(model.derived))
    y = rng.uniform(0.1, 5.0, model.n_states)
    for k, s in enumerate(model.states):
        if s.unit == "-" and s.name in ("on_dialysis", "post_peak"):
            y[k] = float(rng.integers(0, 2))
    return np.concatenate([p, derived]), y


@pytest.mark.parametrize("name", MODELS)
def test_jacobian_matches_central_differences(name):
    model = cartkin.models.get(name)
    rng = np.random.default_rng(14)
    n = model.n_states
    pattern = model.generated.JAC_PATTERN
    for _ in range(20):
        p, y = _random_inputs(model, rng)
        J = np.full((n, n), np.nan)
        model.jac(0.0, y, p, J)
        fd = np.zeros((n, n))
        for j in range(n):
            h = 1e-6 * max(abs(y[j]), 1.0)
            up, down = y.copy(), y.copy()
            up[j] += h
            down[j] -= h
            f_up, f_down = np.zeros(n), np.zeros(n)
            model.rhs(0.0, up, p, f_up)
            model.rhs(0.0, down, p, f_down)
            fd[:, j] = (f_up - f_down) / (2 * h)
        scale = np.abs(fd).max(axis=1, keepdims=True) + 1e-12
        np.testing.assert_allclose(J / scale, fd / scale, atol=1e-6, err_msg=name)
        outside = np.array([[c == "." for c in row] for row in pattern])
        assert np.all(J[outside] == 0.0) and np.all(fd[outside] == 0.0)


@pytest.mark.parametrize("name", MODELS)
def test_pattern_is_the_symbolic_nonzeros(name):
    d = cartkin.models.get(name).description_
    entries = codegen.jacobian_entries(
        d.state_symbols,
        d.kernel_names,
        [(line.name, line.expression) for line in d.intermediates],
        [d.rates[s].expression for s in d.state_symbols],
    )
    n = len(d.states)
    expected = tuple("".join("x" if (i, j) in entries else "." for j in range(n)) for i in range(n))
    assert cartkin.models.get(name).generated.JAC_PATTERN == expected
    assert all(entries[k] != 0 for k in entries)


@pytest.mark.parametrize("name", MODELS)
def test_role_states_are_exactly_the_states_observe_roles_reads(name):
    """ROLE_STATES (the states the in-kernel metrics evaluate the dense output of): changing
    any other state leaves every role unchanged, changing a listed one changes some role."""
    model = cartkin.models.get(name)
    listed = set(model.generated.ROLE_STATES)
    rng = np.random.default_rng(5)
    p, y = _random_inputs(model, rng)
    base = np.empty(10)
    model.generated.observe_roles(y, p, base)
    out = np.empty(10)
    for j in range(model.n_states):
        z = y.copy()
        z[j] = np.nan
        model.generated.observe_roles(z, p, out)
        changed = not np.array_equal(out, base, equal_nan=True)
        assert changed == (j in listed), (name, model.state_names[j])


@pytest.mark.parametrize("name", MODELS)
def test_jac_nonzeros_writes_exactly_the_pattern(name):
    """The kernel's Jacobian (jac_nonzeros) writes the JAC_PATTERN entries, equal to jac's, and
    leaves every other entry as it was (the kernel zeroes them once)."""
    model = cartkin.models.get(name)
    n = model.n_states
    inside = np.array([[c == "x" for c in row] for row in model.generated.JAC_PATTERN])
    p, y = _random_inputs(model, np.random.default_rng(8))
    full = np.full((n, n), np.nan)
    model.jac(0.0, y, p, full)
    part = np.full((n, n), np.nan)
    model.generated.jac_nonzeros(0.0, y, p, part)
    assert np.isnan(part[~inside]).all()
    np.testing.assert_array_equal(part[inside], full[inside])
    assert (full[~inside] == 0.0).all()


@pytest.mark.parametrize("name", MODELS)
def test_autonomous_flag_says_whether_the_rhs_reads_the_time(name):
    """AUTONOMOUS (the Rosenbrock kernel then skips the df/dt difference quotient) is True
    exactly when the rates do not change with t."""
    model = cartkin.models.get(name)
    rng = np.random.default_rng(7)
    changes = False
    for _ in range(20):
        p, y = _random_inputs(model, rng)
        f0, f1 = np.zeros(model.n_states), np.zeros(model.n_states)
        model.rhs(0.0, y, p, f0)
        model.rhs(rng.uniform(1.0, 300.0), y, p, f1)
        changes |= not np.array_equal(f0, f1)
    assert model.generated.AUTONOMOUS is (not changes)


def test_a_rate_that_reads_the_time_is_not_autonomous():
    text = codegen.module_text("t-test", ["x"], ["k"], [("r", "k * t")], ["-r * x"], [None])
    assert "AUTONOMOUS = False" in text
    text = codegen.module_text("t-test", ["x"], ["k"], [("r", "k * x")], ["-r * x"], [None])
    assert "AUTONOMOUS = True" in text
