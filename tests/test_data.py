"""cartkin.data: reading, validation (every error path), units, doses, patients, examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cartkin
from cartkin.data import DataError, DataSpec, example_path, parse_data_table, read
from cartkin.data.summary import read_summary_targets
from cartkin.errors import ScenarioError

HEADER = "ID,TIME,DV,MDV,EVID,AMT,DVID,CENS,LIMIT,UNIT,WT,HT,AGE,SEX,EGFR"
COV = "50,160,16,F,90"


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def nonmem(tmp_path, *rows, header=HEADER):
    return write(tmp_path, "\n".join([header, *rows]))


def good_rows():
    return [
        f"1,0,.,1,1,5e7,.,0,.,.,{COV}",
        f"1,1,0.5,0,0,.,cart,0,0.05,cells/uL,{COV}",
        f"1,7,20,0,0,.,cart,0,0.05,cells/uL,{COV}",
        f"1,7,100,0,0,.,b_cells,0,1,cells/uL,{COV}",
        f"1,60,.,0,0,.,cart,1,0.05,cells/uL,{COV}",
        "2,3,4,0,0,.,cart_cells_per_ul,0,.,.,70,175,40,M,60",
    ]


def problems_of(excinfo):
    return excinfo.value.problems


# -- reading ----------------------------------------------------------------------------------------


def test_nonmem_reads_observations_doses_subjects(tmp_path):
    ds = read(nonmem(tmp_path, *good_rows()), model="sle_cart")
    obs = ds.observations
    assert ds.ids == ["1", "2"]
    assert list(obs["observable"]) == [
        "cart_cells_per_ul",
        "cart_cells_per_ul",
        "b_cells_per_ul",
        "cart_cells_per_ul",
        "cart_cells_per_ul",
    ]
    assert list(obs["row"]) == [3, 4, 5, 6, 7]
    assert (obs["source"] == "data.csv").all()
    censored = obs[obs["cens"] == 1].iloc[0]
    assert censored["time_days"] == 60 and censored["limit"] == 0.05 and censored["value"] == 0.05
    assert math.isnan(obs.iloc[4]["limit"])  # '.' is missing
    assert ds.doses[["id", "time_days", "cells"]].values.tolist() == [["1", 0.0, 5e7]]
    assert ds.subjects.loc["1", "weight_kg"] == 50 and ds.subjects.loc["2", "sex"] == "male"
    assert ds.subjects.loc["1", "egfr_ml_min_173m2"] == 90
    assert "cart_cells_per_ul" in ds.summary()


def test_long_format_gives_the_same_observations(tmp_path):
    long_path = write(
        tmp_path,
        """
