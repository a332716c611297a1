"""The estimation problem: data, free parameters, error models, priors, targets -> objective.

:class:`Problem` turns a matrix of parameter sets (one row per set, free parameters on the log
scale) into -2 log-likelihoods, solving every patient of every set through :func:`predict`,
the one place that talks to the simulator. The optimizer (:mod:`cartkin.fit.estimate`) and the
profiles (:mod:`cartkin.fit.profile`) only ever call :meth:`Problem.objective` with many rows
at once: multistart screening, finite-difference gradients and Hessians are batched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from cartkin import models
from cartkin.errors import DataError, ScenarioError
from cartkin.fit.likelihood import ErrorModel, LogNormalPrior, loglik
from cartkin.fit.targets import Target, add_outcome_curves, metric_values
from cartkin.parameters import suggest

__all__ = ["Problem", "predict"]

OBS_COLUMNS = ("id", "time_days", "observable", "value", "cens", "limit")
# lower bound used on the log scale for a table bound of 0 (assumption: a rate 1000 times
# smaller than its default is indistinguishable from 0 over a year of follow-up)
_ZERO_BOUND_FRACTION = 1e-3
# error-model parameters are estimated within [init / 1000, init * 1000]
_SIGMA_RANGE = 1e3
_LOG_2PI = math.log(2.0 * math.pi)
# below this many rows a batch call runs on one thread: on the shared 2-core machine, 9 rows took
# 26 ms with two threads and 8 ms with one (thread start-up and contention dominate)
_SERIAL_ROWS = 32


def predict(model, contexts, t_days, theta_sets, observables, *, solver, bctx=None):
    """Observables of every patient for every parameter set, in one batch-engine call.

    The only function in :mod:`cartkin.fit` that calls the simulator: all parameter sets times
    all patients go through one :func:`cartkin.batch.solve` call (compiled, threaded).

    Parameters
    ----------
    model : Model
    contexts : sequence of Context, length n_patients
    t_days : numpy.ndarray, shape (n_t,)
        Common output grid (days, increasing, >= 0).
    theta_sets : dict of str to numpy.ndarray, shape (n_sets,)
        Parameter values by name (others at their table defaults).
    observables : sequence of str
        Observables to return.
    solver : dict
        ``method``, ``rtol``, ``atol``, ``max_steps``.
    bctx : cartkin.batch.BatchContext, optional
        ``BatchContext.from_contexts(contexts)``, built once by the caller.

    Returns
    -------
    dict of str to numpy.ndarray, shape (n_sets, n_patients, n_t)
        NaN where a solve failed.
    """
    from cartkin import batch

    n_pat = len(contexts)
    n_sets = len(next(iter(theta_sets.values()))) if theta_sets else 1
    if bctx is None:
        bctx = batch.BatchContext.from_contexts(list(contexts))
    rows = bctx.take(np.tile(np.arange(n_pat), n_sets))  # set-major: row = s * n_pat + i
    theta = {k: np.repeat(np.asarray(v, dtype=np.float64), n_pat) for k, v in theta_sets.items()}
    inds = batch.individualize(model, theta, rows)
    options = dict(solver)
    if options.get("threads") is None and len(rows) < _SERIAL_ROWS:
        options["threads"] = 1
    sol = batch.solve(model, inds, t_days, **options)
    curves = batch.observe(model, inds, sol)
    out = {}
    for name in observables:
        y = np.where(sol.success[:, None], curves[name], np.nan)
        out[name] = y.reshape(n_sets, n_pat, t_days.size)
    return out


class Problem:
    """Data, parameters and likelihood terms of one fit.

    Parameters
    ----------
    model : str or Model
    contexts : mapping of id to Context
        One context (patient, regimen, exposure) per subject id.
    observations : pandas.DataFrame or mapping of column to array, optional
        Columns ``id, time_days, observable, value, cens, limit`` (``Dataset.observations``).
    free : sequence of str
        Model parameters to estimate (on the log scale), by table name.
    theta : mapping of str to float, optional
        Fixed values of other parameters (and initial values of free ones).
    error_models : mapping of str to ErrorModel, optional
        Per observable; default ``ErrorModel("log", sigma_add=0.5)`` (assumption: about Stein
        2019's residual variance of 0.56 on the log scale, sd 0.75, rounded down for flow).
    free_error : sequence of str or "all"
        Error parameters to estimate, as ``"<observable>.sigma_add"``; ``"all"`` (the default)
        for every one of the observables with data; ``()`` to hold them at their given values.
    priors : mapping of str to LogNormalPrior
        Priors of free model parameters (MAP); the others are flat on the log scale.
    bounds : mapping of str to (float, float)
        Estimation bounds overriding the table's (within it).
    targets : sequence of Target
        Summary targets (see :mod:`cartkin.fit.targets`).
    target_id : optional
        Subject whose simulated curve the targets read (default: the first id).
    grid_step_days, horizon_days : float
        Dense grid for targets (default 0.25 d up to 365 d or the last target day).
    outcome_settings : cartkin.outcomes.OutcomeSettings, optional
        Dialysis rule and SLEDAI-2K settings of ``OUTCOME`` targets (default: the package's).
    solver : dict
        Integrator options; default ``auto`` (tsit5 with a stiffness switch to rodas5) at rtol
        1e-8, atol 1e-10: tight, so that finite-difference gradients with log-steps of 1e-4 are
        not noise; "auto" because sle_cart solves about 4x faster with it than with rodas5
        (0.6 vs 2.5 ms per patient on the batch engine, busy 2-core machine).
    """

    def __init__(self, model, contexts, observations=None, free=(), *, theta=None,
                 error_models=None, free_error="all", priors=None, bounds=None, targets=(),
                 target_id=None, grid_step_days=0.25, horizon_days=None, solver=None,
                 outcome_settings=None):  # fmt: skip
        self.model = models.get(model)
        table = self.model.parameters
        if not isinstance(contexts, Mapping) or not contexts:
            raise ScenarioError("contexts: expected a non-empty mapping of subject id to Context")
        self.ids = list(contexts)
        self.contexts = [contexts[i] for i in self.ids]
        self._bctx = None
        self._simulate_hook = None
        self.n_simulated = 0  # patient solves so far (benchmarks)
        self.theta = table.validate(theta)
        self.solver = {"method": "auto", "rtol": 1e-8, "atol": 1e-10, "max_steps": 100_000}
        self.solver.update(solver or {})
        self.targets = [t if isinstance(t, Target) else Target(**t) for t in targets]
        self.outcome_settings = outcome_settings
        self.priors = dict(priors or {})
        self._read_observations(observations)
        if not self.targets and self.n_obs == 0:
            raise DataError("nothing to fit: no observations and no targets")

        free = list(free)
        if not free:
            raise ScenarioError("no free parameters: give at least one model parameter in free")
        for name in free:
            if name not in table:
                raise ScenarioError(
                    f"free parameter {name!r} is not in model {self.model.name!r}'s table. "
                    f"{suggest(name, table.names)}"
                )
        if len(set(free)) != len(free):
            raise ScenarioError(f"free parameters repeat a name: {free}")
        for name in self.priors:
            if name not in free:
                raise ScenarioError(f"prior on {name!r}, which is not free (free: {free})")
        self.error_models = self._error_models(error_models)
        free_error = self._free_error(free_error)
        self.model_free = free
        self.error_free = free_error
        self.names = free + [f"{o}.{p}" for o, p in free_error]
        if not self.names:
            raise ScenarioError("no free parameters: give at least one name in free")

        init, lo, hi, units = [], [], [], []
        defaults = table.values(self.theta)
        bounds = dict(bounds or {})
        for name in free:
            par = table[name]
            x0 = self.priors[name].median if name in self.priors else defaults[name]
            b_lo, b_hi = bounds.pop(name, (par.lower, par.upper))
            if not par.lower <= b_lo < b_hi <= par.upper:
                raise ScenarioError(
                    f"bounds of {name!r} = [{b_lo:g}, {b_hi:g}] must lie within the table's "
                    f"[{par.lower:g}, {par.upper:g}] {par.unit}"
                )
            if x0 <= 0:
                raise ScenarioError(
                    f"free parameter {name!r} starts at {x0:g}: estimation is on the log scale; "
                    "give a positive value in theta or a prior"
                )
            b_lo = b_lo if b_lo > 0 else x0 * _ZERO_BOUND_FRACTION
            init.append(x0)
            lo.append(b_lo)
            hi.append(b_hi)
            units.append(par.unit)
        for obs, pname in free_error:
            x0 = getattr(self.error_models[obs], pname)
            unit = "log units" if self.error_models[obs].kind == "log" and pname == "sigma_add" else (
                "-" if pname == "sigma_prop" else self.model.observable(obs).unit)  # fmt: skip
            init.append(x0)
            lo.append(x0 / _SIGMA_RANGE)
            hi.append(x0 * _SIGMA_RANGE)
            units.append(unit)
        if bounds:
            raise ScenarioError(f"bounds given for parameters that are not free: {sorted(bounds)}")
        self.units = units
        self.x_init = np.log(np.array(init, dtype=np.float64))
        # a hair inside the bounds, so exp(log(bound)) never rounds outside the table's bounds
        self.lower = np.log(np.array(lo, dtype=np.float64)) + 1e-9
        self.upper = np.log(np.array(hi, dtype=np.float64)) - 1e-9
        self.x_init = np.clip(self.x_init, self.lower, self.upper)
        self._target_obs = [(t, t.observable_for(self.model)) for t in self.targets]
        self._grid(grid_step_days, horizon_days, target_id)

    # -- setup ---------------------------------------------------------------------------------
    def _read_observations(self, observations):
        if observations is None:
            cols = {c: np.array([]) for c in OBS_COLUMNS}
        else:
            missing = [c for c in OBS_COLUMNS if c not in observations]
            if missing:
                raise DataError(f"observations: missing column(s) {missing}; need {OBS_COLUMNS}")
            cols = {c: np.asarray(observations[c]) for c in OBS_COLUMNS}
        self.obs_id = cols["id"]
        self.obs_time = cols["time_days"].astype(np.float64)
        self.obs_name = cols["observable"].astype(str)
        self.obs_value = cols["value"].astype(np.float64)
        self.obs_cens = cols["cens"].astype(np.int64)
        self.obs_limit = cols["limit"].astype(np.float64)
        self.n_obs = self.obs_time.size
        unknown = sorted(set(self.obs_id.tolist()) - set(self.ids))
        if unknown:
            raise DataError(f"observations: id(s) {unknown} have no context (ids: {self.ids})")
        for name in np.unique(self.obs_name):
            self.model.observable(str(name))  # raises with a suggestion
        bad = ~np.isfinite(self.obs_time) | (self.obs_time < 0)
        if np.any(bad):
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"observation {k}: time_days = {self.obs_time[k]!r}; expected >= 0")

    def _error_models(self, given):
        given = dict(given or {})
        names = sorted(set(self.obs_name.tolist()))
        out = {}
        for name in names:
            out[name] = given.pop(name, None) or ErrorModel("log", sigma_add=0.5)
        for name, em in given.items():  # error models of observables without data: keep
            self.model.observable(name)
            out[name] = em
        return out

    def _free_error(self, free_error):
        if free_error == "all" or free_error == ["all"]:
            return [(o, p) for o in sorted(set(self.obs_name.tolist()))
                    for p in self.error_models[o].parameter_names]  # fmt: skip
        out = []
        for item in free_error:
            obs, _, pname = str(item).rpartition(".")
            if obs not in self.error_models or pname not in self.error_models[obs].parameter_names:
                raise ScenarioError(
                    f"free error parameter {item!r}: expected '<observable>.<sigma_add|sigma_prop>' "
                    f"for an observable with data ({sorted(self.error_models)}) whose error model "
                    "uses it"
                )
            out.append((obs, pname))
        return out

    def _grid(self, step, horizon, target_id):
        t = np.unique(self.obs_time)
        if self.targets:
            days = [t.day for t in self.targets if t.day is not None]
            end = horizon or max([365.0, *days])
            dense = np.arange(0.0, end + 0.5 * step, step)
            t = np.union1d(t, dense)
            self.target_patient = self.ids.index(target_id) if target_id is not None else 0
            for target in self.targets:
                if target.patient is not None and target.patient not in self.ids:
                    raise ScenarioError(
                        f"target {target.metric}: patient = {target.patient!r} is not one of "
                        f"the fit's contexts {list(self.ids)}"
                    )
        self.t_days = t
        self.obs_patient = np.array(
            [self.ids.index(i) for i in self.obs_id.tolist()], dtype=np.int64
        )
        self.obs_t_index = np.searchsorted(t, self.obs_time)
        from cartkin.fit.targets import OUTCOME_PREFIX, outcome_observables

        direct = {o for _, o in self._target_obs if not o.startswith(OUTCOME_PREFIX)}
        direct |= set(outcome_observables(self.model, self.targets))
        self.observables = sorted(set(self.obs_name.tolist()) | direct)

    def _patient_of(self, target) -> int:
        """Index of the context a target applies to (its ``patient``, else ``target_id``)."""
        if target.patient is None:
            return self.target_patient
        return self.ids.index(target.patient)

    # -- evaluation ----------------------------------------------------------------------------
    @property
    def n_free(self) -> int:
        """Number of free model parameters."""
        return len(self.names)

    def values(self, x) -> dict[str, np.ndarray]:
        """Free values on the natural scale by name, from log-scale rows ``x`` (n_sets, n_free)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return {name: np.exp(x[:, k]) for k, name in enumerate(self.names)}

    def simulate(self, x):
        """Curves of every observable for rows ``x``: dict of (n_sets, n_patients, n_t).

        During a lockstep multistart (:mod:`cartkin.fit.lockstep`) the rows of all starts are
        merged into one call."""
        if self._simulate_hook is not None:
            return self._simulate_hook(x)
        return self._simulate_direct(x)

    def _simulate_direct(self, x):
        x = np.atleast_2d(x)
        theta = {**{k: np.full(x.shape[0], v) for k, v in self.theta.items()}}
        for k, name in enumerate(self.model_free):
            theta[name] = np.exp(x[:, k])
        self.n_simulated += x.shape[0] * len(self.contexts)
        if self._bctx is None:
            from cartkin.batch import BatchContext

            self._bctx = BatchContext.from_contexts(self.contexts)
        curves = predict(self.model, self.contexts, self.t_days, theta, self.observables,
                         solver=self.solver, bctx=self._bctx)  # fmt: skip
        # derived lupus outcomes (SLEDAI-2K, dialysis need) for OUTCOME targets, all sets at once
        return add_outcome_curves(self.model, self.t_days, curves, self.targets,
                                  self.outcome_settings)  # fmt: skip

    def dense_curves(self, x, labels=("pred", "ipred"), n_points=241) -> dict:
        """Model curves of the observed observables for rows ``x`` on a dense grid over the
        data's time range (``n_points`` even steps from 0 to the last record, plus the record
        times): the individual-fit figures draw these, so peaks between visits show.

        Returns
        -------
        dict of str to numpy.ndarray
            Columns ``id, time, observable`` and one column per row of ``x`` named by
            ``labels`` (a long table: one entry per subject, time and observable).
        """
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        names = sorted(set(self.obs_name.tolist()))
        if not names:
            return {}
        end = float(self.obs_time.max())
        t = np.union1d(np.linspace(0.0, end, n_points), self.obs_time)
        theta = {k: np.full(x.shape[0], v) for k, v in self.theta.items()}
        for k, name in enumerate(self.model_free):
            theta[name] = np.exp(x[:, k])
        if self._bctx is None:
            from cartkin.batch import BatchContext

            self._bctx = BatchContext.from_contexts(self.contexts)
        curves = predict(self.model, self.contexts, t, theta, names, solver=self.solver,
                         bctx=self._bctx)  # fmt: skip
        n_pat = len(self.contexts)
        out = {
            "id": np.tile(np.repeat(np.array(self.ids, dtype=object), t.size), len(names)),
            "time": np.tile(t, n_pat * len(names)),
            "observable": np.repeat(np.array(names), n_pat * t.size),
        }
        for r, label in enumerate(labels):
            out[label] = np.concatenate([curves[name][r].ravel() for name in names])
        return out

    def record_predictions(self, curves) -> np.ndarray:
        """Predictions at every observation, shape (n_sets, n_obs)."""
        n_sets = next(iter(curves.values())).shape[0]
        pred = np.empty((n_sets, self.n_obs))
        for name in np.unique(self.obs_name):
            m = self.obs_name == name
            pred[:, m] = curves[name][:, self.obs_patient[m], self.obs_t_index[m]]
        return pred

    def error_models_for(self, x) -> dict[str, ErrorModel]:
        """Error models with the estimated parameters of rows ``x`` (arrays of shape (n_sets, 1))."""
        x = np.atleast_2d(x)
        out = dict(self.error_models)
        k0 = len(self.model_free)
        for j, (obs, pname) in enumerate(self.error_free):
            out[obs] = out[obs].with_parameters(**{pname: np.exp(x[:, k0 + j])[:, None]})
        return out

    def terms(self, x, curves=None):
        """-2LL of the data, of the targets, and -2 log prior, each shape (n_sets,)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if curves is None:
            curves = self.simulate(x)
        n_sets = x.shape[0]
        data = np.zeros(n_sets)
        if self.n_obs:
            pred = self.record_predictions(curves)
            ems = self.error_models_for(x)
            for name in np.unique(self.obs_name):
                m = self.obs_name == name
                data -= 2.0 * loglik(pred[:, m], self.obs_value[m], self.obs_cens[m],
                                     self.obs_limit[m], ems[name]).sum(axis=1)  # fmt: skip
        tgt = np.zeros(n_sets)
        for target, name in self._target_obs:
            y = curves[name][:, self._patient_of(target), :]
            tgt += target.neg2ll(metric_values(target, self.t_days, y), float(self.t_days[-1]))
        prior = np.zeros(n_sets)
        for k, name in enumerate(self.model_free):
            if name in self.priors:
                prior -= 2.0 * self.priors[name].logpdf_log(x[:, k])
        return data, tgt, prior

    @property
    def least_squares_form(self) -> bool:
        """True when, for fixed error parameters, the objective is a constant plus a sum of
        squared residuals (:meth:`residuals`): every error model has a constant SD ("log",
        "additive"). Proportional and combined models add log SD(pred) terms that are not."""
        return all(em.kind in ("log", "additive") for em in self.error_models.values())

    def residuals(self, x, curves=None) -> np.ndarray:
        """Residuals whose squares sum to the objective minus a constant (fixed error
        parameters; see :attr:`least_squares_form`), shape (n_sets, n_obs + n_targets + n_priors).

        Observed records: (g(y) - g(f)) / sd; censored records: sqrt(-2 log P(beyond limit));
        normal targets: (x - mean) / sd, other targets sqrt(-2 log-likelihood) (>= 0 because
        each is a probability); priors: (log theta - log median) / sd_log. A failed solve
        gives 1e5 everywhere.
        """
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if curves is None:
            curves = self.simulate(x)
        n_sets = x.shape[0]
        parts = []
        if self.n_obs:
            pred = self.record_predictions(curves)
            ems = self.error_models_for(x)
            r = np.empty((n_sets, self.n_obs))
            for name in np.unique(self.obs_name):
                m = self.obs_name == name
                obs_m = m & (self.obs_cens == 0)
                cen_m = m & (self.obs_cens != 0)
                em = ems[name]
                with np.errstate(divide="ignore", invalid="ignore"):
                    r[:, obs_m] = em.weighted_residual(pred[:, obs_m], self.obs_value[obs_m])
                if np.any(cen_m):
                    ll = loglik(pred[:, cen_m], self.obs_value[cen_m], self.obs_cens[cen_m],
                                self.obs_limit[cen_m], em)  # fmt: skip
                    r[:, cen_m] = np.sqrt(np.maximum(-2.0 * ll, 0.0))
            parts.append(r)
        horizon = float(self.t_days[-1])
        for target, name in self._target_obs:
            v = metric_values(target, self.t_days, curves[name][:, self._patient_of(target), :])
            if target.kind == "normal" and not (target.metric == "TRECOV" and np.any(np.isnan(v))):
                f = np.log(np.maximum(v, 1e-300)) if target.log else v
                mean = np.log(target.mean) if target.log else target.mean
                parts.append(((f - mean) / target.sd)[:, None])
            else:
                t2 = target.neg2ll(v, horizon)
                if target.kind == "normal":
                    t2 = t2 - (_LOG_2PI + 2.0 * np.log(target.sd))
                parts.append(np.sqrt(np.maximum(t2, 0.0))[:, None])
        for k, name in enumerate(self.model_free):
            if name in self.priors:
                p = self.priors[name]
                parts.append(((x[:, k] - p.mu_log) / p.sd_log)[:, None])
        r = np.hstack(parts) if parts else np.zeros((n_sets, 0))
        return np.where(np.all(np.isfinite(r), axis=1, keepdims=True), r, 1e5)

    def objective(self, x) -> np.ndarray:
        """-2 log posterior (data + targets + priors) of rows ``x``, shape (n_sets,); failed
        solves give a large finite value so optimizers step back."""
        data, tgt, prior = self.terms(x)
        total = data + tgt + prior
        return np.where(np.isfinite(total), total, 1e10)

    @property
    def n_records(self) -> int:
        """Observations plus targets (the n of BIC)."""
        return self.n_obs + len(self.targets)

    def describe_prior(self, name) -> LogNormalPrior | None:
        """The prior of free parameter ``name``, or None."""
        return self.priors.get(name)


def as_sequence(value) -> Sequence[str]:
    """``"a,b"`` or a list -> list of names (CLI and TOML)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def log_bounds_text(problem: Problem) -> list[str]:
    return [f"{n}: [{math.exp(lo):.4g}, {math.exp(hi):.4g}]"
            for n, lo, hi in zip(problem.names, problem.lower, problem.upper, strict=True)]  # fmt: skip
