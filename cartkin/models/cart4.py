"""cart4: the 4-state CAR-T benchmark model from the foundation issue.

Benchmark model from the foundation issue; values are illustrative assumptions. It is used to
measure and test the integrators (and exercises the cached, file-backed kernel path); it is not a
fitted or validated description of any product or patient.

States (``y``): ``E`` effector CAR-T cells, ``M`` memory CAR-T cells, ``B`` target B cells,
``X`` exhausted CAR-T cells (all in the same, arbitrary cell-count unit); time in days.

The equations are in :data:`DESCRIPTION` (``cartkin show cart4``).

Default parameters (``DEFAULT_P``, in ``PARAM_NAMES`` order), all assumptions of the issue:
``rho=1.2``/day, ``K_B=5`` cells, ``d_E=0.25``/day, ``k_EM=0.02``/day, ``k_EX=0.05``/day,
``k_ME=0.3``/day, ``d_M=0.01``/day, ``r_B=0.03``/day, ``B_max=250`` cells, ``s_B=0.5`` cells/day,
``k_kill=2``/day, ``K_kill=10`` cells, ``d_X=0.1``/day. Benchmark setting: ``Y0 = (1.2, 0, 200,
0)``, outputs at days 0, 1, ..., 365, ``rtol=1e-6``, ``atol=1e-9``.
"""

import numpy as np

from cartkin.models.description import Bolus, Description
from cartkin.parameters import Parameter, ParameterTable

PARAM_NAMES = (
    "rho", "K_B", "d_E", "k_EM", "k_EX", "k_ME", "d_M", "r_B", "B_max", "s_B", "k_kill",
    "K_kill", "d_X",
)  # fmt: skip
# Benchmark model from the foundation issue; values are illustrative assumptions.
DEFAULT_P = np.array([1.2, 5.0, 0.25, 0.02, 0.05, 0.3, 0.01, 0.03, 250.0, 0.5, 2.0, 10.0, 0.1])
Y0 = np.array([1.2, 0.0, 200.0, 0.0])
T_EVAL_DAYS = np.arange(366.0)

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


DESCRIPTION = Description(
    name="cart4",
    description="The 4-state benchmark model of the foundation issue (illustrative values).",
    parameters=PARAMETERS,
    states="""
        E  effector   [cells/uL]  effector CAR-T cells
        M  memory     [cells/uL]  memory CAR-T cells
        B  b_cells    [cells/uL]  target B cells
        X  exhausted  [cells/uL]  exhausted CAR-T cells
    """,
    equations="""
        f = B / (B + K_B)
        d/dt(E) = rho * f * E - (d_E + k_EM + k_EX * f) * E + k_ME * f * M
        d/dt(M) = k_EM * E - k_ME * f * M - d_M * M
        d/dt(B) = r_B * B * (1 - B / B_max) + s_B - k_kill * E * B / (B + K_kill)
        d/dt(X) = k_EX * f * E - d_X * X
    """,
    initial="B = B_0",
    observables="""
        cart_cells_per_ul [cells/uL] = E + M  # CAR-T: E + M
        b_cells_per_ul [cells/uL] = B         # B cells: B
    """,
    roles={"cart": "cart_cells_per_ul", "b_cells": "b_cells_per_ul"},
    inputs=[Bolus("cart", into="E", amount="E_per_cells_per_kg * (dose / weight_kg)")],
)
