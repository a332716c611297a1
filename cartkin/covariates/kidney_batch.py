"""Per-patient covariates -> the fields of a :class:`BatchContext`, vectorized over patients.

:func:`context_arrays` checks the covariate arrays (naming argument, value and patient index) and
calls the array formulas of :mod:`cartkin.covariates.kidney` (written once there, for one patient
and for many; sources and assumptions in that module) and the closed-form fludarabine PK of
:mod:`cartkin.covariates.flu_pk`, so a sweep builds the fludarabine exposure of a million patients
without per-patient Python. Kidney inputs use NaN for "not given" (one of eGFR, CrCL or serum
creatinine per patient; none or a residual eGFR/CrCL on dialysis). ``tests/test_kidney_batch.py``
checks the result against the one-patient path.
"""

from __future__ import annotations

import math

import numpy as np

from cartkin.covariates import kidney
from cartkin.covariates.flu_pk import pk_course
from cartkin.errors import ScenarioError

__all__ = [
    "body_surface_area_m2",
    "context_arrays",
    "creatinine_clearance_ml_min",
    "egfr_for",
    "fludarabine_clearance_l_h",
    "fludarabine_dose_adjustment",
    "il6_elimination_rate_per_day",
]

# The array formulas live in kidney.py (written once); their names here are kept for callers.
body_surface_area_m2 = kidney.bsa_m2
egfr_for = kidney.egfr_ml_min
creatinine_clearance_ml_min = kidney.crcl_ml_min
fludarabine_clearance_l_h = kidney.flu_clearance
fludarabine_dose_adjustment = kidney.flu_rule_factor
il6_elimination_rate_per_day = kidney.il6_rate


# ---------------------------------------------------------------------------------------------
def _per_patient(name, value, n, lower=-math.inf, upper=math.inf, *, allow_nan=False):
    x = np.asarray(value, dtype=np.float64)
    if x.ndim == 0:
        x = np.full(n, float(x))
    if x.shape != (n,):
        raise ScenarioError(
            f"{name}: got shape {x.shape}; expected one number or one per patient, shape ({n},)"
        )
    bad = (np.isnan(x) & (not allow_nan)) | np.isinf(x) | (x < lower) | (x > upper)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ScenarioError(
            f"{name} = {float(x[i])!r} for patient {i}: expected a finite number in [{lower:g}, {upper:g}]"
            + (" or NaN (not given)" if allow_nan else "")
        )
    return x


def _codes(name, value, choices, n):
    values = np.broadcast_to(np.asarray(value, dtype=object), (n,))
    lookup = {c: k for k, c in enumerate(choices)}
    codes = np.empty(n, np.int64)
    for c in set(values.tolist()):
        if c not in lookup:
            i = int(np.flatnonzero(values == c)[0])
            raise ScenarioError(f"{name} = {c!r} for patient {i}: expected one of {tuple(choices)}")
        codes[values == c] = lookup[c]
    return codes


def _days(name, days):
    d = np.asarray(days, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(d)):
        raise ScenarioError(f"{name} = {days!r}: expected finite days")
    return d


