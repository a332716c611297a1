"""The single-patient fast paths give exactly the numbers of the general (vectorized) code."""

from __future__ import annotations

import numpy as np
import pytest

import cartkin
from cartkin import models
from cartkin.batch import BatchContext
from cartkin.covariates import flu_pk as _flu_pk
from cartkin.covariates.patient import DialysisSchedule, Patient
from cartkin.covariates.regimen import Regimen, build_context
from cartkin.models import sle_cart_v2 as sle_cart


@pytest.mark.parametrize("log_range", [(-6.0, 3.0), (-12.0, 6.0)])
def test_scalar_eigenvalues_equal_the_vectorized_ones_bit_for_bit(log_range):
    rng = np.random.default_rng(20261129)
    k = np.exp(rng.uniform(*log_range, size=(5000, 5)))
    k[:10, 1:] = k[:10, :1]  # equal micro-constants: nearly coincident roots
    expected = _flu_pk.eigenvalues(*k.T).tolist()
    got = [_flu_pk.eigenvalues_one(*row) for row in k.tolist()]
    mismatched = [i for i in range(len(got)) if got[i] != expected[i]]
    assert mismatched == [], f"{len(mismatched)} rows differ, first {k[mismatched[0]]}"


def _contexts():
    patients = [
        Patient(weight_kg=50, height_cm=160, age_years=16, sex="female", egfr_ml_min_173m2=2.5,
                dialysis=DialysisSchedule(session_days=(-7.5, -4.5, -2.5, -0.5))),
        Patient(weight_kg=82, height_cm=181, age_years=47, sex="male", egfr_ml_min_173m2=95.0),
    ]  # fmt: skip
    return [build_context(p, Regimen()) for p in patients]


def test_sle_cart_individualize_broadcasts_scalar_values_as_before():
    bctx = BatchContext.from_contexts(_contexts())
    values = sle_cart.PARAMETERS.values({"rho": 0.9})
    as_arrays = {k: np.full(bctx.n, v) for k, v in values.items()}
    one_each = cartkin.models.get("sle_cart_v2")._individualize(as_arrays, bctx)
    broadcast = cartkin.models.get("sle_cart_v2")._individualize(values, bctx)  # plain floats, shared by both patients
    for name in ("p", "y0", "t0", "t_stops", "jumps", "n_stops"):
        np.testing.assert_array_equal(getattr(broadcast, name), getattr(one_each, name))
    assert one_each.p.flags.c_contiguous
    assert one_each.p.shape == (2, len(models.get("sle_cart_v2").kernel_names))
    with pytest.raises(ValueError, match="broadcast"):
        cartkin.models.get("sle_cart_v2")._individualize({**values, "rho": np.array([0.9, 1.0, 1.1])}, bctx)


def test_scalar_individualize_equals_the_batch_row():
    model = models.get("sle_cart_v2")
    contexts = _contexts()
    batch = model.individualize_batch(
        {k: np.full(2, v) for k, v in model.parameters.values().items()},
        BatchContext.from_contexts(contexts),
    )
    for i, ctx in enumerate(contexts):
        one = model.individualize(None, ctx)
        row = batch.individual(i)
        for name in ("p", "y0", "t_stops", "jumps"):
            np.testing.assert_array_equal(getattr(one, name), getattr(row, name))
        assert one.t0 == row.t0
