"""The [sweep] table: every bad value gets a one-line error naming the file, key and value."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from cartkin.errors import ScenarioError
from cartkin.sweep.seeds import philox4x32, standard_normal, uniform
from cartkin.sweep.spec import sweep_from_text

sys.path.insert(0, str(Path(__file__).parent))
from sweep_engines import base_scenario

BASE = base_scenario("spec test")

GOOD = """
[sweep]
n_patients = 10
seed = 1

[sweep.axes]
"cart.cells_per_kg" = [3e4, 1e5]
"""


def parse(sweep_text, base=BASE):
    return sweep_from_text(base + sweep_text, source="s.toml")


def test_good_sweep_parses():
    s = parse(GOOD + "\n[sweep.variability]\nrho = 0.3\nflu_clearance = 0.053\n")
    assert s.shape == (2,)
    assert s.n_total == 20
    assert s.variability == {"rho": 0.3, "flu_clearance": 0.053}
    assert [p.base.regimen.cart.cells_per_kg for p in s.points] == [3e4, 1e5]
    assert s.metrics[0] == "CMAX" and "FLU_AUC" in s.metrics


def test_log_range_and_dialysis_arm():
    s = parse(
        """
[sweep]
n_patients = 5
seed = 3
[sweep.axes]
"cart.cells_per_kg" = { log_from = 3e4, to = 1e6, n = 4 }
"patient.egfr_ml_min_173m2" = [90, 15, "dialysis"]
clearance_model = ["langenhorst2019", "varela2025"]
[sweep.dialysis]
session_days = [-7.5, -4.5, -2.5]
"""
    )
    assert s.shape == (4, 3, 2)
    doses = s.axes[0].values
    assert math.isclose(doses[0], 3e4) and math.isclose(doses[-1], 1e6)
    assert np.allclose(np.diff(np.log(doses)), np.log(1e6 / 3e4) / 3)
    point = s.points[s.shape[1] * s.shape[2] - 2]  # dose 0, dialysis, langenhorst
    assert s.coords(s.shape[1] * s.shape[2] - 2)["patient.egfr_ml_min_173m2"] == "dialysis"
    assert point.base.patient.on_dialysis
    assert point.base.patient.egfr_ml_min_173m2 is None
    assert not s.points[0].base.patient.on_dialysis
    assert s.points[0].base.patient.egfr_ml_min_173m2 == 90.0
    assert s.points[1].base.clearance_model == "varela2025"



def test_dialysis_arm_keeps_a_dialysis_base_patients_residual_function():
    """The kidney-axis value "dialysis" follows the rule of scenario variants: for a base patient
    already on dialysis only the schedule changes, and the residual eGFR stays; an eGFR value
    still replaces the whole kidney specification."""
    base = BASE.replace(
        "egfr_ml_min_173m2 = 120.0",
        "egfr_ml_min_173m2 = 2.5\ndialysis = { session_days = [-4.5, -2.5] }",
    )
    s = parse(
        """