def context_arrays(
    weight_kg, height_cm, age_years, sex, *, egfr_ml_min_173m2=math.nan, crcl_ml_min=math.nan,
    serum_creatinine_mg_dl=math.nan, on_dialysis=False, dialysis_session_days=(),
    dialysis_duration_h=4.0, flu_removal_fraction=0.0, flu_mg_m2_per_day=25.0,
    flu_days=(-5.0, -4.0, -3.0), flu_rule="none", flu_target_auc_mg_h_per_l=math.nan,
    cy_mg_m2=1000.0, cy_days=(-3.0,), cart_cells_per_kg=math.nan, cart_flat_cells=math.nan,
    cart_days=(0.0,), cart_fractions=None, clearance_model="langenhorst2019",
    flu_infusion_h=kidney.FLU_INFUSION_H,
) -> dict:  # fmt: skip
    """Fields of a :class:`cartkin.batch.BatchContext` from per-patient covariates (vectorized).

    Every argument is one value for all patients or an array of shape (n,), except the day
    lists (shared: ``flu_days``, ``cy_days``, ``cart_days``, ``cart_fractions``) and
    ``dialysis_session_days`` (shape (m_s,) shared or (n, m_s) NaN padded). See
    :meth:`cartkin.batch.BatchContext.from_covariates` for the meaning of each argument.
    """
    weight = np.atleast_1d(np.asarray(weight_kg, dtype=np.float64))
    n = weight.shape[0]
    weight = _per_patient("weight_kg", weight, n, 2, 300)
    height = _per_patient("height_cm", height_cm, n, 40, 250)
    age = _per_patient("age_years", age_years, n, 0, 120)
    sex_code = _codes("sex", sex, ("female", "male"), n)
    female = sex_code == 0
    egfr_in = _per_patient("egfr_ml_min_173m2", egfr_ml_min_173m2, n, 0, 200, allow_nan=True)
    crcl_in = _per_patient("crcl_ml_min", crcl_ml_min, n, 0, 300, allow_nan=True)
    scr = _per_patient("serum_creatinine_mg_dl", serum_creatinine_mg_dl, n, 0.1, 20, allow_nan=True)
    dialysis = np.broadcast_to(np.asarray(on_dialysis, dtype=bool), (n,)).copy()
    given = (~np.isnan(egfr_in)).astype(int) + (~np.isnan(crcl_in)) + (~np.isnan(scr))
    bad = np.where(dialysis, (given > 1) | ~np.isnan(scr), given != 1)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ScenarioError(
            f"patient {i}: kidney function given as eGFR={float(egfr_in[i])!r}, CrCL={float(crcl_in[i])!r}, "
            f"creatinine={float(scr[i])!r} (NaN = not given), on dialysis={bool(dialysis[i])}; expected "
            "exactly one of them, or on dialysis at most a residual eGFR or CrCL"
        )
    sessions = np.asarray(dialysis_session_days, dtype=np.float64)
    sessions = np.broadcast_to(sessions.reshape(-1) if sessions.ndim < 2 else sessions, (n, sessions.shape[-1] if sessions.ndim else 0)) if sessions.size else np.zeros((n, 0))  # fmt: skip
    sessions = np.where(dialysis[:, None], sessions, np.nan)
    removal = np.where(
        dialysis, _per_patient("flu_removal_fraction", flu_removal_fraction, n, 0, 0.999999), 0.0
    )
    duration = np.where(
        dialysis, _per_patient("dialysis_duration_h", dialysis_duration_h, n, 0, 24), np.nan
    )

    model_code = _codes("clearance_model", clearance_model, kidney.CLEARANCE_MODELS, n)
    rule_code = _codes("flu_rule", flu_rule, kidney.FLU_RULES, n)
    target = _per_patient(
        "flu_target_auc_mg_h_per_l", flu_target_auc_mg_h_per_l, n, 0, 1e4, allow_nan=True
    )
    if np.any((rule_code == 3) & ~(target > 0)):
        i = int(np.flatnonzero((rule_code == 3) & ~(target > 0))[0])
        raise ScenarioError(
            f"patient {i}: flu_rule 'auc_target' needs flu_target_auc_mg_h_per_l (mg.h/L); got "
            f"{float(target[i])!r}"
        )
    flu_days = _days("flu_days", flu_days)
    cy_days = _days("cy_days", cy_days)
    cart_days = _days("cart_days", cart_days)

    bsa = body_surface_area_m2(height, weight)
    egfr = egfr_for(egfr_in, crcl_in, scr, age, height, female, bsa)
    crcl = creatinine_clearance_ml_min(egfr, crcl_in, scr, age, weight, female, bsa)
    cl = fludarabine_clearance_l_h(model_code, weight, egfr, crcl)
    v1, v2, v3, q2, q3 = kidney.flu_distribution(weight)
    dose_factor = kidney.flu_dose_factor(model_code)

    flu_mg_m2 = _per_patient("flu_mg_m2_per_day", flu_mg_m2_per_day, n, 0, 1000)
    unadjusted = np.broadcast_to((flu_mg_m2 * bsa)[:, None], (n, flu_days.size))
    dose_h = np.broadcast_to(24.0 * flu_days, (n, flu_days.size))
    sessions_h = 24.0 * sessions

    def auc(doses_mg, removal_fraction):
        return pk_course(
            cl, v1, v2, v3, q2, q3, dose_h, doses_mg * dose_factor[:, None], flu_infusion_h,
            sessions_h, removal_fraction,
        )  # fmt: skip

    needs_base = rule_code == 3
    base = auc(unadjusted, removal) if np.any(needs_base) else np.full(n, np.nan)
    if np.any(needs_base & ~(base > 0)):
        i = int(np.flatnonzero(needs_base & ~(base > 0))[0])
        raise ScenarioError(
            f"patient {i}: flu_rule 'auc_target' needs a positive unadjusted dose: got "
            f"flu_mg_m2_per_day = {flu_mg_m2[i]:g} mg/m2/day"
        )
    factor = fludarabine_dose_adjustment(rule_code, egfr, dialysis, target, base)
    doses = unadjusted * factor[:, None]
    flu_auc = auc(doses, removal)

    per_kg = _per_patient("cart_cells_per_kg", cart_cells_per_kg, n, 0, 1e12, allow_nan=True)
    flat = _per_patient("cart_flat_cells", cart_flat_cells, n, 0, 1e15, allow_nan=True)
    if np.any(np.isnan(per_kg) == np.isnan(flat)):
        i = int(np.flatnonzero(np.isnan(per_kg) == np.isnan(flat))[0])
        raise ScenarioError(
            f"patient {i}: CAR-T dose given as cells_per_kg={float(per_kg[i])!r} and flat_cells="
            f"{float(flat[i])!r} (NaN = not given); expected exactly one"
        )
    total = np.where(np.isnan(per_kg), flat, per_kg * weight)
    fractions = (
        np.full(cart_days.size, 1.0 / cart_days.size)
        if cart_fractions is None
        else np.asarray(cart_fractions, dtype=np.float64).reshape(-1)
    )
    if fractions.shape != cart_days.shape or abs(math.fsum(fractions) - 1.0) > 1e-9:
        raise ScenarioError(
            f"cart_fractions = {cart_fractions!r}: expected {cart_days.size} fraction(s) "
            "summing to 1, one per day in cart_days"
        )
    cy = _per_patient("cy_mg_m2", cy_mg_m2, n, 0, 1e4)
    return dict(
        weight_kg=weight, height_cm=height, age_years=age, female=female, bsa_m2=bsa,
        egfr_ml_min_173m2=egfr, crcl_ml_min=crcl, on_dialysis=dialysis,
        flu_auc_mg_h_per_l=flu_auc, flu_cl_l_h=cl, flu_v1_l=v1, flu_v2_l=v2, flu_v3_l=v3,
        flu_q2_l_h=q2, flu_q3_l_h=q3, flu_dose_factor=dose_factor,
        flu_dose_days=np.broadcast_to(flu_days, (n, flu_days.size)).copy(), flu_dose_mg=doses,
        flu_infusion_h=float(flu_infusion_h),
        cy_days=np.broadcast_to(cy_days, (n, cy_days.size)).copy(),
        cy_mg_m2=np.broadcast_to(cy[:, None], (n, cy_days.size)).copy(),
        cy_mg_m2_total=cy * cy_days.size,
        cart_dose_days=np.broadcast_to(cart_days, (n, cart_days.size)).copy(),
        cart_dose_cells=total[:, None] * fractions[None, :],
        dialysis_session_days=np.ascontiguousarray(sessions), dialysis_duration_h=duration,
        flu_removal_fraction=removal, il6_elimination_per_day=il6_elimination_rate_per_day(egfr),
        clearance_model=tuple(kidney.CLEARANCE_MODELS[k] for k in model_code),
        contexts=None,
    )  # fmt: skip
