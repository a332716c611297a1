"""solve_ode: accuracy against independent references, convergence order, stops and jumps,
failure statuses and input errors.

Each distinct right-hand side costs one kernel compile (seconds), so the tests share a few
(`problems.affine`, `problems.scalar`, the cached cart4 model).
"""

import math

import numpy as np
import problems as P
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cartkin
from cartkin import SolverError, Status, solve_ode
from cartkin.kernel import build as _compile
from cartkin.models import cart4

ALL_METHODS = ["tsit5", "dopri5", "rodas5", "auto"]
ORDER = {"tsit5": 5, "dopri5": 5, "rodas5": 5}


# ---------------------------------------------------------------------------------------------
# tableaus: published coefficients satisfy the conditions they must
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel():
    return _compile.get_kernel(P.affine)


def _rk_order_conditions(A, b, c):
    """Residuals of the 17 order conditions up to order 5 (Butcher trees)."""
    Ac = A @ c
    return [
        b.sum() - 1,
        b @ c - 1 / 2,
        b @ c**2 - 1 / 3,
        b @ Ac - 1 / 6,
        b @ c**3 - 1 / 4,
        b @ (c * Ac) - 1 / 8,
        b @ A @ c**2 - 1 / 12,
        b @ A @ Ac - 1 / 24,
        b @ c**4 - 1 / 5,
        b @ (c**2 * Ac) - 1 / 10,
        b @ Ac**2 - 1 / 20,
        b @ (c * (A @ c**2)) - 1 / 15,
        b @ A @ c**3 - 1 / 20,
        b @ (c * (A @ Ac)) - 1 / 30,
        b @ A @ (c * Ac) - 1 / 40,
        b @ A @ A @ c**2 - 1 / 60,
        b @ A @ A @ Ac - 1 / 120,
    ]


@pytest.mark.parametrize("tab", [0, 1], ids=["tsit5", "dopri5"])
def test_explicit_tableau_conditions(kernel, tab):
    A, c, e, R = kernel.ERK_A[tab], kernel.ERK_C[tab], kernel.ERK_E[tab], kernel.ERK_R[tab]
    b = A[6]
    np.testing.assert_allclose(A.sum(axis=1), c, atol=1e-14)  # row sums = nodes
    np.testing.assert_allclose(_rk_order_conditions(A, b, c), 0.0, atol=2e-15)
    bhat = b - e
    assert abs(bhat.sum() - 1) < 1e-14  # embedded solution is consistent...
    assert abs(bhat @ c**3 - 1 / 4) < 1e-14  # ...and of order 4...
    assert abs(bhat @ c**4 - 1 / 5) > 1e-6  # ...but not 5 (else no error estimate)
    # dense output: weights at theta = 1 give the step's solution; at 0 nothing
    np.testing.assert_allclose(R.sum(axis=1), b, atol=1e-14)
    # the kernel's dense output assumes only k1 has a theta^1 term, with weight 1
    np.testing.assert_array_equal(R[:, 0], np.eye(7)[0])
    # the continuous extension is of order 4: sum_i b_i(theta) c_i^k = theta^(k+1)/(k+1)
    for theta in (0.3, 0.7):
        w = theta * (R[:, 0] + theta * (R[:, 1] + theta * (R[:, 2] + theta * R[:, 3])))
        for k in range(4):
            assert abs(w @ c**k - theta ** (k + 1) / (k + 1)) < 1e-13


