"""Maximum-likelihood / MAP fits: multistart L-BFGS-B on log parameters, Hessian SEs, profiles.

:func:`fit` minimises the -2 log posterior of a :class:`cartkin.fit.problem.Problem` (data,
summary targets, log-normal priors) over the free parameters on the log scale, within bounds:

1. Starts: the initial values (prior medians or table values) plus a Latin hypercube
   (``scipy.stats.qmc``, fixed seed) over the start box: each prior's central 95% interval, or
   the bounds where no prior is given; error parameters within a factor 3 of their initial value.
   All start points are evaluated in one batched objective call, and the starts then run side
   by side with their simulations merged into shared batch calls (:mod:`cartkin.fit.lockstep`).
2. Each start runs Gauss-Newton (``scipy.optimize.least_squares``, trf within bounds) on the
   model parameters, with the Jacobian by forward finite differences (step 1e-5 in log units,
   backward at an upper bound) from one batched call of n_model parameter sets, alternating with an
   exact minimisation over the error parameters on fixed predictions (no simulation), when the
   objective is a sum of squares for fixed error parameters (constant-SD error models; censored
   records, targets and priors enter as residuals whose squares are their -2LL terms).
   Otherwise (proportional or combined error) L-BFGS-B on all parameters with the gradient from
   one batched call of 2 n_free + 1 sets. A start counts as converged when the optimizer stopped on a tolerance and the projected
   gradient is below 0.01 + 1e-5 |-2LL| (-2LL per log unit: a further change moves -2LL by far
   less than 0.01; the second term allows for finite-difference noise, which grows with |-2LL|).
3. Starts agree when they reach the best objective within 0.1 and the best estimates within 1%.
4. Standard errors from the central finite-difference Hessian of the objective at the optimum
   (log scale, step 0.01, all 2 n^2 + 1 points in one batched call): Cov(log theta) = 2 H^-1,
   SE(theta) = theta x SE(log theta) (delta method). Directions where the Hessian of the data
   and targets alone is singular (eigenvalue below 1e-6 of the largest, or negative) flag every
   parameter loading on them as not identifiable, and those get no SE. With priors, a direction
   counts as informed only when the data and targets add at least 10% of the tightest prior's
   curvature; the others are flagged "not identified by the data/targets (interval from the
   prior)" and keep the posterior SE and interval, labelled as such.
5. Profile-likelihood 95% intervals (:mod:`cartkin.fit.profile`).
"""

from __future__ import annotations

import math
import time
from functools import partial

import numpy as np
from scipy.stats import norm, qmc

from cartkin.fit.lockstep import run_lockstep
from cartkin.fit.optimize import minimize_objective, objective_and_gradient
from cartkin.fit.problem import Problem
from cartkin.fit.profile import profile_all, profile_threshold
from cartkin.fit.result import Estimate, FitResult, prediction_records

__all__ = ["fit", "fit_problem", "hessian", "minimize_objective", "objective_and_gradient"]

HESS_STEP = 1e-2
AGREE_OBJECTIVE = 0.1
AGREE_RELATIVE = 0.01
SINGULAR_RATIO = 1e-6
PRIOR_SHARE = 0.1


def fit(model, contexts, observations=None, free=(), *, starts=8, seed=0, profile=True,
        progress=False, **problem_options) -> FitResult:  # fmt: skip
    """Fit free parameters of ``model`` to observations and/or summary targets.

    Parameters
    ----------
    model : str or Model
    contexts : mapping of id to Context
    observations : pandas.DataFrame or mapping, optional
        Columns ``id, time_days, observable, value, cens, limit``.
    free : sequence of str
        Model parameters to estimate.
    starts : int
        Number of starting points (>= 1): the initial values plus ``starts - 1`` Latin
        hypercube points.
    seed : int
        Seed of the start design.
    profile : bool or sequence of str
        Profile-likelihood intervals for every free parameter (True), none, or those named.
    progress : bool
        Progress bars on stderr for the starts and the profiles (drawn on a terminal; elsewhere
        one line per stage).
    **problem_options
        ``theta, error_models, free_error, priors, bounds, targets, target_id, solver`` (see
        :class:`cartkin.fit.problem.Problem`). Every residual SD of an observable with data is
        estimated unless ``free_error`` says otherwise (``free_error=()`` fixes them).

    Returns
    -------
    FitResult
    """
    problem = Problem(model, contexts, observations, free, **problem_options)
    return fit_problem(problem, starts=starts, seed=seed, profile=profile, progress=progress)


