"""Sweeps through the compiled batch engine (cartkin.batch.metrics).

Uses stein2019, the model that has in-kernel metrics at the time of writing; the sweep machinery
is model-independent.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import zarr

from cartkin.sweep import load_sweep, run_sweep
from cartkin.sweep.population import batch_engine, draw_population, reference_engine

SCENARIO = """
[scenario]
name = "engine sweep"
model = "stein2019"
t_end_days = 365.0

[patient]
weight_kg = 40.0
height_cm = 148.0
age_years = 12.0
sex = "male"
egfr_ml_min_173m2 = 110.0

[lymphodepletion]  # the usual Flu/Cy (the class defaults)
[cart]
cells_per_kg = 3.1e6

[solver]
method = "rodas5"
rtol = 1e-8
atol = 1e-10

[sweep]
n_patients = {n}
seed = 5

[sweep.axes]
"cart.cells_per_kg" = [1e6, 5e6]
"patient.egfr_ml_min_173m2" = [110, 20]

[sweep.variability]
foldx = 2.4
alpha = 0.91
beta = 0.86
flu_clearance = 0.053
"""


def _write(tmp_path, n):
    path = tmp_path / "engine.toml"
    path.write_text(SCENARIO.format(n=n))
    return path


def _arrays(store: Path, names):
    group = zarr.open_group(str(store), mode="r")
    return {m: np.asarray(group[m][...]) for m in (*names, "status")}


def test_batch_engine_agrees_with_simulate_and_metrics_compute(tmp_path):
    sweep = load_sweep(_write(tmp_path, 4))
    pop = draw_population(sweep, 3, 0, 4)
    fast = batch_engine(pop, sweep.metrics)
    slow = reference_engine(pop, sweep.metrics)
    assert np.all(fast["status"] == 0) and np.all(slow["status"] == 0)
    assert np.array_equal(fast["FLU_AUC"], slow["FLU_AUC"])
    # metrics.compute works on a 0.02-day grid: peaks agree to its resolution, integrals to the
    # trapezoid error; the batch engine refines on the interpolant
    assert np.allclose(fast["CMAX"], slow["CMAX"], rtol=1e-6)
    assert np.allclose(fast["TMAX"], slow["TMAX"], atol=0.02)
    assert np.allclose(fast["AUC0_28D"], slow["AUC0_28D"], rtol=1e-4)
    # PERSIST/CLST/TLST are not compared: metrics.compute takes stein2019's LLOQ on its qPCR
    # assay while batch.metrics defaults to 0.05 cells/uL (a difference between the two modules,
    # not the sweep's)


def test_real_engine_sweep_is_identical_across_chunk_sizes(tmp_path):
    path = _write(tmp_path, 24)
    a = run_sweep(path, tmp_path / "a.zarr", chunk_size=24, threads=1)
    run_sweep(path, tmp_path / "b.zarr", chunk_size=5, threads=2)
    assert a.n_failed == 0 and a.n_computed == 96
    names = load_sweep(path).metrics
    ref, other = _arrays(tmp_path / "a.zarr", names), _arrays(tmp_path / "b.zarr", names)
    for m in ref:
        assert np.array_equal(ref[m], other[m], equal_nan=True), m


@pytest.mark.slow
def test_real_engine_on_two_dask_workers_equals_local(tmp_path):
    path = _write(tmp_path, 40)
    run_sweep(path, tmp_path / "local.zarr", chunk_size=40)
    run_sweep(path, tmp_path / "dask.zarr", chunk_size=7, workers=2)
    names = load_sweep(path).metrics
    ref, other = _arrays(tmp_path / "local.zarr", names), _arrays(tmp_path / "dask.zarr", names)
    for m in ref:
        assert np.array_equal(ref[m], other[m], equal_nan=True), m


def test_stored_trajectories_equal_simulate(tmp_path):
    from cartkin.simulate import simulate_context
    from cartkin.sweep import open_store, summarize
    from cartkin.sweep.plots import trajectories

    text = SCENARIO.format(n=6).replace(
        "seed = 5\n", "seed = 5\ntrajectories = 4\ntrajectory_step_days = 5.0\n"
    )
    path = tmp_path / "traj.toml"
    path.write_text(text)
    out = tmp_path / "traj.zarr"
    run_sweep(path, out, chunk_size=3)
    ds = open_store(out)
    sweep = load_sweep(path)
    assert ds["traj_cart_cells_per_ul"].shape == (2, 2, 4, 74)
    assert np.array_equal(ds["t_days"].values, np.arange(0, 366, 5.0))
    assert np.all(ds["traj_status"].values == 0)
    pop = draw_population(sweep, 3, 0, 4)
    for k in (0, 3):  # patient 3 comes from the second chunk
        theta = {name: float(v[k]) for name, v in pop.theta.items()}
        ctx = pop.batch_context()
        ctx_k = dataclasses.replace(
            pop.context, flu_auc_mg_h_per_l=float(ctx.flu_auc_mg_h_per_l[k])
        )
        ref = simulate_context(
            sweep.model, ctx_k, ds["t_days"].values, theta, **pop.scenario.solver
        )
        got = ds["traj_cart_cells_per_ul"].values[1, 1, k]
        assert np.allclose(got, ref.observables["cart_cells_per_ul"], rtol=1e-6, atol=1e-9)
    fig = trajectories(summarize(out))
    assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == "log"


@pytest.mark.slow
def test_sle_cart_b_cell_metrics_match_metrics_compute():
    """The sweep passes metrics.compute's B-cell threshold to the batch engine (sle_cart)."""
    root = Path(__file__).parents[1]
    sweep = load_sweep(root / "scenarios" / "sweep_dose_kidney.toml")
    point = sweep.n_points - 1  # 1e6 cells/kg, hemodialysis, renal bands
    pop = draw_population(sweep, point, 0, 3)
    names = ("TAPLASIA", "TRECOV", "APLASIA_DUR", "B_NADIR", "CMAX", "FLU_AUC")
    fast = batch_engine(pop, names)
    slow = reference_engine(pop, names)
    assert np.all(fast["status"] == 0) and np.all(slow["status"] == 0)
    for m in ("TAPLASIA", "TRECOV", "APLASIA_DUR"):  # crossings: 0.02-day grid in compute
        assert np.allclose(fast[m], slow[m], atol=0.05, equal_nan=True), m
    for m in ("B_NADIR", "CMAX"):
        assert np.allclose(fast[m], slow[m], rtol=2e-3), m
    assert np.array_equal(fast["FLU_AUC"], slow["FLU_AUC"])
