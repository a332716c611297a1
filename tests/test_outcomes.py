"""Lupus nephritis outcomes: dialysis rule, SLEDAI-2K, KDIGO response, metric rows, CLI, figure.

The model-level tests use a small test model registered here that plays the outcome roles with
closed-form curves: it reuses stein2019's compiled right-hand side in its post-peak branch, so
its two states are exactly ``E = exp(-k_fast t)`` and ``M = exp(-k_slow t)`` (no new kernel to
compile), and its observables are simple functions of them.
"""

import json
import math

import numpy as np
import pytest

import cartkin
from cartkin import cli, metrics, models
from cartkin.covariates.patient import DialysisSchedule, Patient
from cartkin.covariates.regimen import CarTDose, Regimen
from cartkin.errors import ScenarioError
from cartkin.models import Individual, Model, Observable, State
from cartkin.outcomes import (
    KDOQI_STEPWISE,
    CaseReport,
    DialysisRule,
    OutcomeSettings,
    SledaiSettings,
    apply_dialysis_rule,
    case_comparison,
    derived_columns,
    follow_kidney_function,
    response,
    schedule_sessions,
    sledai,
)
from cartkin.parameters import Parameter, ParameterTable
from cartkin.simulate import simulate

# -- dialysis rule ------------------------------------------------------------------------------
BOUNDARIES = [  # (edge, sessions just below, sessions at and above)
    (2.0, 3.0, 2.5),
    (3.0, 2.5, 2.0),
    (5.0, 2.0, 1.0),
    (10.0, 1.0, 0.0),
]


@pytest.mark.parametrize(("edge", "below", "above"), BOUNDARIES)
def test_dialysis_rule_each_boundary(edge, below, above):
    rule = KDOQI_STEPWISE
    assert float(rule.sessions(edge - 1e-9)) == below
    assert float(rule.sessions(edge)) == above  # on the edge: the upper band (KDOQI "Kr >= 2")
    assert float(rule.sessions(edge + 1e-9)) == above
    interval = float(rule.interval_days(edge - 1e-9))
    assert interval == pytest.approx(7.0 / below)


def test_dialysis_rule_ends_and_arrays():
    rule = KDOQI_STEPWISE
    kf = np.array([0.0, 1.0, 2.5, 4.0, 7.0, 10.0, 60.0, np.nan])
    np.testing.assert_array_equal(rule.sessions(kf)[:-1], [3, 3, 2.5, 2, 1, 0, 0])
    assert np.isnan(rule.sessions(kf)[-1])
    assert np.isinf(rule.interval_days(12.0))
    assert rule.dialysis_free_ml_min_173m2 == 10.0
    assert rule.next_threshold(2.4) == 3.0 and math.isinf(rule.next_threshold(11.0))
    assert len(rule.describe()) == 5 and "KDOQI" in rule.describe()[0]
    assert rule.with_dialysis_free(15.0).sessions(12.0) == 1.0


def test_dialysis_rule_refuses_bad_bands():
    with pytest.raises(ScenarioError, match="need 3 sessions_per_week"):
        DialysisRule((2.0, 5.0), (3.0, 0.0))
    with pytest.raises(ScenarioError, match="strictly increasing"):
        DialysisRule((5.0, 2.0), (3.0, 1.0, 0.0))
    with pytest.raises(ScenarioError, match="do not increase"):
        DialysisRule((2.0, 5.0), (1.0, 3.0, 0.0))
    with pytest.raises(ScenarioError, match="must be 0"):
        DialysisRule((2.0,), (3.0, 1.0))
    with pytest.raises(ScenarioError, match="above the previous band edge"):
        KDOQI_STEPWISE.with_dialysis_free(4.0)


def test_constant_function_gives_a_regular_schedule():
    t = np.array([0.0, 100.0])
    days = schedule_sessions(t, np.array([1.0, 1.0]), 0.0, 14.0)
    np.testing.assert_allclose(np.diff(days), 7.0 / 3.0, atol=2e-6)  # days rounded to 1e-6
    assert days[0] == 0.0 and days[-1] <= 14.0 and days.size == 7