def fit_problem(problem: Problem, *, starts=8, seed=0, profile=True, progress=False) -> FitResult:
    """:func:`fit` for a built :class:`Problem`."""
    if not (isinstance(starts, int) and starts >= 1):
        raise ValueError(f"starts = {starts!r}: expected an integer >= 1")
    t_start = time.perf_counter()
    x0s = start_points(problem, starts, seed)
    f0s = problem.objective(x0s)  # one batched call for the whole design
    # all starts side by side, their simulations merged into shared batch calls
    tasks = [partial(minimize_objective, problem, x0) for x0 in x0s]
    with _bar(progress, len(tasks), f"fit: {len(tasks)} starts", "start") as bar:
        runs = run_lockstep(problem, _counted(tasks, bar))
    best = int(np.argmin([r["objective"] for r in runs]))
    x_hat = runs[best]["x"]
    table = _start_table(problem, x0s, f0s, runs, best)

    data, tgt, prior = (v[0] for v in problem.terms(x_hat[None, :]))
    se_log, flags = standard_errors(problem, x_hat)
    profiles = {}
    names = problem.names if profile is True else list(profile or ())
    if names:
        with _bar(progress, len(names), f"profiles: {len(names)} parameters", "profile") as bar:
            profiles = profile_all(problem, x_hat, runs[best]["objective"], se_log, names,
                                   wrap=lambda tasks: _counted(tasks, bar))  # fmt: skip
    estimates = _estimates(problem, x_hat, se_log, flags, profiles)

    rows = np.vstack([typical_values(problem, x_hat), x_hat])  # PRED, IPRED
    curves = problem.simulate(rows)
    result = FitResult(
        model=problem.model.name,
        estimates=estimates,
        objective=float(data + tgt),
        objective_prior=float(prior),
        n_records=problem.n_records,
        n_free=problem.n_free,
        converged=bool(runs[best]["converged"]),
        starts=table,
        starts_agree=sum(r["agrees"] for r in table),
        predictions=prediction_records(problem, curves, x_hat),
        error_models={
            k: _scalars(em.to_dict()) for k, em in problem.error_models_for(x_hat).items()
        },
        targets=[dict(t.to_dict(), label=t.label) for t in problem.targets],
        target_values=_target_values(problem, curves),
        profiles={k: v["curve"] for k, v in profiles.items()},
        kind="scenario" if problem.targets else ("map" if problem.priors else "ml"),
        elapsed_s=time.perf_counter() - t_start,
        notes=[n for r in profiles.values() for n in r.get("notes", [])],
        profile_sets=_profile_sets(problem, x_hat, runs[best]["objective"], profiles),
        profile_threshold=profile_threshold(problem),
        fixed_error=_fixed_error(problem),
        curves=problem.dense_curves(rows) if problem.n_obs else {},
    )
    return result


def typical_values(problem: Problem, x_hat) -> np.ndarray:
    """The log-scale row behind PRED: the estimates, with every parameter that has a prior at
    its prior median (the population's typical value; the estimate is then the patient's, as
    an EBE is). Without priors PRED equals IPRED, as in NONMEM for a model without ETAs."""
    x = np.array(x_hat, dtype=np.float64)
    for k, name in enumerate(problem.model_free):
        if name in problem.priors:
            x[k] = problem.priors[name].mu_log
    return np.clip(x, problem.lower, problem.upper)


def _scalars(d: dict) -> dict:
    """An error model's dict with its (1, 1)-shaped parameter lists as plain floats."""
    return {k: v if k == "kind" else float(np.ravel(v)[0]) for k, v in d.items()}


