"""Inputs that once gave a wrong answer in silence, or a traceback, now give one clear error.

Each test names the input that used to be accepted (issue 10) and checks the error names the
file or argument, the value and what was expected.
"""

from __future__ import annotations

import csv
import math
import re
import tomllib
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest

import cartkin
from cartkin import plot
from cartkin.cli import _write_csv, main
from cartkin.covariates.patient import DialysisSchedule, Patient
from cartkin.covariates.regimen import (
    CarTDose,
    Lymphodepletion,
    Regimen,
    RegimenWarning,
    build_context,
)
from cartkin.errors import ScenarioError
from cartkin.ode import Status, solve_ode
from cartkin.scenario import MAX_OUTPUT_ROWS, load_scenario

ROOT = Path(__file__).parents[1]
ERLANGEN = ROOT / "scenarios" / "erlangen_sle_1e6.toml"
KIDNEY = ROOT / "scenarios" / "kidney_function_comparison.toml"
STEIN = ROOT / "scenarios" / "stein2019_tisagenlecleucel.toml"
ADULT = {"weight_kg": 70.0, "height_cm": 175.0, "age_years": 40.0, "sex": "female"}


def _edit(tmp_path, old, new, source=ERLANGEN, name="case.toml"):
    text = source.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _cli_error(argv, capsys):
    """Run the CLI; return (status, stdout, the stderr lines)."""
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip().splitlines()


# -- regimen timing --------------------------------------------------------------------------


@pytest.mark.parametrize("flu_days", [(5.0, 6.0, 7.0), (-2.0, -1.0, 0.0)])
def test_lymphodepletion_on_or_after_the_infusion_is_refused(flu_days):
    ld = Lymphodepletion(flu_days=flu_days, cy_days=(-3.0,))
    with pytest.raises(ScenarioError, match=r"flu_days = .*on or after the first CAR-T"):
        Regimen(lymphodepletion=ld)


def test_cyclophosphamide_after_the_infusion_is_refused():
    ld = Lymphodepletion(cy_days=(1.0,))
    with pytest.raises(ScenarioError, match=r"cy_days = \[1.0\]: day 1 is on or after"):
        Regimen(lymphodepletion=ld)


def test_lymphodepletion_long_before_is_refused_and_a_long_gap_is_said(tmp_path):
    far = Lymphodepletion(flu_days=(-300.0, -299.0, -298.0), cy_days=(-298.0,))
    with pytest.raises(ScenarioError, match=r"298 days before the first CAR-T infusion"):
        Regimen(lymphodepletion=far)
    gap = Lymphodepletion(flu_days=(-22.0, -21.0, -20.0), cy_days=(-20.0,))
    with pytest.warns(RegimenWarning, match=r"20 days before .* assumes it still conditions"):
        Regimen(lymphodepletion=gap)


def test_scenario_lymphodepletion_after_infusion_names_file_and_section(tmp_path, capsys):
    path = _edit(tmp_path, "flu_days = [-5.0, -4.0, -3.0]", "flu_days = [5.0, 6.0, 7.0]")
    with pytest.raises(ScenarioError, match=r"case\.toml: \[lymphodepletion\] .*flu_days"):
        load_scenario(path)
    status, out, err = _cli_error(["simulate", str(path)], capsys)
    assert status == 2 and out == "" and len(err) == 1