def test_recovering_function_lengthens_the_intervals():
    # residual function 1 until day 20, then up by 0.1 per day to 12 at day 130
    t = np.array([0.0, 20.0, 130.0, 200.0])
    kf = np.array([1.0, 1.0, 12.0, 12.0])
    days = schedule_sessions(t, kf, 0.0, 200.0)
    gaps = np.diff(days)
    assert np.all(np.diff(gaps) >= -2e-6)  # intervals never shorten while function rises
    np.testing.assert_allclose(gaps[0], 7.0 / 3.0, atol=2e-6)
    expected = {7.0 / 3.0, 2.8, 3.5, 7.0}
    assert {round(g, 4) for g in gaps} == {round(g, 4) for g in expected}
    # no session once the function reaches 10 (day 110)
    assert days[-1] < 110.0
    # each session's interval is the rule's interval at that session's kidney function
    kf_at = np.interp(days[:-1], t, kf)
    np.testing.assert_allclose(gaps, KDOQI_STEPWISE.interval_days(kf_at), atol=2e-6)


def test_dialysis_restarts_when_function_falls_again():
    t = np.array([0.0, 10.0, 30.0, 40.0, 60.0])
    kf = np.array([12.0, 12.0, 12.0, 1.0, 1.0])
    days = schedule_sessions(t, kf, 0.0, 60.0)
    assert days.size > 0 and days[0] > 30.0  # nothing while dialysis-free
    assert float(KDOQI_STEPWISE.sessions(np.interp(days[0], t, kf))) > 0


def test_follow_kidney_function_keeps_sessions_before_day_0():
    given = DialysisSchedule(session_days=(-4.5, -2.5, -0.5, 2.5, 4.5), flu_removal_fraction=0.3)
    t = np.array([0.0, 30.0, 90.0])
    kf = np.array([1.0, 6.0, 6.0])
    new = follow_kidney_function(given, t, kf, from_day=0.0)
    assert isinstance(new, DialysisSchedule)
    assert new.session_days[:3] == (-4.5, -2.5, -0.5)
    assert new.flu_removal_fraction == 0.3
    assert new.session_days[3] == pytest.approx(-0.5 + 7.0 / 3.0)
    assert np.diff(new.session_days)[-1] == pytest.approx(7.0)  # once weekly at function 6
    assert follow_kidney_function(None, t, np.full(3, 20.0)) is None


# -- SLEDAI-2K ----------------------------------------------------------------------------------
def test_sledai_item_weights_sum_to_105():
    assert sum(sledai.ITEMS.values()) == 105
    assert len(sledai.ITEMS) == 24
    every = SledaiSettings(items=dict.fromkeys(sledai.ITEMS, True), window_days=0)
    assert sledai.score([0.0, 1.0], settings=every).total.tolist() == [105.0, 105.0]


INSTANT = SledaiSettings(window_days=0.0)


@pytest.mark.parametrize(
    ("argument", "item", "threshold", "below_points", "above_points"),
    [
        # Gladman 2002: proteinuria > 0.5 g/24h scores 4
        ("proteinuria_g_per_24h", "proteinuria", 0.5, 0, 4),
        # low complement: C3 below 0.9 g/L scores 2
        ("complement_c3_g_per_l", "low_complement", 0.9, 2, 0),
        # increased DNA binding: anti-dsDNA above 15 IU/mL scores 2
        ("anti_dsdna_iu_per_ml", "increased_dna_binding", 15.0, 0, 2),
    ],
)
def test_sledai_modelled_item_switches_at_its_threshold(
    argument, item, threshold, below_points, above_points
):
    values = np.array([threshold * (1 - 1e-6), threshold, threshold * (1 + 1e-6)])
    result = sledai.score(np.arange(3.0), **{argument: values}, settings=INSTANT)
    at_threshold = 0  # every threshold is strict: the threshold value itself does not score
    assert result.items[item].tolist() == [below_points, at_threshold, above_points]
    assert result.total.tolist() == result.items[item].tolist()
    assert result.modelled == (item,)


