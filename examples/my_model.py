"""my_model: a user model in one file, written as a description (illustrative values).

CAR-T effector cells E expand on antigen (B cells) and contract, convert to memory M, and kill B
cells, which regrow logistically. Use it from a scenario (``model = "my_model.py"``) or from
Python (``cartkin.models.load("examples/my_model.py")``); the kernel is generated and cached.
"""

from cartkin.models import Bolus, Description
from cartkin.parameters import Parameter, ParameterTable

A = "assumption: illustrative value for the user-model example"
MODEL = Description(
    name="my_model",
    description="Example user model: CAR-T effector/memory and B cells (illustrative values).",
    parameters=ParameterTable([
        Parameter("rho", 1.0, "1/day", 0.0, 10.0, "maximal CAR-T expansion rate", A),
        Parameter("K_B", 5.0, "cells/uL", 1e-3, 1e4, "B cells for half-maximal drive", A),
        Parameter("d_E", 0.2, "1/day", 0.0, 5.0, "effector death rate", A),
        Parameter("k_EM", 0.02, "1/day", 0.0, 1.0, "effector to memory conversion", A),
        Parameter("d_M", 0.01, "1/day", 0.0, 1.0, "memory death rate", A),
        Parameter("r_B", 0.03, "1/day", 0.0, 1.0, "B-cell regrowth rate", A),
        Parameter("B_max", 200.0, "cells/uL", 1.0, 1e4, "B-cell carrying capacity", A),
        Parameter("k_kill", 2.0, "1/day/(cells/uL)", 0.0, 100.0, "B-cell killing", A),
        Parameter("blood_ml_per_kg", 70.0, "mL/kg", 40.0, 120.0, "blood volume",
                  "assumption: 70 mL/kg, the usual adult blood volume"),
    ]),
    states="""
        E  effector  [cells/uL]  CAR-T effector cells in blood
        M  memory    [cells/uL]  CAR-T memory cells in blood
        B  b_cells   [cells/uL]  CD19+ B cells in blood
    """,
    equations="""
        drive = B / (B + K_B)
        d/dt(E) = rho * drive * E - (d_E + k_EM) * E
        d/dt(M) = k_EM * E - d_M * M
        d/dt(B) = r_B * B * (1.0 - B / B_max) - k_kill * E * drive
    """,
    initial="B = B_max",
    observables="""
        cart_cells_per_ul [cells/uL] = E + M  # CAR-T cells/uL: E + M
        b_cells_per_ul [cells/uL] = B         # CD19+ B cells/uL: B
    """,
    roles={"cart": "cart_cells_per_ul", "b_cells": "b_cells_per_ul"},
    inputs=[Bolus("cart", into="E", amount="dose / (blood_ml_per_kg * weight_kg * 1000.0)")],
)  # fmt: skip
