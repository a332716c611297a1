"""Metrics on curves with known answers."""

import json
import math

import numpy as np
import pytest

from cartkin import metrics
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import CarTDose, Lymphodepletion, Regimen
from cartkin.simulate import simulate

ADULT = Patient(
    weight_kg=70.0, height_cm=170.0, age_years=22.0, sex="female", egfr_ml_min_173m2=100
)
ERLANGEN = Regimen(cart=CarTDose(cells_per_kg=1e6))


# -- building blocks on synthetic curves --------------------------------------------------------
def test_half_life_of_a_mono_exponential_is_exact():
    t = np.linspace(0.0, 50.0, 26)
    y = 40.0 * np.exp(-0.1 * t)
    hl, note = metrics.log_linear_half_life(t, y, 10.0, 40.0)
    assert hl == pytest.approx(math.log(2) / 0.1, rel=1e-12)
    assert "10" in note and "40" in note
    hl, note = metrics.log_linear_half_life(t, y[::-1], 10.0, 40.0)
    assert math.isnan(hl) and "not declining" in note
    hl, note = metrics.log_linear_half_life(t, y, 10.0, 12.0)
    assert math.isnan(hl) and "fewer than 3" in note


def test_auc_of_a_mono_exponential():
    t = np.linspace(0.0, 40.0, 40_001)
    y = 5.0 * np.exp(-0.2 * t)
    exact = 5.0 / 0.2 * (1 - math.exp(-0.2 * 28.0))
    assert metrics.auc_trapezoid(t, y, 28.0) == pytest.approx(exact, rel=1e-8)
    # a straight line is integrated exactly, with the end interpolated between samples
    assert metrics.auc_trapezoid([0.0, 10.0, 30.0], [0.0, 10.0, 30.0], 28.0) == pytest.approx(392.0)
    assert math.isnan(metrics.auc_trapezoid([0.0, 20.0], [1.0, 1.0], 28.0))


def test_crossings_and_time_above_on_a_triangle():
    t = np.array([0.0, 10.0, 20.0, 30.0])
    y = np.array([0.0, 10.0, 0.0, 0.0])  # peak 10 at day 10
    assert metrics.crossing_time(t, y, 5.0, "above") == pytest.approx(5.0)
    assert metrics.crossing_time(t, y, 5.0, "below", after=5.0) == pytest.approx(15.0)
    assert math.isnan(metrics.crossing_time(t, y, 11.0, "above"))
    assert metrics.crossing_time(t, y, 1.0, "below") == 0.0  # already below at the first sample
    assert metrics.time_above(t, y, 5.0) == pytest.approx(10.0)
    assert metrics.cmax_tmax(t, y) == (10.0, 10.0)
    with pytest.raises(ValueError, match="direction"):
        metrics.crossing_time(t, y, 1.0, "up")


# -- on simulations --------------------------------------------------------------------------
def test_stein_metrics_against_the_closed_form():
    res = simulate("stein2019", ADULT, ERLANGEN, np.arange(0.0, 501.0))
    table = metrics.compute(res)
    cmax, tmax, alpha, fb, beta, foldx = 24000.0, 9.3, 0.16, 0.0079, 0.0032, 3900.0
    assert table.value("CMAX") == pytest.approx(cmax / 2000.0, rel=1e-6)
    assert table.value("TMAX") == pytest.approx(tmax)
    assert table.value("CMAX_COPIES") == pytest.approx(cmax, rel=1e-6)
    rho = math.log(foldx) / tmax
    rise = (cmax - cmax / foldx) / rho
    fall = cmax * ((1 - fb) * (1 - math.exp(-alpha * (28 - tmax))) / alpha
                   + fb * (1 - math.exp(-beta * (28 - tmax))) / beta)  # fmt: skip
    assert table.value("AUC0_28D") == pytest.approx((rise + fall) / 2000.0, rel=1e-4)
    # daily samples miss the peak: the observation-time AUC differs, but only a little
    assert table.value("AUC0_28D_OBS") != table.value("AUC0_28D")
    assert table.value("AUC0_28D_OBS") == pytest.approx(table.value("AUC0_28D"), rel=0.02)
    # the terminal phase is the memory pool alone: half-life ln2/beta
    assert table.value("LAMZHL") == pytest.approx(math.log(2) / beta, rel=1e-3)
    # THALF_INIT: the ln-linear least-squares fit over [Tmax, Tmax + 21 d] of the closed form
    s = np.linspace(0.0, 21.0, 2101)
    closed = (1 - fb) * np.exp(-alpha * s) + fb * np.exp(-beta * s)
    expected = math.log(2) / -np.polyfit(s, np.log(closed), 1)[0]
    assert table.value("THALF_INIT") == pytest.approx(expected, rel=1e-3)
    assert math.log(2) / alpha < table.value("THALF_INIT") < 1.1 * math.log(2) / alpha
    # persistence on stein2019's own assay (qPCR): the closed form equals 50 copies/ug at TLST
    tlst = table.value("TLST")
    level = cmax * (
        (1 - fb) * math.exp(-alpha * (tlst - tmax)) + fb * math.exp(-beta * (tlst - tmax))
    )
    assert level == pytest.approx(50.0, rel=1e-3)
    assert table["CLST"].unit == "copies/ug" and table.value("CLST") == pytest.approx(50, rel=1e-3)
    # an explicit flow LLOQ reads the cells/uL curve instead
    flow = metrics.compute(res, lloq_cells_per_ul=0.05)
    assert flow["CLST"].unit == "cells/uL" and flow.value("CLST") == pytest.approx(0.05, rel=1e-3)
    assert flow.value("TLST") < tlst
    assert "B_NADIR" not in table and "IL6_MAX" not in table