def test_scenario_long_gap_warns_in_one_line(tmp_path, capsys):
    path = _edit(
        tmp_path,
        "flu_days = [-5.0, -4.0, -3.0]\ncy_mg_m2 = 1000.0\ncy_days = [-3.0]",
        "flu_days = [-22.0, -21.0, -20.0]\ncy_mg_m2 = 1000.0\ncy_days = [-20.0]",
    )
    assert main(["simulate", str(path), "--format", "json"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    # a cold kernel cache adds the "compiling ... / compiled ..." notice (cartkin.progress)
    err = [line for line in err if not line.startswith(("compiling ", "compiled "))]
    assert len(err) == 1 and err[0].startswith(f"cartkin: warning: {path}: [lymphodepletion]")


def test_cart_dose_after_the_horizon_is_refused(tmp_path):
    path = _edit(tmp_path, "[cart]\n", "[cart]\ndays = [400.0]\n")
    with pytest.raises(
        ScenarioError, match=r"case\.toml: \[cart\] days = \[400.0\].*t_end_days = 365"
    ):
        load_scenario(path)


def test_cart_dose_before_day_0_names_file_and_key(tmp_path):
    path = _edit(tmp_path, "[cart]\n", "[cart]\ndays = [-10.0]\n")
    with pytest.raises(ScenarioError, match=r"case\.toml: \[cart\] CarTDose\.days = .*day -10"):
        load_scenario(path)


# -- contradictory patients ------------------------------------------------------------------


def test_dialysis_with_normal_egfr_is_refused():
    dial = DialysisSchedule(session_days=(-2.0,))
    with pytest.raises(ScenarioError, match=r"egfr_ml_min_173m2 = 120 .* with dialysis"):
        Patient(**ADULT, egfr_ml_min_173m2=120.0, dialysis=dial)
    with pytest.raises(ScenarioError, match=r"crcl_ml_min = 40 mL/min with dialysis"):
        Patient(**ADULT, crcl_ml_min=40.0, dialysis=dial)
    assert Patient(**ADULT, egfr_ml_min_173m2=15.0, dialysis=dial).egfr_ml_min_173m2 == 15.0


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ({"weight_kg": 2.0, "height_cm": 250.0, "age_years": 0.0}, r"body mass index of 0\.32"),
        ({"weight_kg": 300.0, "height_cm": 150.0, "age_years": 40.0}, r"body mass index of 133"),
        ({"weight_kg": 15.0, "height_cm": 110.0, "age_years": 0.5}, r"at most 90 cm below age 1"),
    ],
)
def test_implausible_body_size_is_refused(body, pattern):
    with pytest.raises(ScenarioError, match=pattern):
        Patient(**body, sex="male", egfr_ml_min_173m2=100.0)


def test_flat_dose_has_the_per_kg_cap():
    patient = Patient(**{**ADULT, "weight_kg": 60.0}, egfr_ml_min_173m2=100.0)
    regimen = Regimen(cart=CarTDose(flat_cells=1e11))
    with pytest.raises(ScenarioError, match=r"flat_cells = 1e\+11 cells for a 60 kg .* 1e\+09"):
        build_context(patient, regimen)
    build_context(patient, Regimen(cart=CarTDose(flat_cells=1e9)))


# -- tracebacks that are now one line --------------------------------------------------------


def _assert_one_line(status, out, err, path):
    assert status == 2, err
    assert out == ""
    assert len(err) == 1 and err[0].startswith("cartkin: error: "), err
    assert str(path) in err[0]
    assert "Traceback" not in err[0]


def test_binary_file(tmp_path, capsys):
    path = tmp_path / "binary.toml"
    path.write_bytes(bytes(range(256)) * 4)
    status, out, err = _cli_error(["simulate", str(path)], capsys)
    _assert_one_line(status, out, err, path)
    assert "not a UTF-8 text file" in err[0]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("weight_kg = 60.0", "weight_kg = " + "9" * 400),
        ("t_end_days = 365.0", "t_end_days = " + "9" * 400),
    ],
)
def test_huge_integers(tmp_path, capsys, old, new):
    path = _edit(tmp_path, old, new)
    status, out, err = _cli_error(["simulate", str(path)], capsys)
    _assert_one_line(status, out, err, path)
    assert "integer with about 400 digits" in err[0] or "expected at most" in err[0]


@pytest.mark.parametrize(
    "text",
    ["x = " + "[" * 20_000 + "]" * 20_000, "x = " + "{a = " * 5_000 + "1" + "}" * 5_000],
)
def test_deep_nesting(tmp_path, capsys, text):
    path = tmp_path / "deep.toml"
    path.write_text(text, encoding="utf-8")
    status, out, err = _cli_error(["simulate", str(path)], capsys)
    _assert_one_line(status, out, err, path)
    assert "nested" in err[0]