def test_rodas5_tableau_conditions(kernel):
    g = kernel.ROS_GAMMA
    A, C = kernel.ROS_A, kernel.ROS_C
    Gamma = np.linalg.inv(np.eye(8) / g - C)  # the transformed form: C = diag(1/g) - Gamma^-1
    alpha = A @ Gamma
    np.testing.assert_allclose(alpha.sum(axis=1), kernel.ROS_CT, atol=1e-12)
    np.testing.assert_allclose(Gamma.sum(axis=1), kernel.ROS_D, atol=1e-12)
    b = np.append(A[7, :7], 1.0) @ Gamma  # y1 = y + sum_j A_8j u_j + u_8
    beta = np.tril(alpha + Gamma, -1).sum(axis=1)
    a = alpha.sum(axis=1)
    B = np.tril(alpha + Gamma, -1)
    assert abs(b.sum() - 1) < 1e-13
    assert abs(b @ beta - (0.5 - g)) < 1e-13
    assert abs(b @ a**2 - 1 / 3) < 1e-13
    assert abs(b @ B @ beta - (1 / 6 - g + g * g)) < 1e-13
    assert abs(b @ a**3 - 1 / 4) < 1e-13


# ---------------------------------------------------------------------------------------------
# accuracy against independent references
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cart4_reference():
    return P.cart4_oracle(cart4.T_EVAL_DAYS)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_cart4_matches_scipy_oracle(method, cart4_reference):
    """Requested rtol 1e-6, atol 1e-9: the global error over a year stays within 10x that."""
    sol = solve_ode(cartkin.models.get("cart4").rhs, cart4.Y0, cart4.T_EVAL_DAYS, cart4.DEFAULT_P, method=method)
    assert sol.success and sol.status == Status.SUCCESS and sol.message.startswith("success")
    assert sol.y.shape == (366, 4)
    assert P.mixed_error(sol.y, cart4_reference, 1e-6, 1e-9) < 10.0
    assert sol.n_steps > 0 and sol.n_rhs > sol.n_steps
    if method in ("tsit5", "dopri5", "auto"):
        assert sol.n_jac == 0
    else:
        assert sol.n_jac == sol.n_steps


def test_cart4_tighter_tolerance_is_more_accurate(cart4_reference):
    errs = []
    for rtol in (1e-5, 1e-7, 1e-9):
        sol = solve_ode(cartkin.models.get("cart4").rhs, cart4.Y0, cart4.T_EVAL_DAYS, cart4.DEFAULT_P, method="tsit5",
                        rtol=rtol, atol=1e-12)  # fmt: skip
        errs.append(P.mixed_error(sol.y, cart4_reference, 1e-6, 1e-9))
    assert errs[0] > 10 * errs[1] > 100 * errs[2]


def test_auto_stays_explicit_on_nonstiff_cart4():
    a = solve_ode(cartkin.models.get("cart4").rhs, cart4.Y0, cart4.T_EVAL_DAYS, cart4.DEFAULT_P, method="auto")
    b = solve_ode(cartkin.models.get("cart4").rhs, cart4.Y0, cart4.T_EVAL_DAYS, cart4.DEFAULT_P, method="tsit5")
    np.testing.assert_array_equal(a.y, b.y)
    assert a.message == "success" and a.n_jac == 0


@pytest.mark.parametrize("method", ALL_METHODS)
def test_linear_system_matches_exact_solution(method):
    """Damped rotation. atol = rtol: components cross zero, where only atol defines accuracy."""
    a, w = 0.3, 2.0
    y0 = np.array([1.0, -0.5])
    t = np.linspace(0.0, 10.0, 57)
    p = P.affine_p([[-a, w], [-w, -a]])
    sol = solve_ode(P.affine, y0, t, p, method=method, rtol=1e-8, atol=1e-8)
    assert P.mixed_error(sol.y, P.rotation_decay_exact(t, y0, a, w), 1e-8, 1e-8) < 10.0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rates=st.lists(st.floats(0.01, 5.0), min_size=3, max_size=3),
    y0=st.lists(st.floats(0.0, 1e3), min_size=3, max_size=3),
    method=st.sampled_from(ALL_METHODS),
)
def test_decay_matches_exact_for_random_rates_and_states(rates, y0, method):
    t = np.linspace(0.0, 20.0, 41)
    sol = solve_ode(P.affine, y0, t, P.affine_p(-np.diag(rates)), method=method,
                    rtol=1e-7, atol=1e-9)  # fmt: skip
    exact = np.asarray(y0) * np.exp(-np.outer(t, rates))
    assert P.mixed_error(sol.y, exact, 1e-7, 1e-9) < 10.0