def test_sledai_window_keeps_an_item_for_10_days():
    t = np.arange(0.0, 30.0, 1.0)
    prot = np.where(t < 5.0, 2.0, 0.1)  # proteinuria ends after day 4
    scored = sledai.score(t, proteinuria_g_per_24h=prot)
    assert scored.items["proteinuria"][t <= 14.0].min() == 4.0  # day 4 + 10 d window
    assert scored.items["proteinuria"][t >= 15.0].max() == 0.0
    assert scored.at(14.5) == 4.0 and scored.at(15.0) == 0.0


def test_sledai_inputs_and_errors():
    settings = SledaiSettings(items={"arthritis": True, "rash": True}, window_days=0)
    scored = sledai.score([0.0, 1.0], proteinuria_g_per_24h=[1.0, 0.1], settings=settings)
    assert scored.total.tolist() == [10.0, 6.0]
    with pytest.raises(ScenarioError, match="Did you mean 'arthritis'"):
        SledaiSettings(items={"arthritus": True})
    with pytest.raises(ScenarioError, match="expected true or false"):
        SledaiSettings(items={"rash": 1})
    with pytest.raises(ScenarioError, match="scored from the model"):
        sledai.score([0.0], proteinuria_g_per_24h=[1.0],
                     settings=SledaiSettings(items={"proteinuria": True}))  # fmt: skip
    with pytest.raises(ScenarioError, match="window_days"):
        SledaiSettings(window_days=-1)
    with pytest.raises(ScenarioError, match=r"\[start_day, end_day\]"):
        SledaiSettings(items={"rash": (60.0, 0.0)})


def test_sledai_input_item_present_between_two_days():
    settings = SledaiSettings(items={"rash": (0.0, 60.0), "fever": True}, window_days=0)
    scored = sledai.score([0.0, 60.0, 61.0], settings=settings)
    assert scored.total.tolist() == [3.0, 3.0, 1.0]


def test_sledai_urine_items_unscorable_when_anuric():
    settings = SledaiSettings(items={"hematuria": True, "fever": True}, window_days=0)
    kf = np.array([0.5, 0.99, 1.0, 3.0])  # anuric below 1 mL/min/1.73m2 (assumption)
    scored = sledai.score(np.arange(4.0), proteinuria_g_per_24h=np.full(4, 2.0),
                          kidney_function_ml_min_173m2=kf, settings=settings)  # fmt: skip
    assert scored.urine_scorable.tolist() == [False, False, True, True]
    assert scored.total.tolist() == [
        1.0,
        1.0,
        9.0,
        9.0,
    ]  # fever only, then + proteinuria + hematuria
    off = SledaiSettings(items={"hematuria": True}, window_days=0, anuria_below_ml_min_173m2=None)
    assert sledai.score([0.0], kidney_function_ml_min_173m2=[0.1], settings=off).total[0] == 4.0


# -- KDIGO response times -----------------------------------------------------------------------
def test_response_times_on_a_straight_line():
    t = np.array([0.0, 60.0, 200.0])
    prot = np.array([6.0, 0.0, 0.0])  # falls by 0.1 g/24h per day
    # partial: <= 50% of 6 and < 3 -> day 30; complete: < 0.5 -> day 55
    assert response.partial_response_time(t, prot) == pytest.approx(30.0)
    assert response.complete_response_time(t, prot) == pytest.approx(55.0)


def test_partial_response_needs_both_the_fall_and_the_ceiling():
    t = np.array([0.0, 100.0])
    # from 10 g/24h: 50% fall at 5 g (day 50), but < 3 g only at day 70
    assert response.partial_response_time(t, np.array([10.0, 0.0])) == pytest.approx(70.0)
    # from 4 g/24h: < 3 g at day 25, 50% fall at 2 g (day 50)
    assert response.partial_response_time(t, np.array([4.0, 0.0])) == pytest.approx(50.0)


