"""B-cell recovery as a censored time: the Kaplan-Meier estimator, the paired comparison, and the
selection bias of issue 15 that they remove (stand-in engines: tests/sweep_engines.py)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from cartkin.cli import main
from cartkin.sweep import open_store, run_sweep, summarize
from cartkin.sweep.recovery import kaplan_meier, km_quantiles, paired_recovery, recovery_times

sys.path.insert(0, str(Path(__file__).parent))
from sweep_engines import base_scenario, bias_engine

BIAS = base_scenario("selection bias", lymphodepletion=False) + """
[sweep]
n_patients = 100
seed = 1
metrics = ["TRECOV"]

[sweep.axes]
"patient.egfr_ml_min_173m2" = [120, "dialysis"]

[sweep.dialysis]
session_days = [-4.5, -2.5, -0.5]
"""


def test_kaplan_meier_by_hand_with_ties_and_censoring():
    # times 1, 2, 2(censored), 3, 4(censored), 5: at risk 6, 5, -, 3, -, 1
    time = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 4.0])
    event = np.array([True, True, True, False, True, False])
    t, s = kaplan_meier(time, event)
    assert t.tolist() == [1.0, 2.0, 3.0, 5.0]
    expected = np.cumprod([5 / 6, 4 / 5, 2 / 3, 0.0])
    assert s == pytest.approx(expected)
    # S: 0.833, 0.667, 0.444, 0 -> q25 at 2, median at 3, q75 at 5
    assert km_quantiles(time, event, [0.25, 0.5, 0.75]).tolist() == [2.0, 3.0, 5.0]


def test_km_quantiles_without_censoring_are_the_empirical_ones_and_nan_when_not_reached():
    rng = np.random.default_rng(3)
    time = rng.exponential(50.0, 201)
    q = km_quantiles(time, np.ones(201, bool), [0.25, 0.5, 0.75])
    assert q == pytest.approx(np.quantile(time, [0.25, 0.5, 0.75], method="inverted_cdf"))
    # 60% censored at the horizon: the median is not reached, the first quartile is
    event = np.arange(10) < 4
    time = np.where(event, np.arange(10.0), 270.0)
    q25, median = km_quantiles(time, event, [0.25, 0.5])
    assert q25 == 2.0 and np.isnan(median)
    assert np.isnan(km_quantiles([], [], [0.5])).all()
    with pytest.raises(ValueError, match="NaN"):
        kaplan_meier([1.0, np.nan], [True, True])


def test_recovery_times_treat_never_aplastic_as_day_0_and_censor_at_the_horizon():
    time, event = recovery_times([False, True, True], [np.nan, 80.0, np.nan], 270.0)
    assert time.tolist() == [0.0, 80.0, 270.0]
    assert event.tolist() == [True, True, False]


def test_paired_recovery_counts_known_orderings_only():
    ta, ea = recovery_times([True, True, False, True], [50.0, np.nan, np.nan, 90.0], 270.0)
    tb, eb = recovery_times([True, True, True, True], [60.0, np.nan, 30.0, np.nan], 270.0)
    out = paired_recovery(ta, ea, tb, eb, 270.0)
    # pair 0: later; 1: both censored; 2: later (0 -> 30); 3: later (90 -> censored)
    assert out["n_pairs"] == 4
    assert out["share_b_later"] == 0.75 and out["share_undetermined"] == 0.25
    assert out["share_b_earlier"] == 0.0 and out["share_tied"] == 0.0
    assert out["median_diff_days"] == pytest.approx(np.median([10.0, 0.0, 30.0, 180.0]))


def test_km_and_paired_summaries_do_not_show_the_selection_bias(tmp_path, capsys):
    """Issue 15: every patient recovers at least as late on dialysis, but TRECOV over the
    aplastic patients only (50 of 100 at eGFR 120, 87 on dialysis) has the earlier median on
    dialysis. The KM quantiles over all patients and the paired comparison must not."""
    path = tmp_path / "bias.toml"
    path.write_text(BIAS)
    out = tmp_path / "bias.zarr"
    run_sweep(path, out, engine=bias_engine)
    ds = open_store(out)
    assert ds.APLASIA.values.sum(axis=1).tolist() == [50, 87]
    s = summarize(out)
    f = s.fields
    # the construction reproduces the bias in the recovered-only quantiles ...
    assert f["TRECOV_median"][1] < f["TRECOV_median"][0]
    # ... but the censored KM quantiles order the arms as every patient does
    for q in ("q25", "median", "q75"):
        assert f[f"TRECOV_KM_{q}"][1] > f[f"TRECOV_KM_{q}"][0], q
    assert f["TRECOV_KM_median"].tolist() == [0.0, 76.0]
    assert f["TRECOV_n_censored"].tolist() == [1, 1]
    assert f["p_aplasia"].tolist() == [0.5, 0.87]
    paired = s.paired("patient.egfr_ml_min_173m2", 120)
    assert paired["share_b_earlier"][1] == 0.0
    assert paired["share_b_later"][1] == pytest.approx(0.86)
    assert paired["share_tied"][1] == pytest.approx(0.13)
    assert paired["share_undetermined"][1] == pytest.approx(0.01)
    assert paired["median_diff_days"][1] == 10.0
    assert paired["share_tied"][0] == pytest.approx(0.99)  # the reference against itself
    with pytest.raises(ValueError, match="not an axis value"):
        s.paired("patient.egfr_ml_min_173m2", 60)
    # the report says KM and censored, beside P(aplasia), and the paired columns
    assert main(["report", str(out), "--paired", "patient.egfr_ml_min_173m2=120"]) == 0
    table = capsys.readouterr().out
    assert "TRECOV KM censored" in table and "P(aplasia)" in table and "later vs 120" in table
    assert "0.86" in table and "76 [51, 158]" in table
    assert main(["report", str(out), "--format", "csv", "--paired",
                 "patient.egfr_ml_min_173m2"]) == 0  # fmt: skip
    csv = capsys.readouterr().out
    assert "TRECOV_KM_median" in csv.splitlines()[0] and "TRECOV_n_censored" in csv
    assert "paired_share_b_later" in csv.splitlines()[0]
    assert main(["report", str(out), "--paired", "cart.cells_per_kg"]) == 2
    assert "--paired cart.cells_per_kg" in capsys.readouterr().err
