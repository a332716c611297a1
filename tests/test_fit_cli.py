"""cartkin fit: JSON schema of the result, the table, the motivating case, usage errors."""

import json

import numpy as np
import pandas as pd
import pytest

from cartkin.cli import main
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import Regimen, build_context
from cartkin.simulate import simulate_context

SCENARIO = """
[scenario]
name = "one patient"
model = "stein2019"
[patient]
weight_kg = 60.0
height_cm = 165.0
age_years = 30.0
sex = "female"
egfr_ml_min_173m2 = 90.0
[cart]
cells_per_kg = 1.0e6
[fit]
free = ["alpha", "beta"]
free_error = "all"
starts = 2
"""


@pytest.fixture
def files(tmp_path):
    scenario = tmp_path / "fit.toml"
    scenario.write_text(SCENARIO)
    patient = Patient(weight_kg=60, height_cm=165, age_years=30, sex="female",
                      egfr_ml_min_173m2=90)  # fmt: skip
    ctx = build_context(patient, Regimen(cart={"cells_per_kg": 1e6}))
    t = np.array([3.0, 7, 10, 14, 21, 28, 42, 60, 90, 120, 180])
    y = simulate_context("stein2019", ctx, t).observables["transgene_copies_per_ug"]
    dv = y * np.exp(np.random.default_rng(0).normal(0, 0.3, t.size))
    cens = (dv < 300.0).astype(int)
    frame = pd.DataFrame({"id": 1, "time_days": t, "observable": "transgene_copies_per_ug",
                          "value": np.where(cens == 1, np.nan, dv), "unit": "copies/ug",
                          "lloq": 300.0, "cens": cens})  # fmt: skip
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    return scenario, data