[sweep]
n_patients = 5
seed = 3
[sweep.axes]
"patient.egfr_ml_min_173m2" = [30, "dialysis"]
[sweep.dialysis]
session_days = [-7.5, -4.5, -2.5]
""",
        base=base,
    )
    on_dialysis = s.points[1].base.patient
    assert on_dialysis.on_dialysis and on_dialysis.egfr_ml_min_173m2 == 2.5
    assert list(on_dialysis.dialysis.session_days) == [-7.5, -4.5, -2.5]
    assert not s.points[0].base.patient.on_dialysis
    assert s.points[0].base.patient.egfr_ml_min_173m2 == 30.0

BAD = [
    ("[sweep]\nseed = 1\n", "missing required key 'n_patients'"),
    ("[sweep]\nn_patients = 0\nseed = 1\n", r"n_patients = 0: expected an integer in \[1,"),
    ('[sweep]\nn_patients = "100"\nseed = 1\n', "n_patients = '100': expected an integer"),
    ("[sweep]\nn_patients = 1.5\nseed = 1\n", "n_patients = 1.5: expected an integer"),
    ("[sweep]\nn_patients = 10\nseed = -1\n", r"seed = -1: expected an integer in \[0,"),
    ("[sweep]\nn_patients = 10\n", "missing required key 'seed'"),
    ("[sweep]\nn_patients = 10\nseed = 1\nn_patient = 3\n", "unknown key 'n_patient'.*n_patients"),
    ('[sweep]\nn_patients = 10\nseed = 1\nmetrics = ["CMAXX"]\n', "unknown metric 'CMAXX'.*CMAX"),
    (
        "[sweep]\nn_patients = 10\nseed = 1\nmetrics = []\n",
        "metrics = \\[\\]: expected a non-empty",
    ),
    ('[sweep]\nn_patients = 10\nseed = 1\nmetrics = ["CMAX", "CMAX"]\n', "listed twice"),
    (
        "[sweep]\nn_patients = 10\nseed = 1\nflu_auc_window_mg_h_per_l = [20, 13.8]\n",
        r"flu_auc_window_mg_h_per_l = \[20, 13.8\]: expected \[low, high\]",
    ),
    ("[sweep]\nn_patients = 10\nseed = 1\nrecovery_by_day = -5\n", "recovery_by_day = -5"),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"cart.cells_per_kilo" = [1e5]\n',
        "unknown axis 'cart.cells_per_kilo'.*cells_per_kg",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"carts.cells_per_kg" = [1e5]\n',
        "unknown axis 'carts.cells_per_kg'.*cart",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"cart.cells_per_kg" = []\n',
        "expected a non-empty list",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"cart.cells_per_kg" = 1e5\n',
        "cart.cells_per_kg = 100000.0: expected a non-empty list",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"cart.cells_per_kg" = [1e5, 1e5]\n',
        "values repeat",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"cart.cells_per_kg" = [-1e5]\n',
        r"grid point \(cart.cells_per_kg = -100000\).*cells_per_kg",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"cart.cells_per_kg" = { log_from = 0, to = 1e6, n = 3 }\n',
        "log-spaced range needs log_from > 0",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"cart.cells_per_kg" = { log_from = 1e4, to = 1e6, n = 1 }\n',
        "n = 1: expected an integer >= 2",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"cart.cells_per_kg" = { log_from = 1e4, upto = 1e6, n = 3 }\n',
        "log-spaced",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"patient.egfr_ml_min_173m2" = [60, "dialysis"]\n',
        "needs a \\[sweep.dialysis\\] table",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"cart.cells_per_kg" = [1e5, "dialysis"]\n',
        "allowed only on",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"patient.egfr_ml_min_173m2" = [60, 500]\n',
        r"grid point \(patient.egfr_ml_min_173m2 = 500\).*egfr",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"patient.egfr_ml_min_173m2" = [60]\n"patient.crcl_ml_min" = [60]\n',
        "at most one kidney axis",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\nclearance_model = ["langenhorst"]\n',
        "clearance_model = 'langenhorst'.*langenhorst2019",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"parameters.rho" = [0.5, 50.0]\n',
        "grid point \\(parameters.rho = 50\\).*outside its plausible bounds",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.axes]\n"parameters.rhoo" = [0.5]\n',
        "unknown axis 'parameters.rhoo'.*rho",
    ),
    (
        "[sweep]\nn_patients = 10\nseed = 1\n[sweep.variability]\nrhoo = 0.3\n",
        "unknown name 'rhoo'.*rho",
    ),
    (
        "[sweep]\nn_patients = 10\nseed = 1\n[sweep.variability]\nrho = -0.3\n",
        r"rho = -0.3: expected omega\^2",
    ),
    (
        '[sweep]\nn_patients = 10\nseed = 1\n[sweep.variability]\nflu_clearance = "23%"\n',
        r"flu_clearance = '23%': expected omega\^2",
    ),
    (
        "[sweep]\nn_patients = 10\nseed = 1\n[sweep.dialysis]\nsession_days = [-1.0]\nflu_removal_fraction = 1.5\n",
        r"\[sweep.dialysis\].*flu_removal_fraction",
    ),
    (
        "[sweep]\nn_patients = 10\nseed = 1\n[sweep.dialysis]\nsessions = [-1.0]\n",
        r"\[sweep.dialysis\].*sessions",
    ),
    ("", "no \\[sweep\\] table"),
    (
        "[sweep]\nn_patients = 10\nseed = 1\ntrajectories = 11\n",
        "trajectories = 11: expected at most",
    ),
    ("[sweep]\nn_patients = 10\nseed = 1\ntrajectories = -1\n", "trajectories = -1: expected an"),
    (
        "[sweep]\nn_patients = 10\nseed = 1\ntrajectory_step_days = 0\n",
        "trajectory_step_days = 0: expected a number of days",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_sweep_values_get_clear_errors(text, message):
    with pytest.raises(ScenarioError, match=message) as info:
        parse(text)
    assert str(info.value).startswith("s.toml: ")
    assert "\n" not in str(info.value)


def test_variant_with_sweep_refused():
    text = BASE + '\n[[variant]]\nlabel = "x"\n' + GOOD
    with pytest.raises(ScenarioError, match=r"s.toml: \[\[variant\]\] with \[sweep\]"):
        sweep_from_text(text, source="s.toml")


def test_bad_base_scenario_gets_the_loader_error():
    with pytest.raises(ScenarioError, match=r"s.toml: \[patient\] unknown key 'weight_lb'"):
        parse(GOOD, base=BASE.replace("weight_kg", "weight_lb"))


# -- seeds ------------------------------------------------------------------------------------


def test_philox_known_answers():
    """Known-answer vectors of Random123's kat_vectors for philox4x32-10."""
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for counter, key, expected in cases:
        got = philox4x32([[c] for c in counter], key)
        assert tuple(int(x[0]) for x in got) == expected


