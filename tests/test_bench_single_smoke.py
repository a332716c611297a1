"""Smoke test of benchmarks/bench_single.py: one round, one fresh process, every number there."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_single.py"


@pytest.mark.slow  # a fresh process that compiles sle_cart and sle_cart_v1: over 15 s of CPU
def test_one_round_reports_every_number(tmp_path):
    out = tmp_path / "single.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--runs", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(out.read_text())
    for name in ("sle_cart", "sle_cart_v1"):
        stages = res["warm_simulate"][name]["stages"]
        assert set(stages) == {"simulate", "build_context", "individualize", "solve_ode"}
        for stage in stages.values():
            assert 0 < stage["q25_ms"] <= stage["median_ms"] <= stage["q75_ms"] < math.inf
        assert res["warm_simulate"][name]["n_steps"] > 0
    assert 0 < res["cli"]["median_s"] < math.inf and len(res["cli"]["runs_s"]) == 1
    assert all(ms >= 0 for ms in res["cli_stages"]["stages_ms"].values())
    assert res["cli_stages"]["heavy_modules_loaded"] == []
    assert res["imports"]["heavy_modules_imported"] == []
    assert "cartkin" in [name for name, _ in res["imports"]["top_level_ms"]]
    assert "warm cartkin.simulate" in proc.stdout
