"""The sweep's solver setting: shipped per model, overridden by [solver], recorded and reported."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cartkin import models
from cartkin.cli import main
from cartkin.errors import ScenarioError
from cartkin.sweep import load_sweep, run_sweep
from cartkin.sweep import solver as sweep_solver_module
from cartkin.sweep.population import _solver, draw_population
from cartkin.sweep.solver import SETTINGS_FILE, model_fingerprint

sys.path.insert(0, str(Path(__file__).parent))
from sweep_engines import base_scenario, fake_engine

SCENARIO = base_scenario("solver setting test", lymphodepletion=False) + """{solver}
[sweep]
n_patients = 20
seed = 1
metrics = ["CMAX", "TRECOV"]

[sweep.axes]
"cart.cells_per_kg" = [3e4, 1e6]
"""


def write(tmp_path, solver=""):
    path = tmp_path / "sweep.toml"
    path.write_text(SCENARIO.format(solver=solver))
    return path


def shipped_entry(name="sle_cart"):
    return json.loads(SETTINGS_FILE.read_text())[name]


@pytest.mark.parametrize("name", sorted(json.loads(SETTINGS_FILE.read_text())))
def test_shipped_setting_is_measured_for_the_current_model(name):
    """Fails when a model changes (a recalibration) without its curve being measured again:
    run `python benchmarks/bench_sweep.py --model NAME --curve --write-settings`."""
    entry = shipped_entry(name)
    model = models.get(name)
    assert entry["fingerprint"] == model_fingerprint(model), (
        f"{name} changed since its sweep setting was measured; rerun "
        f"benchmarks/bench_sweep.py --model {name} --curve --write-settings"
    )
    assert set(entry.get("atol_states", {})) <= set(model.state_names)
    assert entry["worst_metric_error"] <= entry["curve"]["error_budget"]
    assert entry["rtol"] > 1e-8  # looser than the single-simulation default: the point of it
    # the chosen point is on its own curve, and no looser rtol of that method met the budget
    points = [p for p in entry["curve"]["points"] if p["rtol"] == entry["rtol"]]
    assert any(p["worst_rel_error"] == entry["worst_metric_error"] for p in points)


def test_sweep_without_solver_table_gets_the_shipped_setting(tmp_path):
    sweep = load_sweep(write(tmp_path))
    entry = shipped_entry()
    expected = {"method": entry["method"], "rtol": entry["rtol"], "atol": entry["atol"]}
    assert sweep.solver.origin == "shipped"
    assert sweep.solver.options() == expected
    assert sweep.solver.worst_metric_error == entry["worst_metric_error"]
    assert sweep.solver.atol_states == entry.get("atol_states", {})
    # every grid point carries it, and the engines get it with the per-state tolerances
    assert all({k: pt.solver[k] for k in expected} == expected for pt in sweep.points)
    engine = _solver(draw_population(sweep, 1, 0, 5))
    assert (engine["method"], engine["rtol"]) == (entry["method"], entry["rtol"])
    model = models.get("sle_cart")
    atol = np.broadcast_to(engine["atol"], (model.n_states,))
    for name in model.state_names:
        assert atol[model.state_index(name)] == entry.get("atol_states", {}).get(
            name, entry["atol"]
        )


def test_solver_table_overrides(tmp_path):
    sweep = load_sweep(write(tmp_path, '[solver]\nmethod = "tsit5"\nrtol = 1e-6\n'))
    assert sweep.solver.origin == "scenario"
    assert sweep.solver.options() == {"method": "tsit5", "rtol": 1e-6, "atol": 1e-10}
    assert sweep.solver.worst_metric_error is None  # not the measured setting: not verified
    assert _solver(draw_population(sweep, 0, 0, 3)) == {"method": "tsit5", "rtol": 1e-6,
                                                        "atol": 1e-10}  # fmt: skip


def test_changed_model_falls_back_to_the_single_simulation_default(tmp_path, monkeypatch):
    stale = {"sle_cart": {**shipped_entry(), "fingerprint": "0" * 16}}
    monkeypatch.setattr(sweep_solver_module, "_settings", lambda: stale)
    sweep = load_sweep(write(tmp_path))
    assert sweep.solver.origin == "fallback"
    assert sweep.solver.options() == sweep_solver_module.FALLBACK
    assert "changed since" in sweep.solver.note and "--curve" in sweep.solver.note


def test_store_records_the_setting_and_report_prints_it(tmp_path, capsys):
    out = tmp_path / "s.zarr"
    run_sweep(write(tmp_path), out, chunk_size=10, engine=fake_engine)
    assert main(["report", str(out), "--format", "json"]) == 0
    solver = json.loads(capsys.readouterr().out)["solver"]
    entry = shipped_entry()
    assert (solver["method"], solver["rtol"], solver["atol"]) == (
        entry["method"], entry["rtol"], entry["atol"])  # fmt: skip
    assert solver["origin"] == "shipped"
    assert solver["atol_states"] == entry.get("atol_states", {})
    assert solver["worst_metric_error"] == entry["worst_metric_error"]
    assert main(["report", str(out)]) == 0
    table = " ".join(capsys.readouterr().out.split())  # the header is wrapped to the width
    assert f"solver: {entry['method']}, rtol {entry['rtol']:g}, atol {entry['atol']:g}" in table
    assert all(f"{k} {v:g}" in table for k, v in entry.get("atol_states", {}).items())
    assert f"verified worst metric error {entry['worst_metric_error']:.1e}" in table


def test_resume_with_other_solver_options_is_refused(tmp_path, monkeypatch):
    path = write(tmp_path)
    out = tmp_path / "s.zarr"
    run_sweep(path, out, chunk_size=10, engine=fake_engine)
    changed = {"sle_cart": {**shipped_entry(), "rtol": 1e-5}}
    monkeypatch.setattr(sweep_solver_module, "_settings", lambda: changed)
    with pytest.raises(ScenarioError, match="results are never mixed"):
        run_sweep(path, out, engine=fake_engine)


def test_shipped_setting_store_is_identical_across_chunk_sizes_and_threads(tmp_path):
    """The real engine at the shipped setting (per-state atol included): chunking and threads
    do not change a bit."""
    import zarr

    path = write(tmp_path)
    a = run_sweep(path, tmp_path / "a.zarr", chunk_size=20, threads=1)
    run_sweep(path, tmp_path / "b.zarr", chunk_size=7, threads=2)
    assert a.n_failed == 0 and a.n_computed == 40
    ga, gb = zarr.open_group(str(tmp_path / "a.zarr")), zarr.open_group(str(tmp_path / "b.zarr"))
    for name in ("CMAX", "TRECOV", "status"):
        assert np.array_equal(ga[name][...], gb[name][...], equal_nan=True), name


def test_store_from_before_recorded_settings_is_not_resumed_at_the_new_default(tmp_path):
    import zarr

    path = write(tmp_path)
    out = tmp_path / "s.zarr"
    run_sweep(path, out, chunk_size=10, engine=fake_engine)
    group = zarr.open_group(str(out), mode="r+")
    del group.attrs["solver"]  # as written before the setting was recorded
    with pytest.raises(ScenarioError, match="predates recorded solver settings"):
        run_sweep(path, out, engine=fake_engine)
