# %% [markdown]
# # Simulate: CAR-T dose and kidney function
#
# This tutorial simulates one patient at several CAR-T doses, then the same patient at several
# levels of kidney function, and compares the metrics modelers report (peak, time of peak,
# B-cell aplasia and recovery, fludarabine exposure). Everything comes from two scenario files
# shipped in `scenarios/`; each file names the source of every number it uses.
#
# The model is `sle_cart` with its default (calibrated) parameters: a scenario exploration,
# not a prediction for a real patient.

# %%
import matplotlib.pyplot as plt

import cartkin
from cartkin import metrics, plot

doses = cartkin.load_scenario("scenarios/dose_comparison_sle.toml")
print(doses.name)
print("model:", doses.model.name, "| arms:", [arm.label for arm in doses.arms])

# %% [markdown]
# `Scenario.run()` simulates every arm (`[[variant]]`) with the scenario's solver settings and
# returns one `SimulationResult` per arm. The first call in a fresh environment compiles the
# model's integrator (tens of seconds); later processes load it from the cache.

# %%
results = doses.run()
for res in results:
    table = metrics.compute(res)
    print(
        f"{res.label:>16}:  CMAX {table.value('CMAX'):7.2f} cells/uL at day "
        f"{table.value('TMAX'):5.1f},  B-cell recovery (TRECOV) day {table.value('TRECOV'):6.1f}"
    )

# %% [markdown]
# `nan` means the metric was not reached within the horizon: TRECOV is `nan` when the B cells
# never fell below the aplasia threshold of 10 cells/uL (nothing to recover from) or had not
# come back by the end; `table.as_dicts()` gives each metric's note saying which.
#
# `plot.plot_comparison` draws the arms on shared axes: CAR-T cells, B cells (with the aplasia
# threshold) and IL-6.

# %%
fig = plot.plot_comparison(results, title="Dose comparison (sle_cart, adult SLE)")

# %% [markdown]
# ## Kidney function
#
# Kidney function reaches the CAR-T cells through fludarabine: it is cleared by the kidney, so
# lower kidney function means a higher fludarabine exposure (AUC), deeper lymphodepletion and
# more room for CAR-T expansion. `scenarios/kidney_function_comparison.toml` holds one
# adolescent at eGFR 120, 60, 30 and 15 mL/min/1.73m2 and on hemodialysis, with and without a
# renal dose adjustment of fludarabine.

# %%
kidney = cartkin.load_scenario("scenarios/kidney_function_comparison.toml")
kidney_results = kidney.run()
print(f"{'arm':>32}  {'FLU_AUC mg.h/L':>14}  {'CMAX cells/uL':>13}  {'B nadir cells/uL':>16}")
for res in kidney_results:
    table = metrics.compute(res)
    print(
        f"{res.label:>32}  {table.value('FLU_AUC'):14.1f}  {table.value('CMAX'):13.2f}  "
        f"{table.value('B_NADIR'):16.3g}"
    )

# %%
fig = plot.plot_comparison(kidney_results, title="Kidney function comparison")

# %% [markdown]
# A result also gives each trajectory by name or by role, for your own plots:

# %%
res = kidney_results[0]
cart = res.role("cart")  # the model's CAR-T observable, cells/uL
fig, ax = plt.subplots(figsize=(6, 3))
for r in kidney_results:
    ax.semilogy(r.t_days, r.role("cart"), label=r.label)
ax.set(xlim=(0, 60), ylim=(1e-3, None), xlabel="day", ylabel="CAR-T cells/uL")
ax.legend(fontsize=7)

# %% [markdown]
# The same from the command line: `cartkin simulate scenarios/kidney_function_comparison.toml
# --figure kidney.png --csv kidney.csv`.