def test_nonautonomous_rhs_with_rodas5_uses_time_derivative():
    t = np.linspace(0.0, 20.0, 81)
    p = np.array([P.SCALAR_COS, 0.0])
    for method in ("rodas5", "tsit5"):
        sol = solve_ode(P.scalar, [2.0], t, p, method=method, rtol=1e-8, atol=1e-10)
        assert P.mixed_error(sol.y[:, 0], 2.0 * np.exp(np.sin(t)), 1e-8, 1e-10) < 10.0


# ---------------------------------------------------------------------------------------------
# convergence order (fixed steps)
# ---------------------------------------------------------------------------------------------
def _slope(n_steps, errors):
    return -np.polyfit(np.log(n_steps), np.log(errors), 1)[0]


@pytest.mark.parametrize("method", ["tsit5", "dopri5"])
def test_explicit_convergence_order(method):
    """y' = y cos t on [0, 30]: log-log slope of the end-point error vs step count.

    (Tsit5's 5th-order error constant is small by design, so on short spans the 6th-order term
    dominates and the slope looks > 5; 30 time units put it in the asymptotic range.)
    """
    p = np.array([P.SCALAR_COS, 0.0])
    n_steps = np.array([240, 480, 960])
    errors = [
        abs(solve_ode(P.scalar, [1.0], [0.0, 30.0], p, method=method, fixed_step=30.0 / n).y[-1, 0]
            - math.exp(math.sin(30.0)))
        for n in n_steps
    ]  # fmt: skip
    assert abs(_slope(n_steps, errors) - ORDER[method]) < 0.2


def test_rodas5_convergence_order():
    """y' = y^2, y(0) = -1 (exact -1/(1+t)) with the exact Jacobian (Rosenbrock methods need it
    for their order; with finite differences the order holds down to the difference error)."""
    p = np.array([P.SCALAR_BLOWUP, 0.0])
    n_steps = np.array([16, 32, 64, 128])
    errors = [
        abs(solve_ode(P.scalar, [-1.0], [0.0, 1.0], p, method="rodas5", jac=P.scalar_jac,
                      fixed_step=1.0 / n).y[-1, 0] + 0.5)
        for n in n_steps
    ]  # fmt: skip
    assert abs(_slope(n_steps, errors) - ORDER["rodas5"]) < 0.2


@pytest.mark.parametrize("method", ["tsit5", "dopri5", "rodas5"])
def test_dense_output_order(method):
    """Outputs between steps come from 4th-order continuous extensions: error O(h^5)."""
    a, w, span = 0.5, 2.0, 4.0
    y0 = np.array([1.0, 0.5])
    p = P.affine_p([[-a, w], [-w, -a]])
    n_steps = np.array([32, 64, 128])
    errors = []
    for n in n_steps:
        h = span / n
        t = np.concatenate([[0.0], (np.arange(n) + 0.37) * h])
        sol = solve_ode(P.affine, y0, t, p, method=method, fixed_step=h)
        errors.append(np.max(np.abs(sol.y - P.rotation_decay_exact(t, y0, a, w))))
    assert 4.8 < _slope(n_steps, errors) < 5.8


# ---------------------------------------------------------------------------------------------
# stops and jumps
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ALL_METHODS)
def test_bolus_at_stop_matches_closed_form(method):
    k, dose, y_start = 0.4, 10.0, 2.0
    t = np.linspace(0.0, 12.0, 49)  # contains t = 5
    sol = solve_ode(P.affine, [y_start], t, P.affine_p([[-k]]), method=method, rtol=1e-8,
                    atol=1e-10, t_stops=[5.0], jumps=[[dose]])  # fmt: skip
    exact = y_start * np.exp(-k * t) + np.where(t >= 5.0, dose * np.exp(-k * (t - 5.0)), 0.0)
    assert P.mixed_error(sol.y[:, 0], exact, 1e-8, 1e-10) < 10.0
    # right-continuous: the output at the stop time is after the jump
    i5 = int(np.flatnonzero(t == 5.0)[0])
    assert sol.y[i5, 0] == pytest.approx(y_start * math.exp(-5 * k) + dose, rel=1e-8)


