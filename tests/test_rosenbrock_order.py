"""Convergence order of the Rosenbrock tableaus (Rodas4 of cartkin.kernel.rodas4, the kernel's Rodas5,
Rodas5P of cartkin.kernel.rodas5p)
through the tableau-driven stepper of benchmarks/bench_rosenbrock.py, fixed steps, against an
independent oracle (scipy DOP853 at rtol 1e-13 on the same equations typed again in numpy)."""

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from numba import njit
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_rosenbrock import make_integrator, rodas4_tableau, rodas5_tableau, rodas5p_tableau

T_END = 2.0
T_MID = 1.93  # inside a step for every step size below: tests the dense output


@njit
def rhs(t, y, p, dydt):  # mildly stiff, nonlinear, non-autonomous (f_t enters via d_i)
    dydt[0] = -p[0] * y[0] + y[1] * y[1] + math.sin(t)
    dydt[1] = -y[1] + y[0] * y[1] - 0.5 * y[1] * y[1]


@njit
def jac(t, y, p, J):
    J[0, 0] = -p[0]
    J[0, 1] = 2.0 * y[1]
    J[1, 0] = y[1]
    J[1, 1] = -1.0 + y[0] - y[1]


GAMMA_REF = 0.5  # the stand-in kernel's gamma (make_integrator rescales h to each tableau's)


@njit
def _ros_matrix(h, J, M, piv):  # dense I/(h gamma) - J, inverted explicitly (2 x 2)
    a = 1.0 / (h * GAMMA_REF) - J[0, 0]
    b = -J[0, 1]
    c = -J[1, 0]
    d = 1.0 / (h * GAMMA_REF) - J[1, 1]
    det = a * d - b * c
    M[0, 0], M[0, 1], M[1, 0], M[1, 1] = d / det, -b / det, -c / det, a / det
    return 0, False


@njit
def _ros_solve(M, piv, x, sparse):
    x0, x1 = x[0], x[1]
    x[0] = M[0, 0] * x0 + M[0, 1] * x1
    x[1] = M[1, 0] * x0 + M[1, 1] * x1


@njit
def _initial_step(t, t_end, y, f0, p, rtol, atol, order, max_step, y1, f1):
    return t_end - t  # the order test runs fixed steps: the kernel's starting step is not used


KERNEL = SimpleNamespace(_ros_matrix=_ros_matrix, _ros_solve=_ros_solve, ROS_GAMMA=GAMMA_REF,
                         _initial_step=_initial_step)  # fmt: skip
P = np.array([4.0])
Y0 = np.array([1.0, 0.5])


def oracle(t):
    def f(t, y):
        return [-P[0] * y[0] + y[1] ** 2 + np.sin(t), -y[1] + y[0] * y[1] - 0.5 * y[1] ** 2]

    return solve_ivp(f, (0.0, T_END), Y0, method="DOP853", rtol=1e-13, atol=1e-14,
                     t_eval=t).y.T  # fmt: skip


@pytest.fixture(scope="module")
def run():
    return make_integrator(SimpleNamespace(rhs=rhs, jac=jac), KERNEL)


def slopes(run, tab, hs):
    t_eval = np.array([0.0, T_MID, T_END])
    ref = oracle(t_eval)
    errs = []
    for h in hs:
        y_out, cnt = run(tab, Y0[None, :], np.zeros(1), P[None, :], np.full((1, 1), np.inf),
                         np.zeros((1, 1, 2)), np.zeros(1, np.int64), t_eval, 1e-6, np.full(2, 1e-9), False,
                         h)  # fmt: skip
        assert cnt[0, 1] == 0 and cnt[0, 0] == math.ceil(T_END / h - 1e-9)
        errs.append(np.abs(y_out[0] - ref).max(axis=1))
    errs = np.array(errs)  # (len(hs), 3): t = 0, T_MID, T_END
    fit = [np.polyfit(np.log(hs), np.log(errs[:, k]), 1)[0] for k in (1, 2)]
    return fit[0], fit[1], errs


TABLEAUS = {"rodas4": rodas4_tableau, "rodas5": rodas5_tableau, "rodas5p": rodas5p_tableau}


@pytest.mark.parametrize(("name", "order", "dense"),
                         [("rodas4", 4, 3), ("rodas5", 5, 4), ("rodas5p", 5, 4)])  # fmt: skip
def test_convergence_order(run, name, order, dense):
    tab = TABLEAUS[name]()
    hs = np.array([0.2, 0.1, 0.05, 0.025])
    dense_slope, end_slope, errs = slopes(run, tab, hs)
    # global error at a step end: O(h^order); at an interior point the continuous extension
    # adds a local error O(h^(dense + 1)), so that slope is at least dense + 1 minus slack
    assert order - 0.3 < end_slope < order + 0.6, (name, end_slope, errs[:, 2])
    assert dense_slope > dense + 0.7, (name, dense_slope, errs[:, 1])
    assert errs[-1, 2] < 1e-7
