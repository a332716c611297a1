"""The batch engine (cartkin.batch): same numbers as the scalar path, per patient and per metric."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import cartkin
from cartkin import batch, metrics
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import Regimen, build_context
from cartkin.errors import ScenarioError
from cartkin.models import Individual, Model

T_DAYS = np.linspace(0.0, 100.0, 41)


def _contexts():
    patients = [
        Patient(weight_kg=70, height_cm=175, age_years=40, sex="male", egfr_ml_min_173m2=95),
        Patient(weight_kg=50, height_cm=160, age_years=16, sex="female", serum_creatinine_mg_dl=2.1),
        Patient(weight_kg=90, height_cm=180, age_years=66, sex="male", crcl_ml_min=35),
        Patient(weight_kg=62, height_cm=168, age_years=30, sex="female", dialysis={"session_days": (-6, -4, -2, 0, 2), "flu_removal_fraction": 0.3}),
    ]  # fmt: skip
    regimens = [
        Regimen(cart={"cells_per_kg": 1e6}),
        Regimen(cart={"cells_per_kg": 2e6, "days": (0.0, 2.0), "fractions": (0.25, 0.75)}),
        Regimen(lymphodepletion={"flu_rule": "renal_bands"}, cart={"flat_cells": 5e7, "days": (1.5,)}),
        Regimen(lymphodepletion={"flu_rule": "auc_target", "flu_target_auc_mg_h_per_l": 14.0}),
    ]  # fmt: skip
    models = ["langenhorst2019", "varela2025", "varela2025_tisacel", "langenhorst2019"]
    return [build_context(p, r, m) for p, r, m in zip(patients, regimens, models, strict=True)]


CONTEXTS = _contexts()
BCTX = batch.BatchContext.from_contexts(CONTEXTS)


# ---------------------------------------------------------------------------------------------
# BatchContext
# ---------------------------------------------------------------------------------------------
def test_from_contexts_holds_the_scalar_numbers():
    b = BCTX
    assert b.n == len(CONTEXTS) == len(b)
    for i, c in enumerate(CONTEXTS):
        assert b.weight_kg[i] == c.weight_kg and b.bsa_m2[i] == c.bsa_m2
        assert b.egfr_ml_min_173m2[i] == c.egfr_ml_min_173m2
        assert b.flu_auc_mg_h_per_l[i] == c.flu_auc_mg_h_per_l
        assert b.il6_elimination_per_day[i] == c.il6_elimination_per_day
        assert b.cy_mg_m2_total[i] == c.cy_mg_m2_total
        assert b.crcl_ml_min[i] == c.exposure.crcl_ml_min
        assert b.flu_cl_l_h[i] == c.exposure.clearance_l_h
        k = len(c.cart_doses)
        assert (
            list(zip(b.cart_dose_days[i, :k], b.cart_dose_cells[i, :k], strict=False))
            == c.cart_doses
        )
        assert np.all(np.isnan(b.cart_dose_days[i, k:])) and np.all(b.cart_dose_cells[i, k:] == 0)
        m = len(c.exposure.daily_doses_mg)
        assert tuple(b.flu_dose_mg[i, :m]) == c.exposure.daily_doses_mg
        assert b.clearance_model[i] == c.clearance_model
        assert b.on_dialysis[i] == c.patient.on_dialysis
    assert b.dialysis_session_days.shape == (4, 5) and b.flu_removal_fraction[3] == 0.3


def test_take_subsets_and_repeats():
    sub = BCTX.take([3, 0, 0])
    assert sub.n == 3 and sub.contexts == [CONTEXTS[3], CONTEXTS[0], CONTEXTS[0]]
    assert sub.weight_kg.tolist() == [62, 70, 70]
    assert sub.clearance_model == ("langenhorst2019",) * 3
    assert np.array_equal(sub.cart_dose_cells[1], BCTX.cart_dose_cells[0])
    assert BCTX.take(np.array([False, True, False, True])).weight_kg.tolist() == [50, 62]
    with pytest.raises(ScenarioError, match="index 7 is out of range for 4 patients"):
        BCTX.take([0, 7])


# ---------------------------------------------------------------------------------------------
# individualize
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "parameter"), [("stein2019", "cmax"), ("sle_cart", "k_G"), ("sle_cart_v1", "rho")]
)
def test_batch_individualize_equals_scalar(name, parameter):
    model = cartkin.models.get(name)
    theta = {parameter: model.parameters[parameter].default * np.array([1.0, 0.9, 1.1, 1.2])}
    inds = batch.individualize(model, theta, BCTX)
    for i, ctx in enumerate(CONTEXTS):
        one = model.individualize({k: float(v[i]) for k, v in theta.items()}, ctx)
        row = inds.individual(i)
        assert np.array_equal(row.p, one.p) and np.array_equal(row.y0, one.y0)
        assert np.array_equal(row.t_stops, one.t_stops) and np.array_equal(row.jumps, one.jumps)
        assert row.t0 == one.t0


def test_theta_validation_names_parameter_value_and_patient():
    model = cartkin.models.get("stein2019")
    with pytest.raises(ScenarioError, match=r"'tmax' = 99 day for patient 2 is outside its bounds"):
        batch.individualize(model, {"tmax": [9.0, 10.0, 99.0, 100.0]}, BCTX)
    with pytest.raises(ScenarioError, match=r"'alpha' = nan .* patient 1 must be finite"):
        batch.individualize(model, {"alpha": [0.1, np.nan, 0.1, 0.1]}, BCTX)
    with pytest.raises(ScenarioError, match=r"Unknown parameter 'tmx'.*tmax"):
        batch.individualize(model, {"tmx": 9.0}, BCTX)
    with pytest.raises(ScenarioError, match=r"shape \(2,\); expected .* shape \(4,\)"):
        batch.individualize(model, {"tmax": [9.0, 10.0]}, BCTX)
    with pytest.raises(ScenarioError, match="not a number"):
        batch.individualize(model, {"tmax": "soon"}, BCTX)


def _scalar_model():
    """stein2019 with a scalar individualize and no observe_roles (as a user model would be)."""
    s = cartkin.models.get("stein2019")
    return cartkin.models.Model(
        "stein_scalar", s.description, s.states, s.parameters, s.observables, s.rhs,
        lambda values, ctx: s.individualize(dict(values), ctx), s.roles, s.equations,
        derived=s.derived,
    )  # fmt: skip


def test_fallback_needs_contexts():
    model = _scalar_model()
    no_contexts = batch.BatchContext(**{**BCTX.__dict__, "contexts": None})
    with pytest.raises(ValueError, match="scalar individualize"):
        batch.individualize(model, None, no_contexts)


# ---------------------------------------------------------------------------------------------
# solve: bit-identical to the scalar path, independent of threads and chunking
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, method", [("stein2019", "rodas5"), ("stein2019", "tsit5"), ("sle_cart", "auto")]
)
def test_solve_bit_identical_to_simulate(name, method):
    model = cartkin.models.get(name)
    inds = batch.individualize(model, None, BCTX)
    sol = batch.solve(model, inds, T_DAYS, method=method, rtol=1e-7, atol=1e-10)
    assert np.all(sol.success)
    for i, ctx in enumerate(CONTEXTS):
        res = cartkin.simulate_context(model, ctx, T_DAYS, method=method, rtol=1e-7, atol=1e-10)
        assert np.array_equal(sol.y[i], res.states), i
        assert sol.n_steps[i] == res.solution.n_steps and sol.n_rhs[i] == res.solution.n_rhs


def test_solve_independent_of_threads_and_chunking():
    model = cartkin.models.get("sle_cart")
    inds = batch.individualize(model, None, BCTX.take([0, 1, 2, 3] * 5))
    one = batch.solve(model, inds, T_DAYS, threads=1)
    two = batch.solve(model, inds, T_DAYS, threads=2)
    part = batch.solve(model, inds.take([7, 3]), T_DAYS, threads=2)
    assert np.array_equal(one.y, two.y) and np.array_equal(one.status, two.status)
    assert np.array_equal(part.y, one.y[[7, 3]])
    assert np.array_equal(one.y[0], one.y[4])  # same patient, same numbers


def _shifted_stein(t0):
    """stein2019 starting at t0 < 0 through the Python fallback (scalar individualize)."""

    def individualize(values, ctx):
        ind = cartkin.models.get("stein2019").individualize(values, ctx)
        return Individual(p=ind.p, y0=ind.y0, t_stops=ind.t_stops, jumps=ind.jumps, t0=t0)

    m = cartkin.models.get("stein2019")
    return Model(
        "stein_t0", m.description, m.states, m.parameters, m.observables, m.rhs, individualize,
        m.roles, m.equations, m.derived, observe_roles=m.observe_roles,
    )  # fmt: skip


def test_solve_respects_t0_and_padded_stops():
    model = _shifted_stein(-3.0)
    t = np.array([-5.0, -3.0, -1.0, 0.0, 0.5, 2.0, 10.0, 40.0])
    inds = batch.individualize(model, None, BCTX)
    assert np.all(inds.t0 == -3.0) and inds.t_stops.shape[1] == 2
    sol = batch.solve(model, inds, t, method="rodas5", rtol=1e-8, atol=1e-10)
    assert np.all(np.isnan(sol.y[:, 0])) and not np.any(np.isnan(sol.y[:, 1:]))
    for i, ctx in enumerate(CONTEXTS):
        res = cartkin.simulate_context(model, ctx, t[1:], method="rodas5", rtol=1e-8)
        assert np.array_equal(sol.y[i, 1:], res.states)


def test_failed_patient_gets_a_status_not_an_exception():
    model = cartkin.models.get("sle_cart")
    inds = batch.individualize(model, None, BCTX)
    sol = batch.solve(model, inds, T_DAYS, max_steps=20)
    assert np.all(sol.status == int(cartkin.ode.Status.MAX_STEPS))
    assert np.all(np.isnan(sol.y[:, -1]))
    out = batch.metrics(
        cartkin.models.get("stein2019"), batch.individualize(cartkin.models.get("stein2019"), None, BCTX), max_steps=3
    )
    assert np.all(out["status"] == -1) and np.all(np.isnan(out["CMAX"]))


def test_observe_matches_model_observables():
    model = cartkin.models.get("stein2019")
    inds = batch.individualize(model, None, BCTX)
    sol = batch.solve(model, inds, T_DAYS)
    obs = batch.observe(model, inds, sol)
    for i in range(BCTX.n):
        ref = model.observe(sol.y[i], inds.p[i])
        for name in model.observable_names:
            assert np.array_equal(obs[name][i], ref[name])


def test_bad_solver_options():
    model = cartkin.models.get("stein2019")
    inds = batch.individualize(model, None, BCTX)
    with pytest.raises(ScenarioError, match="method = 'rk4'"):
        batch.solve(model, inds, T_DAYS, method="rk4")
    with pytest.raises(ScenarioError, match="threads = 0"):
        batch.solve(model, inds, T_DAYS, threads=0)
    with pytest.raises(ScenarioError, match="strictly increasing"):
        batch.solve(model, inds, [0.0, 2.0, 1.0])
    scalar = _scalar_model()
    with pytest.raises(ScenarioError, match="no compiled observe_roles"):
        batch.metrics(scalar, batch.individualize(scalar, None, BCTX))
    with pytest.raises(ScenarioError, match="no role 'b_cells'"):
        batch.metrics(model, inds, names=["TAPLASIA"])


# ---------------------------------------------------------------------------------------------
# in-kernel metrics vs cartkin.metrics.compute
# ---------------------------------------------------------------------------------------------
EVENT_METRICS = ("TMAX", "TLST", "B_TNADIR", "TAPLASIA", "IL6_TMAX")


def _reference(model, ctx, got, horizon, **thresholds):
    """metrics.compute on the grid of :func:`_grid` (same solver settings as the kernel)."""
    t = _grid(got, horizon, model.individualize(None, ctx).t_stops)
    res = cartkin.simulate_context(model, ctx, t, method="rodas5", rtol=1e-10, atol=1e-12)
    return metrics.compute(res, dense_step_days=None, **thresholds)


def _compare(got, table, names, rtol=1e-6):
    for name in names:
        ref = table.value(name)
        if isinstance(ref, bool):
            continue
        if math.isnan(ref):
            assert math.isnan(got[name]), (name, got[name])
        else:
            assert got[name] == pytest.approx(ref, rel=rtol, abs=1e-9), (name, got[name], ref)


@pytest.mark.parametrize("lloq", [0.05, 0.2])
def test_metrics_equal_compute_stein2019(lloq):
    model = cartkin.models.get("stein2019")
    horizon = 100.0
    inds = batch.individualize(model, None, BCTX)
    got = batch.metrics(model, inds, t_end_days=horizon, bctx=BCTX, lloq_cells_per_ul=lloq,
                        method="rodas5", rtol=1e-10, atol=1e-12)  # fmt: skip
    assert np.all(got["status"] == 0)
    names = [n for n in got if n not in ("status",)]
    assert set(names) == {
        "CMAX",
        "TMAX",
        "CMAX_COPIES",
        "AUC0_28D",
        "CLST",
        "TLST",
        "PERSIST",
        "FLU_AUC",
    }
    for i, ctx in enumerate(CONTEXTS):
        row = {k: float(v[i]) for k, v in got.items()}
        table = _reference(model, ctx, row, horizon, lloq_cells_per_ul=lloq)
        _compare(row, table, names)


def test_metrics_equal_compute_cart4_b_cells():
    model = cartkin.models.get("cart4")
    horizon = 120.0
    thresholds = {
        "aplasia_cells_per_ul": 0.5,
        "recovery_cells_per_ul": 1.2,
        "lloq_cells_per_ul": 3.0,
    }
    theta = {"k_kill": np.array([2.0, 4.0, 1.0, 0.5])}
    inds = batch.individualize(model, theta, BCTX)
    got = batch.metrics(model, inds, t_end_days=horizon, method="rodas5", rtol=1e-10, atol=1e-12,
                        **thresholds)  # fmt: skip
    names = [n for n in got if n != "status"]
    assert {"B_NADIR", "TAPLASIA", "APLASIA_DUR", "TRECOV"} <= set(names)
    for name in ("TAPLASIA", "APLASIA_DUR", "TRECOV", "TLST"):
        assert np.isfinite(got[name]).sum() >= 2, name
    for i, ctx in enumerate(CONTEXTS):
        row = {k: float(v[i]) for k, v in got.items()}
        local = cartkin.models.Model(
            "cart4_row", model.description, model.states, model.parameters, model.observables,
            model.rhs, model._individualize, model.roles, model.equations, batch=True,
            observe_roles=model.observe_roles,
        )  # fmt: skip
        res_theta = {"k_kill": float(theta["k_kill"][i])}
        t = _grid(row, horizon, inds.individual(i).t_stops)
        res = cartkin.simulate_context(
            local, ctx, t, res_theta, method="rodas5", rtol=1e-10, atol=1e-12
        )
        table = metrics.compute(res, dense_step_days=None, **thresholds)
        _compare(row, table, names)


def _grid(row, horizon, stops, step=1e-3):
    """A 1e-3 d grid with the stops (doses, as metrics.compute keeps them), refined to 1e-6 d
    around the stops and the kernel's events and crossings: the reference takes grid points and linear
    interpolation, so only its grid placement uses the kernel's numbers."""
    # metrics.compute's trapezoid puts the post-dose value on the grid interval before a dose
    # (an O(step) error in AUC0_28D): refine there too
    events = [row.get(k, math.nan) for k in EVENT_METRICS] + list(stops)
    events += [
        row.get("TAPLASIA", math.nan) + row.get("APLASIA_DUR", math.nan),
        row.get("TRECOV", math.nan),
    ]
    grid = [np.arange(0.0, horizon, step), [horizon], stops[(stops >= 0) & (stops <= horizon)]]
    grid += [
        np.clip(te + np.linspace(-1e-3, 1e-3, 2001), 0.0, horizon)
        for te in events
        if np.isfinite(te)
    ]
    return np.unique(np.concatenate(grid))


