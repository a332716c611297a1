"""Sweep runner, store, resume, failures and report, with stand-in engines (tests/sweep_engines.py).

The compiled batch engine is exercised in tests/test_sweep_engine.py; here the engine is a cheap
closed form so that the properties of the sweep machinery itself can be tested quickly.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from cartkin.cli import main
from cartkin.errors import ScenarioError, SolverError
from cartkin.sweep import load_sweep, open_store, run_sweep, summarize
from cartkin.sweep.population import ENGINE_ERROR, draw_population
from cartkin.sweep.store import NOT_RUN

sys.path.insert(0, str(Path(__file__).parent))
from sweep_engines import base_scenario, broken_engine, fake_engine, raising_engine

SCENARIO = base_scenario("runner test") + """
[sweep]
n_patients = {n}
seed = 20261129
metrics = ["CMAX", "TMAX", "TRECOV", "FLU_AUC"]

[sweep.axes]
"cart.cells_per_kg" = {{ log_from = 3e4, to = 1e6, n = 3 }}
"patient.egfr_ml_min_173m2" = [120, 30, "dialysis"]

[sweep.dialysis]
session_days = [-7.5, -4.5, -2.5, -0.5, 2.5]

[sweep.variability]
rho = 0.3
delta_E = 0.9
flu_clearance = 0.053
"""


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SCENARIO.format(n=100))
    return path


def arrays(store):
    group = zarr.open_group(str(store), mode="r")
    return {name: np.asarray(group[name][...]) for name in ("CMAX", "TRECOV", "FLU_AUC", "status")}


def assert_same(a, b):
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=True), name


def test_bit_identical_across_chunk_sizes_and_threads(scenario, tmp_path):
    ref = run_sweep(scenario, tmp_path / "a.zarr", chunk_size=100, engine=fake_engine)
    assert ref.n_computed == ref.n_total == 900
    for k, (chunk, threads) in enumerate(((7, 1), (33, 2), (1000, None))):
        run_sweep(scenario, tmp_path / f"b{k}.zarr", chunk_size=chunk, threads=threads,
                  engine=fake_engine)  # fmt: skip
        assert_same(arrays(tmp_path / "a.zarr"), arrays(tmp_path / f"b{k}.zarr"))


def test_common_random_numbers_and_flu_clearance(scenario):
    sweep = load_sweep(scenario)
    a = draw_population(sweep, 0, 10, 20)
    b = draw_population(sweep, 7, 0, 30)
    rho = sweep.model.parameters["rho"].default
    # patient k has the same draws at every grid point
    assert np.array_equal(a.theta["rho"], b.theta["rho"][10:20])
    assert np.array_equal(a.flu_cl_factor, b.flu_cl_factor[10:20])
    assert not np.allclose(a.theta["rho"], rho)
    assert np.array_equal(a.theta["K_B"], np.full(10, sweep.model.parameters["K_B"].default))
    # without removal by dialysis the AUC is dose / CL: the clearance factor divides it
    assert np.allclose(a.flu_auc_mg_h_per_l * a.flu_cl_factor, a.context.flu_auc_mg_h_per_l)
    c = draw_population(sweep, 2, 10, 20)  # hemodialysis arm
    assert np.allclose(c.flu_auc_mg_h_per_l * c.flu_cl_factor, c.context.flu_auc_mg_h_per_l)
    assert c.context.flu_auc_mg_h_per_l > 2 * a.context.flu_auc_mg_h_per_l
    # draws beyond a parameter's bounds are clipped and counted
    big = draw_population(sweep, 0, 0, 5000)
    par = sweep.model.parameters["delta_E"]
    assert big.theta["delta_E"].max() <= par.upper
    assert big.n_clipped["delta_E"] == np.count_nonzero(big.theta["delta_E"] == par.upper)


def test_flu_clearance_variability_with_dialysis_removal(tmp_path):
    from cartkin.covariates import kidney

    text = SCENARIO.format(n=10).replace(
        "session_days = [-7.5, -4.5, -2.5, -0.5, 2.5]",
        "session_days = [-4.5, -3.5, -2.5]\nflu_removal_fraction = 0.5",
    )
    path = tmp_path / "removal.toml"
    path.write_text(text)
    sweep = load_sweep(path)
    pop = draw_population(sweep, 2, 0, 10)  # hemodialysis, half the body amount per session
    arm = pop.scenario.base
    typical = kidney.fludarabine_exposure(arm.patient, arm.regimen, arm.clearance_model)
    auc = pop.flu_auc_mg_h_per_l
    # with factor 1 the exact AUC is the typical one; removal makes AUC fall less than 1 / CL
    ones = draw_population(load_sweep(path), 2, 0, 10)
    object.__setattr__(ones, "flu_cl_factor", np.ones(10))
    assert np.allclose(ones.flu_auc_mg_h_per_l, typical.auc_mg_h_per_l, rtol=1e-9)
    up = pop.flu_cl_factor > 1
    assert np.all(auc[up] < typical.auc_mg_h_per_l)
    assert np.all(auc[up] > typical.auc_mg_h_per_l / pop.flu_cl_factor[up])


def test_failed_patients_are_recorded_and_counted(scenario, tmp_path, capsys):
    out = tmp_path / "f.zarr"
    run = run_sweep(scenario, out, chunk_size=40, engine=fake_engine)
    failed = np.count_nonzero(np.arange(100) % 7 == 3)
    assert run.n_failed == failed
    ds = open_store(out)
    status = ds.status.values
    assert np.count_nonzero(status[0, 0] == -1) == failed
    assert np.all(status[0, 1:] == 0) and np.all(status[1:] == 0)
    assert np.isnan(ds.CMAX.values[0, 0][status[0, 0] != 0]).all()
    summary = summarize(out).to_dict()
    assert summary["n_failed"] == failed
    assert summary["points"][0]["n_failed"] == failed
    assert summary["points"][0]["p_failed"] == pytest.approx(failed / 100)
    assert summary["points"][0]["metrics"]["CMAX"]["n_defined"] == 100 - failed


def test_engine_exception_is_recorded_not_fatal(scenario, tmp_path, capsys):
    out = tmp_path / "e.zarr"
    run = run_sweep(scenario, out, chunk_size=50, engine=raising_engine, log=sys.stdout)
    assert run.n_computed == 900
    status = open_store(out).status.values
    assert np.all(status[0, 1] == ENGINE_ERROR)
    assert "engine exploded on purpose" in capsys.readouterr().out
    assert summarize(out).to_dict()["points"][1]["p_failed"] == 1.0


def test_systematic_engine_failure_stops_before_writing(scenario, tmp_path):
    out = tmp_path / "b.zarr"
    with pytest.raises(SolverError, match=r"engine failed on the first chunk.*no kernel for this"):
        run_sweep(scenario, out, engine=broken_engine)
    assert not np.asarray(zarr.open_group(str(out), mode="r")["chunk_done"][...]).any()
    assert run_sweep(scenario, out, engine=fake_engine).n_computed == 900


def test_store_of_another_scenario_is_refused(scenario, tmp_path):
    out = tmp_path / "s.zarr"
    run_sweep(scenario, out, engine=fake_engine)
    other = tmp_path / "other.toml"
    other.write_text(SCENARIO.format(n=100).replace("seed = 20261129", "seed = 1"))
    with pytest.raises(ScenarioError, match=r"holds a sweep of another scenario.*never mixed"):
        run_sweep(other, out, engine=fake_engine)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ScenarioError, match="not a cartkin sweep store"):
        run_sweep(scenario, tmp_path / "plain", engine=fake_engine)


def test_rerun_of_a_finished_sweep_computes_nothing(scenario, tmp_path):
    out = tmp_path / "r.zarr"
    run_sweep(scenario, out, chunk_size=30, engine=fake_engine)
    before = arrays(out)
    again = run_sweep(scenario, out, chunk_size=30, engine=fake_engine)
    assert again.n_computed == 0
    assert_same(before, arrays(out))


def _interruptible(cmd, env):
    """Start ``cmd`` with stderr piped and SIGINT at its default, as a terminal's Ctrl-C finds
    it: a shell that starts jobs in the background (as CI may) leaves SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler in the child."""
    restore = None if os.name != "posix" else (
        lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, preexec_fn=restore)


_RUNNER = """
import sys
sys.path.insert(0, {tests!r})
from cartkin.sweep import run_sweep
from sweep_engines import slow_engine
run_sweep({scenario!r}, {out!r}, chunk_size=10, engine=slow_engine, progress=False)
"""


def _start(scenario, out, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_RUNNER.format(tests=str(Path(__file__).parent), scenario=str(scenario),
                                     out=str(out)))  # fmt: skip
    env = dict(os.environ, SWEEP_TEST_DELAY_S="0.05")
    return _interruptible([sys.executable, str(script)], env)


def _wait_for_chunks(out, n, proc, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"runner exited early: {proc.stderr.read().decode()}")
        try:
            done = np.asarray(zarr.open_group(str(out), mode="r")["chunk_done"][...]).sum()
        except Exception:
            done = 0
        if done >= n:
            return int(done)
        time.sleep(0.05)
    raise AssertionError("no chunks written in time")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_resume_after_kill_equals_uninterrupted_run(scenario, tmp_path, sig):
    out = tmp_path / "killed.zarr"
    proc = _start(scenario, out, tmp_path)
    _wait_for_chunks(out, 5, proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    stderr = proc.stderr.read().decode()
    done = np.asarray(zarr.open_group(str(out), mode="r")["chunk_done"][...])
    assert 5 <= done.sum() < done.size, "the kill should land mid-sweep"
    if sig == signal.SIGINT:
        assert "run the same command again" in stderr
    status = np.asarray(zarr.open_group(str(out), mode="r")["status"][...])
    assert np.any(status == NOT_RUN)
    resumed = run_sweep(scenario, out, engine=fake_engine)
    assert 0 < resumed.n_computed < 900
    run_sweep(scenario, tmp_path / "whole.zarr", chunk_size=64, engine=fake_engine)
    assert_same(arrays(tmp_path / "whole.zarr"), arrays(out))


def test_report_json_schema_and_table(scenario, tmp_path, capsys):
    out = tmp_path / "j.zarr"
    run_sweep(scenario, out, chunk_size=25, engine=fake_engine)
    assert main(["report", str(out), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = {"store", "title", "scenario_file", "scenario_hash", "model", "seed",
                "cartkin_version", "n_patients_per_point", "variability_omega2",
                "flu_auc_window_mg_h_per_l", "recovery_by_day", "axes", "metrics",
                "n_computed", "n_failed", "complete", "points", "solver"}  # fmt: skip
    assert set(report) == expected
    assert report["seed"] == 20261129 and report["complete"] is True
    assert report["metrics"] == {"CMAX": "cells/uL", "TMAX": "day", "TRECOV": "day",
                                 "FLU_AUC": "mg.h/L"}  # fmt: skip
    assert [a["name"] for a in report["axes"]] == ["cart.cells_per_kg",
                                                   "patient.egfr_ml_min_173m2"]  # fmt: skip
    assert report["axes"][0]["log"] is True
    assert len(report["points"]) == 9
    sweep = load_sweep(scenario)
    ds = open_store(out)
    for g, point in enumerate(report["points"]):
        assert set(point) == {"coords", "n_computed", "n_failed", "p_failed", "p_aplasia",
                              "p_flu_auc_in_window", "p_recovery_by_day", "metrics",
                              "horizon_days", "TRECOV_KM"}  # fmt: skip
        assert point["n_computed"] == 100 and point["horizon_days"] == 270.0
        i, j = sweep.index(g)
        ok = ds.status.values[i, j] == 0
        aplastic = ds.APLASIA.values[i, j][ok]  # stored although TAPLASIA is not a metric here
        assert point["p_aplasia"] == pytest.approx(aplastic.mean())
        auc = ds.FLU_AUC.values[i, j][ok]
        assert point["p_flu_auc_in_window"] == pytest.approx(np.mean((auc >= 13.8) & (auc <= 20)))
        trecov = ds.TRECOV.values[i, j][ok]
        assert point["p_recovery_by_day"] == pytest.approx(np.mean(trecov[aplastic] <= 180))
        assert set(point["TRECOV_KM"]) == {"q25", "median", "q75", "n_censored"}
        cmax = point["metrics"]["CMAX"]
        assert set(cmax) == {"q05", "median", "q95", "n_defined"}
        assert cmax["median"] == pytest.approx(np.median(ds.CMAX.values[i, j][ok]))
        assert cmax["q05"] <= cmax["median"] <= cmax["q95"]
    assert main(["report", str(out), "--format", "csv"]) == 0
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 9 and rows[2]["patient.egfr_ml_min_173m2"] == "dialysis"
    assert float(rows[4]["CMAX_median"]) == report["points"][4]["metrics"]["CMAX"]["median"]
    assert float(rows[0]["p_failed"]) == report["points"][0]["p_failed"]
    assert main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    assert "P(FLU_AUC in window)" in table and "dialysis" in table
    assert main(["report", str(tmp_path / "missing.zarr")]) == 2
    assert "no such sweep store" in capsys.readouterr().err


def test_plots_are_written(scenario, tmp_path):
    from cartkin.sweep.plots import plot_all

    out = tmp_path / "p.zarr"
    run_sweep(scenario, out, engine=fake_engine)
    paths = plot_all(summarize(out), tmp_path / "figs")
    names = {p.name for p in paths}
    assert {"heatmap_CMAX.png", "p_flu_auc_in_window.png", "p_recovery_by_day.png",
            "bands_TRECOV.png", "heatmap_TRECOV_KM.png", "p_aplasia.png",
            "recovery_km.png"} <= names  # fmt: skip
    assert all(p.stat().st_size > 10_000 for p in paths)


@pytest.mark.slow
def test_two_worker_dask_cluster_equals_local(scenario, tmp_path):
    run_sweep(scenario, tmp_path / "local.zarr", chunk_size=100, engine=fake_engine)
    run = run_sweep(scenario, tmp_path / "dask.zarr", chunk_size=30, workers=2,
                    engine=fake_engine)  # fmt: skip
    assert run.n_computed == 900
    assert_same(arrays(tmp_path / "local.zarr"), arrays(tmp_path / "dask.zarr"))


def test_progress_bar_shows_rate_and_time_left_only_when_asked(scenario, tmp_path, capsys):
    run_sweep(scenario, tmp_path / "q.zarr", chunk_size=50, engine=fake_engine)
    assert "patients/s" not in capsys.readouterr().err  # not a terminal: quiet
    run_sweep(scenario, tmp_path / "v.zarr", chunk_size=50, engine=fake_engine, progress=True)
    err = capsys.readouterr().err
    assert "patients/s" in err and "900/900" in err and "<" in err


def test_cli_usage_errors(scenario, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(scenario), "--out", str(tmp_path / "x.zarr"), "--workers", "0"])
    assert info.value.code == 2 and "expected an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(scenario)])
    assert info.value.code == 2 and "--out" in capsys.readouterr().err
    both = ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]
    assert main(["sweep", str(scenario), "--out", str(tmp_path / "y.zarr"), *both]) == 2
    assert "not both" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(SCENARIO.format(n=0))
    assert main(["sweep", str(bad), "--out", str(tmp_path / "z.zarr")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cartkin: error: ") and "n_patients = 0" in err
    assert not (tmp_path / "z.zarr").exists()


def test_report_of_an_incomplete_store_says_so(scenario, tmp_path, capsys):
    from cartkin.sweep.spec import load_sweep as load
    from cartkin.sweep.store import SweepStore

    out = tmp_path / "part.zarr"
    sweep = load(scenario)
    store = SweepStore.create_or_resume(out, sweep, 50)
    store.write(0, 1, fake_engine(draw_population(sweep, 0, 50, 100), sweep.engine_metrics))
    report = summarize(out).to_dict()
    assert report["complete"] is False and report["n_computed"] == 50
    assert report["points"][0]["n_computed"] == 50 and report["points"][1]["n_computed"] == 0
    assert report["points"][1]["metrics"]["CMAX"]["median"] is None
    assert main(["report", str(out)]) == 0
    assert "INCOMPLETE" in capsys.readouterr().out


def test_recovery_probability_is_among_patients_with_aplasia(tmp_path):
    path = tmp_path / "aplasia.toml"
    path.write_text(SCENARIO.format(n=100).replace('"TRECOV", "FLU_AUC"]', '"TRECOV", "TAPLASIA"]'))
    out = tmp_path / "a.zarr"
    run_sweep(path, out, engine=fake_engine)
    report = summarize(out).to_dict()
    ds = open_store(out)
    point = report["points"][4]
    trecov, taplasia = ds.TRECOV.values[1, 1], ds.TAPLASIA.values[1, 1]
    aplastic = ~np.isnan(taplasia)
    assert point["p_aplasia"] == pytest.approx(0.5)
    assert point["p_recovery_by_day"] == pytest.approx(np.mean(trecov[aplastic] <= 180))
    assert point["p_flu_auc_in_window"] is None  # FLU_AUC not stored


# -- store layout (issue 18 item 6) ---------------------------------------------------------------


def test_store_opens_without_warnings_and_selects_a_numeric_egfr(scenario, tmp_path):
    import warnings

    import xarray as xr

    out = tmp_path / "x.zarr"
    run_sweep(scenario, out, chunk_size=50, engine=fake_engine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(out)
    egfr = ds["patient.egfr_ml_min_173m2"]
    assert egfr.dtype == np.float64 and egfr.values[:2].tolist() == [120.0, 30.0]
    assert ds["patient.dialysis"].values.tolist() == [False, False, True]
    assert "patient.dialysis" in ds.coords
    at_30 = ds.sel({"patient.egfr_ml_min_173m2": 30}).CMAX.values
    assert np.array_equal(at_30, ds.CMAX.values[:, 1], equal_nan=True)
    on_dialysis = ds.where(ds["patient.dialysis"].compute(), drop=True).CMAX.values
    assert np.array_equal(on_dialysis[:, 0], ds.CMAX.values[:, 2], equal_nan=True)


def test_every_variable_and_coordinate_has_units_and_a_long_name(tmp_path):
    path = tmp_path / "t.toml"
    text = SCENARIO.format(n=20).replace("[sweep.axes]", "trajectories = 2\n\n[sweep.axes]")
    path.write_text(text)
    out = tmp_path / "t.zarr"
    run_sweep(path, out, engine=fake_engine)
    ds = open_store(out)
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name"), name
        assert var.attrs["long_name"] != name, name
        if var.dtype.kind in "fiub":
            assert var.attrs.get("units"), name
    assert ds.CMAX.attrs["units"] == "cells/uL" and "peak CAR-T" in ds.CMAX.attrs["long_name"]
    assert ds["cart.cells_per_kg"].attrs["units"] == "cells/kg"
    assert ds["patient.egfr_ml_min_173m2"].attrs["units"] == "mL/min/1.73m2"


def test_an_old_layout_is_refused_with_a_message(scenario, tmp_path):
    out = tmp_path / "old.zarr"
    run_sweep(scenario, out, engine=fake_engine, n_patients=10)
    group = zarr.open_group(str(out), mode="r+")
    group.attrs["cartkin_sweep_store"] = 1
    with pytest.warns(UserWarning, match="Consolidated metadata"):
        zarr.consolidate_metadata(str(out))
    for call in (lambda: run_sweep(scenario, out, engine=fake_engine, n_patients=10),
                 lambda: summarize(out), lambda: open_store(out)):  # fmt: skip
        with pytest.raises(ScenarioError, match=r"layout 1.*older cartkin.*new --out"):
            call()


def test_n_patients_option_and_titles_from_the_actual_sizes(scenario, tmp_path, monkeypatch,
                                                            capsys):  # fmt: skip
    import cartkin.sweep.runner as runner

    monkeypatch.setattr(runner, "batch_engine", fake_engine)
    out = tmp_path / "n.zarr"
    assert main(["sweep", str(scenario), "--out", str(out), "--n-patients", "30"]) == 0
    ds = open_store(out)
    assert ds.sizes["patient"] == 30 and ds.attrs["n_patients"] == 30
    assert ds.attrs["title"] == "runner test: 9 grid points x 30 virtual patients = 270"
    # common random numbers: the first 30 patients of the 100-patient sweep
    run_sweep(scenario, tmp_path / "full.zarr", engine=fake_engine)
    full = open_store(tmp_path / "full.zarr")
    assert np.array_equal(full.CMAX.values[..., :30], ds.CMAX.values, equal_nan=True)
    capsys.readouterr()
    assert main(["sweep", str(scenario), "--out", str(out)]) == 2
    assert "--n-patients 30" in capsys.readouterr().err
    # the shipped sweep's title follows its size, not the 144,000 of its full size
    shipped = load_sweep(Path(__file__).parents[1] / "scenarios" / "sweep_dose_kidney.toml", 10)
    assert "144,000" not in shipped.title and shipped.title.endswith("x 10 virtual patients = 720")
    from cartkin.sweep.plots import heatmap

    fig = heatmap(summarize(out), "CMAX")
    assert "30 virtual patients per point" in fig.axes[0].get_title()


def test_report_table_fits_the_width_and_names_what_it_leaves_out(tmp_path, capsys):
    path = tmp_path / "wide.toml"
    wide = '["CMAX", "TMAX", "TRECOV", "FLU_AUC", "TAPLASIA", "B_NADIR", "IL6_MAX", "PERSIST"]'
    path.write_text(SCENARIO.format(n=20).replace('["CMAX", "TMAX", "TRECOV", "FLU_AUC"]', wide))
    out = tmp_path / "w.zarr"
    run_sweep(path, out, engine=fake_engine)
    assert main(["report", str(out)]) == 0  # stdout is not a terminal here: 100 columns
    table = capsys.readouterr().out
    assert max(len(line) for line in table.splitlines()) <= 100
    assert "Not shown" in table and "PERSIST" in table.split("Not shown")[1]
    assert "--format csv or json" in table
    assert main(["report", str(out), "--width", "60"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 60
    assert main(["report", str(out), "--format", "csv"]) == 0
    assert "PERSIST_median" in capsys.readouterr().out.splitlines()[0]


def test_reported_rate_excludes_the_compile(scenario, tmp_path, monkeypatch):
    import sweep_engines

    monkeypatch.setattr(sweep_engines, "_WARMED_UP", [])
    monkeypatch.setenv("SWEEP_TEST_COMPILE_S", "1.5")
    run = run_sweep(scenario, tmp_path / "c.zarr", engine=sweep_engines.compiling_engine,
                    chunk_size=100)  # fmt: skip
    assert run.compile_seconds >= 1.5
    assert run.seconds < 1.5 and run.n_computed == 900


_CLI_RUNNER = """
import sys
sys.path.insert(0, {tests!r})
import cartkin.sweep.runner as runner
from sweep_engines import compiling_engine
runner.batch_engine = compiling_engine
from cartkin.cli import main
sys.exit(main(["sweep", {scenario!r}, "--out", {out!r}, "--chunk-size", "50"]))
"""


def test_ctrl_c_during_the_first_compile_exits_promptly_with_130_and_resumes(scenario, tmp_path):
    out, mark = tmp_path / "cc.zarr", tmp_path / "compiling"
    script = tmp_path / "cli.py"
    script.write_text(_CLI_RUNNER.format(tests=str(Path(__file__).parent), scenario=str(scenario),
                                         out=str(out)))  # fmt: skip
    env = dict(os.environ, SWEEP_TEST_MARK=str(mark), SWEEP_TEST_COMPILE_S="30")
    proc = _interruptible([sys.executable, str(script)], env)
    deadline = time.monotonic() + 120
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no compile started"
        time.sleep(0.05)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=25)  # the stand-in compile lasts 30 s: swallowed, it would run on
    stderr = proc.stderr.read().decode()
    assert rc == 130, stderr
    assert time.monotonic() - t0 < 10
    assert "Exception ignored" not in stderr and "run the same command again" in stderr
    resumed = run_sweep(scenario, out, engine=fake_engine)
    assert resumed.n_computed == 900
    run_sweep(scenario, tmp_path / "whole.zarr", engine=fake_engine)
    assert_same(arrays(tmp_path / "whole.zarr"), arrays(out))


def test_aplasia_is_stored_per_patient_even_without_taplasia_among_the_metrics(scenario,
                                                                               tmp_path):  # fmt: skip
    out = tmp_path / "apl.zarr"
    run_sweep(scenario, out, engine=fake_engine)
    ds = open_store(out)
    assert ds.APLASIA.dtype == bool and "TAPLASIA" not in ds
    ok = ds.status.values == 0
    odd = (ds.patient.values % 2 == 1)[None, None, :]  # fake_engine: odd patients aplastic
    assert np.array_equal(ds.APLASIA.values, ok & odd)


@pytest.mark.skipif(sys.platform == "win32", reason="select on a pipe")
def test_ctrl_c_during_a_real_first_numba_compile_exits_promptly(scenario, tmp_path):
    """The real thing: a fresh numba and cartkin cache, SIGINT while the sweep's first compile
    runs (today llvmlite swallowed it and the sweep ran to completion)."""
    import select

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               CARTKIN_CACHE_DIR=str(tmp_path / "kernels"))  # fmt: skip
    out = tmp_path / "real.zarr"
    cmd = [sys.executable, "-m", "cartkin.cli", "sweep", str(scenario), "--out", str(out)]
    proc = _interruptible(cmd, env)
    deadline, seen = time.monotonic() + 180, b""
    while b"compiling the sle_cart kernel" not in seen:  # said 1 s into the first compile
        assert proc.poll() is None and time.monotonic() < deadline, seen.decode()
        if select.select([proc.stderr], [], [], 0.1)[0]:
            seen += os.read(proc.stderr.fileno(), 4096)
    time.sleep(2.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=60)
    stderr = seen.decode() + proc.stderr.read().decode()
    assert rc == 130, stderr
    assert time.monotonic() - t0 < 5
    assert "Exception ignored" not in stderr and "run the same command again" in stderr
    assert "kernel ready" not in stderr  # interrupted inside the compile, not after it