def test_bolus_at_first_output_time_applies_to_y0():
    sol = solve_ode(P.affine, [1.0], [0.0, 1.0], P.affine_p([[-1.0]]), method="tsit5",
                    rtol=1e-10, atol=1e-12, t_stops=[0.0], jumps=[[3.0]])  # fmt: skip
    assert sol.y[0, 0] == 4.0
    assert sol.y[1, 0] == pytest.approx(4.0 * math.exp(-1.0), rel=1e-9)


def test_bolus_at_last_output_time_is_reported():
    sol = solve_ode(P.affine, [1.0], [0.0, 1.0], P.affine_p([[-1.0]]), method="tsit5",
                    rtol=1e-10, atol=1e-12, t_stops=[1.0], jumps=[[3.0]])  # fmt: skip
    assert sol.y[1, 0] == pytest.approx(math.exp(-1.0) + 3.0, rel=1e-9)


def test_equal_stop_times_are_merged_by_adding_jumps():
    kw = dict(method="rodas5", rtol=1e-9, atol=1e-12)
    t = np.linspace(0.0, 10.0, 11)
    p = P.affine_p([[-0.3, 0.0], [0.1, -0.2]])
    two = solve_ode(P.affine, [1.0, 0.0], t, p, t_stops=[4.0, 4.0], jumps=[[1.0, 0.0], [2.0, 1.0]],
                    **kw)  # fmt: skip
    one = solve_ode(P.affine, [1.0, 0.0], t, p, t_stops=[4.0], jumps=[[3.0, 1.0]], **kw)
    np.testing.assert_allclose(two.y, one.y, rtol=1e-12)


def test_stop_restarts_at_a_discontinuous_rhs():
    """Zero-order infusion of rate R switched off at t_off = 3 (a stop with no jump)."""
    k, rate, t_off = 0.5, 2.0, 3.0
    t = np.linspace(0.0, 8.0, 33)
    p = P.affine_p([[-k]], [rate], t_off)
    sol = solve_ode(P.affine, [0.0], t, p, method="dopri5", rtol=1e-9, atol=1e-12,
                    t_stops=[t_off])  # fmt: skip
    on = rate / k * (1 - np.exp(-k * np.minimum(t, t_off)))
    exact = np.where(t <= t_off, on, on * np.exp(-k * (t - t_off)))
    assert P.mixed_error(sol.y[:, 0], exact, 1e-9, 1e-12) < 10.0


def test_single_output_time_returns_the_initial_state():
    sol = solve_ode(P.affine, [1.5, 2.5], [3.0], P.affine_p(np.eye(2)), method="tsit5")
    np.testing.assert_array_equal(sol.y, [[1.5, 2.5]])
    assert sol.success and sol.n_steps == 0


# ---------------------------------------------------------------------------------------------
# failures: integer status in the kernel -> SolverError with advice, or partial solution
# ---------------------------------------------------------------------------------------------
def test_nan_in_rhs_gives_non_finite_with_partial_solution():
    t = np.linspace(0.0, 3.0, 7)
    p = np.array([P.SCALAR_NAN_AFTER, 1.25])
    with pytest.raises(SolverError, match=r"NON_FINITE.*NaN or inf at t=1\.2") as info:
        solve_ode(P.scalar, [1.0], t, p, method="tsit5")
    sol = info.value.solution
    assert sol.status == Status.NON_FINITE and not sol.success
    assert np.all(np.isfinite(sol.y[t <= 1.0])) and np.all(np.isnan(sol.y[t > 1.25]))
    np.testing.assert_allclose(sol.y[t <= 1.0, 0], np.exp(-t[t <= 1.0]), rtol=1e-5)
    partial = solve_ode(P.scalar, [1.0], t, p, method="rodas5", throw=False)
    assert partial.status == Status.NON_FINITE and np.isnan(partial.y[-1, 0])


