"""`cartkin simulate` starts without the heavy modules it does not use.

matplotlib (about 0.1 s), scipy.special (about 0.05 s), pandas, xarray, zarr and dask are loaded
only by the commands that need them (--figure, fit, data, sweep). Each check runs in a fresh
interpreter, since this test process has imported them already.
"""

from __future__ import annotations

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
