# %% [markdown]
# # Fit one patient's CAR-T expansion from a NONMEM-style CSV
#
# A modeler usually has a dataset in the layout every pharmacometric tool shares (`ID, TIME,
# DV, MDV, EVID, AMT, DVID, CENS, LIMIT` plus covariates). This tutorial reads such a file,
# picks one patient, fits three CAR-T kinetic parameters by maximum likelihood with values
# below the limit of quantification handled by the M3 likelihood, and reads the uncertainty
# from the likelihood profiles.
#
# The data are **synthetic**: `cartkin/data/examples/synthetic_cohort.csv` was simulated from
# the `sle_cart_v1` model with known parameters (`scripts/make_synthetic_cohort.py`), so we
# can compare the estimates with the truth. The run is reduced to keep the
# tutorial fast (2 starts); the numbers below come from that reduced run.

# %%
import pandas as pd

import cartkin
import cartkin.data
from cartkin.fit import fit
from cartkin.fit.plots import plot_individual_fits, plot_profiles

path = cartkin.data.example_path("synthetic_cohort.csv")
print("".join(open(path).readlines()[3:9]))  # the header and the first rows of the file

# %% [markdown]
# `cartkin.data.read` validates the whole file against the model (units, DVID names, censoring,
# covariates) and reports every problem at once. `select` takes one patient and one observable.

# %%
ds = cartkin.data.read(path, model="sle_cart_v1")
one = ds.select(ids=[3], observables=["cart_cells_per_ul"])
print(one.summary())
print(one.observations[["id", "time_days", "observable", "value", "cens", "limit"]].head(6))

# %% [markdown]
# Each ID becomes a simulation context: its covariates (weight, height, age, sex, eGFR) make a
# `Patient`, its dose rows (EVID=1) the CAR-T dose; lymphodepletion comes from the regimen we
# pass (here the default Flu/Cy regimen, as when the data were simulated).

# %%
contexts = one.contexts(cartkin.Regimen())
result = fit(
    "sle_cart_v1",
    contexts,
    one.observations,
    ["rho", "delta_E", "delta_M"],
    starts=2,
    seed=1,
    free_error="all",
)
print(result.to_table())

# %% [markdown]
# The table gives each estimate with its Hessian standard error and, when the likelihood
# profile crosses the 95% threshold on both sides, the profile interval. A parameter the data
# cannot pin down is flagged rather than given an interval it does not have.
#
# The truth for this synthetic patient:

# %%
truth = pd.read_csv(cartkin.data.example_path("synthetic_cohort_truth.csv"), comment="#")
print(truth[truth["ID"] == 3][["ID", "rho", "delta_E", "delta_M"]].to_string(index=False))

# %% [markdown]
# The fitted curve over the observations (open markers: below the LLOQ) and the profiles:

# %%
predictions = pd.DataFrame(result.predictions)
fig = plot_individual_fits(predictions, unit="cells/uL")

# %%
fig = plot_profiles(result.profiles, estimates=result.values)

# %% [markdown]
# `result.to_json()` writes everything (estimates, per-start table, predictions, profiles) in
# the [fit JSON schema](../reference/fit_json.md). The command-line equivalent is
# `cartkin fit SCENARIO DATA --free rho,delta_E,delta_M` with the data named in the scenario's
# `[data]` table.