def test_max_steps_reached():
    with pytest.raises(SolverError, match=r"MAX_STEPS.*raise max_steps \(now 5\)"):
        solve_ode(P.scalar, [1.0], [0.0, 30.0], [P.SCALAR_COS, 0.0], method="tsit5", max_steps=5)


@pytest.mark.parametrize("method", ["tsit5", "rodas5"])
def test_finite_time_blowup_stops_with_a_failure_status(method):
    """y' = y^2, y(0) = 1 blows up at t = 1."""
    sol = solve_ode(P.scalar, [1.0], [0.0, 0.5, 2.0], [P.SCALAR_BLOWUP, 0.0], method=method,
                    throw=False)  # fmt: skip
    assert sol.status in (Status.STEP_UNDERFLOW, Status.NON_FINITE, Status.MAX_STEPS)
    assert sol.y[1, 0] == pytest.approx(2.0, rel=1e-5)
    assert np.isnan(sol.y[2, 0])


def test_explicit_method_reports_stiffness():
    p = np.array([P.SCALAR_STIFF, 1e6])
    with pytest.raises(SolverError, match=r'STIFF.*use method="rodas5" or method="auto"'):
        solve_ode(P.scalar, [0.0], [0.0, 10.0], p, method="dopri5")
    auto = solve_ode(P.scalar, [0.0], [0.0, 10.0], p, method="auto", rtol=1e-8, atol=1e-10)
    assert "switched to rodas5" in auto.message
    assert auto.y[-1, 0] == pytest.approx(math.cos(10.0), rel=1e-5)


def test_singular_rosenbrock_matrix():
    """J = 1/(h gamma) makes I/(h gamma) - J exactly zero for the fixed step h."""
    h = 0.5
    p = np.array([4.0, 1.0 / (h * 0.19)])
    with pytest.raises(SolverError, match=r"SINGULAR"):
        solve_ode(P.scalar, [1.0], [0.0, 1.0], p, method="rodas5", jac=P.scalar_jac, fixed_step=h)


def test_user_jacobian_is_used():
    p = np.array([P.SCALAR_BLOWUP, 0.0])
    sol = solve_ode(P.scalar, [-1.0], [0.0, 3.0], p, method="rodas5", jac=P.scalar_jac,
                    rtol=1e-8, atol=1e-10)  # fmt: skip
    fd = solve_ode(P.scalar, [-1.0], [0.0, 3.0], p, method="rodas5", rtol=1e-8, atol=1e-10)
    assert sol.y[-1, 0] == pytest.approx(-0.25, rel=1e-7)
    assert sol.n_rhs < fd.n_rhs  # no difference quotients for J


# ---------------------------------------------------------------------------------------------
# input errors name the argument, the value and what was expected
# ---------------------------------------------------------------------------------------------
A1 = P.affine_p([[-1.0]])


