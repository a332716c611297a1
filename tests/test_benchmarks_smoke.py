"""Smoke tests of the scripts in benchmarks/: each one's --quick mode runs and reports numbers.

bench_solvers.py: the --quick path, cartkin and scipy rows only (below); bench_single.py in
tests/test_bench_single_smoke.py; every other script in ``test_quick_mode_runs``.

numbalsoda and jax/diffrax are optional (the ``bench`` extra) and are left out with
``--peers none``, so this runs where they are not installed.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_solvers.py"

# the quick benchmark compiles its own kernels and runs scipy's solvers: over 15 s of CPU
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--peers",
            "none",
            "--methods",
            "cartkin,scipy:LSODA,scipy:Radau,scipy:odeint",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


# bench_solvers --quick times 15 methods: minutes on a loaded machine, so slow
@pytest.mark.slow
def test_quick_run_writes_all_outputs(quick_run):
    for name in ("solvers.json", "solvers.md", "work_precision.png"):
        path = quick_run / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert (quick_run / "work_precision.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_run_rows_have_finite_numbers(quick_run):
    results = json.loads((quick_run / "solvers.json").read_text())
    rows = {r["key"]: r for r in results["problems"]["cart4"]["rows"]}
    assert not any(r["family"] in ("numbalsoda", "diffrax") for r in rows.values())
    measured = ["scipy:LSODA", "scipy:Radau", "scipy:odeint"]
    measured += [k for k, r in rows.items() if r["family"] == "cartkin" and r["status"] == "ok"]
    for key in measured:
        row = rows[key]
        assert row["status"] == "ok", row
        for field in ("first_call_s", "median_s", "q1_s", "q3_s", "error"):
            assert math.isfinite(row[field]) and row[field] >= 0, (key, field, row[field])
        assert row["q1_s"] <= row["median_s"] <= row["q3_s"]
        # Every method ran at rtol 1e-6 on a smooth problem: an error above 1e-2 means a
        # mismatched reference or a broken adapter, not a slow solver.
        assert row["error"] < 1e-2, (key, row["error"])
        assert row["n_rhs"] > 0
    sweep = results["problems"]["cart4"]["work_precision"]["scipy:LSODA"]
    errors = [p["error"] for p in sweep]
    assert all(e is not None and math.isfinite(e) for e in errors)
    assert errors[-1] < errors[0]  # tighter rtol, smaller error
    table = (quick_run / "solvers.md").read_text()
    assert "scipy solve_ivp LSODA" in table and "max rel error" in table


# -- every other script in benchmarks/ in its --quick smoke mode ------------------------------
# (script, extra arguments, what its output must contain); the ones that start fresh processes
# several times (tens of seconds on a loaded machine) are marked slow.
# fmt: off
QUICK = [
    pytest.param("bench_data.py", [], "us/row", id="bench_data"),
    pytest.param("bench_fit.py", ["--out", "{tmp}"], "ratio peer / cartkin", id="bench_fit"),
    pytest.param("bench_sweep.py", ["--out", "{tmp}"], "plain numba Dormand-Prince",
                 id="bench_sweep"),
    pytest.param("profile_step.py", [], "ns per accepted step", id="profile_step"),
    pytest.param("bench_sweep_pipeline.py", ["--out", "{tmp}"], "patients/s",
                 id="bench_sweep_pipeline", marks=pytest.mark.slow),
    pytest.param("bench_population.py", ["--out", "{tmp}"], "cartkin: mean time",
                 id="bench_population"),
    pytest.param("bench_rosenbrock.py", ["--out", "{tmp}"], "cheapest point with error",
                 id="bench_rosenbrock", marks=pytest.mark.slow),
    pytest.param("bench_lanes.py", ["--out", "{tmp}"], "bit-identical: True",
                 id="bench_lanes", marks=pytest.mark.slow),
]
# fmt: on


def test_every_script_has_a_quick_smoke_test():
    scripts = {p.name for p in (ROOT / "benchmarks").glob("bench_*.py")} | {"profile_step.py"}
    covered = {p.values[0] for p in QUICK} | {"bench_solvers.py", "bench_single.py"}
    assert scripts == covered, scripts ^ covered


@pytest.mark.parametrize(("script", "extra", "expect"), QUICK)
def test_quick_mode_runs(script, extra, expect, tmp_path):
    args = [a.format(tmp=tmp_path) for a in extra]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert expect in proc.stdout, proc.stdout[-2000:]
    if script == "bench_sweep.py":
        report = json.loads((tmp_path / "quick" / "sweep.json").read_text())
        setting = report["sweep_setting"]
        # the shipped setting, its error verified again in this run, within the 1e-3 budget
        assert setting["rtol"] == report["shipped_setting"]["rtol"]
        assert setting["worst_rel_error"] <= 1e-3 and setting["failed"] == 0
        assert {r["threads"] for r in report["throughput"]} >= {1}
        assert all(p["patients_per_s"] > 0 and p["engine_ratio"] > 0 for p in report["peers"])