def test_response_needs_stable_kidney_function():
    t = np.array([0.0, 40.0, 60.0, 200.0])
    prot = np.array([6.0, 2.0, 0.0, 0.0])
    kf_falls = np.array([10.0, 9.0, 8.0, 8.0])  # below 85% of baseline from day 50
    assert math.isnan(response.complete_response_time(t, prot, kf_falls))
    kf_steady = np.array([10.0, 10.0, 9.0, 9.0])
    assert response.complete_response_time(t, prot, kf_steady) == pytest.approx(55.0)


def test_first_sessions_drop_time():
    t = np.array([0.0, 100.0])
    kf = np.array([1.0, 11.0])  # +0.1 per day: reaches 2 at day 10
    value, note = response.first_sessions_drop_time(t, kf, KDOQI_STEPWISE)
    assert value == pytest.approx(10.0) and "2" in note
    value, note = response.first_sessions_drop_time(t, kf + 20.0, KDOQI_STEPWISE)
    assert math.isnan(value) and "no dialysis need" in note


# -- a test model playing the outcome roles -----------------------------------------------------
K_FAST, K_SLOW = math.log(2) / 30.0, math.log(2) / 60.0
TABLE = ParameterTable(
    [
        Parameter("prot0", 6.0, "g/24h", 0.0, 50.0, "proteinuria at day 0", "assumption: test"),
        Parameter("prot_inf", 0.2, "g/24h", 0.0, 50.0, "proteinuria floor", "assumption: test"),
        Parameter("kf0", 1.5, "mL/min/1.73m2", 0.0, 200.0, "kidney function day 0",
                  "assumption: test"),
        Parameter("k_fast", K_FAST, "1/day", 1e-3, 5.0, "fast rate (stein alpha slot)",
                  "assumption: test"),
        Parameter("kf_max", 12.0, "mL/min/1.73m2", 0.0, 200.0, "recovered function",
                  "assumption: test"),
        Parameter("k_slow", K_SLOW, "1/day", 0.0, 1.0, "slow rate (stein beta slot)",
                  "assumption: test"),
        Parameter("c3_0", 0.5, "g/L", 0.0, 5.0, "C3 day 0", "assumption: test"),
        Parameter("c3_max", 1.2, "g/L", 0.0, 5.0, "C3 recovered", "assumption: test"),
        Parameter("dsdna0", 200.0, "IU/mL", 0.0, 1e4, "anti-dsDNA day 0 (stein rho slot)",
                  "assumption: test"),
        Parameter("dsdna_inf", 5.0, "IU/mL", 0.0, 1e4, "anti-dsDNA floor", "assumption: test"),
    ]
)  # fmt: skip
IX = {name: TABLE.index(name) for name in TABLE.names}


def _individualize(values, ctx):
    p = np.array(list(values.values()))
    # stein2019's rhs in its post-peak branch (flag = 1): dE = -p[3] E, dM = -p[5] M
    return Individual(p=p, y0=np.array([1.0, 1.0, 1.0]), t_stops=np.zeros(0),
                      jumps=np.zeros((0, 3)))  # fmt: skip


def _obs(fn):
    return lambda s, p: fn(s[:, 0], s[:, 1], p)


OUTCOME_MODEL = Model(
    name="test_lupus_outcomes",
    description="closed-form outcome curves for tests",
    states=[
        State("fast", "E", "-", "exp(-k_fast t)"),
        State("slow", "M", "-", "exp(-k_slow t)"),
        State("flag", "P", "-", "stein post-peak flag"),
    ],
    parameters=TABLE,
    observables=[
        Observable("cart_cells_per_ul", "cells/uL", "E", _obs(lambda e, m, p: e)),
        Observable(
            "proteinuria_g_per_24h",
            "g/24h",
            "",
            _obs(lambda e, m, p: p[IX["prot_inf"]] + (p[IX["prot0"]] - p[IX["prot_inf"]]) * e),
        ),
        Observable(
            "kidney_function_ml_min_173m2",
            "mL/min/1.73m2",
            "",
            _obs(lambda e, m, p: p[IX["kf_max"]] - (p[IX["kf_max"]] - p[IX["kf0"]]) * m),
        ),
        Observable(
            "complement_c3_g_per_l",
            "g/L",
            "",
            _obs(lambda e, m, p: p[IX["c3_max"]] - (p[IX["c3_max"]] - p[IX["c3_0"]]) * e),
        ),
        Observable(
            "anti_dsdna_iu_per_ml",
            "IU/mL",
            "",
            _obs(lambda e, m, p: p[IX["dsdna_inf"]] + (p[IX["dsdna0"]] - p[IX["dsdna_inf"]]) * e),
        ),
        Observable("ln_activity_index", "0-24", "", _obs(lambda e, m, p: 12.0 * e)),
    ],
    rhs=cartkin.models.get("stein2019").rhs,
    individualize=_individualize,
    roles={
        "cart": "cart_cells_per_ul",
        "proteinuria": "proteinuria_g_per_24h",
        "kidney_function": "kidney_function_ml_min_173m2",
        "complement": "complement_c3_g_per_l",
        "anti_dsdna": "anti_dsdna_iu_per_ml",
        "ln_activity": "ln_activity_index",
    },
    equations="dE = -k_fast E; dM = -k_slow M",
)

