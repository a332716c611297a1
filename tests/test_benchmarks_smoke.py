"""Smoke test of benchmarks/bench_solvers.py: the --quick path, cartkin and scipy rows only.

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


def test_quick_run_writes_all_outputs(quick_run):
    for name in ("solvers.json", "solvers.md", "work_precision.png"):
        path = quick_run / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert (quick_run / "work_precision.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