def test_metrics_start_at_day0_when_the_model_starts_before():
    model = _shifted_stein(-3.0)
    horizon = 60.0
    inds = batch.individualize(model, None, BCTX)
    got = batch.metrics(model, inds, t_end_days=horizon, method="rodas5", rtol=1e-10, atol=1e-12,
                        lloq_cells_per_ul=0.2)  # fmt: skip
    names = [n for n in got if n != "status"]
    for i, ctx in enumerate(CONTEXTS):
        row = {k: float(v[i]) for k, v in got.items()}
        table = _reference(model, ctx, row, horizon, lloq_cells_per_ul=0.2)
        _compare(row, table, names)


def test_metrics_independent_of_threads():
    model = cartkin.models.get("cart4")
    inds = batch.individualize(
        model, {"k_kill": np.linspace(0.5, 4.0, 24)}, BCTX.take(np.arange(24) % 4)
    )
    one = batch.metrics(model, inds, threads=1, aplasia_cells_per_ul=0.5)
    two = batch.metrics(model, inds, threads=2, aplasia_cells_per_ul=0.5)
    part = batch.metrics(model, inds.take([5, 17]), threads=2, aplasia_cells_per_ul=0.5)
    for name in one:
        assert np.array_equal(one[name], two[name], equal_nan=True), name
        assert np.array_equal(part[name], one[name][[5, 17]], equal_nan=True), name


