"""Population (nonlinear mixed-effects) fits by SAEM.

A cohort of patients shares typical parameter values; each patient's parameters vary
log-normally around them (logit-normally for a parameter bounded by [0, 1]) with a diagonal
between-patient covariance Omega; observations scatter around the patient's prediction under a
residual error model of :mod:`cartkin.fit.likelihood`, censored records entering through M3.

Why SAEM rather than FOCE-I: SAEM needs no derivatives of the model (only predictions, which the
batch engine computes for all patients in one call), converges from poor starting values, and
gives the exact maximum-likelihood estimate of the mixed-effects model rather than a
linearisation-based approximation (Kuhn E, Lavielle M. Maximum likelihood estimation in
nonlinear mixed effects models. Comput Stat Data Anal 2005;49:1020-1038; Delyon B, Lavielle M,
Moulines E. Ann Stat 1999;27:94-128). It is the algorithm of Monolix and of nlmixr2's "saem".
The algorithm is in :mod:`cartkin.fit._saem`, diagnostics in :mod:`cartkin.fit._popdiag`,
cohort data and the one prediction call in :mod:`cartkin.fit._popdata`, the result in
:mod:`cartkin.fit.popresult`, figures in :mod:`cartkin.fit.popplot`.

Entry point: :func:`fit_population` -> :class:`PopulationFitResult`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np

from cartkin import models
from cartkin.errors import ScenarioError
from cartkin.fit._popdata import (
    CohortData,
    Predictor,
    Subject,
    subjects_from_dataset,
    subjects_from_table,
)
from cartkin.fit._popdiag import FisherAccumulator, ebe_modes, importance_sampling_loglik, npde
from cartkin.fit._saem import SAEMOptions, SAEMState, Transform, convergence_verdict, run_saem
from cartkin.fit.likelihood import ErrorModel
from cartkin.fit.popresult import (
    PopulationFitResult,
    error_names,
    estimates_table,
    iwres,
    omega_table,
)

__all__ = [
    "PopulationFitResult",
    "SAEMOptions",
    "Subject",
    "fit",
    "fit_population",
    "subjects_from_table",
]

#: Default residual error: additive on the log scale, the CAR-T standard. The starting value
#: 0.5 is an assumption (Stein 2019's residual variance 0.56 on the log scale is sd 0.75); it is
#: estimated.
DEFAULT_ERROR = ErrorModel("log", sigma_add=0.5)


def fit_population(
    model,
    subjects,
    random_effects: Sequence[str],
    *,
    base_regimen=None,
    free: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    init: Mapping[str, float] | None = None,
    omega2_init: float | Mapping[str, float] = 1.0,
    error_model: ErrorModel | Mapping[str, ErrorModel] | None = None,
    covariates: Mapping[str, str | Sequence[str]] | None = None,
    options: SAEMOptions | None = None,
    n_is_samples: int = 500,
    n_npde_sims: int = 500,
    standard_errors: bool = True,
    method: str = "auto",
    rtol: float = 1e-6,
    atol: float = 1e-9,
    engine: str = "batch",
    threads: int | None = 1,
    progress=None,
    log_every: int | None = None,
) -> PopulationFitResult:
    """Fit a cohort with a nonlinear mixed-effects model by SAEM.

    Parameters
    ----------
    model : str or Model
    subjects : sequence of Subject or cartkin.data.Dataset
        The cohort: subjects (contexts and observations, :class:`Subject`) or a dataset read
        by :func:`cartkin.data.read` (its contexts built with ``base_regimen``).
    random_effects : sequence of str
        Parameters with between-patient variability (log-normal; logit-normal for fractions:
        dimensionless parameters whose table bounds are [0, 1], such as ``fb``).
    free : sequence of str, optional
        Parameters estimated (default: ``random_effects``); must include ``random_effects``.
        Free parameters without variability get one typical value for the whole cohort.
    base_regimen : cartkin.Regimen, optional
        With a Dataset: the regimen fields the file does not give (default lymphodepletion).
    fixed : mapping of str to float, optional
        Values of parameters that are not free (others keep the table defaults).
    init : mapping of str to float, optional
        Initial typical values of free parameters (default: the table defaults).
    omega2_init : float or mapping
        Initial variances on the estimation scale (default 1.0, Monolix's default omega 1).
    error_model : ErrorModel or mapping of observable name to ErrorModel, optional
        Residual error model and initial parameters per observable (default
        ``ErrorModel("log", sigma_add=0.5)`` for each); parameters are estimated.
    covariates : mapping of str to str or sequence of str, optional
        ``{param: covariate}``: power model ``theta_i = typical (cov_i / median cov)^beta``
        (``weight_kg``, ``egfr_ml_min_173m2``, ``bsa_m2``, ``age_years`` from each context).
    options : SAEMOptions, optional
        Iterations, kernels and the seed.
    n_is_samples : int
        Importance samples per subject for -2LL.
    n_npde_sims : int
        Simulated replicates of the data for NPDE (0: none).
    standard_errors : bool
        Compute standard errors by Louis' formula during the averaging phase.
    method, rtol, atol : solver settings.
    engine : {"batch", "loop"}
        Prediction path: the compiled batch engine (default) or one solve per row (reference).
    threads : int or None
        numba threads per batch call. Default 1: each call holds one MCMC sweep (tens of
        patients, ~0.1 ms each), and on a shared 2-core machine a second thread made a
        40-patient stein2019 call 9x slower (780 vs 84 us per patient, load average 8);
        None uses numba's setting.
    progress : callable, optional
        ``progress(iteration, n_iterations)``.
    log_every : int, optional
        Print an iteration line to stderr every ``log_every`` iterations and at each phase's
        end: iteration, phase, conditional -2LL of the current sample, population parameters
        (the run record, :meth:`PopulationFitResult.run_record`, keeps every iteration).

    Returns
    -------
    PopulationFitResult

    Raises
    ------
    ScenarioError
        Unknown parameter or observable names, a random effect that is not free, a free
        parameter also fixed, initial values out of bounds.
    DataError
        Invalid observations (the message names the subject and record).
    """
    t_start = time.perf_counter()
    model = models.get(model)
    options = SAEMOptions() if options is None else options
    table = model.parameters
    random_effects = _names(table, random_effects, "random_effects")
    free = random_effects if free is None else _names(table, free, "free")
    missing = [r for r in random_effects if r not in free]
    if missing:
        raise ScenarioError(f"random_effects {missing} are not in free {list(free)}")
    if not free:
        raise ScenarioError("population fit: give at least one parameter in random_effects")
    fixed = dict(fixed or {})
    both = [f for f in free if f in fixed]
    if both:
        raise ScenarioError(f"parameters {both} are both free and fixed; choose one")
    table.validate(fixed)
    if hasattr(subjects, "observations") and hasattr(subjects, "contexts"):
        subjects = subjects_from_dataset(subjects, base_regimen)
    data = CohortData(model, subjects)
    error_models = _error_models(data, error_model)
    init = dict(init or {})
    not_free = [k for k in init if k not in free]
    if not_free:
        raise ScenarioError(
            f"init gives {not_free}, which are not free parameters (free: {list(free)}); "
            "set values of the others with fixed=..."
        )
    start = table.values(init)
    transform = Transform(["logit" if _is_fraction(table[name]) else "log" for name in free])
    x0 = np.array([start[name] for name in free])
    phi0 = transform.to_phi(x0)
    if not np.all(np.isfinite(phi0)):
        raise ScenarioError(
            f"initial values {dict(zip(free, x0, strict=True))}: every free parameter must be "
            "positive (and below 1 for fractions) to start on the log/logit scale"
        )
    design, cov_names, cov_refs = _design(data, free, covariates or {})
    beta = [np.concatenate([[phi0[j]], np.zeros(design[j].shape[1] - 1)]) for j in range(len(free))]
    iiv = np.array([name in random_effects for name in free])
    omega2 = np.array([_omega_init(omega2_init, name) for name in free])
    predictor = Predictor(
        data, free, fixed, method=method, rtol=rtol, atol=atol, engine=engine, threads=threads
    )
    state = SAEMState(data, predictor, transform, design, iiv, beta, omega2, error_models)
    rng = np.random.default_rng(options.seed)
    fisher = FisherAccumulator(state) if standard_errors else None
    run = run_saem(state, options, rng, progress=progress, hook=fisher,
                   log=_iteration_logger(log_every, options, free))  # fmt: skip

    # after convergence: EBEs, -2LL, NPDE, predictions
    cond_sd = np.sqrt(run["cond_var"])
    step = np.maximum(cond_sd, 0.05 * np.sqrt(state.omega2))
    ebe_phi, _, ebe_conv = ebe_modes(state, run["cond_mean"], step)
    ll_i, mc_se_i = importance_sampling_loglik(
        state, run["cond_mean"], cond_sd, rng, n_samples=n_is_samples
    )
    objective = -2.0 * float(ll_i.sum())
    mc_se = 2.0 * float(np.sqrt(np.sum(mc_se_i**2)))
    subjects_idx = np.arange(data.n)
    pred = state.predict(state.mean_phi(), subjects_idx)
    ipred = state.predict(ebe_phi, subjects_idx)
    if n_npde_sims > 0:
        npde_values, sims = npde(state, rng, n_npde_sims)
        replicates = sims.transpose(1, 0, 2)[:, state.valid]  # (n_sim, n_obs), data order
    else:
        npde_values, replicates = np.full(data.n_obs, np.nan), None

    se = fisher.standard_errors() if fisher is not None else {}
    n_params = (
        sum(b.size for b in state.beta)
        + int(iiv.sum())
        + sum(len(em.parameter_names) for em in state.error_models.values())
    )
    aic = objective + 2 * n_params
    bic = objective + n_params * math.log(data.n_obs)
    estimates = estimates_table(model, state, free, cov_names, cov_refs, se)
    omega = omega_table(state, free, ebe_phi, se)
    traj_names = (
        tuple(free)
        + tuple(f"{free[j]}~{c}" for j in range(len(free)) for c in cov_names[j])
        + tuple(f"omega2_{name}" for name in free)
        + tuple(error_names(state))
    )
    check = np.array(
        [
            not (n.startswith("omega2_") and n[7:] in free and not iiv[free.index(n[7:])])
            for n in traj_names
        ]
    )
    converged, note, drifting = convergence_verdict(run["trajectory"], options, traj_names, check)
    converged = bool(converged and np.isfinite(objective))
    valid = state.valid
    iwres_values = iwres(state, ipred)
    columns = {
        "id": np.array([data.ids[s] for s in data.subject]),
        "time": data.t_days,
        "observable": np.array([data.observables[k] for k in data.obs_index]),
        "dv": data.value,
        "pred": pred[valid],
        "ipred": ipred[valid],
        "cens": data.cens,
        "limit": data.limit,
        "iwres": iwres_values[valid],
        "npde": npde_values,
    }
    curves = _dense_curves(data, predictor, transform, state.mean_phi(), ebe_phi)
    ebe_values = transform.to_value(ebe_phi)
    ebes = {"id": np.array(data.ids)}
    ebes.update({name: ebe_values[:, j] for j, name in enumerate(free)})
    methods = {
        "estimation": "SAEM (Kuhn & Lavielle 2005): MH kernels (prior, random walk, 1-D random "
        "walk), stochastic approximation then averaging, closed-form M-step for typical values "
        "and variances, 1-D optimisation for residual error",
        "objective": f"-2LL by importance sampling, {n_is_samples} Student-t(5) samples per "
        "subject around the conditional mean and sd",
        "standard_errors": "Louis' missing-information formula on the averaging-phase samples "
        "(typical values of parameters with variability, variances, residual error); none for "
        "parameters without variability"
        if standard_errors
        else "none",
        "ebe": "conditional modes by a batched Nelder-Mead from the conditional means",
        "npde": f"{n_npde_sims} simulated replicates, Cholesky decorrelation of the observed "
        "records; censored records Phi^-1(u), u uniform below the limit's share (Nguyen 2012)"
        if n_npde_sims > 0
        else "none",
        "bic": "log(number of records)",
    }
    return PopulationFitResult(
        model=model.name,
        estimates=estimates,
        omega=omega,
        error_models=dict(state.error_models),
        ebes=ebes,
        columns=columns,
        replicates=replicates,
        objective=objective,
        loglik_mc_se=mc_se,
        aic=aic,
        bic=bic,
        n_parameters=n_params,
        n_subjects=data.n,
        n_obs=data.n_obs,
        converged=converged,
        convergence=note
        + (
            ""
            if ebe_conv.all()
            else f"; EBE search not converged for {int((~ebe_conv).sum())} subjects"
        ),
        trajectory=run["trajectory"],
        trajectory_names=traj_names,
        trajectory_objective=run["objective"],
        drifting=drifting,
        curves=curves,
        acceptance=run["acceptance"],
        methods=methods,
        elapsed_s=time.perf_counter() - t_start,
        n_solves=predictor.n_solves,
        options={
            "n_burn": options.n_burn,
            "n_explore": options.n_explore,
            "n_average": options.n_average,
            "n_prior": options.n_prior,
            "n_rw": options.n_rw,
            "n_chains": options.n_chains,
            "seed": options.seed,
            "random_effects": list(random_effects),
            "free": list(free),
            "fixed": fixed,
            "covariates": {free[j]: list(cov_names[j]) for j in range(len(free)) if cov_names[j]},
            "method": method,
            "engine": engine,
            "threads": threads,
            "rtol": rtol,
            "atol": atol,
        },
    )


# -- helpers ----------------------------------------------------------------------------------------
def _dense_curves(data, predictor, transform, mean_phi, ebe_phi, n_points=241) -> dict:
    """PRED (typical values, covariates applied) and IPRED (EBEs) of every subject on a dense
    grid over the data's time range, as a long table ``id, time, observable, pred, ipred``
    (the individual-fit figures; one batch call)."""
    t = np.union1d(np.linspace(0.0, float(data.t_days.max()), n_points), data.t_days)
    n = data.n
    values = transform.to_value(np.vstack([mean_phi, ebe_phi]))
    y = predictor.dense(values, np.tile(np.arange(n), 2), t)  # (2n, n_t, n_obs)
    names = list(data.observables)
    ids = np.array(data.ids, dtype=object)
    return {
        "id": np.tile(np.repeat(ids, t.size), len(names)),
        "time": np.tile(t, n * len(names)),
        "observable": np.repeat(np.array(names), n * t.size),
        "pred": np.concatenate([y[:n, :, k].ravel() for k in range(len(names))]),
        "ipred": np.concatenate([y[n:, :, k].ravel() for k in range(len(names))]),
    }


def _iteration_logger(every, options, free):
    """``log`` for :func:`run_saem`: one stderr line every ``every`` iterations and at the end
    of each phase (None: no lines)."""
    import sys

    if not every:
        return None
    ends = {options.n_burn - 1, options.n_burn + options.n_explore - 1}
    t0 = time.perf_counter()
    d = len(free)

    def log(k, n_total, phase, objective, snapshot):
        if (k + 1) % every and k not in ends and k != n_total - 1:
            return
        values = " ".join(f"{n} {v:.4g}" for n, v in zip(free, snapshot[:d], strict=True))
        print(f"SAEM {k + 1:>4}/{n_total} {phase:<7} -2LL(cond) {objective:.2f}  {values}  "
              f"[{time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)  # fmt: skip

    return log


def _names(table, names, what):
    if isinstance(names, str):
        names = [names]
    out = []
    for name in names:
        table.index(name)  # raises with a hint
        if name in out:
            raise ScenarioError(f"{what}: {name!r} given twice")
        out.append(name)
    return tuple(out)


def _is_fraction(parameter) -> bool:
    """A dimensionless parameter bounded by [0, 1] (a fraction): logit-normal, else log-normal."""
    return parameter.unit == "-" and parameter.lower == 0.0 and parameter.upper == 1.0


def _omega_init(spec, name):
    value = spec.get(name, 1.0) if isinstance(spec, Mapping) else spec
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ScenarioError(f"omega2_init for {name!r} = {value!r}; expected a positive number")
    return float(value)


def _error_models(data, spec):
    if spec is None:
        return {name: DEFAULT_ERROR for name in data.observables}
    if isinstance(spec, ErrorModel):
        return {name: spec for name in data.observables}
    out = {}
    for name in data.observables:
        if name not in spec:
            raise ScenarioError(
                f"error_model: no error model for observable {name!r}; given for {sorted(spec)}"
            )
        out[name] = spec[name]
    return out


def _design(data, free, covariates):
    unknown = [p for p in covariates if p not in free]
    if unknown:
        raise ScenarioError(f"covariates given for {unknown}, which are not free parameters")
    design, names, refs = [], [], []
    for name in free:
        covs = covariates.get(name, ())
        covs = [covs] if isinstance(covs, str) else list(covs)
        cols = [np.ones(data.n)]
        ref = []
        for c in covs:
            values = data.covariate(c)
            median = float(np.median(values))
            cols.append(np.log(values / median))
            ref.append(median)
        design.append(np.column_stack(cols))
        names.append(tuple(covs))
        refs.append(tuple(ref))
    return design, names, refs


def fit(
    model,
    contexts: Mapping,
    observations,
    free: Sequence[str],
    *,
    starts: int | None = None,
    seed: int = 0,
    theta: Mapping[str, float] | None = None,
    error_models: Mapping[str, ErrorModel] | None = None,
    priors: Mapping | None = None,
    targets: Sequence | None = None,
    free_error=None,
    bounds: Mapping | None = None,
    grid_step_days=None,
    horizon_days=None,
    **kwargs,
) -> PopulationFitResult:
    """``cartkin fit --population``: the arguments of the single-patient ``fit``.

    Every free parameter gets between-patient variability. ``contexts`` ``{id: Context}`` and
    ``observations`` (a table with ``id, time_days, observable, value, cens, limit``) come from
    the CLI's data reader; ``theta`` (the scenario's parameter overrides) fixes the parameters
    that are not free. Options of the single-patient fit that have no population meaning are
    refused (summary targets) or listed in ``notes`` (starts, priors, bounds, grid settings).
    Other keyword arguments go to :func:`fit_population`.
    """
    notes = []
    if targets:
        raise ScenarioError(
            "summary targets are not used by the population fit (it fits patient data); "
            "drop --population or the [[fit.target]] tables"
        )
    if starts not in (None, 1):
        notes.append(f"starts = {starts} ignored: SAEM runs one chain from the initial values")
    if priors:
        notes.append(
            f"priors on {sorted(priors)} not used: the population distribution takes their place"
        )
    if bounds:
        notes.append("bounds ignored: the parameter table's bounds apply")
    if free_error is False:
        notes.append("residual-error parameters are always estimated by the population fit")
    del grid_step_days, horizon_days
    model = models.get(model)
    free = _names(model.parameters, free, "free")
    fixed = {k: v for k, v in (theta or {}).items() if k not in free}
    subjects = subjects_from_table(contexts, observations)
    options = kwargs.pop("options", None) or SAEMOptions(seed=int(seed))
    result = fit_population(
        model,
        subjects,
        free,
        fixed=fixed,
        error_model=error_models or None,
        options=options,
        **kwargs,
    )
    result.notes.extend(notes)
    return result