PATIENT = Patient(weight_kg=50.0, height_cm=160.0, age_years=16.0, sex="female",
                  dialysis=DialysisSchedule(session_days=(-4.5, -2.5, -0.5, 2.5, 4.5)))  # fmt: skip
REGIMEN = Regimen(cart=CarTDose(cells_per_kg=1e5))
T_DAYS = np.arange(0.0, 270.25, 0.25)


def _t_cross(level0, level_inf, threshold, k):
    """Day when level_inf + (level0 - level_inf) exp(-k t) reaches threshold."""
    return math.log((level0 - level_inf) / (threshold - level_inf)) / k


@pytest.fixture(scope="module")
def registered():
    models.register(OUTCOME_MODEL, replace=True)
    yield OUTCOME_MODEL
    models.unregister(OUTCOME_MODEL.name)


@pytest.fixture(scope="module")
def result(registered):
    return simulate(registered, PATIENT, REGIMEN, T_DAYS)


def test_metric_rows_match_the_closed_form(result):
    table = metrics.compute(result)
    # proteinuria 0.2 + 5.8 exp(-k_fast t): complete response (< 0.5) and partial (< 3 g,
    # which comes after the 50% fall to 3 g: the same threshold) at closed-form days
    assert table.value("TCR_PROT") == pytest.approx(_t_cross(6.0, 0.2, 0.5, K_FAST), abs=1e-3)
    assert table.value("TPR_PROT") == pytest.approx(_t_cross(6.0, 0.2, 3.0, K_FAST), abs=1e-3)
    assert table.value("PROT_D0") == pytest.approx(6.0)
    assert table.value("PROT_D90") == pytest.approx(0.2 + 5.8 * math.exp(-90 * K_FAST), rel=1e-6)
    kf90 = 12.0 - 10.5 * math.exp(-90 * K_SLOW)
    assert table.value("KF_D90") == pytest.approx(kf90, rel=1e-6)
    assert table.value("DIAL_SPW_D0") == 3.0
    assert table.value("DIAL_SPW_D90") == float(KDOQI_STEPWISE.sessions(kf90))
    # function 12 - 10.5 exp(-k_slow t) reaches 2 (first lengthening) and 10 (dialysis-free)
    assert table.value("TDIAL_LONGER") == pytest.approx(_t_cross(1.5, 12.0, 2.0, K_SLOW), abs=1e-3)
    assert table.value("TDIAL_FREE") == pytest.approx(_t_cross(1.5, 12.0, 10.0, K_SLOW), abs=1e-3)
    kf_end = 12.0 - 10.5 * math.exp(-270 * K_SLOW)
    assert kf_end > 10.0 and math.isnan(table.value("DIAL_INT_END"))
    assert "no dialysis need" in table["DIAL_INT_END"].note
    # SLEDAI-2K at day 0: proteinuria 4 + low C3 2 + DNA binding 2 = 8 (the case's baseline)
    assert table.value("SLEDAI_D0") == 8.0
    # at the end: proteinuria 0.2 + 5.8 * 2^-9 < 0.5, C3 > 0.9, anti-dsDNA 5 + 195 * 2^-9 < 15
    assert table.value("SLEDAI_END") == 0.0
    assert table.value("LN_ACT_D90") == pytest.approx(12.0 * math.exp(-90 * K_FAST), rel=1e-6)
    json.dumps(table.as_dicts(), allow_nan=False)


