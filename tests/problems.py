"""Test problems for the integrators, with exact or published reference solutions.

Each right-hand side compiles one integrator kernel (several seconds), so the non-stiff problems
share two functions (`affine`, `scalar`) chosen by their parameter vector.

Stiff problems and references: the "Test Set for IVP Solvers" of the University of Bari
(F. Mazzia, C. Magherini et al., https://archimede.uniba.it/~testset/; reference solutions
computed by the authors with RADAU5/RADAU in extended precision). The same values are shipped by
the R package deTestSet (Soetaert, Cash, Mazzia), function ``reference()``:

- ROBER (Robertson 1966; Hairer & Wanner, Solving ODEs II, IV.1): t in [0, 1e11].
- VDPOL (van der Pol, mu = 1000, i.e. epsilon = 1/mu^2 = 1e-6 in the scaled form; Hairer &
  Wanner II, IV.1): t in [0, 2000].
- HIRES (Schaefer 1975; Hairer & Wanner II, IV.10): t in [0, 321.8122].
- OREGO (Oregonator, Field & Noyes 1974; Hairer & Wanner II, IV.1): t in [0, 360].

The cart4 oracle below re-types the equations of `cartkin/models/cart4.py` from its docstring
and solves them with scipy at rtol 1e-12; it shares no code with the package.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.integrate import solve_ivp


# ---------------------------------------------------------------------------------------------
# non-stiff problems
# ---------------------------------------------------------------------------------------------
@numba.njit(error_model="numpy")
def affine(t, y, p, dydt):
    """dy/dt = A y + b * [t < t_off], with p = (A.ravel(), b, t_off) for n = y.size states."""
    n = y.size
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += p[i * n + j] * y[j]
        if t < p[n * n + n]:
            s += p[n * n + i]
        dydt[i] = s


def affine_p(A, b=None, t_off=math.inf):
    A = np.asarray(A, dtype=float)
    n = A.shape[0]
    b = np.zeros(n) if b is None else np.asarray(b, dtype=float)
    return np.concatenate([A.ravel(), b, [t_off]])


def rotation_decay_exact(t, y0, a, w):
    """Exact solution of y1' = -a y1 + w y2, y2' = -w y1 - a y2."""
    t = np.asarray(t)[:, None]
    c = np.cos(w * t)
    s = np.sin(w * t)
    e = np.exp(-a * t)
    return e * np.hstack([c * y0[0] + s * y0[1], -s * y0[0] + c * y0[1]])


SCALAR_COS = 0.0  # y' = y cos(t): y = y0 exp(sin t) (smooth, non-autonomous)
SCALAR_NAN_AFTER = 1.0  # y' = -y, then NaN for t > p[1]
SCALAR_BLOWUP = 2.0  # y' = y^2: y = y0 / (1 - y0 t), blows up at t = 1/y0
SCALAR_STIFF = 3.0  # y' = -p[1] (y - cos t): stiff for large p[1]


@numba.njit(error_model="numpy")
def scalar(t, y, p, dydt):
    """Scalar test equations for the failure paths; p[0] selects one (SCALAR_* constants)."""
    mode = p[0]
    if mode == 0.0:
        dydt[0] = y[0] * math.cos(t)
    elif mode == 1.0:
        dydt[0] = -y[0] if t <= p[1] else math.nan
    elif mode == 2.0:
        dydt[0] = y[0] * y[0]
    else:
        dydt[0] = -p[1] * (y[0] - math.cos(t))


@numba.njit(error_model="numpy")
def scalar_jac(t, y, p, J):
    mode = p[0]
    if mode == 0.0:
        J[0, 0] = math.cos(t)
    elif mode == 1.0:
        J[0, 0] = -1.0
    elif mode == 2.0:
        J[0, 0] = 2.0 * y[0]
    elif mode == 3.0:
        J[0, 0] = -p[1]
    else:  # mode 4: J = p[1] exactly, to make I/(h*gamma) - J singular for a chosen h
        J[0, 0] = p[1]


# ---------------------------------------------------------------------------------------------
# cart4 oracle (equations re-typed from the cart4 docstring)
# ---------------------------------------------------------------------------------------------
CART4_PARAMS = dict(
    rho=1.2,
    K_B=5.0,
    d_E=0.25,
    k_EM=0.02,
    k_EX=0.05,
    k_ME=0.3,
    d_M=0.01,
    r_B=0.03,
    B_max=250.0,
    s_B=0.5,
    k_kill=2.0,
    K_kill=10.0,
    d_X=0.1,
)
CART4_Y0 = (1.2, 0.0, 200.0, 0.0)


def cart4_oracle(t_eval, q=CART4_PARAMS, y0=CART4_Y0):
    """cart4 states at t_eval by scipy DOP853 at rtol 1e-12, atol 1e-14."""

    def f(t, y):
        E, M, B, X = y
        f_B = B / (B + q["K_B"])
        return [
            q["rho"] * f_B * E - (q["d_E"] + q["k_EM"] + q["k_EX"] * f_B) * E + q["k_ME"] * f_B * M,
            q["k_EM"] * E - q["k_ME"] * f_B * M - q["d_M"] * M,
            q["r_B"] * B * (1 - B / q["B_max"])
            + q["s_B"]
            - q["k_kill"] * E * B / (B + q["K_kill"]),
            q["k_EX"] * f_B * E - q["d_X"] * X,
        ]

    t_eval = np.asarray(t_eval, dtype=float)
    sol = solve_ivp(f, (t_eval[0], t_eval[-1]), y0, method="DOP853", t_eval=t_eval,
                    rtol=1e-12, atol=1e-14)  # fmt: skip
    assert sol.success
    return sol.y.T


# ---------------------------------------------------------------------------------------------
# stiff problems (Bari IVP test set)
# ---------------------------------------------------------------------------------------------
@numba.njit(error_model="numpy")
def robertson(t, y, p, dydt):
    dydt[0] = -0.04 * y[0] + 1.0e4 * y[1] * y[2]
    dydt[1] = 0.04 * y[0] - 1.0e4 * y[1] * y[2] - 3.0e7 * y[1] * y[1]
    dydt[2] = 3.0e7 * y[1] * y[1]


@numba.njit(error_model="numpy")
def van_der_pol(t, y, p, dydt):
    dydt[0] = y[1]
    dydt[1] = 1.0e3 * (1.0 - y[0] * y[0]) * y[1] - y[0]


@numba.njit(error_model="numpy")
def hires(t, y, p, dydt):
    dydt[0] = -1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007
    dydt[1] = 1.71 * y[0] - 8.75 * y[1]
    dydt[2] = -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4]
    dydt[3] = 8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3]
    dydt[4] = -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6]
    dydt[5] = -280.0 * y[5] * y[7] + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6]
    dydt[6] = 280.0 * y[5] * y[7] - 1.81 * y[6]
    dydt[7] = -280.0 * y[5] * y[7] + 1.81 * y[6]


@numba.njit(error_model="numpy")
def oregonator(t, y, p, dydt):
    dydt[0] = 77.27 * (y[1] + y[0] * (1.0 - 8.375e-6 * y[0] - y[1]))
    dydt[1] = (y[2] - (1.0 + y[0]) * y[1]) / 77.27
    dydt[2] = 0.161 * (y[0] - y[2])


# name: (rhs, y0, t_end, reference y(t_end), atol used in the tests with rtol = 1e-6)
# atol: below every reference component that matters. van der Pol: with atol = 1e-6 Rodas5's
# global error at t = 2000 is 9.3x the tolerance (phase error gathered in the fast jumps; the
# same with the exact Jacobian), 1.3x with atol = 1e-8.
STIFF_PROBLEMS = {
    "robertson": (
        robertson,
        (1.0, 0.0, 0.0),
        1.0e11,
        (0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050e00),
        1e-14,
    ),
    "van_der_pol": (
        van_der_pol,
        (2.0, 0.0),
        2000.0,
        (0.1706167732170469e01, -0.8928097010248125e-03),
        1e-8,
    ),
    "hires": (
        hires,
        (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057),
        321.8122,
        (
            0.7371312573325668e-03,
            0.1442485726316185e-03,
            0.5888729740967575e-04,
            0.1175651343283149e-02,
            0.2386356198831331e-02,
            0.6238968252742796e-02,
            0.2849998395185769e-02,
            0.2850001604814231e-02,
        ),
        1e-10,
    ),
    "oregonator": (
        oregonator,
        (1.0, 2.0, 3.0),
        360.0,
        (0.1000814870318523e01, 0.1228178521549917e04, 0.1320554942846706e03),
        1e-6,
    ),
}


def mixed_error(y, ref, rtol, atol):
    """max_i |y_i - ref_i| / (atol + rtol |ref_i|)."""
    y = np.asarray(y, dtype=float)
    ref = np.asarray(ref, dtype=float)
    return float(np.max(np.abs(y - ref) / (atol + rtol * np.abs(ref))))