def test_fit_json_schema(files, capsys, tmp_path):
    scenario, data = files
    out = tmp_path / "res.json"
    assert main(["fit", str(scenario), str(data), "--format", "json", "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(out.read_text())
    assert set(doc["estimates"]) == {"alpha", "beta", "transgene_copies_per_ug.sigma_add"}
    for est in doc["estimates"].values():
        assert {"value", "unit", "se", "ci_low", "ci_high", "identifiable"} <= set(est)
        assert est["value"] > 0
    assert doc["estimates"]["alpha"]["unit"] == "1/day"
    assert isinstance(doc["objective"], float) and isinstance(doc["converged"], bool)
    assert {"aic", "bic", "starts", "kind"} <= set(doc) and doc["kind"] == "ml"
    assert len(doc["starts"]) == 2
    preds = doc["predictions"]
    assert len(preds) == 11
    for rec in preds:
        assert {"id", "time", "observable", "dv", "pred", "ipred", "cens"} <= set(rec)
    cens = [r for r in preds if r["cens"] == 1]
    assert cens and all(r["limit"] == 300.0 and r["res"] is None for r in cens)


def test_fit_table_and_free_override(files, capsys):
    scenario, data = files
    assert main(["fit", str(scenario), str(data), "--free", "alpha", "--no-profile"]) == 0
    text = capsys.readouterr().out
    assert "maximum-likelihood estimate" in text and "alpha" in text and "-2LL" in text


@pytest.fixture(scope="module")
def case_fit():
    """`cartkin fit` on the motivating case (sle_cart v3, full profiles; about 15 s)."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["fit", "scenarios/adolescent_hemodialysis_fit.toml", "--format", "json"])
    assert code == 0
    return json.loads(buf.getvalue())


def test_motivating_case_fit_is_a_scenario(case_fit):
    doc = case_fit
    assert doc["model"] == "sle_cart"
    assert doc["kind"] == "scenario" and "not an estimate" in doc["label"]
    free = {"CI_50", "k_L", "k_heal", "u_C"}
    assert set(doc["estimates"]) == free and set(doc["unidentified"]) <= free
    # the targets at 4 and 9 months are met within their stated spreads / bands
    fitted = {t["label"]: t["fitted"] for t in doc["target_values"]}
    assert fitted["sledai2k@0d ~ N(8, 1)"] == 8.0
    assert fitted["sledai2k@270d ~ N(4, 1)"] == 4.0
    assert abs(fitted["proteinuria_g_per_24h@270d ~ N(2.8, 0.3)"] - 2.8) < 2 * 0.3
    assert 5.0 <= fitted["kidney_function_ml_min_173m2@270d in [5, 10]"] < 10.0
    assert abs(fitted["ln_activity_index@120d ~ N(1, 0.5)"] - 1.0) < 2 * 0.5
    assert fitted["CMAX in [0.5, inf]"] > 0.5
    # identified parameters get both profile ends, around the estimate
    for name in set(doc["estimates"]) - set(doc["unidentified"]):
        e = doc["estimates"][name]
        assert e["ci_low"] is None or e["ci_low"] < e["value"]
        assert e["ci_high"] is None or e["ci_high"] > e["value"]


def test_motivating_case_fit_predicts_beyond_nine_months(case_fit):
    rows = case_fit["outcome_predictions"]
    by = {(r["quantity"], r["day"]): r for r in rows}
    # derived outcomes at 9 months as the case reports them: 1 session/week (interval 7 d)
    assert by[("dialysis_sessions_per_week", 270.0)]["estimate"] == 1.0
    assert by[("dialysis_interval_days", 270.0)]["estimate"] == 7.0
    assert by[("sledai2k", 270.0)]["estimate"] == 4.0
    for day in (365.0, 540.0):
        for q in ("proteinuria_g_per_24h", "kidney_function_ml_min_173m2",
                  "dialysis_sessions_per_week", "sledai2k"):  # fmt: skip
            r = by[(q, day)]
            assert r["n_sets"] > 1
            assert r["low"] <= r["estimate"] <= r["high"]
    # the range comes from more than one parameter set and says how it was computed
    assert "profile point" in case_fit["outcome_predictions_method"]
    assert len({r["estimate"] for r in rows if r["quantity"] == "kidney_function_ml_min_173m2"}) > 1


def test_motivating_case_table_says_one_case(capsys):
    code = main(["fit", "scenarios/adolescent_hemodialysis_fit.toml", "--starts", "2",
                 "--no-profile"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "a scenario consistent with one case, not an estimate" in text
    assert "not identified by the data/targets:" in text and "outcome predictions" in text


def test_fit_usage_errors(files, capsys):
    scenario, data = files
    assert main(["fit", str(scenario), str(data), "--free", "alpah"]) == 2
    assert "free parameter 'alpah'" in capsys.readouterr().err
    assert main(["fit", str(scenario)]) == 2
    assert "nothing to fit" in capsys.readouterr().err
    assert main(["fit", str(scenario), str(data), "--burn-in", "50"]) == 2
    assert "--burn-in sets the SAEM run of a population fit" in capsys.readouterr().err
    assert main(["fit", str(scenario), str(data), "--population", "--chains", "0"]) == 2
    assert "--chains 0: expected an integer >= 1" in capsys.readouterr().err


def test_fit_table_errors_name_the_key():
    from cartkin.errors import ScenarioError
    from cartkin.fit.spec import fit_spec_from_dict

    with pytest.raises(ScenarioError, match=r"unknown key\(s\) \['fre'\]"):
        fit_spec_from_dict({"fre": ["rho"]})
    with pytest.raises(ScenarioError, match="free = 'rho': expected a list"):
        fit_spec_from_dict({"free": "rho"})
    with pytest.raises(ScenarioError, match=r"bounds\.rho = \[1\]: expected \[lower, upper\]"):
        fit_spec_from_dict({"bounds": {"rho": [1]}})
    with pytest.raises(ScenarioError, match=r"target\]\] #1: target metric 'PEAK' is not known"):
        fit_spec_from_dict({"target": [{"metric": "PEAK", "kind": "normal", "mean": 1, "sd": 1}]})
    with pytest.raises(ScenarioError, match=r"predict_days = \[-1\]: expected a list of positive"):
        fit_spec_from_dict({"predict_days": [-1]})
    spec = fit_spec_from_dict({"free": ["rho"], "priors": {"rho": {"median": 1.3, "omega2": 0.38}}})
    assert spec.free == ["rho"] and spec.priors["rho"].sd_log == pytest.approx(0.38**0.5)


@pytest.mark.slow
def test_calibration_script_reproduces_its_stored_result():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "scripts/calibrate_sle_cart.py", "--check"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "largest relative difference" in out.stdout


def test_motivating_case_scenario_carries_the_case_fit(case_fit):
    """The simulate scenario's parameters are the case fit's estimates (to 4 significant digits)
    and its 9-month outputs agree with what the case reports (issue 8)."""
    from cartkin import metrics
    from cartkin.scenario import load_scenario

    scenario = load_scenario("scenarios/adolescent_hemodialysis_1e5.toml")
    theta = scenario.base.theta
    for name, est in case_fit["estimates"].items():
        assert theta[name] == pytest.approx(est["value"], rel=5e-4), name
    (result,) = scenario.run()
    table = metrics.compute(result, outcomes=scenario.outcomes)
    assert table.value("SLEDAI_D0") == 8 and table.value("SLEDAI_D270") == 4
    assert table.value("DIAL_SPW_D0") == 2.5  # reported 2-3/week before CAR-T
    assert table.value("DIAL_SPW_D270") == 1  # reported interval about one week
    assert 2.5 <= table.value("PROT_D270") <= 3.1  # reported about 2.8 g/24h (issue 15)


def test_fit_estimates_the_residual_sd_by_default_and_reports_progress(files, capsys, tmp_path):
    scenario, data = files
    scenario.write_text(SCENARIO.replace('free_error = "all"\n', ""))  # no free_error key
    fig = tmp_path / "fig"
    argv = ["fit", str(scenario), str(data), "--figure", str(fig), "--ids-per-page", "4"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    text, log = captured.out, captured.err
    assert "transgene_copies_per_ug.sigma_add" in text  # estimated, with SE and interval
    assert "residual error transgene_copies_per_ug: log sigma_add" in text  # always shown
    assert "converged (" in text and "starts agree" in text  # the verdict in the table
    assert "fit: 2 starts" in log and "profiles: 3 parameters" in log  # progress on stderr
    record = pd.read_csv(fig / "run_record.csv")
    assert list(record.columns[:3]) == ["phase", "iteration", "objective"]
    assert list(record["phase"]) == ["start", "start", "final"]
    assert {"alpha", "beta", "transgene_copies_per_ug.sigma_add"} <= set(record.columns)
    assert (fig / "individual_fits_page01.png").is_file()


def test_require_convergence_exit_status(files, capsys, monkeypatch):
    from cartkin.fit import cli, optimize

    scenario, data = files
    argv = ["fit", str(scenario), str(data), "--no-profile", "--format", "json"]
    monkeypatch.setattr(optimize, "GRAD_TOL", -1.0)  # no start can pass the gradient test
    assert main(argv) == 0  # a fit that ran exits 0 ...
    doc = json.loads(capsys.readouterr().out)
    assert doc["converged"] is False and doc["convergence"].startswith("NOT converged")
    assert doc["not_converged"] and "optimizer" in doc["not_converged"][0]
    # ... unless convergence is required
    assert main([*argv, "--require-convergence"]) == cli.EXIT_NOT_CONVERGED == 3
    assert "NOT converged" in capsys.readouterr().err


def test_ids_per_page_must_be_a_positive_count(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "scenario.toml", "--ids-per-page", "0"])
    assert exc.value.code == 2
    assert "'0': expected an integer >= 1" in capsys.readouterr().err