def test_no_outcome_rows_without_the_roles():
    res = simulate("stein2019", PATIENT, REGIMEN, np.arange(0.0, 31.0))
    names = metrics.compute(res).names
    assert not any(
        n.startswith(("PROT", "KF_", "DIAL", "SLEDAI", "TDIAL", "LN_ACT")) for n in names
    )


def test_sledai_row_reports_the_anuric_caveat(result):
    settings = OutcomeSettings(sledai=SledaiSettings(anuria_below_ml_min_173m2=2.0))
    table = metrics.compute(result, outcomes=settings)
    assert "unscorable" in table["SLEDAI_D0"].note
    assert table.value("SLEDAI_D0") == 4.0  # proteinuria not scorable: C3 2 + DNA 2


def test_derived_columns_and_case_comparison(result):
    case = CaseReport("test case", {"sledai2k": [(0.0, 8.0), (270.0, 4.0)],
                                    "dialysis_interval_days": [(270.0, 7.0)],
                                    "ln_chronicity_index": [(120.0, 7.0)]})  # fmt: skip
    settings = OutcomeSettings(case=case)
    cols = derived_columns(result, settings)
    assert cols["dialysis_sessions_per_week"][0] == 3.0
    assert cols["sledai2k_total"][0] == 8.0 and cols["sledai2k_total"].shape == T_DAYS.shape
    rows = case_comparison(result, settings)
    by = {(r["quantity"], r["day"]): r for r in rows}
    assert by[("sledai2k", 0.0)]["model"] == 8.0
    assert by[("dialysis_interval_days", 270.0)]["reported"] == 7.0
    assert by[("ln_chronicity_index", 120.0)]["model"] is None  # not a model output
    with pytest.raises(ScenarioError, match="Did you mean 'sledai2k'"):
        CaseReport("x", {"sledai": [(0.0, 8.0)]})


def test_schedule_follows_the_simulated_function(result):
    followed = apply_dialysis_rule(
        result, OutcomeSettings(dialysis_schedule="follow_kidney_function")
    )
    days = np.asarray(followed.context.patient.dialysis.session_days)
    assert days[:3].tolist() == [-4.5, -2.5, -0.5]
    gaps = np.diff(days[days >= 0.0])
    assert gaps[0] == pytest.approx(7.0 / 3.0) and gaps.max() == pytest.approx(7.0)
    # no session after the function reaches 10 (dialysis-free)
    assert days[-1] < _t_cross(1.5, 12.0, 10.0, K_SLOW)
    np.testing.assert_array_equal(followed.observables["proteinuria_g_per_24h"],
                                  result.observables["proteinuria_g_per_24h"])  # fmt: skip


SCENARIO = """
[scenario]
name = "outcome test"
model = "test_lupus_outcomes"
t_end_days = 270.0
output_step_days = 1.0

[patient]
weight_kg = 50.0
height_cm = 160.0
age_years = 16.0
sex = "female"

[patient.dialysis]
session_days = [-4.5, -2.5, -0.5]

[cart]
cells_per_kg = 1.0e5

[outcomes]
days = [120, 270]
dialysis_schedule = "follow_kidney_function"

[outcomes.sledai]
items = { arthritis = true }

[case]
source = "test"
[case.reported]
sledai2k = [[0.0, 8.0], [270.0, 4.0]]
proteinuria_g_per_24h = [[270.0, 2.8]]
"""


