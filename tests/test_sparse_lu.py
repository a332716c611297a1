"""The sparse LU of the Rosenbrock matrix (``JAC_PATTERN`` -> ``cartkin.kernel.build.lu_plan`` ->
``_sp_lu_factor`` / ``_sp_lu_solve`` / ``_ros_matrix`` in the kernel template)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numba import njit
from test_sle_cart_v2 import _central_difference_jacobian, _individual

import cartkin
from cartkin.kernel import build as _compile


def _template_namespace(pattern):
    """The kernel template compiled in memory with ``pattern``'s plan (functions compile on
    first call); its names as a dict."""

    @njit
    def rhs(t, y, p, dydt):  # never called: only the linear algebra is exercised
        pass

    return vars(_compile._exec_template(rhs, None, None, "ros", pattern))


def _pattern_strings(mask):
    return tuple("".join("x" if v else "." for v in row) for row in mask)


def _pattern_of(model_pattern):
    return np.array([[c == "x" for c in row] for row in model_pattern])


SLE = _pattern_of(cartkin.models.get("sle_cart_v2").generated.JAC_PATTERN)


def _random_states(rng, k):
    """Random sle_cart states and kernel vectors as in test_sle_cart_v2 (flags 0/1, fractions)."""
    base = _individual().p
    k_dialysis = cartkin.models.get("sle_cart_v2").kernel_names.index("k_D")  # 0 for this patient: draw it
    for _ in range(k):
        p = base * rng.uniform(0.3, 3.0, base.size)
        p[k_dialysis] = rng.uniform(0.0, 50.0) * rng.integers(0, 2)
        y = rng.uniform(0.0, 1000.0, 23) * rng.choice([1e-3, 1.0], 23)
        y[3] = rng.uniform(0.0, 100.0) * rng.integers(0, 2)  # infusion rate, on or off
        y[4] = rng.integers(0, 2)  # dialysis flag
        y[[9, 11, 18, 20]] = rng.uniform(0.0, 1.0, 4)  # S, G, J, G_1
        yield y, p


def test_sle_cart_jacobian_stays_inside_its_declared_pattern():
    """The sle_cart jac and central differences of its rhs are zero outside JAC_PATTERN at 300
    random states and parameter vectors, and every declared entry is nonzero at some of them
    (the pattern is neither too small, which would be wrong, nor padded)."""
    rng = np.random.default_rng(7)
    J = np.empty((23, 23))
    seen = np.zeros((23, 23), bool)
    for y, p in _random_states(rng, 300):
        cartkin.models.get("sle_cart_v2").jac(0.0, y, p, J)
        fd = _central_difference_jacobian(y, p)
        assert not np.any(J[~SLE]), np.argwhere((J != 0) & ~SLE)
        assert not np.any(fd[~SLE]), np.argwhere((fd != 0) & ~SLE)
        seen |= J != 0
    assert np.array_equal(seen, SLE), np.argwhere(seen != SLE)


def test_plan_of_sle_cart_has_little_fill_in():
    plan = _compile.lu_plan(cartkin.models.get("sle_cart_v2").generated.JAC_PATTERN)
    filled = np.zeros((23, 23), bool)
    filled[plan["SP_MI"], plan["SP_MJ"]] = True
    assert np.all(filled[SLE]) and np.all(np.diag(filled))
    assert filled.sum() <= SLE.sum() + 23 + 5  # declared + diagonal + at most 5 fill-ins
    assert sorted(plan["SP_ORDER"]) == list(range(23))


@pytest.mark.parametrize(
    "pattern, message",
    [(("xx", "x"), "row 1 = 'x': expected 2 characters"), (("xo", "xx"), "each 'x' or '.'")],
)
def test_bad_pattern_is_refused_with_the_row(pattern, message):
    with pytest.raises(ValueError, match=message):
        _compile.lu_plan(pattern)


@pytest.fixture(scope="module")
def sle_kernel():
    return _template_namespace(cartkin.models.get("sle_cart_v2").generated.JAC_PATTERN)


def test_sparse_factor_and_solve_equal_a_dense_solve_on_sle_cart_matrices(sle_kernel):
    """I/(h gamma) - J for real sle_cart Jacobians over h from 1e-4 to 30 days: the sparse
    factors (when they are taken) solve like numpy.linalg.solve."""
    rng = np.random.default_rng(11)
    gamma = sle_kernel["ROS_GAMMA"]
    J = np.empty((23, 23))
    piv = np.empty(23, np.int64)
    n_sparse = 0
    for y, p in _random_states(rng, 60):
        cartkin.models.get("sle_cart_v2").jac(0.0, y, p, J)
        for h in (1e-4, 0.01, 1.0, 30.0):
            A = np.eye(23) / (h * gamma) - J
            b = rng.normal(size=23)
            M = np.full((23, 23), np.nan)  # entries outside the filled pattern are never read
            code, sparse = sle_kernel["_ros_matrix"](h, J, M, piv)
            assert code == 0
            x = b.copy()
            if sparse:
                n_sparse += 1
                sle_kernel["_sp_lu_solve"](M, x)
            else:
                sle_kernel["_lu_solve"](M, piv, x)
            ref = np.linalg.solve(A, b)
            np.testing.assert_allclose(x, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    assert n_sparse > 150  # the usual path, even at these random states (real runs: see below)


def test_generated_straight_line_lu_equals_the_loops_over_the_plan(sle_kernel):
    """The file-backed kernel factors and solves with the straight-line code the header writes
    for the plan (SP_UNROLLED): the same codes and, bit for bit, the same numbers as the loops
    over the plan's index arrays (the in-memory kernel), over h from 1e-4 to 30 days."""
    from cartkin import batch

    model = cartkin.models.get("sle_cart_v2")
    generated = batch._kernel(model)
    assert generated.SP_UNROLLED and not sle_kernel["SP_UNROLLED"]
    rng = np.random.default_rng(12)
    J = np.empty((23, 23))
    piv = np.empty(23, np.int64)
    n_sparse = 0
    for y, p in _random_states(rng, 30):
        model.jac(0.0, y, p, J)
        for h in (1e-4, 0.01, 1.0, 30.0):
            M1, M2 = np.zeros((23, 23)), np.zeros((23, 23))
            result = generated._ros_matrix(h, J, M1, piv)
            assert result == sle_kernel["_ros_matrix"](h, J, M2, piv)
            if not result[1]:
                continue
            n_sparse += 1
            np.testing.assert_array_equal(M1, M2)
            b = rng.normal(size=23)
            x1, x2 = b.copy(), b.copy()
            generated._sp_lu_solve(M1, x1)
            sle_kernel["_sp_lu_solve"](M2, x2)
            np.testing.assert_array_equal(x1, x2)
    assert n_sparse > 60


