# %% [markdown]
# # Sweeps: locally, on a Dask cluster, and read with xarray
#
# A sweep asks "for a patient like this, which CAR-T dose and which lymphodepletion, and how
# sure are we?" over a grid of scenario values, with many virtual patients per grid point. It
# is an ordinary scenario file plus a `[sweep]` table. `scenarios/sweep_dose_kidney.toml` is
# the full-size example (144,000 virtual patients); here we take its base scenario and run a
# **reduced** grid (3 doses x 3 kidney states x 200 patients) so that the tutorial runs in
# seconds. The numbers below come from that reduced run.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from cartkin.sweep import open_store, run_sweep, summarize

base = Path("scenarios/sweep_dose_kidney.toml").read_text()
base = base[: base.index("[sweep]")]  # the scenario tables, without the full-size sweep
small = (
    base
    + """
[sweep]
n_patients = 200
seed = 20261129
metrics = ["CMAX", "TMAX", "TRECOV", "FLU_AUC"]

[sweep.axes]
"cart.cells_per_kg" = [3e4, 1e5, 1e6]
"patient.egfr_ml_min_173m2" = [120, 30, "dialysis"]

[sweep.dialysis]
session_days = [-11.5, -9.5, -7.5, -4.5, -2.5, -0.5, 2.5, 4.5, 6.5]

[sweep.variability]
flu_clearance = 0.0516
delta_E = 0.91
delta_M = 0.86
"""
)
work = Path(tempfile.mkdtemp())
scenario = work / "small_sweep.toml"
scenario.write_text(small)

# %% [markdown]
# ## Run locally
#
# `run_sweep` (or `cartkin sweep SCENARIO --out STORE.zarr`) computes one compiled, threaded
# batch call per chunk of patients and streams the results into a Zarr store. Interrupted
# runs resume: running the same command again computes only the missing chunks.

# %%
local = run_sweep(scenario, work / "local.zarr", progress=False)
print(f"{local.n_total} patients, {local.n_failed} failed")

# %% [markdown]
# ## Run on a Dask cluster
#
# `workers=N` starts a `dask.distributed.LocalCluster` with N worker processes (the CLI:
# `--workers N`); `scheduler="tcp://HOST:8786"` uses a running cluster instead (the CLI:
# `--scheduler`), e.g. one started on Slurm or PBS with dask-jobqueue
# (`examples/sweep_jobqueue.py`). Workers get the scenario text and send arrays back; only
# this process writes the store.

# %%
cluster_run = run_sweep(scenario, work / "dask.zarr", workers=2, progress=False)
print(f"{cluster_run.n_total} patients on 2 Dask workers, {cluster_run.n_failed} failed")

# %% [markdown]
# Patient *k*'s random draws are a pure function of (seed, *k*, parameter name), so the store
# is bit-identical whatever the chunking, thread count or number of workers:

# %%
a = open_store(work / "local.zarr")
b = open_store(work / "dask.zarr")
same = all(np.array_equal(a[v].values, b[v].values, equal_nan=True) for v in ("CMAX", "TRECOV"))
print("local and Dask stores identical:", same)

# %% [markdown]
# ## Read the store with xarray
#
# One dimension per axis (named after its dotted key) plus `patient`; one variable per metric
# with its `units` attribute; `status` per patient (0: solved). See the
# [sweep store layout](../reference/sweep_store.md).

# %%
ds = xr.open_zarr(work / "local.zarr", mask_and_scale=False, consolidated=False)
print(ds["CMAX"].dims, ds["CMAX"].attrs.get("units"))
median_cmax = ds["CMAX"].median("patient").compute()
print(median_cmax.to_pandas().round(3))

# %%
fig, ax = plt.subplots(figsize=(6, 3.2))
kidney_axis = "patient.egfr_ml_min_173m2"
dose = ds["cart.cells_per_kg"].values
for i, kidney in enumerate(ds[kidney_axis].values):
    # the dialysis arm of an eGFR axis is "dialysis" (or NaN with a patient.dialysis flag)
    label = "dialysis" if str(kidney) in ("dialysis", "nan") else f"eGFR {float(kidney):g}"
    trecov = ds["TRECOV"].isel({kidney_axis: i})
    q = trecov.quantile([0.05, 0.5, 0.95], dim="patient", skipna=True).compute()
    ax.plot(dose, q.sel(quantile=0.5), marker="o", label=label)
    ax.fill_between(dose, q.sel(quantile=0.05), q.sel(quantile=0.95), alpha=0.15)
ax.set(
    xscale="log",
    xlabel="CAR-T dose (cells/kg)",
    ylabel="TRECOV (day)",
    title="B-cell recovery (among recovered patients): median and 5-95%",
)
ax.legend(fontsize=8)

# %% [markdown]
# `summarize` (or `cartkin report STORE.zarr --format table|json|csv`) gives the per-point
# medians, percentiles and probabilities, e.g. P(FLU_AUC in the 13.8-20 mg.h/L window):

# %%
summary = summarize(work / "local.zarr")
print(summary.to_table(metrics=["TRECOV", "FLU_AUC"]))
