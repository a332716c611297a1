"""Outcome predictions of a fitted scenario beyond its targets, with their profile range.

After a fit to a case's summaries (:mod:`cartkin.fit.targets`), :func:`predict_outcomes`
simulates the fitted patient to later days and reports the lupus-nephritis outcomes there
(proteinuria, kidney function, dialysis sessions per week and interval, SLEDAI-2K, activity
index, anti-dsDNA, C3).

How the range is computed: every parameter set of :attr:`FitResult.profile_sets` (the estimate
and each profile point whose -2 log posterior lies within chi2(1, 0.95) = 3.84 of the optimum:
one free parameter held inside its 95% profile interval, the others re-optimised) is simulated
in one batch-engine call; the range is the minimum and maximum of each outcome over those sets.
This is the envelope of the parameter values the case allows one at a time (a profile-based
range, not a joint confidence or predictive interval): it omits combinations off the profile
paths and all between-patient and residual variability, so the true uncertainty is wider.
"""

from __future__ import annotations

import math

import numpy as np

from cartkin.errors import ScenarioError

__all__ = ["QUANTITIES", "predict_outcomes", "predictions_table"]

#: As cartkin.fit.problem.Problem's default (tight, "auto" stiffness switching).
_SOLVER = {"method": "auto", "rtol": 1e-8, "atol": 1e-10, "max_steps": 100_000}

#: Reported quantities: name -> (unit, label).
QUANTITIES = {
    "proteinuria_g_per_24h": ("g/24h", "proteinuria"),
    "kidney_function_ml_min_173m2": ("mL/min/1.73m2", "kidney function"),
    "dialysis_sessions_per_week": ("1/week", "dialysis sessions/week"),
    "dialysis_interval_days": ("day", "dialysis interval"),
    "sledai2k": ("points", "SLEDAI-2K"),
    "ln_activity_index": ("0-24", "activity index"),
    "anti_dsdna_iu_per_ml": ("IU/mL", "anti-dsDNA"),
    "complement_c3_g_per_l": ("g/L", "C3"),
}


def predict_outcomes(model, context, theta, sets, days, *, settings=None, step_days=0.25,
                     solver=None) -> list[dict]:  # fmt: skip
    """Outcomes at ``days`` for the estimate and their range over the profile sets.

    Parameters
    ----------
    model : str or Model
        A model with the outcome roles (``sle_cart``).
    context : cartkin.covariates.regimen.Context
        The fitted patient and regimen.
    theta : mapping of str to float
        Fixed parameter values (the scenario's ``[parameters]``).
    sets : sequence of mapping of str to float, length n_sets >= 1
        Free parameter values; the first is the estimate (:attr:`FitResult.profile_sets`).
        Names that are not model parameters (error parameters) are ignored.
    days : sequence of float
        Days after infusion (> 0).
    settings : cartkin.outcomes.OutcomeSettings, optional
        Dialysis rule and SLEDAI-2K settings.
    step_days : float
        Output grid step (days).
    solver : dict, optional
        Integrator options (default: those of :class:`cartkin.fit.problem.Problem`).

    Returns
    -------
    list of dict
        One row per (quantity, day): ``quantity, label, unit, day, estimate, low, high,
        n_sets``; ``dialysis_interval_days`` is inf with no dialysis need.
    """
    from cartkin import models
    from cartkin.batch import BatchContext
    from cartkin.fit.problem import predict
    from cartkin.outcomes.report import OUTCOME_ROLES, derived_series

    model = models.get(model)
    days = np.asarray(sorted(float(d) for d in days), dtype=np.float64)
    if days.size == 0 or not np.all(np.isfinite(days) & (days > 0)):
        raise ScenarioError(f"predict_outcomes: days = {days.tolist()!r}; expected positive days")
    if not sets:
        raise ScenarioError("predict_outcomes: no parameter sets (the fit gave none)")
    names = set(model.parameters.names)
    free = [n for n in sets[0] if n in names]
    n_sets = len(sets)
    theta_sets = {k: np.full(n_sets, float(v)) for k, v in theta.items()}
    for n in free:
        theta_sets[n] = np.array([float(s[n]) for s in sets])
    roles = {r: model.roles[r] for r in OUTCOME_ROLES if model.roles.get(r)}
    if not roles:
        raise ScenarioError(f"predict_outcomes: model {model.name!r} plays no outcome role")
    t = np.arange(0.0, days[-1] + 0.5 * step_days, step_days)
    contexts = [context]
    curves = predict(model, contexts, t, theta_sets, sorted(set(roles.values())),
                     solver=solver or _SOLVER, bctx=BatchContext.from_contexts(contexts))  # fmt: skip
    series = derived_series(t, {r: curves[o][:, 0, :] for r, o in roles.items()}, settings)
    k = np.searchsorted(t, days)
    rows = []
    for q, (unit, label) in QUANTITIES.items():
        if q not in series:
            continue
        v = series[q][:, k]  # (n_sets, n_days); the grid holds every requested day
        for j, day in enumerate(days):
            col = v[:, j]
            ok = ~np.isnan(col)
            rows.append({
                "quantity": q, "label": label, "unit": unit, "day": float(day),
                "estimate": float(col[0]),
                "low": float(col[ok].min()) if ok.any() else math.nan,
                "high": float(col[ok].max()) if ok.any() else math.nan,
                "n_sets": int(ok.sum()),
            })  # fmt: skip
    return rows


def predictions_table(rows, reported=None) -> str:
    """Plain text of :func:`predict_outcomes` rows, with the case's value where ``reported``
    (mapping of (quantity, day) to value) has one."""
    reported = reported or {}
    lines = [f"{'outcome':<26}{'day':>6}{'estimate':>11}{'range':>22}{'case':>8}  unit"]
    for r in rows:
        rng = f"[{_g(r['low'])}, {_g(r['high'])}]"
        case = reported.get((r["quantity"], r["day"]))
        lines.append(f"{r['label']:<26}{r['day']:>6g}{_g(r['estimate']):>11}{rng:>22}"
                     f"{'' if case is None else _g(case):>8}  {r['unit']}")  # fmt: skip
    return "\n".join(lines)


def _g(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "none" if v > 0 else "-inf"
    return f"{v:.3g}"