def _fixed_error(problem) -> dict:
    """``{"<observable>.<sigma>": value}`` of the residual-error parameters held fixed."""
    free = set(problem.error_free)
    return {f"{obs}.{p}": float(getattr(em, p)) for obs, em in problem.error_models.items()
            for p in em.parameter_names if (obs, p) not in free}  # fmt: skip


def _bar(progress, total, desc, unit):
    """A progress bar (:func:`cartkin.progress.bar`) or a do-nothing context."""
    import contextlib

    if not progress:
        return contextlib.nullcontext(None)
    from cartkin.progress import bar

    return bar(total, desc, unit=unit)


def _counted(tasks, bar):
    """The tasks, each advancing ``bar`` by one when it finishes (bar None: unchanged)."""
    if bar is None:
        return tasks

    def done(task):
        out = task()
        bar.update(1)
        return out

    return [partial(done, t) for t in tasks]


def _profile_sets(problem, x_hat, f_hat, profiles, level=0.95) -> list[dict]:
    """The estimate and the profile points whose objective is within the profile threshold
    (:func:`cartkin.fit.profile.profile_threshold`) of the optimum, as dicts of free parameter
    values (natural scale)."""
    delta = profile_threshold(problem, level)
    rows = [x_hat] + [
        x for r in profiles.values() for x, f in r.get("sets", []) if f - f_hat <= delta
    ]
    return [{n: float(math.exp(v)) for n, v in zip(problem.names, x, strict=True)} for x in rows]


def start_points(problem: Problem, starts: int, seed: int) -> np.ndarray:
    """Start rows on the log scale, shape (starts, n_free): the initial values, then a Latin
    hypercube over the start box."""
    lo, hi = problem.lower.copy(), problem.upper.copy()
    k0 = len(problem.model_free)
    for k, name in enumerate(problem.names):
        if name in problem.priors:
            p = problem.priors[name]
            q = norm.ppf(0.975) * p.sd_log
            lo[k], hi[k] = max(lo[k], p.mu_log - q), min(hi[k], p.mu_log + q)
        elif k >= k0:
            lo[k], hi[k] = problem.x_init[k] - math.log(3.0), problem.x_init[k] + math.log(3.0)
    rows = [problem.x_init]
    if starts > 1:
        design = qmc.LatinHypercube(d=problem.n_free, seed=seed).random(starts - 1)
        rows.extend(lo + design * (hi - lo))
    return np.clip(np.vstack(rows), problem.lower, problem.upper)


def hessian(problem: Problem, x, part="total", step=HESS_STEP) -> np.ndarray:
    """Central finite-difference Hessian of the objective at ``x`` (log scale), one batched call.

    ``part``: "total" (data + targets + prior) or "data" (data + targets only).
    """
    n = x.size
    e = np.eye(n) * step
    rows = [x]
    for i in range(n):
        rows += [x + e[i], x - e[i]]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    for i, j in pairs:
        rows += [x + e[i] + e[j], x + e[i] - e[j], x - e[i] + e[j], x - e[i] - e[j]]
    rows = np.clip(np.vstack(rows), problem.lower, problem.upper)
    data, tgt, prior = problem.terms(rows)
    f = data + tgt + (prior if part == "total" else 0.0)
    f = np.where(np.isfinite(f), f, np.nan)
    h = np.empty((n, n))
    for i in range(n):
        h[i, i] = (f[1 + 2 * i] - 2.0 * f[0] + f[2 + 2 * i]) / step**2
    base = 1 + 2 * n
    for k, (i, j) in enumerate(pairs):
        fpp, fpm, fmp, fmm = f[base + 4 * k : base + 4 * k + 4]
        h[i, j] = h[j, i] = (fpp - fpm - fmp + fmm) / (4.0 * step**2)
    return h


