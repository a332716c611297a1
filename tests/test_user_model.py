"""User model files: loaded by path, kernels cached on disk by content, never stale."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cartkin
from cartkin.errors import ScenarioError
from cartkin.kernel import build as _compile
from cartkin.scenario import load_scenario

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "my_model.py"


def test_load_returns_the_files_model_with_a_content_keyed_kernel_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTKIN_CACHE_DIR", str(tmp_path / "cache"))
    model = cartkin.models.load(EXAMPLE)
    assert model.name == "my_model" and "my_model" not in cartkin.models.available()
    assert cartkin.models.load(str(EXAMPLE)) is model  # same content: same module
    path = _compile.kernel_path(model.rhs, family="ros")
    assert path is not None and path.parent == tmp_path / "cache"

    edited = tmp_path / "my_model.py"
    edited.write_text(EXAMPLE.read_text().replace("rho * drive * E", "0.5 * rho * drive * E"))
    other = cartkin.models.load(edited)
    assert other is not model
    assert _compile.kernel_path(other.rhs, family="ros") != path  # an edit is never stale


def test_a_helper_in_another_file_is_part_of_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTKIN_CACHE_DIR", str(tmp_path / "cache"))
    helper = tmp_path / "helper_rate.py"
    helper.write_text("import numba\n\n@numba.njit\ndef rate(p):\n    return p[0]\n")
    model_file = tmp_path / "uses_helper.py"
    model_file.write_text(
        f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport numba\nimport helper_rate\n\n"
        "@numba.njit\ndef rhs(t, y, p, dydt):\n    dydt[0] = -helper_rate.rate(p) * y[0]\n"
    )
    module = cartkin.models.load_module(model_file)
    before = _compile.kernel_path(module.rhs, family="erk")
    assert before is not None
    text = helper.read_text().replace("p[0]", "2.0 * p[0]")
    helper.write_text(text)
    assert _compile.kernel_path(module.rhs, family="erk") != before


def test_scenario_model_path_is_relative_to_the_scenario_file():
    scenario = load_scenario(ROOT / "examples" / "my_model_scenario.toml")
    assert scenario.model.name == "my_model"


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("x = 1\n", r"expected the file to define MODEL"),
        ("raise RuntimeError('boom')\n", r"importing the model file failed: RuntimeError: boom"),
        ("def (:\n", r"importing the model file failed: SyntaxError"),
    ],
)
def test_bad_model_files_are_one_clear_error(tmp_path, content, pattern):
    path = tmp_path / "bad.py"
    path.write_text(content)
    with pytest.raises(ScenarioError, match=pattern):
        cartkin.models.load(path)


def test_missing_model_file_in_a_scenario_names_file_and_key(tmp_path):
    text = (ROOT / "examples" / "my_model_scenario.toml").read_text()
    path = tmp_path / "s.toml"
    path.write_text(text.replace("my_model.py", "nowhere.py"))
    with pytest.raises(
        ScenarioError, match=r"s\.toml: \[scenario\] model = 'nowhere\.py': .*no such"
    ):
        load_scenario(path)


SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import cartkin
from cartkin.scenario import load_scenario
scenario = load_scenario(sys.argv[1])
(result,) = scenario.run()
seconds = time.perf_counter() - t0
kernel = cartkin.kernel.build.get_kernel(scenario.model.rhs, scenario.model.jac, family="ros")
print(json.dumps(dict(
    hits=sum(kernel._solve.stats.cache_hits.values()),
    misses=sum(kernel._solve.stats.cache_misses.values()),
    seconds=seconds, cmax=float(result.observables["cart_cells_per_ul"].max()))))
"""


@pytest.mark.slow
def test_second_process_loads_the_user_model_kernel_from_cache(tmp_path):
    for name in ("my_model.py", "my_model_scenario.toml"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    env = {
        **os.environ,
        "CARTKIN_CACHE_DIR": str(tmp_path / "cartkin"),
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("NUMBA_DISABLE_JIT", None)

    def run():
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path / "my_model_scenario.toml")],
            env=env, capture_output=True, text=True, check=True, timeout=600,
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold, warm = run(), run()
    assert cold["misses"] >= 1 and cold["hits"] == 0
    assert warm["hits"] >= 1 and warm["misses"] == 0
    assert warm["cmax"] == cold["cmax"]
