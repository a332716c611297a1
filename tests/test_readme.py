"""The README stays true: the two opening commands as promised, short, links and figures exist."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"


def test_readme_opens_with_install_and_run_and_test_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", README.read_text(encoding="utf-8"), re.S)
    run, test = blocks[0], blocks[1]
    assert "pip install -e ." in run and "cartkin simulate scenarios/" in run
    scenario = re.search(r"cartkin simulate (\S+\.toml)", run).group(1)
    assert (ROOT / scenario).is_file()
    assert "pip install -e '.[test]'" in test and "python -m pytest -q" in test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pytest -q\n" in ci, ".ci/run must run the README's test command"


def test_readme_is_two_screens_without_dated_measurements():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "no dated measurements in the README"
    assert not re.search(r"load average|measured", text, re.I)


def test_readme_links_and_figures_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert targets
    for target in targets:
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    for path in re.findall(r"`(scenarios/[\w.]+\.toml)`", text):
        assert (ROOT / path).is_file(), path


@pytest.mark.slow
def test_readme_python_example_runs(monkeypatch):
    """The README's ```python block runs as written (compiles sle_cart: slow on a cold cache)."""
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)\n```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["res"].success
    table = namespace["table"]
    assert 5.0 < table.value("TMAX") < 20.0 and math.isfinite(table.value("CMAX"))
    assert len(namespace["results"]) >= 5