def _solve(**kw):
    args = dict(rhs=P.affine, y0=[1.0], t_eval=[0.0, 1.0], p=A1)
    args.update(kw)
    return solve_ode(args.pop("rhs"), args.pop("y0"), args.pop("t_eval"), args.pop("p"), **args)


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        (dict(rhs=lambda t, y, p, d: None), TypeError, r"rhs must be a numba-compiled .*njit"),
        (dict(jac=np.zeros((1, 1))), TypeError, r"jac must be None or a numba-compiled"),
        (
            dict(method="lsoda"),
            ValueError,
            r"method must be one of 'tsit5', 'dopri5', 'rodas5', "
            r"'auto'; got 'lsoda'",
        ),
        (dict(t_eval=[]), ValueError, r"t_eval must hold at least one time"),
        (
            dict(t_eval=[0.0, 2.0, 1.0]),
            ValueError,
            r"t_eval must be strictly increasing; t_eval\[1\] = 2\.0 is followed by t_eval\[2\] = 1\.0",
        ),
        (dict(t_eval=[0.0, 1.0, 1.0]), ValueError, r"strictly increasing"),
        (dict(t_eval=[0.0, np.nan]), ValueError, r"t_eval must be finite; t_eval\[1\] = nan"),
        (dict(t_eval=[[0.0, 1.0]]), ValueError, r"t_eval must be a 1-D array .* shape \(1, 2\)"),
        (dict(t_eval=["a", "b"]), TypeError, r"t_eval must be a 1-D array of output times of real"),
        (dict(y0=[[1.0]]), ValueError, r"y0 must be a 1-D array .* shape \(1, 1\)"),
        (dict(y0=[]), ValueError, r"y0 must hold at least one state"),
        (dict(y0=[np.inf]), ValueError, r"y0 must be finite; y0\[0\] = inf"),
        (dict(p=[[1.0]]), ValueError, r"p must be a 1-D array of parameters; got shape \(1, 1\)"),
        (dict(rtol=0.0), ValueError, r"rtol must be a positive finite number; got 0\.0"),
        (dict(rtol=-1e-6), ValueError, r"rtol must be a positive"),
        (dict(rtol=1e-20), ValueError, r"rtol must be >= 100\*machine epsilon"),
        (dict(atol=0.0), ValueError, r"atol must be a positive finite number; got 0\.0"),
        (dict(atol=[1e-9, 1e-9]), ValueError, r"atol must be a positive number or 1 positive"),
        (
            dict(t_stops=[2.0]),
            ValueError,
            r"t_stops must lie in the integration span .*\[0\.0, 1\.0\]; t_stops\[0\] = 2\.0",
        ),
        (
            dict(t_stops=[0.6, 0.5]),
            ValueError,
            r"t_stops must be sorted .* t_stops\[0\] = 0\.6 is followed by t_stops\[1\] = 0\.5",
        ),
        (
            dict(t_stops=[0.5], jumps=[[1.0, 2.0]]),
            ValueError,
            r"jumps must have shape \(n_stops, n_states\) = \(1, 1\); got \(1, 2\)",
        ),
        (dict(t_stops=[0.5], jumps=[1.0]), ValueError, r"jumps must be a 2-D array"),
        (dict(jumps=[[1.0]]), ValueError, r"jumps were given without t_stops"),
        (dict(t_stops=[0.5], jumps=[[np.nan]]), ValueError, r"jumps must be finite; row 0"),
        (dict(first_step=0.0), ValueError, r"first_step must be a positive finite number"),
        (dict(fixed_step=-1.0), ValueError, r"fixed_step must be a positive finite number"),
        (dict(max_step=0.0), ValueError, r"max_step must be a positive .*\(inf allowed\)"),
        (dict(max_steps=0), ValueError, r"max_steps must be a positive integer; got 0"),
        (dict(max_steps=1.5), ValueError, r"max_steps must be a positive integer; got 1\.5"),
    ],
)
def test_bad_input_raises_clear_error(kw, exc, match):
    with pytest.raises(exc, match=match):
        _solve(**kw)


def test_rhs_that_does_not_compile_names_the_expected_signature():
    import numba

    @numba.njit
    def wrong(t, y, dydt):  # p missing
        dydt[0] = -y[0]

    with pytest.raises(TypeError, match=r"Expected rhs\(t: float, y: float64\[n\], p: float64"):
        solve_ode(wrong, [1.0], [0.0, 1.0], method="tsit5")


def test_kernel_status_codes_equal_the_public_status():
    """The kernel parts define their status codes as plain constants (numba needs literals);
    cartkin.ode.Status names them for Python. They must stay equal."""
    from cartkin import batch, models

    kernel = batch._kernel(models.get("cart4"))
    assert {s.name: getattr(kernel, s.name) for s in Status} == {s.name: s.value for s in Status}