id,time_days,observable,value,unit,lloq,weight_kg,height_cm,age_years,sex,egfr_ml_min_173m2
1,0,dose,5e7,cells,,50,160,16,F,90
1,1,cart,0.5,cells/uL,0.05,50,160,16,F,90
1,7,cart,20,cells/uL,0.05,50,160,16,F,90
1,7,b_cells,100,cells/uL,1,50,160,16,F,90
1,60,cart,BLQ,cells/uL,0.05,50,160,16,F,90
2,3,cart_cells_per_ul,4,cells/uL,,70,175,40,M,60
""",
        name="long.csv",
    )
    a = read(nonmem(tmp_path, *good_rows()), model="sle_cart")
    b = read(long_path, model="sle_cart")
    assert b.kind == "long" and a.kind == "nonmem"
    cols = ["id", "time_days", "observable", "value", "cens", "unit"]
    assert a.observations[cols].equals(b.observations[cols])
    np.testing.assert_array_equal(a.observations["limit"], b.observations["limit"])
    assert a.doses[["id", "time_days", "cells"]].equals(b.doses[["id", "time_days", "cells"]])
    assert a.subjects.equals(b.subjects)


def test_long_format_less_than_value_is_censored_at_that_limit(tmp_path):
    path = write(tmp_path, "id,time_days,observable,value,unit\n1,30,cart,<0.1,cells/uL")
    obs = read(path, model="sle_cart").observations.iloc[0]
    assert obs["cens"] == 1 and obs["limit"] == 0.1


def test_cens_with_limit_in_dv_monolix_convention(tmp_path):
    ds = read(nonmem(tmp_path, f"1,30,0.05,0,0,.,cart,1,0,cells/uL,{COV}"), model="sle_cart")
    assert ds.observations.iloc[0][["cens", "limit"]].tolist() == [1, 0.05]


def test_excluded_rows_are_listed_with_reasons(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,-2,150,0,0,.,b_cells,0,.,cells/uL,{COV}",
        f"1,0,.,1,2,.,.,0,.,.,{COV}",
        f"1,1,.,1,0,.,cart,0,.,cells/uL,{COV}",
        f"1,2,3,0,0,.,cart,0,.,cells/uL,{COV}",
    )
    ds = read(path, model="sle_cart")
    assert len(ds.observations) == 1
    reasons = dict(zip(ds.excluded["row"], ds.excluded["reason"], strict=True))
    assert set(reasons) == {2, 3, 4}
    assert "before the CAR-T infusion" in reasons[2]
    assert "EVID=2" in reasons[3] and "MDV=1" in reasons[4]


def test_header_comments_kept(tmp_path):
    path = write(tmp_path, "# SYNTHETIC test\n" + HEADER + "\n" + good_rows()[1])
    assert read(path, model="sle_cart").header_comments == ["SYNTHETIC test"]


# -- validation: one test per error ---------------------------------------------------------------


def test_non_numeric_value(tmp_path):
    path = nonmem(tmp_path, f"1,1,abc,0,0,.,cart,0,.,cells/uL,{COV}")
    with pytest.raises(
        DataError, match=r"data.csv: 1 problem in the data:\n  row 2, column DV: 'abc': a number"
    ):
        read(path, model="sle_cart")


def test_negative_value(tmp_path):
    path = nonmem(tmp_path, f"1,1,-3,0,0,.,cart,0,.,cells/uL,{COV}")
    with pytest.raises(DataError, match=r"row 2, column DV: '-3': a value >= 0"):
        read(path, model="sle_cart")


def test_unsorted_times(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,7,2,0,0,.,cart,0,.,cells/uL,{COV}",
        f"1,3,1,0,0,.,cart,0,.,cells/uL,{COV}",
    )
    with pytest.raises(DataError, match=r"row 3, column TIME: '3': times sorted within each ID"):
        read(path, model="sle_cart")


def test_duplicate_times(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,3,2,0,0,.,cart,0,.,cells/uL,{COV}",
        f"1,3,1,0,0,.,cart,0,.,cells/uL,{COV}",
        f"1,3,100,0,0,.,b_cells,0,.,cells/uL,{COV}",  # another observable at that time is fine
    )
    with pytest.raises(DataError, match=r"row 3, column TIME.*duplicate of row 2") as exc:
        read(path, model="sle_cart")
    assert len(problems_of(exc)) == 1


def test_unknown_observable_did_you_mean(tmp_path):
    path = nonmem(tmp_path, f"1,3,2,0,0,.,b_cell,0,.,cells/uL,{COV}")
    with pytest.raises(DataError, match=r"column DVID: 'b_cell'.*Did you mean 'b_cells'"):
        read(path, model="sle_cart")


def test_dv_missing_where_mdv_0(tmp_path):
    path = nonmem(tmp_path, f"1,3,.,0,0,.,cart,0,.,cells/uL,{COV}")
    with pytest.raises(DataError, match=r"row 2, column DV: '.': a value where MDV=0"):
        read(path, model="sle_cart")


def test_cens_without_limit(tmp_path):
    path = nonmem(tmp_path, f"1,3,.,0,0,.,cart,1,.,cells/uL,{COV}")
    with pytest.raises(DataError, match=r"row 2, column LIMIT.*limit \(LLOQ, > 0\) of a CENS=1"):
        read(path, model="sle_cart")


def test_upper_censoring_refused(tmp_path):
    path = nonmem(tmp_path, f"1,3,500,0,0,.,cart,-1,500,cells/uL,{COV}")
    with pytest.raises(DataError, match=r"column CENS: '-1': 0 or 1 \(CENS=-1.*not supported"):
        read(path, model="sle_cart")


def test_covariate_out_of_range(tmp_path):
    path = nonmem(tmp_path, "1,3,2,0,0,.,cart,0,.,cells/uL,50,1.6,16,F,90")
    with pytest.raises(DataError, match=r"column HT: '1.6': height_cm in \[40, 250\] cm \(metres"):
        read(path, model="sle_cart")


def test_creatinine_in_umol_hint(tmp_path):
    header = "ID,TIME,DV,DVID,UNIT,SCR"
    path = nonmem(tmp_path, "1,3,2,cart,cells/uL,88", header=header)
    with pytest.raises(DataError, match=r"column SCR: '88'.*umol/L\? divide by 88.4"):
        read(path, model="sle_cart")


def test_covariate_changing_within_id(tmp_path):
    path = nonmem(
        tmp_path,
        "1,1,2,0,0,.,cart,0,.,cells/uL,50,160,16,F,90",
        "1,3,2,0,0,.,cart,0,.,cells/uL,55,160,16,F,90",
    )
    with pytest.raises(DataError, match=r"weight_kg.*one value per ID \(ID 1, rows 2, 3\)"):
        read(path, model="sle_cart")


def test_numeric_sex_refused(tmp_path):
    path = nonmem(tmp_path, "1,1,2,0,0,.,cart,0,.,cells/uL,50,160,16,1,90")
    with pytest.raises(DataError, match=r"column SEX: '1': F or M \(numeric codes are ambiguous"):
        read(path, model="sle_cart")


def test_numeric_dvid_without_mapping(tmp_path):
    path = nonmem(tmp_path, f"1,1,2,0,0,.,1,0,.,cells/uL,{COV}")
    with pytest.raises(DataError, match=r"column DVID: '1'.*numeric DVID codes need a mapping"):
        read(path, model="sle_cart")


def test_numeric_dvid_with_mapping(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,1,2,0,0,.,1,0,.,cells/uL,{COV}",
        f"1,1,80,0,0,.,2.0,0,.,cells/uL,{COV}",
    )
    ds = read(path, model="sle_cart", dvid_map={1: "cart", "2": "b_cells"})
    assert list(ds.observations["observable"]) == ["cart_cells_per_ul", "b_cells_per_ul"]


def test_missing_dvid_column(tmp_path):
    path = nonmem(tmp_path, "1,1,2", header="ID,TIME,DV")
    with pytest.raises(DataError, match=r"column DVID: a DVID column .*does not guess"):
        read(path, model="sle_cart")


def test_unsupported_evid(tmp_path):
    path = nonmem(tmp_path, f"1,1,.,1,4,1e6,.,0,.,.,{COV}")
    with pytest.raises(DataError, match=r"column EVID: '4': 0 \(observation\), 1 \(CAR-T dose\)"):
        read(path, model="sle_cart")


def test_dose_amount_must_be_cells(tmp_path):
    path = nonmem(tmp_path, f"1,0,.,1,1,0,.,0,.,.,{COV}")
    with pytest.raises(DataError, match=r"column AMT: '0': total CAR-T cells in \(0, 1e\+11\]"):
        read(path, model="sle_cart")


def test_dose_before_day_0(tmp_path):
    path = nonmem(tmp_path, f"1,-1,.,1,1,1e7,.,0,.,.,{COV}")
    with pytest.raises(DataError, match=r"column TIME: '-1': a CAR-T dose at day >= 0"):
        read(path, model="sle_cart")


def test_id_in_two_blocks(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,1,2,0,0,.,cart,0,.,cells/uL,{COV}",
        f"2,1,2,0,0,.,cart,0,.,cells/uL,{COV}",
        f"1,3,2,0,0,.,cart,0,.,cells/uL,{COV}",
    )
    with pytest.raises(DataError, match=r"row 4, column ID: '1': each ID's rows together"):
        read(path, model="sle_cart")


def test_unrecognised_header(tmp_path):
    path = write(tmp_path, "subject,day,conc\n1,1,2")
    with pytest.raises(DataError, match=r"expected a NONMEM-style dataset .* or the long format"):
        read(path, model="sle_cart")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"no such data file"):
        read(tmp_path / "nope.csv", model="sle_cart")


def test_every_problem_reported_at_once(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,1,abc,0,0,.,cart,0,.,cells/uL,{COV}",
        f"1,2,-1,0,0,.,cart,0,.,cells/uL,{COV}",
        f"1,3,.,0,0,.,cart,1,.,cells/uL,{COV}",
        f"1,4,5,0,0,.,cartt,0,.,cells/uL,{COV}",
        f"1,5,5,0,0,.,cart,0,.,furlongs,{COV}",
    )
    with pytest.raises(DataError, match=r"5 problems in the data") as exc:
        read(path, model="sle_cart")
    assert [p.split(",")[0] for p in problems_of(exc)] == [f"row {r}" for r in range(2, 7)]


# -- units ---------------------------------------------------------------------------------------------


def test_units_scaled_within_a_dimension(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,1,2000,0,0,.,cart,0,500,cells/mL,{COV}",
        f"1,2,0.15,0,0,.,b_cells,0,.,10^9/L,{COV}",
        f"1,3,40,0,0,.,il6,0,.,ng/L,{COV}",
    )
    obs = read(path, model="sle_cart").observations
    np.testing.assert_allclose(obs["value"], [2.0, 150.0, 40.0])
    assert obs["limit"].iloc[0] == pytest.approx(0.5)
    assert list(obs["unit"]) == ["cells/uL", "cells/uL", "pg/mL"]


def test_cart_copies_and_percent_routed_to_the_models_observables(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,1,8000,0,0,.,cart,0,50,copies/ug DNA,{COV}",
        f"1,2,12,0,0,.,cart,0,.,%,{COV}",
    )
    ds = read(path, model="sle_cart")
    assert list(ds.observations["observable"]) == [
        "transgene_copies_per_ug",
        "cart_percent_of_t_cells",
    ]
    assert ds.observations["value"].tolist() == [8000.0, 12.0]
    assert "copies/ug -> transgene_copies_per_ug" in ds.summary()


def test_unit_without_a_declared_observable_refused(tmp_path):
    path = nonmem(tmp_path, f"1,2,12,0,0,.,cart,0,.,%,{COV}")
    with pytest.raises(DataError, match=r"column UNIT: '%': a unit of cart_cells_per_ul"):
        read(path, model="stein2019")  # stein2019 has no percent-of-T-cells observable


def test_b_cells_in_copies_refused(tmp_path):
    path = nonmem(tmp_path, f"1,2,12,0,0,.,b_cells,0,.,copies/ug,{COV}")
    with pytest.raises(DataError, match=r"UNIT: 'copies/ug': a unit of b_cells_per_ul"):
        read(path, model="sle_cart")


def test_unknown_unit(tmp_path):
    path = nonmem(tmp_path, f"1,2,12,0,0,.,cart,0,.,U/mL,{COV}")
    with pytest.raises(DataError, match=r"column UNIT: 'U/mL': a unit cartkin knows"):
        read(path, model="sle_cart")


def test_role_without_unit_needs_one(tmp_path):
    path = nonmem(tmp_path, f"1,2,12,0,0,.,cart,0,.,.,{COV}")
    with pytest.raises(DataError, match=r"column UNIT: a unit for DVID 'cart'"):
        read(path, model="sle_cart")


def test_units_argument_and_observable_name_units(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,2,12,0,0,.,cart,0,.,.,{COV}",
        f"1,2,100,0,0,.,b_cells_per_ul,0,.,.,{COV}",
    )
    obs = read(path, model="sle_cart", units={"cart": "cells/mL"}).observations
    np.testing.assert_allclose(obs["value"], [0.012, 100.0])


# -- doses, patients, contexts -----------------------------------------------------------------------


def test_dose_rows_replace_the_scenarios_cart_dose(tmp_path):
    path = nonmem(
        tmp_path,
        f"1,0,.,1,1,2e7,.,0,.,.,{COV}",
        f"1,1,2,0,0,.,cart,0,.,cells/uL,{COV}",
        f"1,2,.,1,1,6e7,.,0,.,.,{COV}",
        f"2,1,2,0,0,.,cart,0,.,cells/uL,{COV}",
    )
    ds = read(path, model="sle_cart")
    base = cartkin.Regimen(cart=cartkin.CarTDose(cells_per_kg=1e5))
    regimens = ds.regimens(base)
    cart = regimens["1"].cart
    assert cart.flat_cells == 8e7 and cart.days == (0.0, 2.0)
    assert cart.fractions == pytest.approx((0.25, 0.75))
    assert regimens["1"].lymphodepletion == base.lymphodepletion
    assert regimens["2"] is base
    contexts = ds.contexts(base)
    assert contexts["1"].cart_doses == [(0.0, 2e7), (2.0, 6e7)]
    assert contexts["2"].cart_doses == [(0.0, 1e5 * 50)]


def test_regimens_need_a_base(tmp_path):
    ds = read(nonmem(tmp_path, *good_rows()), model="sle_cart")
    with pytest.raises(DataError, match=r"regimens\(\) needs base_regimen"):
        ds.regimens()


def test_patients_from_covariates_and_base(tmp_path):
    path = nonmem(
        tmp_path,
        "1,1,2,cart,cells/uL,60,.",
        "2,1,2,cart,cells/uL,.,0.9",
        header="ID,TIME,DV,DVID,UNIT,WT,SCR",
    )
    ds = read(path, model="sle_cart")
    with pytest.raises(DataError, match=r"ID 1: no height_cm, age_years, sex .* no base_patient"):
        ds.patients()
    base = cartkin.Patient(
        weight_kg=50, height_cm=160, age_years=16, sex="female", egfr_ml_min_173m2=100
    )
    patients = ds.patients(base)
    assert patients["1"].weight_kg == 60 and patients["1"].egfr_ml_min_173m2 == 100
    assert patients["2"].weight_kg == 50
    assert patients["2"].serum_creatinine_mg_dl == 0.9 and patients["2"].egfr_ml_min_173m2 is None


def test_dialysis_takes_the_base_schedule(tmp_path):
    path = nonmem(tmp_path, "1,1,2,cart,cells/uL,1,5", header="ID,TIME,DV,DVID,UNIT,DIALYSIS,EGFR")
    ds = read(path, model="sle_cart")
    schedule = cartkin.DialysisSchedule(session_days=(-4.5, -2.5, -0.5))
    base = cartkin.Patient(
        weight_kg=50, height_cm=160, age_years=16, sex="female", egfr_ml_min_173m2=100
    )
    with pytest.raises(DataError, match=r"ID 1: DIALYSIS=1 needs a session schedule"):
        ds.patients(base)
    dialysed = cartkin.Patient(
        weight_kg=50, height_cm=160, age_years=16, sex="female", dialysis=schedule
    )
    patient = ds.patients(dialysed)["1"]
    assert patient.dialysis == schedule and patient.egfr_ml_min_173m2 == 5


def test_dialysis_alone_keeps_the_residual_function_of_a_dialysis_base(tmp_path):
    path = nonmem(tmp_path, "1,1,2,cart,cells/uL,1", header="ID,TIME,DV,DVID,UNIT,DIALYSIS")
    base = cartkin.Patient(
        weight_kg=50, height_cm=160, age_years=16, sex="female", egfr_ml_min_173m2=2.5,
        dialysis=cartkin.DialysisSchedule(session_days=(-4.5, -2.5, -0.5)),
    )  # fmt: skip
    on = read(path, model="sle_cart").patients(base)["1"]
    assert on.dialysis == base.dialysis and on.egfr_ml_min_173m2 == 2.5
    path = nonmem(tmp_path, "2,1,2,cart,cells/uL,0", header="ID,TIME,DV,DVID,UNIT,DIALYSIS")
    with pytest.raises(DataError, match="ID 2: Patient kidney function: got none"):
        read(path, model="sle_cart").patients(base)  # off dialysis: a kidney function is needed


# -- the [data] table -----------------------------------------------------------------------------------


def test_data_table_parsed_and_used(tmp_path):
    spec = parse_data_table(
        {"file": "d.csv", "dvid": {"1": "cart"}, "units": {"1": "cells/mL"}}, "s.toml", tmp_path
    )
    assert spec == DataSpec(
        file=tmp_path / "d.csv", dvid_map={"1": "cart"}, units={"1": "cells/mL"}
    )
    path = nonmem(tmp_path, "1,1,3000,1", header="ID,TIME,DV,DVID")
    obs = read(path, model="sle_cart", scenario=spec).observations
    assert obs["observable"].iloc[0] == "cart_cells_per_ul" and obs["value"].iloc[0] == 3.0


def test_data_table_errors():
    with pytest.raises(ScenarioError, match=r"s.toml: \[data\] unknown key 'unit'.*'units'"):
        parse_data_table({"unit": {}}, "s.toml")
    with pytest.raises(ScenarioError, match=r"\[data.units\] cart = 'cells/dl': expected a unit"):
        parse_data_table({"units": {"cart": "cells/dl"}}, "s.toml")
    with pytest.raises(ScenarioError, match=r"\[data.dvid\] 1 = 3: expected an observable"):
        parse_data_table({"dvid": {"1": 3}}, "s.toml")


# -- shipped examples --------------------------------------------------------------------------------


def test_synthetic_cohort_example():
    ds = read(example_path("synthetic_cohort.csv"), model="sle_cart_v1")
    assert len(ds.ids) == 40
    assert ds.header_comments[0].startswith("SYNTHETIC DATA")
    assert set(ds.observations["observable"]) == {"cart_cells_per_ul", "b_cells_per_ul"}
    assert 0 < ds.observations["cens"].mean() < 0.5
    assert len(ds.doses) == 40 and ds.excluded.empty
    truth = read_truth()
    assert sorted(truth) == sorted(ds.ids)


def read_truth():
    import pandas as pd

    frame = pd.read_csv(example_path("synthetic_cohort_truth.csv"), comment="#", dtype={"ID": str})
    return dict(zip(frame["ID"], frame["rho"], strict=True))


def test_published_summary_targets_example():
    targets = read_summary_targets(example_path("published_summary_targets.csv"))
    row = targets.set_index("target").loc["mackensen_b_recovery"]
    assert (row["value"], row["spread"], row["n"], row["metric"]) == (110, 32, 5, "TRECOV")
    assert set(targets["obtained"]) <= {"text", "table"}
    assert targets["source"].str.len().min() > 0


def test_summary_targets_validation(tmp_path):
    from cartkin.data.summary import SUMMARY_COLUMNS

    header = ",".join(SUMMARY_COLUMNS)
    path = write(
        tmp_path,
        header + "\nx,s,p,q,TMAX,mean,9.3,,,,day,,Table 1,table\n"
        "x,s,p,q,TMAX,median_range,9.3,,10,20,day,,,guess",
    )
    with pytest.raises(DataError, match=r"5 problem") as exc:
        read_summary_targets(path)
    text = "\n".join(problems_of(exc))
    assert "row 2, column statistic: 'mean'" in text
    assert "row 3, column target: 'x': a unique name" in text
    assert "row 3, column lower" in text and "column obtained: 'guess'" in text
    assert "row 3, column source" in text


def test_example_path_unknown():
    with pytest.raises(DataError, match=r"no example 'nope.csv'; shipped examples: .*synthetic"):
        example_path("nope.csv")


def test_scenario_data_table_supplies_file_model_and_base(tmp_path):
    data = write(tmp_path, "ID,TIME,DV,DVID\n1,1,3000,1\n1,3,40,2", name="obs.csv")
    scenario = write(
        tmp_path,
        f"""