def test_sle_cart_metrics_have_units_and_reasons():
    res = simulate("sle_cart", ADULT, ERLANGEN, np.arange(0.0, 61.0))
    table = metrics.compute(res)
    assert table["TMAX"].unit == "day" and table["CMAX"].unit == "cells/uL"
    assert table["FLU_AUC"].value == pytest.approx(res.exposure.auc_mg_h_per_l)
    assert table.value("FLU_AUC_GE13P8") is True and table.value("FLU_AUC_GE20") is False
    # 60 days is too short for B-cell recovery: NaN with the reason
    assert math.isnan(table.value("TRECOV")) and "within the horizon (60 d)" in table["TRECOV"].note
    assert math.isnan(table.value("APLASIA_DUR")) and "still < 10" in table["APLASIA_DUR"].note
    assert table.value("TAPLASIA") < table.value("TMAX")
    assert math.isnan(table.value("ADSDNA_D90_PCT"))
    payload = json.dumps(table.as_dicts(), allow_nan=False)
    assert '"value": null' in payload


@pytest.mark.parametrize(("model", "nadir"),
                         [("sle_cart_v1", 100.0), ("sle_cart_v2", 50.0), ("sle_cart", 20.0)])
def test_no_b_cell_aplasia_without_lymphodepletion_at_a_tiny_dose(model, nadir):
    """1e4 cells/kg without lymphodepletion: B cells dip (v2's C_50, fitted to the 110-day
    B-cell return, makes even 0.01 CAR-T/uL inhibit production; v3's CAR-T still expand without
    lymphodepletion and kill B cells and their precursors) but never reach aplasia."""
    none = Regimen(
        lymphodepletion=Lymphodepletion(flu_mg_m2_per_day=0.0, cy_mg_m2=0.0, cy_days=()),
        cart=CarTDose(cells_per_kg=1e4),
    )
    table = metrics.compute(simulate(model, ADULT, none, np.arange(0.0, 200.0)))
    assert math.isnan(table.value("TAPLASIA")) and "never below 10" in table["TAPLASIA"].note
    assert math.isnan(table.value("TRECOV")) and "never below 10" in table["TRECOV"].note
    assert table.value("B_NADIR") > nadir


def test_one_b_cell_threshold_sets_aplasia_and_recovery():
    res = simulate("sle_cart", ADULT, ERLANGEN, np.arange(0.0, 366.0))
    for threshold in (1.0, 10.0, 50.0):
        table = metrics.compute(res, b_cell_threshold_cells_per_ul=threshold)
        # aplasia ends exactly when B cells are counted as recovered
        assert table.value("APLASIA_DUR") == pytest.approx(
            table.value("TRECOV") - table.value("TAPLASIA"), rel=1e-12
        )
        b = res.evaluate([table.value("TRECOV")]).role("b_cells")[0]
        assert b == pytest.approx(threshold, rel=1e-3)
    low = metrics.compute(res, b_cell_threshold_cells_per_ul=1.0)
    high = metrics.compute(res, b_cell_threshold_cells_per_ul=50.0)
    assert low.value("TRECOV") < high.value("TRECOV")
    assert metrics.B_CELL_THRESHOLD_CELLS_PER_UL == 10.0
    with pytest.raises(ValueError, match="lloq_cells_per_ul"):
        metrics.compute(res, lloq_cells_per_ul=-1.0)
    with pytest.raises(ValueError, match="one assay only"):
        metrics.compute(res, lloq_cells_per_ul=0.05, lloq_copies_per_ug=50.0)


def test_lloq_units_and_blq_in_the_observed_auc():
    # v2's fixed 2000 copies per cell/uL (v3 derives copies from the nucleated cells, about
    # 70-200 copies per cell/uL, so there 50 copies/ug is the less sensitive LLOQ)
    res = simulate("sle_cart_v2", ADULT, ERLANGEN, np.arange(0.0, 61.0))
    flow = metrics.compute(res)  # sle_cart's primary assay is flow cytometry
    assert flow["CLST"].unit == "cells/uL" and "LLOQ 0.05 cells/uL" in flow["CLST"].note
    qpcr = metrics.compute(res, lloq_copies_per_ug=50.0)
    assert qpcr["CLST"].unit == "copies/ug"
    # 50 copies/ug is 0.025 cells/uL at 2000 copies per cell/uL: CAR-T stay quantifiable longer
    assert qpcr.value("TLST") > flow.value("TLST")
    # BLQ samples count as zero in the observed AUC: a higher LLOQ removes the low samples
    cart = res.role("cart")
    lloq = 0.5 * float(cart.max())
    blq = metrics.compute(res, lloq_cells_per_ul=lloq)
    expected = metrics.auc_trapezoid(res.t_days, np.where(cart < lloq, 0.0, cart), 28.0)
    assert blq.value("AUC0_28D_OBS") == pytest.approx(expected, rel=1e-12)
    assert blq.value("AUC0_28D_OBS") < flow.value("AUC0_28D_OBS")
    assert "BLQ" in blq["AUC0_28D_OBS"].note