def test_cli_json_csv_and_figure(registered, tmp_path, capsys):
    path = tmp_path / "case.toml"
    path.write_text(SCENARIO)
    csv_path, fig_path = tmp_path / "out.csv", tmp_path / "fig.png"
    code = cli.main(["simulate", str(path), "--format", "json", "--csv", str(csv_path),
                     "--figure", str(fig_path)])  # fmt: skip
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    arm = payload["arms"][0]
    values = {m["name"]: m["value"] for m in arm["metrics"]}
    assert values["SLEDAI_D0"] == 12.0  # 8 from the model + arthritis 4
    assert "PROT_D120" in values and "PROT_D90" not in values
    assert values["DIAL_SPW_D0"] == 3.0
    assert {r["quantity"] for r in arm["case_comparison"]} == {"sledai2k", "proteinuria_g_per_24h"}
    assert payload["case"]["source"] == "test" and "not an estimate" in payload["case"]["caveat"]
    header = csv_path.read_text().splitlines()[0].split(",")
    assert {"dialysis_sessions_per_week", "sledai2k_total", "sledai2k_proteinuria"} <= set(header)
    assert fig_path.stat().st_size > 10_000


def test_scenario_outcome_tables_are_checked(registered, tmp_path):
    for bad, match in (
        ("[outcomes]\ndays = [90]\nschedule = 1\n", "Did you mean 'dialysis_schedule'"),
        ("[outcomes.sledai]\nitems = { rahs = true }\n", "Did you mean 'rash'"),
        ("[case.reported]\nsledai2k = [[0.0]]\n", r"expected \[day, value\]"),
        ('[outcomes]\ndialysis_schedule = "weekly"\n', "follow_kidney_function"),
        ("[outcomes]\ndialysis_free_ml_min_173m2 = 4.0\n", "above the previous band edge"),
    ):
        text = SCENARIO.split("[outcomes]")[0] + bad
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(ScenarioError, match=match) as info:
            from cartkin.scenario import load_scenario

            load_scenario(path)
        assert "bad.toml" in str(info.value)


def test_kidney_panel_figure(result):
    from cartkin import plot

    case = CaseReport("Zheng 2025", {"proteinuria_g_per_24h": [(270.0, 2.8)],
                                     "ln_activity_index": [(120.0, 1.0)],
                                     "ln_chronicity_index": [(120.0, 7.0)]})  # fmt: skip
    settings = OutcomeSettings(case=case)
    fig = plot.plot_kidney_response(result, settings)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_visible()]
    assert any("proteinuria" in s for s in labels) and any("SLEDAI" in s for s in labels)
    assert any("sessions/week" in s for s in labels)
    full = plot.plot_result(result, outcomes=settings)
    assert len(full.subfigs) == 2
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("chronicity 7/12" in t for t in texts)


def test_outcomes_of_many_patients_in_one_call():
    """A leading patient axis: each row equals the one-patient answer."""
    from cartkin.outcomes import derived_series

    t = np.arange(0.0, 40.0)
    prot = np.vstack([6.0 * np.exp(-0.1 * t), np.full(t.size, 2.0)])
    kf = np.vstack([np.linspace(1.0, 11.0, t.size), np.full(t.size, 0.5)])
    batch = derived_series(t, {"proteinuria": prot, "kidney_function": kf})
    assert batch["sledai2k"].shape == (2, t.size)
    for i in range(2):
        one = derived_series(t, {"proteinuria": prot[i], "kidney_function": kf[i]})
        for name in ("sledai2k", "dialysis_sessions_per_week", "proteinuria_g_per_24h"):
            np.testing.assert_array_equal(batch[name][i], one[name])
    assert batch["sledai2k"][1].max() == 0.0  # anuric throughout: proteinuria unscorable
    with pytest.raises(ScenarioError, match="last axis"):
        sledai.score(t, proteinuria_g_per_24h=prot.T)