def test_deep_nesting_inside_a_valid_section(tmp_path, capsys):
    path = _edit(tmp_path, "weight_kg = 60.0", "weight_kg = " + "[" * 200 + "]" * 200)
    status, out, err = _cli_error(["simulate", str(path)], capsys)
    _assert_one_line(status, out, err, path)
    assert len(err[0]) < 400


def test_rtol_rule_is_checked_at_the_file(tmp_path):
    path = _edit(tmp_path, "[cart]\n", "[solver]\nrtol = 1e-15\n\n[cart]\n")
    with pytest.raises(
        ScenarioError, match=r"case\.toml: \[solver\] rtol = 1e-15: expected 2\.2e-14"
    ):
        load_scenario(path)
    path = _edit(tmp_path, "[cart]\n", "[solver]\nrtol = 2.3e-14\n\n[cart]\n")
    assert load_scenario(path).solver["rtol"] == 2.3e-14  # what solve_ode accepts, the file does


def test_output_paths_are_checked_before_running(tmp_path, capsys):
    status, out, err = _cli_error(
        ["simulate", str(ERLANGEN), "--figure", str(tmp_path / "out.txt")], capsys
    )
    assert status == 2 and out == "" and len(err) == 1  # no metrics printed first
    assert "unknown figure format '.txt'" in err[0] and ".png" in err[0]
    missing = tmp_path / "missing" / "traj.csv"
    status, out, err = _cli_error(["simulate", str(ERLANGEN), "--csv", str(missing)], capsys)
    assert status == 2 and out == "" and "does not exist; create it first" in err[0]
    assert not missing.parent.exists()


def test_directory_as_scenario(tmp_path, capsys):
    status, out, err = _cli_error(["simulate", str(tmp_path)], capsys)
    _assert_one_line(status, out, err, tmp_path)
    assert "is a directory" in err[0]


def test_string_for_a_list_key_suggests_a_list(tmp_path):
    source = ROOT / "scenarios" / "adolescent_hemodialysis_1e5.toml"
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"session_days = \[[^\]]*\]", 'session_days = "Mon/Wed/Fri"', text)
    path = tmp_path / "case.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(
        ScenarioError, match=r"expected a list of numbers \(days\), e\.g\. session_days = \["
    ):
        load_scenario(path)


# -- size guards -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        ("output_step_days = 0.25", "output_step_days = 1e-5", r"3\.65e\+07 output rows per arm"),
        ("t_end_days = 365.0", "t_end_days = 1e6", r"t_end_days = 1e\+06: expected at most 3650"),
    ],
)
def test_output_grid_size_is_limited(tmp_path, old, new, pattern):
    path = _edit(tmp_path, old, new)
    with pytest.raises(ScenarioError, match=pattern):
        load_scenario(path)


def test_row_limit_message_says_how_to_change_it(tmp_path):
    path = _edit(tmp_path, "output_step_days = 0.25", "output_step_days = 0.001")
    with pytest.raises(ScenarioError, match=f"the limit is {MAX_OUTPUT_ROWS}.*MAX_OUTPUT_ROWS"):
        load_scenario(path)


# -- solve_ode -------------------------------------------------------------------------------


@numba.njit
def _decay(t, y, p, dydt):
    dydt[0] = -p[0] * y[0]


@numba.njit
def _two_states(t, y, p, dydt):
    dydt[0] = -y[0]
    dydt[1] = y[0]


@numba.njit
def _nan_rhs(t, y, p, dydt):
    dydt[0] = math.sqrt(-1.0 - y[0] * y[0]) if t == 0.0 else -y[0]


def test_p_shorter_than_the_rhs_reads_is_an_error():
    with pytest.raises(ValueError, match=r"rhs indexes p .* at \[0\], but it has 0 entries"):
        solve_ode(_decay, [1.0], [0.0, 10.0], np.array([]))


def test_y0_shorter_than_the_rhs_writes_is_an_error():
    with pytest.raises(ValueError, match=r"rhs indexes dydt .* at \[1\], but it has 1 entries"):
        solve_ode(_two_states, [1.0], [0.0, 10.0])


