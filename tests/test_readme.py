"""The README stays true: generated tables up to date, the two opening commands as promised."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"


def _update_readme_module():
    spec = importlib.util.spec_from_file_location(
        "update_readme", ROOT / "scripts" / "update_readme.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tables_are_up_to_date():
    text = README.read_text(encoding="utf-8")
    assert "<!-- BEGIN generated: params:sle_cart -->" in text
    assert _update_readme_module().updated(text) == text, "run: python scripts/update_readme.py"


def test_readme_opens_with_install_and_run_and_test_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", README.read_text(encoding="utf-8"), re.S)
    run, test = blocks[0], blocks[1]
    assert "pip install -e ." in run and "cartkin simulate scenarios/" in run
    scenario = re.search(r"cartkin simulate (\S+\.toml)", run).group(1)
    assert (ROOT / scenario).is_file()
    assert "pip install -e '.[test]'" in test and "python -m pytest -q" in test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pytest -q\n" in ci, ".ci/run must run the README's test command"


def test_readme_figures_exist():
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", README.read_text(encoding="utf-8")):
        assert (ROOT / path).is_file(), path


@pytest.mark.slow
def test_readme_python_examples_run(monkeypatch):
    """Every ```python block of the README runs as written (compiles a user rhs: slow)."""
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)\n```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    namespaces = []
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        namespaces.append(namespace)
    sol = next(ns["sol"] for ns in namespaces if "sol" in ns)
    assert sol.success and abs(sol.y[-1, 0] - 100.0 * math.exp(-0.3 * 5.0)) < 1e-6
