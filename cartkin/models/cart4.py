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

from cartkin.models.base import Model, Observable, State
from cartkin.parameters import Parameter, ParameterTable

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


@numba.njit(cache=True)
def observe_roles(y, p, out):
    """Role values (cartkin.models.ROLES order) from one state vector, for in-kernel metrics."""
    out[0] = y[0] + y[1]  # cart: effector + memory
    out[1] = np.nan  # cart_copies
    out[2] = np.nan  # cart_percent_t
    out[3] = y[2]  # b_cells
    out[4] = np.nan  # il6
    out[5] = np.nan  # anti_dsdna
    for k in range(6, out.shape[0]):  # complement, ln_activity, proteinuria, kidney_function
        out[k] = np.nan


# ---------------------------------------------------------------------------------------------
# As a Model (not registered: a benchmark and test model, reachable as cart4.MODEL)
# ---------------------------------------------------------------------------------------------
_BENCH = "assumption: cart4 benchmark model of the foundation issue (illustrative value)"

PARAMETERS = ParameterTable(
    [
        Parameter(name, float(value), unit, lower, upper, description, _BENCH)
        for name, value, (unit, lower, upper, description) in zip(
            PARAM_NAMES,
            DEFAULT_P,
            (
                ("1/day", 0.0, 10.0, "maximal CAR-T expansion rate"),
                ("cells", 1e-3, 1e4, "B cells at half-maximal stimulation"),
                ("1/day", 0.0, 5.0, "effector death rate"),
                ("1/day", 0.0, 5.0, "effector -> memory rate"),
                ("1/day", 0.0, 5.0, "effector exhaustion rate"),
                ("1/day", 0.0, 5.0, "memory -> effector rate"),
                ("1/day", 0.0, 5.0, "memory death rate"),
                ("1/day", 0.0, 5.0, "B-cell growth rate"),
                ("cells", 1.0, 1e5, "B-cell carrying capacity"),
                ("cells/day", 0.0, 1e3, "B-cell source"),
                ("1/day", 0.0, 100.0, "killing rate"),
                ("cells", 1e-3, 1e4, "B cells at half-maximal killing"),
                ("1/day", 0.0, 5.0, "exhausted-cell death rate"),
            ),
            strict=True,
        )
    ]
    + [
        Parameter("E_per_cells_per_kg", Y0[0] / 1e6, "cells/(cells/kg)", 0.0, 1.0,
                  "effector cells added per infused CAR-T cell/kg",
                  "assumption: the issue's E(0) = 1.2 at a dose of 1e6 cells/kg"),
        Parameter("B_0", Y0[2], "cells", 0.0, 1e5, "B cells at day 0", _BENCH),
    ]
)  # fmt: skip


def individualize(values, bctx):
    """Kernel inputs of n patients: E jumps by ``E_per_cells_per_kg * cells/kg`` at each dose.

    Parameters
    ----------
    values : dict of str to numpy.ndarray, shape (n,)
    bctx : cartkin.batch.BatchContext
        Uses ``cart_dose_days``, ``cart_dose_cells`` (n, m_d) and ``weight_kg``.

    Returns
    -------
    cartkin.batch.BatchIndividuals
        One stop per dose slot (zero jumps for padding slots at day 0).
    """
    from cartkin.batch import BatchIndividuals

    n = bctx.n
    cells = bctx.cart_dose_cells
    real = cells > 0
    days = np.where(real, bctx.cart_dose_days, np.inf)
    order = np.argsort(days, axis=1, kind="stable")
    days = np.take_along_axis(days, order, axis=1)
    per_kg = np.take_along_axis(np.where(real, cells, 0.0), order, axis=1) / bctx.weight_kg[:, None]
    jumps = np.zeros((n, days.shape[1], 4))
    jumps[:, :, 0] = values["E_per_cells_per_kg"][:, None] * per_kg
    y0 = np.zeros((n, 4))
    y0[:, 2] = values["B_0"]
    return BatchIndividuals(
        p=np.column_stack(list(values.values())), y0=y0, t0=np.zeros(n), t_stops=days,
        jumps=jumps, n_stops=real.sum(axis=1).astype(np.int64),
    )  # fmt: skip


MODEL = Model(
    name="cart4",
    description="The 4-state benchmark model of the foundation issue (illustrative values).",
    states=(
        State("effector", "E", "cells/uL", "effector CAR-T cells"),
        State("memory", "M", "cells/uL", "memory CAR-T cells"),
        State("b_cells", "B", "cells/uL", "target B cells"),
        State("exhausted", "X", "cells/uL", "exhausted CAR-T cells"),
    ),
    parameters=PARAMETERS,
    observables=(
        Observable("cart_cells_per_ul", "cells/uL", "CAR-T: E + M", lambda s, p: s[:, 0] + s[:, 1]),
        Observable("b_cells_per_ul", "cells/uL", "B cells: B", lambda s, p: s[:, 2]),
    ),
    rhs=rhs,
    individualize=individualize,
    roles={"cart": "cart_cells_per_ul", "b_cells": "b_cells_per_ul"},
    equations=__doc__.split("::", 1)[1].split("Default parameters", 1)[0].strip(),
    batch=True,
    observe_roles=observe_roles,
)
