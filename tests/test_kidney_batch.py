"""Closed-form fludarabine PK and the vectorized kidney functions vs the scalar/expm paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import expm

from cartkin import models  # noqa: F401
from cartkin.batch import BatchContext
from cartkin.covariates import flu_pk as _flu_pk
from cartkin.covariates import kidney
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import Regimen, build_context
from cartkin.errors import ScenarioError


def _expm_course(pk, dose_times_h, doses_mg, infusion_h, session_times_h, frac, t_eval_h):
    """The previous engine, kept as the oracle: matrix exponential of [A1, A2, A3, AUC, R]."""
    k10 = pk.cl_l_h / pk.v1_l
    k12, k21 = pk.q2_l_h / pk.v1_l, pk.q2_l_h / pk.v2_l
    k13, k31 = pk.q3_l_h / pk.v1_l, pk.q3_l_h / pk.v3_l
    m = np.zeros((5, 5))
    m[0, :] = [-(k10 + k12 + k13), k21, k31, 0.0, 1.0]
    m[1, :3] = [k12, -k21, 0.0]
    m[2, :3] = [k13, 0.0, -k31]
    m[3, 0] = 1.0 / pk.v1_l
    events = [(t, 2, d / infusion_h) for t, d in zip(dose_times_h, doses_mg, strict=True)]
    events += [
        (t + infusion_h, 0, -d / infusion_h) for t, d in zip(dose_times_h, doses_mg, strict=True)
    ]
    events += [(t, 1, frac) for t in session_times_h] if frac > 0 else []
    events += [(t, 3, i) for i, t in enumerate(t_eval_h)]
    events.sort(key=lambda e: (e[0], e[1]))
    x, conc, t_now = np.zeros(5), np.zeros(len(t_eval_h)), events[0][0]
    for t, kind, value in events:
        if t > t_now:
            x = expm(m * (t - t_now)) @ x
            t_now = t
        if kind in (0, 2):
            x[4] += value
        elif kind == 1:
            x[:3] *= 1.0 - value
        else:
            conc[value] = x[0] / pk.v1_l
    tail = np.linalg.solve(-m[:3, :3], x[:3])[0] / pk.v1_l
    return float(x[3] + tail), conc


def _random_patients(seed, n):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        kind = k % 4
        # plausible bodies (Patient refuses a BMI outside 10-80 and 135+ cm before age 5)
        height_cm = rng.uniform(100, 200)
        kw = dict(weight_kg=rng.uniform(15, 40) * (height_cm / 100) ** 2, height_cm=height_cm,
                  age_years=rng.uniform(5, 85), sex=("female", "male")[k % 2])  # fmt: skip
        if kind == 0:
            kw["egfr_ml_min_173m2"] = rng.uniform(3, 180)
        elif kind == 1:
            kw["crcl_ml_min"] = rng.uniform(3, 200)
        elif kind == 2:
            kw["serum_creatinine_mg_dl"] = rng.uniform(0.3, 8)
        else:
            sessions = tuple(sorted(rng.uniform(-7, 3, size=3)))
            kw["dialysis"] = {"session_days": sessions, "flu_removal_fraction": rng.uniform(0, 0.6)}
            if k % 8 == 3:
                kw["egfr_ml_min_173m2"] = rng.uniform(0, 10)
        out.append(Patient(**kw))
    return out


@pytest.mark.parametrize("model", kidney.CLEARANCE_MODELS)
def test_closed_form_equals_matrix_exponential(model):
    worst = 0.0
    for pt in _random_patients(7, 24):
        pk = kidney.fludarabine_pk_parameters(pt, model)
        doses = np.array([31.0, 28.0, 25.0]) * pk.dose_factor
        dose_h = [24.0 * d for d in (-5.0, -4.0, -3.0)]
        sessions = [24.0 * d for d in pt.dialysis.session_days] if pt.dialysis else []
        frac = pt.dialysis.flu_removal_fraction if pt.dialysis else 0.0
        t = np.linspace(-130.0, 30.0, 41)
        auc0, c0 = _expm_course(pk, dose_h, doses, 0.5, sessions, frac, t)
        auc1, c1 = kidney._pk_course(pk, dose_h, doses, 0.5, sessions, frac, t)
        assert auc1 == pytest.approx(auc0, rel=1e-10)
        big = np.abs(c0) > 1e-12 * np.max(np.abs(c0))
        np.testing.assert_allclose(c1[big], c0[big], rtol=1e-10)
        worst = max(worst, abs(auc1 / auc0 - 1))
    assert worst < 1e-10


def test_eigenvalues_are_the_roots():
    k = np.array([[0.19, 0.22, 0.43, 0.097, 0.076], [5.0, 1e-3, 2e-3, 3.0, 1e-4]])
    lam = _flu_pk.eigenvalues(*k.T)
    for row, ks in zip(lam, k, strict=True):
        k10, k12, k21, k13, k31 = ks
        mat = np.array([[-(k10 + k12 + k13), k21, k31], [k12, -k21, 0], [k13, 0, -k31]])
        np.testing.assert_allclose(row, np.sort(-np.linalg.eigvals(mat))[::-1], rtol=1e-12)


REGIMENS = [
    Regimen(),
    Regimen(lymphodepletion={"flu_rule": "renal_bands"}, cart={"cells_per_kg": 2e6, "days": (0.0, 1.0), "fractions": (0.4, 0.6)}),
    Regimen(lymphodepletion={"flu_rule": "label_bands", "flu_mg_m2_per_day": 30.0}, cart={"flat_cells": 5e7}),
    Regimen(lymphodepletion={"flu_rule": "auc_target", "flu_target_auc_mg_h_per_l": 14.0}),
]  # fmt: skip


def _covariates(patients, regimen, model):
    def col(attr):
        return np.array(
            [getattr(p, attr) if getattr(p, attr) is not None else math.nan for p in patients]
        )

    ld, cart = regimen.lymphodepletion, regimen.cart
    dial = [p.dialysis for p in patients]
    m_s = max((len(d.session_days) for d in dial if d), default=0)
    sessions = np.full((len(patients), m_s), np.nan)
    for i, d in enumerate(dial):
        if d:
            sessions[i, : len(d.session_days)] = d.session_days
    return BatchContext.from_covariates(
        col("weight_kg"), col("height_cm"), col("age_years"), [p.sex for p in patients],
        egfr_ml_min_173m2=col("egfr_ml_min_173m2"), crcl_ml_min=col("crcl_ml_min"),
        serum_creatinine_mg_dl=col("serum_creatinine_mg_dl"),
        on_dialysis=[d is not None for d in dial], dialysis_session_days=sessions,
        dialysis_duration_h=[d.duration_h if d else 4.0 for d in dial],
        flu_removal_fraction=[d.flu_removal_fraction if d else 0.0 for d in dial],
        flu_mg_m2_per_day=ld.flu_mg_m2_per_day, flu_days=ld.flu_days, flu_rule=ld.flu_rule,
        flu_target_auc_mg_h_per_l=ld.flu_target_auc_mg_h_per_l or math.nan, cy_mg_m2=ld.cy_mg_m2,
        cy_days=ld.cy_days, cart_cells_per_kg=cart.cells_per_kg or math.nan,
        cart_flat_cells=cart.flat_cells or math.nan, cart_days=cart.days,
        cart_fractions=cart.fractions, clearance_model=model,
    )  # fmt: skip


@pytest.mark.parametrize("regimen", REGIMENS, ids=["none", "renal", "label", "auc"])
@pytest.mark.parametrize("model", kidney.CLEARANCE_MODELS)
def test_from_covariates_equals_from_contexts(regimen, model):
    patients = _random_patients(11, 16)
    ref = BatchContext.from_contexts([build_context(p, regimen, model) for p in patients])
    got = _covariates(patients, regimen, model)
    assert got.n == ref.n and got.contexts is None and got.clearance_model == ref.clearance_model
    for name in ref.__dataclass_fields__:
        a, b = getattr(got, name), getattr(ref, name)
        if name in ("contexts", "clearance_model", "flu_infusion_h"):
            continue
        if name == "dialysis_session_days":
            a, b = a[:, : b.shape[1]], b
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=0, equal_nan=True, err_msg=name)


def test_from_covariates_errors_name_argument_value_and_patient():
    with pytest.raises(ScenarioError, match=r"weight_kg = 500.0 for patient 1"):
        BatchContext.from_covariates(
            [70, 500], 170, 40, "male", egfr_ml_min_173m2=90, cart_cells_per_kg=1e6
        )
    with pytest.raises(
        ScenarioError, match=r"patient 0: kidney function given as eGFR=90.0, CrCL=80.0"
    ):
        BatchContext.from_covariates(
            70, 170, 40, "male", egfr_ml_min_173m2=90, crcl_ml_min=80, cart_cells_per_kg=1e6
        )
    with pytest.raises(ScenarioError, match=r"flu_rule = 'renal' for patient 0"):
        BatchContext.from_covariates(
            70, 170, 40, "male", egfr_ml_min_173m2=90, flu_rule="renal", cart_cells_per_kg=1e6
        )
    with pytest.raises(ScenarioError, match=r"clearance_model = 'x' for patient 1"):
        BatchContext.from_covariates(
            [70, 70],
            170,
            40,
            "male",
            egfr_ml_min_173m2=90,
            clearance_model=["varela2025", "x"],
            cart_cells_per_kg=1e6,
        )
    with pytest.raises(ScenarioError, match=r"patient 0: CAR-T dose given as"):
        BatchContext.from_covariates(70, 170, 40, "male", egfr_ml_min_173m2=90)
    with pytest.raises(ScenarioError, match=r"'auc_target' needs flu_target_auc_mg_h_per_l"):
        BatchContext.from_covariates(
            70, 170, 40, "male", egfr_ml_min_173m2=90, flu_rule="auc_target", cart_cells_per_kg=1e6
        )
