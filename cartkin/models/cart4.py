"""cart4: the 4-state CAR-T benchmark model from the foundation issue.

Benchmark model from the foundation issue; values are illustrative assumptions. It is used to
measure and test the integrators (and exercises the cached, file-backed kernel path); it is not a
fitted or validated description of any product or patient.

States (``y``): ``E`` effector CAR-T cells, ``M`` memory CAR-T cells, ``B`` target B cells,
``X`` exhausted CAR-T cells (all in the same, arbitrary cell-count unit); time in days.

Equations (exactly as in :func:`rhs`)
-------------------------------------
::

    f  = B / (B + K_B)
    dE = rho*f*E - (d_E + k_EM + k_EX*f)*E + k_ME*f*M
    dM = k_EM*E - k_ME*f*M - d_M*M
    dB = r_B*B*(1 - B/B_max) + s_B - k_kill*E*B/(B + K_kill)
    dX = k_EX*f*E - d_X*X

Default parameters (``DEFAULT_P``, in ``PARAM_NAMES`` order), all assumptions of the issue:
``rho=1.2``/day, ``K_B=5`` cells, ``d_E=0.25``/day, ``k_EM=0.02``/day, ``k_EX=0.05``/day,
``k_ME=0.3``/day, ``d_M=0.01``/day, ``r_B=0.03``/day, ``B_max=250`` cells, ``s_B=0.5`` cells/day,
``k_kill=2``/day, ``K_kill=10`` cells, ``d_X=0.1``/day. Benchmark setting: ``Y0 = (1.2, 0, 200,
0)``, outputs at days 0, 1, ..., 365, ``rtol=1e-6``, ``atol=1e-9``.
"""

import numba
import numpy as np

STATE_NAMES = ("E", "M", "B", "X")
PARAM_NAMES = (
    "rho",
    "K_B",
    "d_E",
    "k_EM",
    "k_EX",
    "k_ME",
    "d_M",
    "r_B",
    "B_max",
    "s_B",
    "k_kill",
    "K_kill",
    "d_X",
)
# Benchmark model from the foundation issue; values are illustrative assumptions.
DEFAULT_P = np.array([1.2, 5.0, 0.25, 0.02, 0.05, 0.3, 0.01, 0.03, 250.0, 0.5, 2.0, 10.0, 0.1])
Y0 = np.array([1.2, 0.0, 200.0, 0.0])
T_EVAL_DAYS = np.arange(366.0)


@numba.njit(cache=True, error_model="numpy")
def rhs(t, y, p, dydt):
    """Right-hand side of the cart4 benchmark model (see the module docstring)."""
    E = y[0]
    M = y[1]
    B = y[2]
    X = y[3]
    rho = p[0]
    K_B = p[1]
    d_E = p[2]
    k_EM = p[3]
    k_EX = p[4]
    k_ME = p[5]
    d_M = p[6]
    r_B = p[7]
    B_max = p[8]
    s_B = p[9]
    k_kill = p[10]
    K_kill = p[11]
    d_X = p[12]
    f = B / (B + K_B)
    dydt[0] = rho * f * E - (d_E + k_EM + k_EX * f) * E + k_ME * f * M
    dydt[1] = k_EM * E - k_ME * f * M - d_M * M
    dydt[2] = r_B * B * (1 - B / B_max) + s_B - k_kill * E * B / (B + K_kill)
    dydt[3] = k_EX * f * E - d_X * X
