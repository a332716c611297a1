"""my_model: a user model in a file of its own, loaded by path (an example, not a built-in).

A three-state CAR-T / B-cell model written the way a modeler would bring their own: CAR-T
effector cells ``E`` expand on antigen (B cells) and contract, convert to memory ``M``, and kill
B cells ``B``, which regrow logistically. It shows what a model file needs (a parameter table,
states, observables, ``rhs``, ``individualize`` and ``MODEL``); its numbers are illustrative.

    dE = rho * B / (B + K_B) * E - (d_E + k_EM) * E
    dM = k_EM * E - d_M * M
    dB = r_B * B * (1 - B / B_max) - k_kill * E * B / (B + K_B)

Use it from a scenario (``model = "../examples/my_model.py"``, relative to the scenario file) or
from Python (``cartkin.models.load("examples/my_model.py")``). The first process compiles its
kernel; later ones load it from the on-disk cache, keyed by this file's content.
"""

import numba
import numpy as np

from cartkin.models import Individual, Model, Observable, State
from cartkin.parameters import Parameter, ParameterTable

ILLUSTRATIVE = "assumption: illustrative value for the user-model example"

PARAMETERS = ParameterTable(
    [
        Parameter("rho", 1.0, "1/day", 0.0, 10.0, "maximal CAR-T expansion rate", ILLUSTRATIVE),
        Parameter("K_B", 5.0, "cells/uL", 1e-3, 1e4, "B cells for half-maximal drive", ILLUSTRATIVE),
        Parameter("d_E", 0.2, "1/day", 0.0, 5.0, "effector death rate", ILLUSTRATIVE),
        Parameter("k_EM", 0.02, "1/day", 0.0, 1.0, "effector to memory conversion", ILLUSTRATIVE),
        Parameter("d_M", 0.01, "1/day", 0.0, 1.0, "memory death rate", ILLUSTRATIVE),
        Parameter("r_B", 0.03, "1/day", 0.0, 1.0, "B-cell regrowth rate", ILLUSTRATIVE),
        Parameter("B_max", 200.0, "cells/uL", 1.0, 1e4, "B-cell carrying capacity", ILLUSTRATIVE),
        Parameter("k_kill", 2.0, "1/day/(cells/uL)", 0.0, 100.0, "B-cell killing", ILLUSTRATIVE),
        Parameter(
            "blood_ml_per_kg", 70.0, "mL/kg", 40.0, 120.0, "blood volume for the dose",
            "assumption: 70 mL/kg, the usual adult blood volume",
        ),
    ]
)  # fmt: skip

STATES = (
    State("effector", "E", "cells/uL", "CAR-T effector cells in blood"),
    State("memory", "M", "cells/uL", "CAR-T memory cells in blood"),
    State("b_cells", "B", "cells/uL", "CD19+ B cells in blood"),
)


@numba.njit(cache=True, error_model="numpy")
def rhs(t, y, p, dydt):
    """my_model dy/dt (per day), ``p`` in table order."""
    rho, K_B, d_E, k_EM, d_M, r_B, B_max, k_kill = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    E, M, B = y[0], y[1], y[2]
    drive = B / (B + K_B)
    dydt[0] = rho * drive * E - (d_E + k_EM) * E
    dydt[1] = k_EM * E - d_M * M
    dydt[2] = r_B * B * (1.0 - B / B_max) - k_kill * E * drive


def individualize(values, ctx) -> Individual:
    """Each CAR-T dose is a jump of effector cells/uL (cells / blood volume); B at capacity."""
    blood_ul = values["blood_ml_per_kg"] * ctx.weight_kg * 1000.0
    doses = [(float(d), float(n)) for d, n in ctx.cart_doses]
    t_stops = np.array([d for d, _ in doses])
    jumps = np.array([[n / blood_ul, 0.0, 0.0] for _, n in doses]).reshape(-1, 3)
    y0 = np.array([0.0, 0.0, values["B_max"]])
    return Individual(p=np.array(list(values.values())), y0=y0, t_stops=t_stops, jumps=jumps)


OBSERVABLES = (
    Observable("cart_cells_per_ul", "cells/uL", "CAR-T cells/uL: E + M", lambda s, p: s[:, 0] + s[:, 1]),
    Observable("b_cells_per_ul", "cells/uL", "CD19+ B cells/uL: B", lambda s, p: s[:, 2]),
)  # fmt: skip

MODEL = Model(
    name="my_model",
    description="Example user model: CAR-T effector/memory and B cells (illustrative values).",
    states=STATES,
    parameters=PARAMETERS,
    observables=OBSERVABLES,
    rhs=rhs,
    individualize=individualize,
    roles={"cart": "cart_cells_per_ul", "b_cells": "b_cells_per_ul"},
    equations=__doc__.split("\n\n")[2],
)