def test_jacobian_outside_the_pattern_or_a_bad_pivot_falls_back_to_dense(sle_kernel):
    rng = np.random.default_rng(3)
    y, p = next(_random_states(rng, 1))
    J = np.empty((23, 23))
    cartkin.models.get("sle_cart_v2").jac(0.0, y, p, J)
    M = np.empty((23, 23))
    piv = np.empty(23, np.int64)
    assert sle_kernel["_ros_matrix"](0.1, J, M, piv) == (0, True)
    J[0, 22] = 1e-300  # outside the declared pattern: the sparse plan would ignore it
    code, sparse = sle_kernel["_ros_matrix"](0.1, J, M, piv)
    assert (code, sparse) == (0, False)
    J[0, 22] = np.nan
    assert sle_kernel["_ros_matrix"](0.1, J, M, piv) == (2, False)  # dense LU: non-finite


@st.composite
def _systems(draw):
    n = draw(st.integers(1, 9))
    mask = np.array(draw(st.lists(st.booleans(), min_size=n * n, max_size=n * n))).reshape(n, n)
    np.fill_diagonal(mask, True)
    entries = draw(st.lists(st.floats(-10, 10), min_size=n * n, max_size=n * n))
    values = np.array(entries).reshape(n, n)
    shift = draw(st.floats(-20, 20))
    return mask, np.where(mask, values, 0.0) + shift * np.eye(n)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_systems())