[scenario]
model = "sle_cart"
[patient]
weight_kg = 60.0
height_cm = 165.0
age_years = 30.0
sex = "female"
egfr_ml_min_173m2 = 45.0
[lymphodepletion]  # the usual Flu/Cy (the class defaults)
[cart]
cells_per_kg = 1e5
[data]
file = "{data.name}"
[data.dvid]
1 = "cart"
2 = "b_cells"
[data.units]
1 = "cells/mL"
b_cells = "cells/uL"
""",
        name="fit.toml",
    )
    sc = cartkin.load_scenario(scenario)
    assert sc.data.file == data
    ds = read(scenario=sc)
    assert ds.observations["value"].tolist() == [3.0, 40.0]
    ctx = ds.contexts()["1"]
    assert ctx.patient.egfr_ml_min_173m2 == 45.0 and ctx.cart_doses == [(0.0, 6e6)]


def test_scenario_data_table_error_names_the_file(tmp_path):
    scenario = write(
        tmp_path,
        '[scenario]\nmodel = "sle_cart"\n[patient]\nweight_kg = 60.0\nheight_cm = 165.0\n'
        'age_years = 30.0\nsex = "female"\negfr_ml_min_173m2 = 90.0\n[cart]\ncells_per_kg = 1e5\n'
        '[data]\nfiles = "x.csv"\n',
        name="bad.toml",
    )
    with pytest.raises(ScenarioError, match=r"bad.toml: \[data\] unknown key 'files'.*'file'"):
        cartkin.load_scenario(scenario)


def test_c_column_comments_rows_out(tmp_path):
    path = nonmem(
        tmp_path,
        "C,1,1,2,cart,cells/uL",
        ".,1,3,2,cart,cells/uL",
        header="C,ID,TIME,DV,DVID,UNIT",
    )
    ds = read(path, model="sle_cart")
    assert ds.observations["row"].tolist() == [3]
    assert ds.excluded[["row", "reason"]].values.tolist() == [[2, "commented out (C column)"]]


def test_addl_and_ii_are_expanded_into_doses(tmp_path):
    header = "ID,TIME,DV,EVID,AMT,ADDL,II,DVID,UNIT"
    path = nonmem(tmp_path, "1,0,.,1,1e7,2,7,.,.", "1,1,2,0,.,.,.,cart,cells/uL", header=header)
    ds = read(path, model="sle_cart")
    assert ds.doses[["id", "time_days", "cells"]].values.tolist() == [
        ["1", 0.0, 1e7], ["1", 7.0, 1e7], ["1", 14.0, 1e7],
    ]  # fmt: skip
    assert ds.doses["row"].tolist() == [2, 2, 2]  # each dose names the row it came from


@pytest.mark.parametrize(
    ("cells", "match"),
    [
        ("1,0,.,1,1e7,2,.,0,0,.", r"column II: '\.': the interval in days \(> 0\)"),
        ("1,0,.,1,1e7,1.5,7,0,0,.", r"column ADDL: '1.5': a whole number"),
        ("1,0,.,1,1e7,0,7,0,0,.", r"column II: '7': empty or 0 without ADDL"),
        ("1,0,.,1,1e7,.,.,1,0,.", r"column SS: '1': .*steady-state dosing \(SS\) is refused"),
        ("1,0,.,1,1e7,.,.,0,5,.", r"column RATE: '5': .*zero-order infusions \(RATE\)"),
        ("1,0,.,1,1e7,1,7,0,0,2", r"column CMT: '2': 1 or empty: the CAR-T infusion"),
    ],
)
def test_dose_records_that_cartkin_cannot_give_are_refused(tmp_path, cells, match):
    header = "ID,TIME,DV,EVID,AMT,ADDL,II,SS,RATE,CMT,DVID"
    with pytest.raises(DataError, match=match):
        read(nonmem(tmp_path, cells + ",.", header=header), model="sle_cart")


def test_cmt_on_doses_names_the_cart_infusion_and_on_observations_follows_dvid(tmp_path):
    header = "ID,TIME,DV,EVID,AMT,CMT,DVID,UNIT"
    rows = ["1,0,.,1,1e7,1,.,.", "1,1,2,0,.,2,cart,cells/uL", "1,2,3,0,.,2,cart,cells/uL"]
    ds = read(nonmem(tmp_path, *rows, header=header), model="sle_cart")
    assert ds.doses["cells"].tolist() == [1e7] and len(ds.observations) == 2
    rows[2] = "1,2,3,0,.,3,cart,cells/uL"  # the same DVID in another compartment
    with pytest.raises(DataError, match=r"row 4, column CMT: '3': CMT '2' as on row 3 for DVID"):
        read(nonmem(tmp_path, *rows, header=header), model="sle_cart")


def test_nonmem_header_in_any_case(tmp_path):
    upper = read(nonmem(tmp_path, *good_rows()), model="sle_cart")
    lower = read(
        write(tmp_path, "\n".join([HEADER.lower(), *good_rows()]), "l.csv"), model="sle_cart"
    )
    assert lower.kind == "nonmem"
    assert lower.observations.drop(columns="source").equals(
        upper.observations.drop(columns="source")
    )
    assert lower.subjects.equals(upper.subjects) and lower.doses.equals(upper.doses)
    # messages name the column as the file spells it
    path = write(tmp_path, "id,Time,dv,dvid,unit\n1,x,2,cart,cells/uL", "bad.csv")
    with pytest.raises(DataError, match=r"row 2, column Time: 'x': a number"):
        read(path, model="sle_cart")


def test_long_header_in_any_case(tmp_path):
    path = write(tmp_path, "ID,Time_Days,Observable,Value,Unit\n1,3,cart,2,cells/uL")
    ds = read(path, model="sle_cart")
    assert ds.kind == "long" and ds.observations["value"].tolist() == [2.0]


def test_header_of_neither_layout_gets_a_did_you_mean(tmp_path):
    path = write(tmp_path, "ID,TIM,DV,DVID\n1,1,2,cart")
    with pytest.raises(
        DataError, match=r"data\.csv: header .* lacks: TIME \(did you mean 'TIM'\?\)"
    ):
        read(path, model="sle_cart")
    path = write(tmp_path, "id,time,observable,value,unit\n1,1,cart,2,cells/uL")
    with pytest.raises(
        DataError, match=r"long layout it lacks: time_days \(did you mean 'time'\?\)"
    ):
        read(path, model="sle_cart")


def test_missing_dvid_column_suggests_a_misspelt_one(tmp_path):
    path = nonmem(tmp_path, "1,1,2,cart", header="ID,TIME,DV,DVD")
    with pytest.raises(DataError, match=r"column DVID: a DVID column .*\(did you mean 'DVD'\?\)"):
        read(path, model="sle_cart")


def test_unknown_dvid_suggestion_ignores_case(tmp_path):
    """'carT_cells' is closest to cart_cells_per_ul, not to the role b_cells (case counted)."""
    path = nonmem(tmp_path, f"1,3,2,0,0,.,carT_cells,0,.,cells/uL,{COV}")
    with pytest.raises(DataError, match=r"'carT_cells'.*Did you mean 'cart_cells_per_ul'\?"):
        read(path, model="sle_cart")


def test_long_format_errors_name_the_long_columns(tmp_path):
    path = write(tmp_path, "id,time_days,observable,value,unit\n1,x,cart,2,cells/uL")
    with pytest.raises(DataError, match=r"row 2, column time_days: 'x': a number"):
        read(path, model="sle_cart")


def test_summary_notes_uncensored_values_below_the_limit(tmp_path):
    path = nonmem(tmp_path, f"1,3,0.02,0,0,.,cart,0,0.05,cells/uL,{COV}")
    ds = read(path, model="sle_cart")
    assert ds.observations["cens"].tolist() == [0]
    assert "1 records with CENS=0 lie below their LIMIT (rows 2)" in ds.summary()
    zero = read(nonmem(tmp_path, f"1,3,0,0,0,.,cart,0,.,cells/uL,{COV}"), model="sle_cart")
    assert "1 records are 0 with CENS=0 (rows 2)" in zero.summary()


def test_to_long_round_trip(tmp_path):
    a = read(nonmem(tmp_path, *good_rows()), model="sle_cart")
    path = tmp_path / "long.csv"
    a.to_long().to_csv(path, index=False)
    b = read(path, model="sle_cart")
    assert b.kind == "long"
    cols = ["id", "time_days", "observable", "value", "cens", "limit", "unit"]
    assert a.observations[cols].equals(b.observations[cols])
    assert a.doses[["id", "time_days", "cells"]].equals(b.doses[["id", "time_days", "cells"]])
    assert a.subjects.equals(b.subjects)


def test_long_example_equals_the_nonmem_example():
    a = read(example_path("synthetic_cohort.csv"), model="sle_cart_v1")
    b = read(example_path("synthetic_cohort_long.csv"), model="sle_cart")
    cols = ["id", "time_days", "observable", "value", "cens", "limit", "unit"]
    assert a.observations[cols].equals(b.observations[cols])
    assert a.subjects.equals(b.subjects) and len(b.doses) == 40
    assert b.header_comments[0].startswith("SYNTHETIC DATA")


# -- robustness: any file gives a Dataset or one DataError, never another exception ---------------

_TOKENS = ["", ".", "0", "1", "2", "-1", "1e7", "abc", "3.5", "cart", "b_cells", "1.0", "nan",
           "cells/uL", "copies/ug", "%", "F", "M", "BLQ", "<0.1", "inf", "C", "7", "200"]  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(
        st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=16), min_size=1, max_size=8
    ),
    long_format=st.booleans(),
)
def test_reader_fails_only_with_data_error(tmp_path, cells, long_format):
    header = (
        "id,time_days,observable,value,unit,lloq,cens,weight_kg,sex,dialysis"
        if long_format
        else "ID,TIME,DV,MDV,EVID,AMT,DVID,CENS,LIMIT,UNIT,WT,HT,AGE,SEX,EGFR,C"
    )
    width = len(header.split(","))
    rows = [",".join(r[:width]) for r in cells]
    path = write(tmp_path, "\n".join([header, *rows]), name="fuzz.csv")
    try:
        ds = read(path, model="sle_cart")
    except DataError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert set(ds.observations["cens"]) <= {0, 1}
        assert (ds.observations["value"] >= 0).all()
        assert ds.observations["observable"].isin(ds.model.observable_names).all()
        ds.summary()
        ds.to_long()


def test_header_only_file(tmp_path):
    with pytest.raises(DataError, match=r"no data rows after the header"):
        read(write(tmp_path, HEADER), model="sle_cart")


@pytest.mark.slow
def test_synthetic_cohort_regenerates_byte_for_byte(tmp_path):
    """The shipped synthetic files are what the generator script writes (fixed seed)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[1] / "scripts" / "make_synthetic_cohort.py"
    spec = importlib.util.spec_from_file_location("make_synthetic_cohort", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for name in ("synthetic_cohort.csv", "synthetic_cohort_truth.csv", "synthetic_cohort_long.csv"):
        assert (tmp_path / name).read_bytes() == example_path(name).read_bytes(), name


def test_command_line_check(tmp_path, capsys):
    from cartkin.data.__main__ import main

    good = nonmem(tmp_path, *good_rows())
    out = tmp_path / "long.csv"
    assert main([str(good), "--model", "sle_cart", "--long", str(out)]) == 0
    assert "2 subjects, 5 observations" in capsys.readouterr().out
    assert read(out, model="sle_cart").kind == "long"
    bad = write(tmp_path, HEADER + f"\n1,1,abc,0,0,.,cart,0,.,cells/uL,{COV}", name="bad.csv")
    assert main([str(bad), "--model", "sle_cart"]) == 1
    assert "row 2, column DV: 'abc'" in capsys.readouterr().err


def test_a_problem_repeated_on_many_rows_is_one_line(tmp_path):
    rows = [f"1,{t},2,0,0,.,b_cell,0,.,cells/uL,{COV}" for t in range(1, 31)]
    with pytest.raises(DataError, match=r"30 problems in the data") as exc:
        read(nonmem(tmp_path, *rows), model="sle_cart")
    message = str(exc.value)
    assert len(message.splitlines()) == 2  # the file line and one grouped line
    assert "rows 2, 3, 4," in message and "... (30 rows), column DVID: 'b_cell'" in message
    assert len(problems_of(exc)) == 30  # every problem kept individually


def test_numeric_sex_codes_declared(tmp_path):
    path = nonmem(
        tmp_path,
        "1,1,2,0,0,.,cart,0,.,cells/uL,50,160,16,1,90",
        "2,1,2,0,0,.,cart,0,.,cells/uL,70,175,40,0,90",
    )
    ds = read(path, model="sle_cart", sex_codes={0: "male", 1: "female"})
    assert ds.subjects["sex"].tolist() == ["female", "male"]
    spec = parse_data_table({"sex": {"0": "male", "1": "female"}}, "s.toml")
    assert read(path, model="sle_cart", scenario=spec).subjects["sex"].tolist() == [
        "female",
        "male",
    ]
    with pytest.raises(ScenarioError, match=r"\[data.sex\] 1 = 'f': expected \"female\""):
        parse_data_table({"sex": {"1": "f"}}, "s.toml")
    with pytest.raises(DataError, match=r"sex_codes = \{'1': 'w'\}"):
        read(path, model="sle_cart", sex_codes={1: "w"})


@pytest.mark.slow
def test_synthetic_cohort_residuals_match_the_stated_error_model():
    """log(observed / model at the true parameters) has the SDs the file header states."""
    import pandas as pd

    ds = read(example_path("synthetic_cohort.csv"), model="sle_cart_v1")
    truth = pd.read_csv(example_path("synthetic_cohort_truth.csv"), comment="#", dtype={"ID": str})
    truth = truth.set_index("ID")
    contexts = ds.contexts(cartkin.Regimen())
    residuals = {"cart_cells_per_ul": [], "b_cells_per_ul": []}
    for pid in ds.ids:
        obs = ds.observations[(ds.observations["id"] == pid) & (ds.observations["cens"] == 0)]
        theta = {k: float(truth.loc[pid, k]) for k in ("rho", "delta_E", "k_EM", "delta_M")}
        t = np.unique(np.r_[0.0, obs["time_days"]])
        res = cartkin.simulate_context(ds.model, contexts[pid], t, theta=theta)
        for rec in obs.itertuples():
            true = res.observables[rec.observable][np.searchsorted(t, rec.time_days)]
            residuals[rec.observable].append(math.log(rec.value / true))
    for name, sigma in (("cart_cells_per_ul", math.sqrt(0.56)), ("b_cells_per_ul", 0.3)):
        r = np.array(residuals[name])
        n = r.size
        assert abs(r.std(ddof=1) - sigma) < 4 * sigma / math.sqrt(2 * n), name
        assert abs(r.mean()) < 4 * sigma / math.sqrt(n), name  # censoring lifts it slightly


def test_exclude_unknown_observables(tmp_path):
    path = nonmem(tmp_path, *good_rows())
    with pytest.raises(DataError, match=r"column DVID: 'b_cells': a role model 'stein2019' has"):
        read(path, model="stein2019")
    ds = read(path, model="stein2019", exclude_unknown=True)
    assert "b_cells_per_ul" not in set(ds.observations["observable"])
    assert ds.excluded[["row", "reason"]].values.tolist() == [
        [5, "b_cells: model stein2019 has no such observable"]
    ]


def test_select_subjects_and_observables(tmp_path):
    ds = read(nonmem(tmp_path, *good_rows()), model="sle_cart")
    one = ds.select(ids=["1"], observables=["cart"])
    assert one.ids == ["1"] and list(one.subjects.index) == ["1"]
    assert set(one.observations["observable"]) == {"cart_cells_per_ul"}
    assert len(one.observations) == 3 and len(one.doses) == 1
    assert ds.select(ids=["2"]).doses.empty
    with pytest.raises(DataError, match=r"no subject\(s\) \['9'\]"):
        ds.select(ids=["9"])
    with pytest.raises(DataError, match=r"no observable\(s\) \['il6'\] in the data"):
        ds.select(observables=["il6"])


def test_time_in_hours_refused(tmp_path):
    path = nonmem(tmp_path, f"1,4320,2,0,0,.,cart,0,.,cells/uL,{COV}")
    with pytest.raises(DataError, match=r"column TIME: '4320': days .* \(hours\? divide by 24\)"):
        read(path, model="sle_cart")


def test_cens_with_two_different_limits_refused(tmp_path):
    path = nonmem(tmp_path, f"1,30,0.05,0,0,.,cart,1,0.01,cells/uL,{COV}")
    with pytest.raises(DataError, match=r"column LIMIT: '0.01': one limit for a CENS=1 record"):
        read(path, model="sle_cart")
    same = nonmem(tmp_path, f"1,30,0.05,0,0,.,cart,1,0.05,cells/uL,{COV}")
    assert read(same, model="sle_cart").observations["limit"].tolist() == [0.05]


FIT_SCENARIO = """
[scenario]
name = "dvid options"
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
free = ["alpha"]
"""


def test_fit_cli_dvid_and_unit_options(tmp_path, capsys):
    from cartkin.cli import main
    from cartkin.fit.cli import read_data
    from cartkin.scenario import load_scenario

    scenario = write(tmp_path, FIT_SCENARIO, "fit.toml")
    data = nonmem(tmp_path, "1,7,5000,1", "1,14,2000,1", header="ID,TIME,DV,DVID")
    s = load_scenario(scenario)
    _, obs = read_data(data, s, s.base, ["1=cart_copies"], ["1=copies/ug"])
    assert obs["observable"].tolist() == ["transgene_copies_per_ug"] * 2
    assert obs["value"].tolist() == [5000.0, 2000.0]
    # the options reach the reader: a malformed one is refused with the option named
    for option in ("--dvid", "--unit"):
        assert main(["fit", str(scenario), str(data), option, "1"]) == 2
        assert f"{option} '1': expected KEY=VALUE" in capsys.readouterr().err
    # without --dvid a numeric code is refused, naming the option as the remedy
    assert main(["fit", str(scenario), str(data), "--unit", "1=copies/ug"]) == 2
    assert "`cartkin fit --dvid 1=cart`" in capsys.readouterr().err
    assert main(["fit", str(scenario), str(data), "--dvid", "1=cart_copies"]) == 2
    assert "`cartkin fit --unit 1=copies/ug`" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("header", "row", "match"),
    [
        (HEADER.replace("EGFR", "EGRF"), f"1,1,2,0,0,.,cart,0,.,cells/uL,{COV}",
         r"header, column EGRF: not a column cartkin reads, and 'EGFR' is missing: did you mean"),
        ("id,time_days,observable,value,unit,weight_kgs", "1,1,cart,2,cells/uL,60",
         r"column weight_kgs: .*did you mean 'weight_kg'"),
    ],
)  # fmt: skip
def test_misspelt_column_gets_a_did_you_mean(tmp_path, header, row, match):
    with pytest.raises(DataError, match=match):
        read(nonmem(tmp_path, row, header=header), model="sle_cart")


def test_extra_columns_far_from_any_known_one_are_listed_not_refused(tmp_path):
    ds = read(nonmem(tmp_path, "1,1,2,cart,cells/uL,A", header="ID,TIME,DV,DVID,UNIT,STUDY"),
              model="sle_cart")  # fmt: skip
    assert ds.ignored_columns == ["STUDY"]
