"""The n = 1 bridge between the scalar path and array-valued ``individualize`` functions.

A model marked ``batch=True`` writes one ``individualize(values, bctx)`` over a patient axis
(docs/design.md section 5). :func:`batch_context_of` turns one scalar
:class:`cartkin.regimen.Context` into the arrays such a function reads (every field with a
leading axis of length 1, the same numbers as ``cartkin.batch.BatchContext.from_contexts``), and
:func:`first_individual` takes patient 0 of the result, dropping the +inf stop padding.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from cartkin.models.base import Individual


def _row(values) -> np.ndarray:
    arr = np.asarray(list(values), dtype=np.float64)
    return arr.reshape(1, -1) if arr.size else np.full((1, 1), np.nan)


def batch_context_of(ctx) -> SimpleNamespace:
    """(1,)-shaped arrays of one patient's context, as the batch contract names them."""
    from cartkin import kidney

    patient = ctx.patient
    pk = kidney.fludarabine_pk_parameters(patient, ctx.clearance_model)
    exposure = ctx.exposure
    ld = ctx.regimen.lymphodepletion
    dialysis = patient.dialysis
    one = lambda x: np.array([float(x)])  # noqa: E731
    return SimpleNamespace(
        n=1,
        weight_kg=one(ctx.weight_kg),
        height_cm=one(patient.height_cm),
        age_years=one(patient.age_years),
        bsa_m2=one(ctx.bsa_m2),
        egfr_ml_min_173m2=one(ctx.egfr_ml_min_173m2),
        crcl_ml_min=one(exposure.crcl_ml_min),
        on_dialysis=np.array([dialysis is not None]),
        flu_auc_mg_h_per_l=one(ctx.flu_auc_mg_h_per_l),
        flu_cl_l_h=one(pk.cl_l_h),
        flu_v1_l=one(pk.v1_l),
        flu_v2_l=one(pk.v2_l),
        flu_v3_l=one(pk.v3_l),
        flu_q2_l_h=one(pk.q2_l_h),
        flu_q3_l_h=one(pk.q3_l_h),
        flu_dose_factor=one(pk.dose_factor),
        flu_dose_days=_row(exposure.dose_days),
        flu_dose_mg=_row(exposure.daily_doses_mg),
        flu_infusion_h=float(exposure.infusion_h),
        cy_days=_row(ld.cy_days),
        cy_mg_m2=_row([ld.cy_mg_m2] * len(ld.cy_days)),
        cy_mg_m2_total=one(ld.cy_mg_m2_total),
        cart_dose_days=_row(d for d, _ in ctx.cart_doses),
        cart_dose_cells=_row(c for _, c in ctx.cart_doses),
        dialysis_session_days=_row(dialysis.session_days if dialysis else ()),
        dialysis_duration_h=one(dialysis.duration_h if dialysis else 0.0),
        flu_removal_fraction=one(dialysis.flu_removal_fraction if dialysis else 0.0),
        il6_elimination_per_day=one(ctx.il6_elimination_per_day),
        clearance_model=ctx.clearance_model,
        contexts=[ctx],
    )


def first_individual(ind: Individual) -> Individual:
    """Patient 0 of an array-valued :class:`Individual`, without the +inf stop padding."""
    t_stops = np.asarray(ind.t_stops, dtype=np.float64)[0]
    keep = np.isfinite(t_stops)
    return Individual(
        p=np.asarray(ind.p)[0],
        y0=np.asarray(ind.y0)[0],
        t_stops=t_stops[keep],
        jumps=np.asarray(ind.jumps)[0][keep],
        t0=float(np.asarray(ind.t0).reshape(-1)[0]),
    )