def test_sparse_lu_matches_dense_on_random_patterns(system):
    """Any pattern: either the sparse LU solves A x = b, or it declines (nonzero: zero pivot or
    large multiplier) and the kernel would use the dense LU. Runs the template's own code as
    Python (``py_func``: one numba compile per pattern would take minutes)."""
    mask, A = system
    # a near-singular A (hypothesis finds diagonals of 1e-291) has no accurate solution by any
    # LU, dense or sparse: the property is about systems that have one
    assume(np.linalg.cond(A) < 1e8)
    ns = _template_namespace(_pattern_strings(mask))
    M = A.copy()
    if ns["_sp_lu_factor"].py_func(M) != 0:
        return
    b = np.arange(1.0, A.shape[0] + 1.0)
    x = b.copy()
    ns["_sp_lu_solve"].py_func(M, x)
    np.testing.assert_allclose(A @ x, b, rtol=1e-7, atol=1e-7 * np.abs(A).max() * np.abs(x).max())


def test_generated_kernel_carries_the_plan_only_for_a_model_with_a_pattern():
    """The plan is written into the generated kernel file as literals (so the file's hash, and
    numba's cache, follow the pattern); a model without JAC_PATTERN gets SPARSE_LU = False."""
    from pathlib import Path

    def text(rhs, jac=None):
        info = _compile._builtin_info(rhs, jac)
        return _compile._generated_text(*info)[0]

    sle = cartkin.models.get("sle_cart_v2")
    sle_text = text(sle.rhs, sle.jac)
    decay = cartkin.models.load_module(Path(__file__).parents[1] / "examples" / "decay_rhs.py")
    cart4_text = text(decay.rhs)
    assert "SPARSE_LU = True" in sle_text
    # the generated jac is zero outside its pattern by construction: no check per step; the
    # same model with finite differences (or a hand-written jac) keeps the check
    assert "SP_CHECK = False" in sle_text
    assert "SP_CHECK = True" in text(sle.rhs)
    assert "import jac_nonzeros as jac" in sle_text  # the pattern's entries only, J pre-zeroed
    order = _compile.lu_plan(cartkin.models.get("sle_cart_v2").generated.JAC_PATTERN)["SP_ORDER"]
    assert f"SP_ORDER = _np.array({order!r}, dtype=_np.int64)" in sle_text
    assert "SPARSE_LU = False" in cart4_text


def test_pattern_of_the_wrong_size_or_type_names_the_model_file(tmp_path):
    import types

    module = types.ModuleType("fake_model")
    module.__file__ = str(tmp_path / "fake_model.py")
    module.MODEL = types.SimpleNamespace(state_names=("a", "b", "c"))
    module.JAC_PATTERN = ("xx", "xx")
    with pytest.raises(ValueError, match=r"fake_model.py: JAC_PATTERN has 2 rows; expected 3"):
        _compile._module_pattern(module)
    module.JAC_PATTERN = "xxx"
    with pytest.raises(ValueError, match=r"fake_model.py: JAC_PATTERN must be a sequence"):
        _compile._module_pattern(module)
    module.JAC_PATTERN = ("xxx", "x.x", "xo.")
    with pytest.raises(ValueError, match=r"fake_model.py: JAC_PATTERN row 2 = 'xo.'"):
        _compile._module_pattern(module)
    module.JAC_PATTERN = ["x..", ".x.", "..x"]
    assert _compile._module_pattern(module) == ("x..", ".x.", "..x")
