"""The command line: metrics table, JSON, CSV, figure, model listing, and one-line errors."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cartkin.cli import main

ROOT = Path(__file__).parents[1]
MOTIVATING = ROOT / "scenarios" / "adolescent_hemodialysis_1e5.toml"
KIDNEY = ROOT / "scenarios" / "kidney_function_comparison.toml"


def test_simulate_prints_metrics_table(capsys):
    assert main(["simulate", str(MOTIVATING)]) == 0
    out = capsys.readouterr().out
    for name in ("CMAX", "TMAX", "AUC0_28D", "FLU_AUC"):
        assert name in out
    assert "cells/uL" in out


def test_simulate_json_is_parseable_and_finite(capsys):
    assert main(["simulate", str(MOTIVATING), "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (arm,) = payload["arms"]
    metrics = {m["name"]: m for m in arm["metrics"]}
    assert payload["model"] == "sle_cart"
    assert metrics["TMAX"]["unit"] == "day"
    assert 0 < metrics["TMAX"]["value"] < 60
    assert metrics["CMAX"]["value"] > 0


def test_simulate_writes_csv_and_figure(tmp_path, capsys):
    out_csv, out_png = tmp_path / "traj.csv", tmp_path / "fig.png"
    assert main(["simulate", str(MOTIVATING), "--csv", str(out_csv), "--figure", str(out_png)]) == 0
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["t_days"] == "0.0"
    assert float(rows[-1]["t_days"]) == pytest.approx(270.0)
    assert "cart_cells_per_ul" in rows[0]
    assert out_png.stat().st_size > 10_000
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_comparison_scenario_has_one_column_per_arm(capsys):
    assert main(["simulate", str(KIDNEY), "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    labels = [a["label"] for a in payload["arms"]]
    assert labels[:5] == ["eGFR 120", "eGFR 60", "eGFR 30", "eGFR 15", "hemodialysis"]
    auc = [
        next(m["value"] for m in a["metrics"] if m["name"] == "FLU_AUC") for a in payload["arms"]
    ]
    assert auc[:5] == sorted(auc[:5]), "lower kidney function never lowers fludarabine AUC"


def test_models_and_show(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "sle_cart" in out and "stein2019" in out
    assert main(["show", "stein2019", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| parameter | default | unit |" in out
    assert "Stein" in out


@pytest.mark.parametrize("name", ["sle_cart", "stein2019", "sle_cart_v1"])
def test_show_table_fits_100_columns_and_defines_its_symbols(name, capsys):
    from cartkin import modeldoc, models

    assert main(["show", name]) == 0  # capsys: not a terminal, so 100 columns
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert modeldoc.undefined_symbols(name) == []
    defined = {s.symbol for s in modeldoc.symbols(name)}
    for line in modeldoc.parse_equations(models.get(name)):
        words = set(re.findall(r"\b[A-Za-z_]\w*\b", re.sub(r"\d+\.?\d*e[-+]?\d+", "", line.right)))
        words |= {line.left} if line.left else set()
        for word in words - modeldoc._BUILTIN_NAMES - {"if", "else"}:
            assert word in defined, f"{name}: {word} printed but not defined"
            assert re.search(rf"^{re.escape(word)}\s", out, re.M), f"{word} has no table row"


def test_show_narrow_table_and_json(capsys):
    from cartkin import modeldoc, models

    text = modeldoc.to_text("sle_cart", width=60)
    assert max(len(line) for line in text.splitlines()) <= 60
    assert main(["show", "sle_cart", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    model = models.get("sle_cart")
    assert doc["name"] == "sle_cart" and len(doc["states"]) == len(model.states)
    assert [d["symbol"] for d in doc["derived"]] == list(model.derived)
    assert all(d["description"] for d in doc["derived"])


def test_undefined_symbols_are_reported():
    from cartkin import modeldoc, models

    model = models.get("stein2019")
    fake = models.Model(
        "fake_doc_model", model.description, model.states, model.parameters,
        model.observables, model.rhs, lambda v, c: None, {"cart": "cart_cells_per_ul"},
        "growth = rho * E\ndE = growth - k_mystery * E\ndM = 0.0\ndP = 0.0\n",
        derived=("rho",),
    )  # fmt: skip
    # k_mystery is used but never defined; the derived rho has no description
    assert modeldoc.undefined_symbols(fake) == ["k_mystery", "rho"]
    fake.symbols = {"rho": ("1/day", "expansion rate")}
    assert modeldoc.undefined_symbols(fake) == ["k_mystery"]


def test_show_a_model_file(capsys):
    assert main(["show", str(Path(__file__).parents[1] / "examples" / "my_model.py")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("my_model\n") and "weight_kg" in out and "dose" in out


def test_version(capsys):
    import cartkin

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cartkin {cartkin.__version__}"


def test_errors_are_one_line_and_nonzero(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(MOTIVATING.read_text().replace("weight_kg = 50.0", "weight_lb = 110.0"))
    assert main(["simulate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("cartkin: error:") and "weight_lb" in err and "bad.toml" in err
    assert main(["show", "sle_cat"]) == 2
    assert "Did you mean 'sle_cart'" in capsys.readouterr().err


def test_debug_shows_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cartkin.cli", "--debug", "simulate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ScenarioError" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "cartkin.cli", "simulate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["-1", "0", "nan", "abc"])
def test_bad_lloq_is_a_usage_error_not_a_traceback(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(MOTIVATING), "--lloq", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--lloq" in err and "Traceback" not in err
