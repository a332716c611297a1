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
The algorithm is in :mod:`cartkin.fit._saem`; diagnostics in :mod:`cartkin.fit._popdiag`.

Entry point: :func:`fit_population` -> :class:`PopulationFitResult`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cartkin import models
from cartkin.errors import DataError, ScenarioError
from cartkin.fit._popdata import CohortData, Predictor, Subject, subjects_from_dataset
from cartkin.fit._popdiag import FisherAccumulator, ebe_modes, importance_sampling_loglik, npde
from cartkin.fit._saem import SAEMOptions, SAEMState, Transform, run_saem
from cartkin.fit.likelihood import ErrorModel

__all__ = [
    "PopulationFitResult",
    "SAEMOptions",
    "Subject",
    "fit",
    "fit_population",
    "subjects_from_table",
]

_Z95 = 1.959963984540054
#: Default residual error: additive on the log scale, the CAR-T standard. The starting value
#: 0.5 is an assumption (Stein 2019's residual variance 0.56 on the log scale is sd 0.75); it is
#: estimated.
DEFAULT_ERROR = ErrorModel("log", sigma_add=0.5)


@dataclass(frozen=True, eq=False)
class PopulationFitResult:
    """Outcome of :func:`fit_population`.

    Attributes
    ----------
    model : str
        Model name.
    estimates : dict
        ``{name: {"value", "unit", "se", "ci_low", "ci_high"}}``: typical values (natural
        scale, at the covariates' medians), covariate exponents (``"<param>~<covariate>"``)
        and residual-error parameters (``"<sigma_add|sigma_prop>"`` with one observable, else
        ``"<sigma>:<observable>"``). ``se`` None where not computed; 95% Wald intervals on the
        estimation scale.
    omega : dict
        ``{param: {"omega2", "se", "cv_percent", "shrinkage"}}`` for parameters with
        variability (``cv_percent = 100 sqrt(exp(omega2) - 1)`` for log-normal parameters,
        None for logit ones; ``shrinkage = 1 - var(EBE eta)/omega2``).
    error_models : dict of str to ErrorModel
        Final residual error model per observable.
    ebes : dict of str to numpy.ndarray
        ``{"id": ids, <param>: (n,) values}``: conditional modes per subject.
    columns : dict of str to numpy.ndarray
        Per record (data order): ``id, time, observable, dv, pred, ipred, cens, limit, iwres,
        npde``: ``pred`` at the typical values (covariates applied), ``ipred`` at the EBEs,
        ``iwres`` the residual at ``ipred`` on the error model's scale over its sd (NaN when
        censored), ``npde`` (NaN when not computed). ``dv`` is the limit when censored.
    objective : float
        -2 log-likelihood by importance sampling (``loglik_mc_se``: its Monte Carlo SE).
    aic, bic : float
        ``-2LL + 2 k`` and ``-2LL + k log(n_obs)`` with ``k = n_parameters``.
    converged : bool
        See ``convergence``.
    convergence : str
        How convergence was judged and the result.
    trajectory : numpy.ndarray, shape (n_iterations, n_pop)
        Population parameters after every iteration (``trajectory_names``).
    """

    model: str
    estimates: dict
    omega: dict
    error_models: dict
    ebes: dict
    columns: dict
    objective: float
    loglik_mc_se: float
    aic: float
    bic: float
    n_parameters: int
    n_subjects: int
    n_obs: int
    converged: bool
    convergence: str
    trajectory: np.ndarray
    trajectory_names: tuple
    acceptance: dict
    methods: dict
    elapsed_s: float
    n_solves: int
    options: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    replicates: np.ndarray | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """``"population"`` (the single-patient FitResult has "ml", "map", "scenario")."""
        return "population"

    def simulations(self):
        """The NPDE replicates as a VPC table (pandas DataFrame: ``replicate, id, time,
        observable, dv``; simulated under the final population model, residual error
        included), or None when no replicates were drawn (``n_npde_sims=0``)."""
        if self.replicates is None:
            return None
        import pandas as pd

        k, n_obs = self.replicates.shape
        c = self.columns
        return pd.DataFrame(
            {
                "replicate": np.repeat(np.arange(k), n_obs),
                "id": np.tile(c["id"], k),
                "time": np.tile(c["time"], k),
                "observable": np.tile(c["observable"], k),
                "dv": self.replicates.ravel(),
            }
        )

    def write_figures(self, directory) -> list:
        """Every figure: the fit figures of :func:`cartkin.fit.plots.write_figures` (individual
        fits, observed vs predicted, residuals, VPC from the replicates) and the population ones
        of :func:`cartkin.fit.popplot.write_figures` (convergence, GOF, NPDE)."""
        from cartkin.fit import plots, popplot

        paths = plots.write_figures(self, directory, simulations=self.simulations())
        return paths + popplot.write_figures(self, directory)

    @property
    def predictions(self) -> list[dict]:
        """One record per observation (the FitResult schema): ``{id, time, observable, dv,
        pred, ipred, cens, limit, iwres, npde}``; NaN -> None."""
        c = self.columns
        return [{key: _jsonable(c[key][i]) for key in c} for i in range(len(c["id"]))]

    @property
    def profiles(self) -> dict:
        """Likelihood profiles: none for population fits (FitResult compatibility)."""
        return {}

    def to_table(self) -> str:
        """Same as :meth:`summary` (the name ``cartkin fit`` prints)."""
        return self.summary()

    def to_dict(self) -> dict:
        """JSON-ready dict: the FitResult schema (estimates, objective, converged,
        predictions as records) plus ``omega``, ``ebes`` and the population details."""
        records = self.predictions
        ebes = [
            {key: _jsonable(self.ebes[key][i]) for key in self.ebes}
            for i in range(len(self.ebes["id"]))
        ]
        return {
            "kind": "population",
            "method": "SAEM",
            "model": self.model,
            "estimates": {
                k: {f: _jsonable(v) for f, v in e.items()} for k, e in self.estimates.items()
            },
            "omega": {k: {f: _jsonable(v) for f, v in e.items()} for k, e in self.omega.items()},
            "error_models": {k: em.to_dict() for k, em in self.error_models.items()},
            "objective": _jsonable(self.objective),
            "objective_kind": "-2LL (importance sampling)",
            "loglik_mc_se": _jsonable(self.loglik_mc_se),
            "aic": _jsonable(self.aic),
            "bic": _jsonable(self.bic),
            "n_parameters": self.n_parameters,
            "n_subjects": self.n_subjects,
            "n_obs": self.n_obs,
            "converged": bool(self.converged),
            "convergence": self.convergence,
            "acceptance": {k: _jsonable(v) for k, v in self.acceptance.items()},
            "methods": self.methods,
            "elapsed_s": _jsonable(self.elapsed_s),
            "n_solves": self.n_solves,
            "options": self.options,
            "trajectory": {
                "names": list(self.trajectory_names),
                "values": [[_jsonable(v) for v in row] for row in self.trajectory],
            },
            "ebes": ebes,
            "notes": list(self.notes),
            "predictions": records,
        }

    def to_json(self, path=None, indent: int | None = 1) -> str:
        """The :meth:`to_dict` form as JSON text; also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        return text

    def summary(self) -> str:
        """A plain-text table of the estimates, variances and fit statistics."""
        lines = [
            f"Population fit (SAEM) of {self.model}: {self.n_subjects} subjects, "
            f"{self.n_obs} records"
        ]
        lines.append(f"{'parameter':<28} {'value':>11} {'unit':<12} {'se':>10} {'95% CI':>25}")
        for name, e in self.estimates.items():
            se = "-" if e["se"] is None else f"{e['se']:.3g}"
            ci = "-" if e["ci_low"] is None else f"[{e['ci_low']:.4g}, {e['ci_high']:.4g}]"
            lines.append(f"{name:<28} {e['value']:>11.4g} {e['unit']:<12} {se:>10} {ci:>25}")
        lines.append(f"{'omega2':<28} {'value':>11} {'CV%':>12} {'se':>10} {'shrinkage':>25}")
        for name, o in self.omega.items():
            cv = "-" if o["cv_percent"] is None else f"{o['cv_percent']:.1f}"
            se = "-" if o["se"] is None else f"{o['se']:.3g}"
            lines.append(
                f"{name:<28} {o['omega2']:>11.4g} {cv:>12} {se:>10} {o['shrinkage']:>25.2f}"
            )
        lines.append(
            f"-2LL {self.objective:.2f} (IS, MC se {self.loglik_mc_se:.2f}); AIC "
            f"{self.aic:.2f}; BIC {self.bic:.2f}; converged: {self.converged}"
        )
        return "\n".join(lines)


def _jsonable(v):
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.str_):
        return str(v)
    return v


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
    run = run_saem(state, options, rng, progress=progress, hook=fisher)

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
    estimates = _estimates(model, state, free, cov_names, cov_refs, se)
    omega = _omega(state, free, ebe_phi, se)
    traj_names = (
        tuple(free)
        + tuple(f"{free[j]}~{c}" for j in range(len(free)) for c in cov_names[j])
        + tuple(f"omega2_{name}" for name in free)
        + tuple(_error_names(state))
    )
    check = np.array(
        [
            not (n.startswith("omega2_") and n[7:] in free and not iiv[free.index(n[7:])])
            for n in traj_names
        ]
    )
    converged, note = _convergence(run["trajectory"], options, traj_names, check)
    converged = bool(converged and np.isfinite(objective))
    valid = state.valid
    iwres = _iwres(state, ipred)
    columns = {
        "id": np.array([data.ids[s] for s in data.subject]),
        "time": data.t_days,
        "observable": np.array([data.observables[k] for k in data.obs_index]),
        "dv": data.value,
        "pred": pred[valid],
        "ipred": ipred[valid],
        "cens": data.cens,
        "limit": data.limit,
        "iwres": iwres[valid],
        "npde": npde_values,
    }
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


def _error_names(state):
    many = len(state.data.observables) > 1
    for obs in state.data.observables:
        for p in state.error_models[obs].parameter_names:
            yield f"{p}:{obs}" if many else p


def _estimates(model, state, free, cov_names, cov_refs, se):
    out = {}
    for j, name in enumerate(free):
        b0 = state.beta[j][0]
        s = se.get(("beta", j, 0))

        def natural(x, j=j):
            """Natural value of parameter j at estimation-scale value x."""
            return float(state.transform.to_value(np.full(len(free), x))[j])

        entry = {
            "value": natural(b0),
            "unit": model.parameters[name].unit,
            "se": None,
            "ci_low": None,
            "ci_high": None,
        }
        if s is not None and np.isfinite(s):
            slope = float(state.transform.dvalue_dphi(np.full(len(free), b0))[j])
            entry["se"] = float(s) * slope  # delta method
            entry["ci_low"], entry["ci_high"] = natural(b0 - _Z95 * s), natural(b0 + _Z95 * s)
        out[name] = entry
        for c, (cov, ref) in enumerate(zip(cov_names[j], cov_refs[j], strict=True)):
            b = float(state.beta[j][c + 1])
            s = se.get(("beta", j, c + 1))
            ok = s is not None and np.isfinite(s)
            out[f"{name}~{cov}"] = {
                "value": b,
                "unit": f"- (power of {cov}/{ref:g})",
                "se": float(s) if ok else None,
                "ci_low": b - _Z95 * s if ok else None,
                "ci_high": b + _Z95 * s if ok else None,
            }
    names = list(_error_names(state))
    k = 0
    for obs in state.data.observables:
        em = state.error_models[obs]
        for p in em.parameter_names:
            value = float(em.parameters[p])
            s = se.get(("error", obs, p))
            ok = s is not None and np.isfinite(s)
            unit = (
                "log units"
                if em.kind == "log"
                else ("-" if p == "sigma_prop" else _unit_of(state, obs))
            )
            out[names[k]] = {
                "value": value,
                "unit": unit,
                "se": float(s) if ok else None,
                "ci_low": value * math.exp(-_Z95 * s / value) if ok else None,
                "ci_high": value * math.exp(_Z95 * s / value) if ok else None,
            }
            k += 1
    return out


def _unit_of(state, obs):
    for o in state.data.model.observables:
        if o.name == obs:
            return o.unit
    return ""


def _omega(state, free, ebe_phi, se):
    out = {}
    eta = ebe_phi - state.mean_phi()
    for j, name in enumerate(free):
        if not state.iiv[j]:
            continue
        w = float(state.omega2[j])
        s = se.get(("omega2", j, 0))
        out[name] = {
            "omega2": w,
            "se": float(s) if s is not None and np.isfinite(s) else None,
            "cv_percent": None if state.transform.logit[j] else 100.0 * math.sqrt(math.expm1(w)),
            "shrinkage": float(1.0 - np.var(eta[:, j]) / w),
        }
    return out


def _iwres(state, ipred):
    out = np.full(ipred.shape, np.nan)
    for k, name in enumerate(state.data.observables):
        em = state.error_models[name]
        sel = (state.obs_pad == k) & (state.cens_pad == 0) & state.valid
        p = np.where(sel, ipred, 1.0)
        out = np.where(sel, em.weighted_residual(p, np.where(sel, state.value_pad, 1.0)), out)
    return out


def _convergence(traj, options, names, check, n_batches=5):
    """Drift test on the second half of the exploratory phase, by batch means.

    The second half of the exploratory phase is cut into ``n_batches`` batches; for each
    population parameter (``check`` selects them: the annealed variances of parameters without
    variability trend down by design and are left out) a straight line is fitted to its batch
    means. Batch means absorb most of the strong autocorrelation of SAEM iterates, which a
    per-iteration standard error ignores. The phase has converged when, for every parameter,
    the drift along that line over the window is below 5% of the parameter's mean or within
    the 95% t interval of zero (``n_batches - 2`` degrees of freedom). Measured on 5 synthetic
    40-patient stein2019 cohorts with default settings: 4 judged converged; the fifth flagged
    foldx, the least identified parameter.
    """
    from scipy.stats import t as student_t

    start = options.n_burn
    explore = traj[start : start + options.n_explore]
    half = explore[len(explore) // 2 :]
    size = len(half) // n_batches
    if size < 2 or not np.all(np.isfinite(traj)):
        return False, "too few exploratory iterations (< 20) or non-finite values"
    means = half[: size * n_batches].reshape(n_batches, size, -1).mean(axis=1)
    x = np.arange(n_batches) - (n_batches - 1) / 2.0
    centred = means - means.mean(axis=0)
    slope = (x @ centred) / (x @ x)
    resid = centred - np.outer(x, slope)
    se = np.sqrt(np.sum(resid**2, axis=0) / (n_batches - 2) / (x @ x))
    drift = np.abs(slope) * n_batches
    rel = drift / np.maximum(np.abs(half.mean(axis=0)), 1e-300)
    ok = (rel < 0.05) | (drift <= student_t.ppf(0.975, n_batches - 2) * se * n_batches)
    ok |= ~check
    z = drift / np.maximum(se * n_batches, 1e-300)
    worst = int(np.argmax(np.where(check, z, -np.inf)))
    verdict = "converged" if ok.all() else "NOT converged: run more iterations (n_explore)"
    bad = [names[k] for k in np.flatnonzero(~ok)]
    return bool(ok.all()), (
        f"drift test over the second half of the exploratory phase ({n_batches} batch means): "
        f"largest drift {z[worst]:.1f} SE ({names[worst]}, {rel[worst]:.1%} of its mean; "
        f"limit {student_t.ppf(0.975, n_batches - 2):.2f} SE unless < 5%); {verdict}"
        + (f" (drifting: {', '.join(bad)})" if bad else "")
    )


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


def subjects_from_table(contexts: Mapping, observations) -> list[Subject]:
    """Subjects from ``{id: Context}`` and a table of records (pandas DataFrame or dict of
    columns ``id, time_days, observable, value[, cens, limit]``), in ``contexts`` order."""
    import pandas as pd

    df = pd.DataFrame(observations)
    missing = [c for c in ("id", "time_days", "observable", "value") if c not in df.columns]
    if missing:
        raise DataError(f"observations: missing column(s) {missing}")
    ids = df["id"].astype(str)
    subjects = []
    for pid, ctx in contexts.items():
        rows = df[ids == str(pid)]
        if rows.empty:
            continue
        n = len(rows)
        cens = rows["cens"].to_numpy(dtype=np.int64) if "cens" in rows else np.zeros(n, np.int64)
        limit = rows["limit"].to_numpy(dtype=np.float64) if "limit" in rows else np.full(n, np.nan)
        subjects.append(
            Subject(
                str(pid),
                ctx,
                rows["time_days"].to_numpy(dtype=np.float64),
                tuple(rows["observable"]),
                rows["value"].to_numpy(dtype=np.float64),
                cens,
                limit,
            )
        )
    unknown = sorted(set(ids) - {str(k) for k in contexts})
    if unknown:
        raise DataError(f"observations: ids {unknown[:5]} have no patient context")
    return subjects