def test_kidney_panel_overlays_arms_and_cli_writes_it(registered, tmp_path, capsys):
    from cartkin import plot

    text = SCENARIO.replace(
        "[outcomes]",
        '[[variant]]\nlabel = "slow"\nparameters = { k_slow = 0.005 }\n\n'
        '[[variant]]\nlabel = "fast"\nparameters = { k_slow = 0.02 }\n\n[outcomes]',
    )
    path = tmp_path / "arms.toml"
    path.write_text(text)
    fig_path = tmp_path / "arms.png"
    assert cli.main(["simulate", str(path), "--figure", str(fig_path)]) == 0
    out = capsys.readouterr()
    assert "reported by the case" in out.out and "slow" in out.out
    assert (tmp_path / "arms_kidney.png").stat().st_size > 10_000
    from cartkin.scenario import load_scenario

    results = load_scenario(path).run()
    fig = plot.plot_kidney_response(results)
    kf_axis = next(ax for ax in fig.axes if "residual" in ax.get_ylabel())
    assert [line.get_label() for line in kf_axis.get_lines()][:2] == ["slow", "fast"]


def test_show_lists_the_outcome_rules_with_sources(registered, capsys):
    assert cli.main(["show", registered.name]) == 0
    text = capsys.readouterr().out
    assert "KDOQI 2006" in text and "Gladman 2002" in text and "KDIGO 2024" in text
    assert "assumption: dialysis-free at >= 10" in text


def test_case_model_values_for_many_patients(result):
    from cartkin.outcomes import case_model_values

    case = CaseReport("t", {"sledai2k": [(0.0, 8.0), (270.0, 4.0)],
                            "proteinuria_g_per_24h": [(100.1, 2.8), (400.0, 1.0)],
                            "ln_chronicity_index": [(120.0, 7.0)]})  # fmt: skip
    settings = OutcomeSettings(case=case)
    by_role = {r: result.role(r) for r in ("proteinuria", "kidney_function", "complement",
                                           "anti_dsdna")}  # fmt: skip
    stacked = {r: np.vstack([v, v]) for r, v in by_role.items()}
    values = case_model_values(result.t_days, stacked, settings)
    assert set(values) == {"sledai2k", "proteinuria_g_per_24h"}
    days, prot = values["proteinuria_g_per_24h"]
    assert days.tolist() == [100.1, 400.0]
    assert prot.shape == (2, 2) and math.isnan(prot[0, 1])  # day 400 beyond the horizon
    assert prot[1, 0] == pytest.approx(np.interp(100.1, result.t_days, by_role["proteinuria"]))
    np.testing.assert_array_equal(values["sledai2k"][1][0], [8.0, 0.0])


def test_sessions_at_a_named_day_between_grid_points_are_a_band_value(result):
    t_edge = _t_cross(1.5, 12.0, 2.0, K_SLOW)  # about day 4.22: sessions 3 -> 2.5
    day = round(t_edge + 0.005, 3)  # between the output times 4.0 and 4.25
    table = metrics.compute(result, dense_step_days=None, outcomes=OutcomeSettings(days=(day,)))
    name = f"DIAL_SPW_D{day:g}".replace(".", "P")
    assert table.value(name) == 2.5  # not a blend of 3 and 2.5


def test_scenario_dialysis_free_threshold_changes_the_rule(registered, tmp_path):
    from cartkin.scenario import load_scenario

    path = tmp_path / "free.toml"
    path.write_text(
        SCENARIO.replace("[outcomes]\n", "[outcomes]\ndialysis_free_ml_min_173m2 = 15.0\n")
    )
    rule = load_scenario(path).outcomes.dialysis_rule
    assert rule.dialysis_free_ml_min_173m2 == 15.0
    assert float(rule.sessions(12.0)) == 1.0 and float(rule.sessions(15.0)) == 0.0


def test_response_times_for_many_patients_equal_one_at_a_time():
    t = np.linspace(0.0, 200.0, 401)
    prot = np.vstack([6.0 * np.exp(-t / 40.0), 10.0 * np.exp(-t / 80.0), np.full(t.size, 4.0)])
    kf = np.vstack([np.full(t.size, 10.0), 10.0 - t / 20.0, np.full(t.size, 0.0)])
    for fn in (response.partial_response_time, response.complete_response_time):
        batch = fn(t, prot, kf)
        assert batch.shape == (3,)
        for i in range(3):
            one = fn(t, prot[i], kf[i])
            assert (math.isnan(one) and math.isnan(batch[i])) or one == batch[i]
    assert math.isnan(response.partial_response_time(t, prot, kf)[2])  # never falls