def test_draws_depend_only_on_seed_patient_and_name():
    k = np.arange(1000, 3000)
    whole = standard_normal(11, k, "rho")
    parts = np.concatenate([standard_normal(11, k[:7], "rho"), standard_normal(11, k[7:], "rho")])
    assert np.array_equal(whole, parts)
    assert np.array_equal(standard_normal(11, k[::-1], "rho"), whole[::-1])
    assert not np.array_equal(standard_normal(12, k, "rho"), whole)
    other = standard_normal(11, k, "delta_E")
    assert abs(np.corrcoef(whole, other)[0, 1]) < 0.1
    u = uniform(2**64 - 1, np.arange(10**5), "x")
    assert 0 < u.min() and u.max() < 1
    z = standard_normal(5, np.arange(10**5), "x")
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


def test_shipped_sweep_scenario_is_valid_and_large():
    from pathlib import Path

    from cartkin.sweep import load_sweep

    path = Path(__file__).parents[1] / "scenarios" / "sweep_dose_kidney.toml"
    sweep = load_sweep(path)
    assert sweep.n_total >= 100_000
    assert [a.key for a in sweep.axes] == [
        "cart.cells_per_kg",
        "patient.egfr_ml_min_173m2",
        "lymphodepletion.flu_rule",
    ]
    assert sweep.axes[0].log and "dialysis" in sweep.axes[1].values
    assert sweep.variability["flu_clearance"] == pytest.approx(math.log(1 + 0.23**2), abs=1e-3)
    assert {"TRECOV", "FLU_AUC"} <= set(sweep.metrics)
    dialysis = [p for p in sweep.points if p.base.patient.on_dialysis]
    assert len(dialysis) == sweep.n_points // 6
