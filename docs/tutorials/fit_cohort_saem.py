# %% [markdown]
# # Fit a cohort with SAEM and read its diagnostics
#
# A population (nonlinear mixed-effects) fit estimates typical values, the between-patient
# variability (omega^2) of each random effect and the residual error, from all patients at
# once. cartkin's estimator is SAEM (as in Monolix and nlmixr2): every MCMC sweep over all
# patients is one call of the compiled batch engine.
#
# The data are the **synthetic** cohort shipped with cartkin (`sle_cart_v1`, known truth). To
# keep the tutorial to a minute or so this is a **reduced run**: 12 of the 40 patients, two
# random effects, 60 SAEM iterations instead of the default 305, and fewer importance-sampling
# and NPDE draws. The numbers below come from that reduced run, not from a
# fit to trust.

# %%
import numpy as np
import pandas as pd

import cartkin
import cartkin.data
from cartkin.fit.likelihood import ErrorModel
from cartkin.fit.popplot import plot_convergence, plot_gof
from cartkin.fit.population import SAEMOptions, fit_population

ds = cartkin.data.read(cartkin.data.example_path("synthetic_cohort.csv"), model="sle_cart_v1")
cohort = ds.select(ids=list(range(1, 13)), observables=["cart_cells_per_ul"])
print(cohort.summary().splitlines()[-1])

# %%
result = fit_population(
    "sle_cart_v1",
    cohort,
    ["rho", "delta_M"],
    base_regimen=cartkin.Regimen(),
    error_model={"cart_cells_per_ul": ErrorModel("log", 0.5)},
    options=SAEMOptions(n_burn=5, n_explore=35, n_average=20, seed=1),
    n_is_samples=100,
    n_npde_sims=50,
)
print(result.summary())

# %% [markdown]
# How to read it:
#
# - **Typical values** (`theta`) with standard errors from Louis' formula; **omega^2** with
#   the CV% and the EBE **shrinkage** (above about 0.3 the individual estimates lean on the
#   typical value, and diagnostics based on them lose power).
# - **-2LL** by importance sampling, with its Monte Carlo standard error, and AIC/BIC.
# - The **convergence verdict** names the parameters whose SAEM trajectory was still drifting
#   in the averaging phase: rerun with more iterations (the defaults) or more chains
#   (`SAEMOptions(n_chains=3)`) before trusting them.
#
# The SAEM trajectories (exploration phase, then averaging):

# %%
fig = plot_convergence(result)

# %% [markdown]
# Goodness of fit: observed against population and individual predictions, and residuals.

# %%
fig = plot_gof(result)

# %% [markdown]
# The truth of these synthetic patients, for comparison (geometric means of the 12):

# %%
truth = pd.read_csv(cartkin.data.example_path("synthetic_cohort_truth.csv"), comment="#")
sub = truth[truth["ID"].between(1, 12)]
for name in ("rho", "delta_M"):
    gm = float(np.exp(np.log(sub[name]).mean()))
    estimate = result.estimates[name]["value"]
    print(f"{name}: true geometric mean {gm:.4g}, estimate {estimate:.4g}")

# %% [markdown]
# `result.to_json(path)` writes the [fit JSON](../reference/fit_json.md) with the population
# additions (`omega`, `ebes`, `trajectory`, NPDE per record), and
# `result.write_figures(directory)` writes the individual fits, GOF, VPC, NPDE and convergence
# figures. See [Population fits](../population.md) for the algorithm and its tests.