@numba.njit
def _sle_cart_roles(y, p, out):
    """sle_cart_v1's roles, defined here so the model runs in an in-memory kernel."""
    c = y[0] + y[1]
    out[0] = c
    out[1] = p[29] * c  # copies_per_cell * C
    out[2] = 100.0 * c / max(c + y[2], 1e-300)
    out[3] = y[3]
    out[4] = y[5]
    out[5] = y[6]
    for k in range(6, out.shape[0]):
        out[k] = np.nan


@pytest.mark.slow
def test_metrics_equal_compute_sle_cart_through_the_fallback():
    """sle_cart_v1 with a test-defined observe_roles (an in-memory kernel): every metric, B-cell
    and IL-6 ones included, equals metrics.compute (compiles for about a minute)."""
    m = cartkin.models.get("sle_cart_v1")
    assert m.kernel_names[29] == "copies_per_cell"
    model = Model(
        "sle_cart_roles", m.description, m.states, m.parameters, m.observables, m.rhs,
        m._individualize, m.roles, m.equations, m.derived, batch=m.batch,
        observe_roles=_sle_cart_roles,
    )  # fmt: skip
    horizon = 200.0
    inds = batch.individualize(model, None, BCTX)
    got = batch.metrics(model, inds, t_end_days=horizon, bctx=BCTX, method="rodas5", rtol=1e-10,
                        atol=1e-12)  # fmt: skip
    names = [n for n in got if n != "status"]
    assert {"B_NADIR", "TAPLASIA", "TRECOV", "IL6_MAX", "IL6_T_ABOVE", "ADSDNA_D90_PCT"} <= set(
        names
    )
    for i, ctx in enumerate(CONTEXTS):
        row = {k: float(v[i]) for k, v in got.items()}
        table = _reference(model, ctx, row, horizon)
        _compare(row, table, names)


