"""Start-up of `cartkin simulate`: no heavy module it does not use, the script entry point.

matplotlib (about 0.1 s), scipy.special (about 0.05 s), pandas, xarray, zarr and dask are loaded
only by the commands that need them (--figure, fit, data, sweep). Each check runs in a fresh
interpreter, since this test process has imported them already (and `console` freezes the
garbage collector of the process it runs in).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCENARIO = ROOT / "scenarios" / "adolescent_hemodialysis_1e5.toml"
HEAVY = ("matplotlib", "scipy.special", "pandas", "xarray", "zarr", "dask", "tqdm")


def _loaded_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the HEAVY modules it left in sys.modules."""
    probe = (
        "import contextlib, io, json, sys\n"
        f"{code}\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_simulate_command_loads_no_heavy_module():
    code = (
        "from cartkin.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['simulate', {str(SCENARIO)!r}, '--format', 'json']) == 0"
    )
    assert _loaded_after(code) == []


@pytest.mark.parametrize(
    "code",
    [
        "import cartkin",
        "import cartkin.fit",
        "from cartkin.cli import build_parser; build_parser()",
    ],
)
def test_import_loads_no_heavy_module(code):
    assert _loaded_after(code) == []


def test_fit_names_still_import_on_first_use():
    import cartkin.fit
    from cartkin.fit import ERROR_KINDS, ErrorModel, loglik
    from cartkin.fit.likelihood import ErrorModel as direct

    assert ErrorModel is direct
    assert callable(loglik) and len(ERROR_KINDS) > 0
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cartkin.fit.nope  # noqa: B018


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "cartkin.cli", *args], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip


def test_console_entry_prints_what_main_prints(capsys):
    from cartkin.cli import main

    proc = _cli("simulate", str(SCENARIO), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert main(["simulate", str(SCENARIO), "--format", "json"]) == 0
    assert json.loads(proc.stdout) == json.loads(capsys.readouterr().out)


def test_console_entry_keeps_exit_status_and_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nmodel = "sle_cart"\n[patient]\nweight_lb = 1\n[cart]\n')
    proc = _cli("simulate", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"cartkin: error: {bad}: [patient] unknown key 'weight_lb'")
    assert proc.stdout == ""


def test_console_writes_complete_files(tmp_path):
    out_csv = tmp_path / "traj.csv"
    proc = _cli("simulate", str(SCENARIO), "--csv", str(out_csv))
    assert proc.returncode == 0, proc.stderr
    with out_csv.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1081  # days 0..270 every 0.25 d, the last one written whole
    assert rows[-1]["t_days"] == "270.0"
    assert all(value != "" for value in rows[-1].values())
