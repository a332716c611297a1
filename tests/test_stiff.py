"""Stiff problems with published reference solutions (Bari IVP test set, see problems.py).

Rodas5 must reach the reference within 10x the requested tolerance in the mixed norm
|err| / (atol + rtol |ref|); the explicit methods must give up quickly with a clear status.
"""

import time

import numba
import numpy as np
import problems as P
import pytest

from cartkin import Status, solve_ode

RTOL = 1e-6
# Every problem compiles its own kernels (about 25 s of CPU each from a fresh cache): the
# default run keeps Robertson and Van der Pol, the slow run adds the others.
SLOW_PROBLEMS = ("hires", "oregonator")
NAMES = [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW_PROBLEMS else name
    for name in P.STIFF_PROBLEMS
]


def _run(name, method, **kw):
    rhs, y0, t_end, _, atol = P.STIFF_PROBLEMS[name]
    return solve_ode(rhs, y0, [0.0, t_end], method=method, rtol=RTOL, atol=atol, throw=False, **kw)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["rodas5", "auto"])
def test_stiff_method_reaches_published_reference(name, method):
    _, _, _, ref, atol = P.STIFF_PROBLEMS[name]
    sol = _run(name, method)
    assert sol.status == Status.SUCCESS, sol.message
    assert P.mixed_error(sol.y[-1], ref, RTOL, atol) < 10.0
    if method == "auto":
        assert "switched to rodas5" in sol.message


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["tsit5", "dopri5"])
def test_explicit_method_gives_up_quickly_on_stiff_problem(name, method):
    _run(name, "rodas5")  # compile outside the timing
    start = time.perf_counter()
    sol = _run(name, method)
    elapsed = time.perf_counter() - start
    assert sol.status in (Status.STIFF, Status.MAX_STEPS)
    assert "rodas5" in sol.message  # the advice names the method to use
    assert elapsed < 2.0
    assert np.isnan(sol.y[-1]).all() and np.isfinite(sol.y[0]).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_rodas5_needs_at_most_3x_the_steps_of_scipy_radau(name):
    """Same problem and tolerances; Radau (5th order, implicit) as the yardstick."""
    from scipy.integrate import solve_ivp

    rhs, y0, t_end, _, atol = P.STIFF_PROBLEMS[name]

    def f(t, y):
        dydt = np.empty_like(y)
        rhs.py_func(t, y, None, dydt)
        return dydt

    radau = solve_ivp(f, (0.0, t_end), y0, method="Radau", rtol=RTOL, atol=atol)
    assert radau.success
    sol = _run(name, "rodas5")
    assert sol.n_steps <= 3 * (radau.t.size - 1)


@numba.njit(error_model="numpy")
def _van_der_pol_jac(t, y, p, J):
    J[0, 0] = 0.0
    J[0, 1] = 1.0
    J[1, 0] = -2.0e3 * y[0] * y[1] - 1.0
    J[1, 1] = 1.0e3 * (1.0 - y[0] * y[0])


@pytest.mark.parametrize("rtol", [1e-6, 1e-10])
def test_rodas5_finite_difference_jacobian_is_as_good_as_exact(rtol):
    """Rodas5's order needs an accurate Jacobian: the finite-difference one must not cost
    accuracy or steps, at tight tolerances too (measured: same errors and steps within 1%)."""
    rhs, y0, t_end, ref, _ = P.STIFF_PROBLEMS["van_der_pol"]
    atol = rtol * 1e-2
    kw = dict(method="rodas5", rtol=rtol, atol=atol, max_steps=10**6)
    fd = solve_ode(rhs, y0, [0.0, t_end], **kw)
    exact = solve_ode(rhs, y0, [0.0, t_end], jac=_van_der_pol_jac, **kw)
    assert exact.n_jac > 0 and fd.n_rhs > exact.n_rhs  # the finite differences cost rhs calls
    assert abs(fd.n_steps - exact.n_steps) <= 0.05 * exact.n_steps
    assert P.mixed_error(fd.y[-1], ref, rtol, atol) < 10.0
    assert P.mixed_error(exact.y[-1], ref, rtol, atol) < 10.0