def test_y0_longer_than_the_rhs_writes_is_an_error():
    with pytest.raises(ValueError, match=r"rhs did not write dydt\[1\] .*y0 has 2 states, p has 1"):
        solve_ode(_decay, [1.0, 2.0], [0.0, 10.0], [0.3])


def test_nan_at_t0_is_non_finite():
    sol = solve_ode(_nan_rhs, [1.0], [0.0, 1.0], method="tsit5", throw=False)
    assert sol.status == Status.NON_FINITE
    assert "at the start, t=0" in sol.message and "max_steps" not in sol.message


# -- output polish ---------------------------------------------------------------------------


class _FakeResult:
    label = "a"
    t_days = np.array([0.0, 1.0])

    def to_columns(self):
        return {"t_days": self.t_days, "cart_cells_per_ul": np.array([-7.7e-17, -1.0])}


def test_csv_writes_round_off_as_zero_and_keeps_real_negatives(tmp_path):
    path = tmp_path / "x.csv"
    _write_csv(path, [_FakeResult()], roundoff=1e-9)
    rows = list(csv.DictReader(path.open()))
    assert [r["cart_cells_per_ul"] for r in rows] == ["0.0", "-1.0"]


def test_lamzhl_note_is_in_time_order(capsys):
    # an LLOQ just under the peak: CAR-T falls below it before the terminal window opens
    assert main(["simulate", str(ERLANGEN), "--format", "json", "--lloq", "90"]) == 0
    import json

    arm = json.loads(capsys.readouterr().out)["arms"][0]
    note = next(m["note"] for m in arm["metrics"] if m["name"] == "LAMZHL")
    for a, b in re.findall(r"\[([-0-9.e+]+), ([-0-9.e+]+)\]", note):
        assert float(a) <= float(b), note
    assert "no terminal phase" in note


def test_stein2019_outputs_say_what_the_model_ignores(capsys):
    assert main(["simulate", str(STEIN)]) == 0
    out = capsys.readouterr().out
    assert "note: model stein2019 ignores the CAR-T dose and lymphodepletion" in out


def test_figures_units_palette_legend_and_x_axis():
    results = load_scenario(KIDNEY).run()
    fig = plot.plot_comparison(results)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("LLOQ 0.05 cells/\u00b5L" in t for t in texts)
    assert any("aplasia < 10 cells/\u00b5L \u2264 recovery" in t for t in texts)
    assert "cells/\u00b5L" in fig.axes[0].get_ylabel()
    rgb = [np.array(matplotlib_rgb(line.get_color())) for line in fig.axes[0].get_lines()[:5]]
    labels = [line.get_label() for line in fig.axes[0].get_lines()[:5]]
    i15, idial = labels.index("eGFR 15"), labels.index("hemodialysis")
    assert np.abs(rgb[i15] - rgb[idial]).sum() > 0.6  # clearly different colours
    assert fig.axes[0].get_xlim()[0] == results[0].t_days[0]


def test_stein2019_figure_keeps_its_x_label():
    (result,) = load_scenario(STEIN).run()
    fig = plot.plot_result(result)
    fig.canvas.draw() if hasattr(fig.canvas, "draw") else None
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig.axes[-1].xaxis.label.get_window_extent(canvas.get_renderer())
    assert box.y0 >= 0, "x label cut off at the bottom"


def matplotlib_rgb(color):
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def test_every_shipped_scenario_still_loads_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in sorted((ROOT / "scenarios").glob("*.toml")):
            tomllib.loads(path.read_text(encoding="utf-8"))
            load_scenario(path)


def test_cartkin_exports_still_work():
    assert callable(cartkin.models.load) and callable(cartkin.models.load_module)


def test_cli_takes_subcommands_from_other_modules(capsys, monkeypatch):
    from cartkin import cli

    def add(sub):
        sub.add_parser("hello", help="test command")
        return lambda args: print("hello ran") or 0

    monkeypatch.setattr(cli, "_COMMANDS", [])
    cli.add_command(add)
    assert main(["hello"]) == 0
    assert capsys.readouterr().out == "hello ran\n"