def test_sle_cart_analytic_jacobian_matches_finite_differences():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from sle_cart_extras import jac

    m = cartkin.models.get("sle_cart_v1")
    inds = batch.individualize(m, {"k_kill": [0.5, 2.0, 0.1, 1.0]}, BCTX)
    rng = np.random.default_rng(3)
    for i in range(inds.n):
        p = inds.p[i]
        y = np.array([20.0, 5.0, 300.0, 40.0, 0.6, 8.0, 90.0]) * rng.uniform(0.5, 1.5, 7)
        J = np.empty((7, 7))
        jac.py_func(1.0, y, p, J)
        f0, f1 = np.empty(7), np.empty(7)
        for j in range(7):
            hstep = 1e-6 * max(abs(y[j]), 1.0)
            yp, ym = y.copy(), y.copy()
            yp[j] += hstep
            ym[j] -= hstep
            m.rhs.py_func(1.0, yp, p, f1)
            m.rhs.py_func(1.0, ym, p, f0)
            np.testing.assert_allclose(J[:, j], (f1 - f0) / (2 * hstep), rtol=1e-6, atol=1e-9)


def test_check_individuals_names_the_patient():
    model = cartkin.models.get("stein2019")
    inds = batch.individualize(model, None, BCTX)
    y0 = inds.y0.copy()
    y0[2, 1] = np.inf
    with pytest.raises(ScenarioError, match="patient 2 of 4: initial state y0 is not finite"):
        batch.solve(
            model,
            batch.BatchIndividuals(inds.p, y0, inds.t0, inds.t_stops, inds.jumps, inds.n_stops),
            T_DAYS,
        )
    t0 = np.array([0.0, 0.0, 0.0, 1.0])
    with pytest.raises(
        ScenarioError, match=r"patient 3 of 4: t0 must be finite and <= 0 days \(value"
    ):
        batch.solve(
            model,
            batch.BatchIndividuals(inds.p, inds.y0, t0, inds.t_stops, inds.jumps, inds.n_stops),
            T_DAYS,
        )
    stops = inds.t_stops.copy()
    stops[1, 0] = 20.0  # after the second stop (t_infusion + tmax)
    with pytest.raises(ScenarioError, match="patient 1 of 4: stop times must be non-decreasing"):
        batch.solve(
            model,
            batch.BatchIndividuals(inds.p, inds.y0, inds.t0, stops, inds.jumps, inds.n_stops),
            T_DAYS,
        )
    with pytest.raises(RuntimeError, match="batch individualize gave p of shape"):
        batch.solve(
            model,
            batch.BatchIndividuals(
                inds.p[:, :3], inds.y0, inds.t0, inds.t_stops, inds.jumps, inds.n_stops
            ),
            T_DAYS,
        )


def test_metrics_of_a_subset_equal_the_full_request():
    """Only the roles a request needs are tracked in the kernel: the values do not change."""
    model = cartkin.models.get("sle_cart")
    inds = batch.individualize(model, None, BCTX)
    opts = {"method": "rodas5", "rtol": 1e-6, "atol": 1e-9, "t_end_days": 60.0}
    full = batch.metrics(model, inds, **opts)
    for names in (["CMAX", "TMAX"], ["APLASIA_DUR", "TRECOV"], ["IL6_MAX", "CMAX_COPIES"]):
        part = batch.metrics(model, inds, names=names, **opts)
        assert set(part) == {*names, "status"}
        for name in names:
            np.testing.assert_array_equal(part[name], full[name])