def standard_errors(problem: Problem, x):
    """SE of log parameters (NaN where not given) and a flag per parameter: "" (identifiable),
    "at bound", "not identifiable (singular Hessian)"."""
    n = x.size
    se = np.full(n, np.nan)
    flags = [""] * n
    near = (x - problem.lower < 2 * HESS_STEP) | (problem.upper - x < 2 * HESS_STEP)
    for k in np.flatnonzero(near):
        flags[k] = "at bound"
    inner = np.flatnonzero(~near)
    if inner.size == 0:
        return se, flags
    xs = x.copy()
    h_tot = hessian(problem, xs)[np.ix_(inner, inner)]
    h_dat = hessian(problem, xs, part="data")[np.ix_(inner, inner)] if problem.priors else h_tot
    if not np.all(np.isfinite(h_tot)):
        for k in inner:
            flags[k] = "Hessian not finite"
        return se, flags
    w, v = np.linalg.eigh(0.5 * (h_dat + h_dat.T))
    scale = max(np.max(np.abs(w)), 1e-300)
    floor = SINGULAR_RATIO * scale
    if problem.priors:
        # with priors, the data must add at least PRIOR_SHARE of the tightest prior's curvature
        # (2 / sd_log^2 on the -2 log scale) along a direction for it to count as informed
        floor = max(floor, PRIOR_SHARE * 2.0 / min(p.sd_log for p in problem.priors.values()) ** 2)
    weak = w < floor
    bad = np.zeros(inner.size, bool)
    for col in np.flatnonzero(weak):
        bad |= np.abs(v[:, col]) > 0.1
    for j, k in enumerate(inner):
        if bad[j]:
            flags[k] = (
                "not identified by the data/targets (interval from the prior)"
                if problem.priors
                else "not identifiable (singular Hessian)"
            )
    if problem.priors:  # the posterior Hessian is regular: SEs for all, flags stay
        bad[:] = False
    good = np.flatnonzero(~bad)
    if good.size:
        hg = h_tot[np.ix_(good, good)]
        wg = np.linalg.eigvalsh(0.5 * (hg + hg.T))
        if np.all(wg > 0):
            cov = 2.0 * np.linalg.inv(hg)
            se[inner[good]] = np.sqrt(np.diag(cov))
        else:
            for j in good:
                flags[inner[j]] = "Hessian not positive definite"
    return se, flags


def _start_table(problem, x0s, f0s, runs, best):
    xb, fb = runs[best]["x"], runs[best]["objective"]
    table = []
    for k, (x0, f0, r) in enumerate(zip(x0s, f0s, runs, strict=True)):
        close = np.all(np.abs(np.exp(r["x"] - xb) - 1.0) < AGREE_RELATIVE)
        table.append({
            "start": k,
            "initial": dict(zip(problem.names, np.exp(x0).tolist(), strict=True)),
            "initial_objective": float(f0),
            "final": dict(zip(problem.names, np.exp(r["x"]).tolist(), strict=True)),
            "objective": r["objective"],
            "converged": r["converged"],
            "agrees": bool(r["objective"] - fb < AGREE_OBJECTIVE and close),
            "n_iter": r["n_iter"],
            "n_eval": r["n_eval"],
        })  # fmt: skip
    return table


def _estimates(problem, x, se_log, flags, profiles):
    out = []
    for k, name in enumerate(problem.names):
        value = float(math.exp(x[k]))
        se = float(value * se_log[k]) if math.isfinite(se_log[k]) else None
        prof = profiles.get(name, {})
        lo, hi = prof.get("ci_low"), prof.get("ci_high")
        flag = flags[k]
        identifiable = flag == ""
        if prof:
            identifiable = identifiable and lo is not None and hi is not None
            if lo is None or hi is None:
                flag = (flag + "; " if flag else "") + prof.get("flag", "flat profile")
        out.append(Estimate(
            name=name, value=value, unit=problem.units[k], se=se, ci_low=lo, ci_high=hi,
            identifiable=identifiable, note=flag,
            prior=problem.priors[name].to_dict() if name in problem.priors else None,
            lower=float(math.exp(problem.lower[k])), upper=float(math.exp(problem.upper[k])),
        ))  # fmt: skip
    return out


def _target_values(problem, curves):
    from cartkin.fit.targets import metric_values

    out = []
    for target, name in problem._target_obs:
        y = curves[name][:, problem._patient_of(target), :]
        x = metric_values(target, problem.t_days, y)
        out.append({"label": target.label, "initial": _num(x[0]), "fitted": _num(x[1])})
    return out


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else None
