# %% [markdown]
# # Write your own model
#
# A model is data: a `cartkin.models.Description` written the way a paper writes the model.
# It holds the parameter table (every default with its unit, bounds and source, or
# "assumption: why"), the states (`symbol name [unit] description`), the equations
# (named intermediates and one `d/dt(X) = ...` line per state), the initial state, the
# observables an assay measures, the roles they play (`cart`, `b_cells`, ...) and how the
# regimen's doses enter (`Bolus`, `Infusion`, `Switch`). cartkin generates the compiled
# right-hand side, its analytic Jacobian and sparsity from it, and caches them keyed by the
# text: simulate, metrics, fits, sweeps, plots and the command line then work with it as with
# a built-in model.
#
# This tutorial uses `examples/my_model.py`, a three-state CAR-T / B-cell model whose values
# are illustrative assumptions (a demonstration, not a calibrated model):
#
# @include examples/my_model.py

# %%
import numpy as np

import cartkin
from cartkin import metrics, modeldoc, plot
from cartkin.models import Bolus, Description, DescriptionError, build
from cartkin.parameters import Parameter, ParameterTable

model = cartkin.models.load("examples/my_model.py")
print(model)

# %% [markdown]
# `cartkin show` (here through `cartkin.modeldoc`) prints the model with every symbol of its
# equations defined: states, parameters, intermediates, and what the patient and regimen
# supply (`dose`, `weight_kg`).

# %%
print("undefined symbols:", modeldoc.undefined_symbols(model))
print(modeldoc.to_text(model, width=90).split("Parameters")[0])

# %% [markdown]
# ## Simulate it
#
# A patient and a regimen are the same objects as for the built-in models. The first call
# compiles the generated kernel; later processes load it from the cache.

# %%
patient = cartkin.Patient(
    weight_kg=60.0, height_cm=165.0, age_years=30.0, sex="female", egfr_ml_min_173m2=100.0
)
regimen = cartkin.Regimen(cart=cartkin.CarTDose(cells_per_kg=1e6))
t_days = np.linspace(0.0, 180.0, 361)
result = cartkin.simulate(model, patient, regimen, t_days, theta={"rho": 1.2})
table = metrics.compute(result)
for name in ("CMAX", "TMAX", "B_NADIR", "TRECOV"):
    print(f"{name:8} {table.value(name):10.4g}")

# %% [markdown]
# With these illustrative values the CAR-T cells eliminate the B cells (the nadir is zero up to
# solver round-off), so B cells never recover within 180 days and TRECOV is `nan` (not reached).

# %%
fig = plot.plot_result(result, title="my_model, 1e6 cells/kg (illustrative parameters)")

# %% [markdown]
# ## A description written in place
#
# A description can also be written in a script or notebook and built with
# `cartkin.models.build`. Mistakes are caught when it is made, with the line and a
# suggestion: here `alpah` is a typo.

# %%
A = "assumption: illustrative value"
table = ParameterTable([
    Parameter("rho", 1.0, "1/day", 0.0, 10.0, "expansion rate", A),
    Parameter("t_peak", 9.0, "day", 1.0, 30.0, "end of expansion after infusion", A),
    Parameter("alpha", 0.2, "1/day", 0.0, 5.0, "decline rate after the peak", A),
    Parameter("blood_ml_per_kg", 70.0, "mL/kg", 40.0, 120.0, "blood volume", A),
])  # fmt: skip


def two_phase(equations):
    return Description(
        name="two_phase",
        description="Exponential CAR-T expansion until t_peak, then decline (illustrative).",
        parameters=table,
        states="E  effector  [cells/uL]  CAR-T cells in blood",
        equations=equations,
        observables="cart_cells_per_ul [cells/uL] = E  # CAR-T cells in blood",
        roles={"cart": "cart_cells_per_ul"},
        inputs=[Bolus("cart", into="E", amount="dose / (blood_ml_per_kg * weight_kg * 1000.0)")],
    )


try:
    two_phase("d/dt(E) = where(t < t_peak, rho, -alpah) * E")
except DescriptionError as exc:
    print(exc)

# %%
simple = build(two_phase("d/dt(E) = where(t < t_peak, rho, -alpha) * E"))
res = cartkin.simulate(simple, patient, regimen, t_days)
print(
    f"CMAX {metrics.compute(res).value('CMAX'):.3g} cells/uL at day {metrics.compute(res).value('TMAX'):.3g}"
)

# %% [markdown]
# ## Use it by name, from scenarios and the command line
#
# `cartkin.models.register(model)` makes a model available by name; a scenario can also name
# the file directly (`model = "my_model.py"`, relative to the scenario file), as
# `examples/my_model_scenario.toml` does:
#
# ```bash
# cartkin simulate examples/my_model_scenario.toml --figure my_model.png
# cartkin show examples/my_model.py
# ```

# %%
cartkin.models.register(model, replace=True)
scenario = cartkin.load_scenario("examples/my_model_scenario.toml")
(res,) = scenario.run()
print(scenario.model.name, "CMAX", round(metrics.compute(res).value("CMAX"), 3), "cells/uL")

# %% [markdown]
# A model that cannot be written symbolically can still be a hand-written
# `cartkin.models.Model` with a numba `rhs` (see `cartkin/models/base.py`).
#
# Checks worth writing for your own model (as `tests/` does for the built-in ones): zero dose
# gives no CAR-T and B cells at baseline; states stay non-negative; a higher dose never gives a
# shallower B-cell nadir; and the equations re-typed once and solved by scipy at a tight
# tolerance agree with the compiled kernel.
