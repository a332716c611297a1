"""The result of a population fit: estimates, variances, EBEs, predictions, JSON, figures.

:class:`PopulationFitResult` is built by :func:`cartkin.fit.population.fit_population`; the
functions below turn the final SAEM state into its tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cartkin.frames import Layout, fit_frame, fit_repr, fmt, table_xarray

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = ["PopulationFitResult"]

_Z95 = 1.959963984540054


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
        and residual-error parameters (``"<observable>.sigma_add"`` / ``".sigma_prop"``, the
        single-patient FitResult's names). ``se`` None where not computed; 95% Wald intervals on the
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
    trajectory_objective : numpy.ndarray, shape (n_iterations,)
        -2 log-likelihood of the data at each iteration's MCMC sample (the conditional -2LL,
        averaged over chains; not the marginal ``objective``).
    drifting : dict
        ``{parameter: more exploratory iterations}`` for the parameters the convergence test
        found drifting (empty when converged).
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
    trajectory_objective: np.ndarray | None = field(default=None, repr=False)
    drifting: dict = field(default_factory=dict)
    #: dense PRED/IPRED curves per subject (``id, time, observable, pred, ipred``) for the
    #: individual-fit figures; not in the JSON
    curves: dict = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """What the estimate is, in words (the FitResult ``label``)."""
        return "population maximum-likelihood estimate (SAEM, nonlinear mixed effects)"

    @property
    def n_records(self) -> int:
        """Observation records fitted (FitResult's name for ``n_obs``)."""
        return self.n_obs

    @property
    def n_free(self) -> int:
        """Estimated population parameters (FitResult's name for ``n_parameters``)."""
        return self.n_parameters

    @property
    def not_converged(self) -> list[str]:
        """The drifting parameters with the exploratory iterations each still needs."""
        out = [f"{k}: drifting, about {n} more exploratory iterations"
               for k, n in self.drifting.items()]  # fmt: skip
        if not out and not self.converged:
            out.append(self.convergence)
        return out

    def run_record(self):
        """The run record (the role of NONMEM's .ext file): a pandas DataFrame with one row per
        SAEM iteration: ``iteration`` (1-based), ``phase`` ("mcmc", "explore", "average"),
        ``objective`` (-2LL of the data at that iteration's sample, ``trajectory_objective``),
        then every population parameter (``trajectory_names``: typical values, covariate
        exponents, ``omega2_<param>``, ``<observable>.sigma_add``); a last row ``phase``
        "final" with the marginal -2LL by importance sampling and the final estimates."""
        import pandas as pd

        o = self.options
        n = self.trajectory.shape[0]
        k = np.arange(n)
        phase = np.where(k < o["n_burn"], "mcmc",
                         np.where(k < o["n_burn"] + o["n_explore"], "explore", "average"))  # fmt: skip
        objective = (
            self.trajectory_objective
            if self.trajectory_objective is not None
            else np.full(n, np.nan)
        )
        frame = pd.DataFrame({"iteration": k + 1, "phase": phase, "objective": objective})
        values = pd.DataFrame(self.trajectory, columns=list(self.trajectory_names))
        frame = pd.concat([frame, values], axis=1)
        final = {"iteration": n, "phase": "final", "objective": self.objective}
        final.update({name: self.trajectory[-1, j] for j, name in enumerate(self.trajectory_names)})
        return pd.concat([frame, pd.DataFrame([final])], ignore_index=True)

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

    def write_figures(self, directory, ids_per_page: int = 16) -> list:
        """Every figure: the fit figures of :func:`cartkin.fit.plots.write_figures` (individual
        fits, observed vs predicted, residuals, VPC from the replicates) and the population ones
        of :func:`cartkin.fit.popplot.write_figures` (convergence, GOF, NPDE)."""
        from cartkin.fit import plots, popplot

        paths = plots.write_figures(self, directory, simulations=self.simulations(),
                                    ids_per_page=ids_per_page)  # fmt: skip
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

    def to_dataframe(self, layout: Layout = "long", table: str = "estimates") -> pd.DataFrame:
        """The estimates (typical values, covariate effects, residual error, then ``omega2:``
        variances) or the per-record predictions as a pandas DataFrame; arguments as in
        :meth:`cartkin.fit.result.FitResult.to_dataframe`."""
        return fit_frame(self._estimate_records(), self.predictions, layout, table)

    def to_xarray(self) -> xr.Dataset:
        """The estimates as an xarray Dataset along ``name`` (as :meth:`to_dataframe`)."""
        return table_xarray(self._estimate_records(), "name", "name",
                            {"model": self.model, "kind": self.kind, "objective": self.objective,
                             "converged": int(self.converged)})  # fmt: skip

    def _estimate_records(self) -> list[dict]:
        rows = [{"name": name, **e} for name, e in self.estimates.items()]
        for name, o in self.omega.items():
            rows.append({"name": f"omega2:{name}", "value": o["omega2"], "unit": "-",
                         "se": o["se"], "cv_percent": o["cv_percent"],
                         "shrinkage": o["shrinkage"]})  # fmt: skip
        return rows

    def __repr__(self) -> str:
        return fit_repr("PopulationFitResult",
                        f"{self.model}, SAEM, {self.n_subjects} subjects, {self.n_obs} records",
                        self._estimate_records(),
                        f"-2LL {fmt(self.objective)}, converged: {self.converged}")  # fmt: skip

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
            "label": self.label,
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
            "n_free": self.n_free,
            "n_subjects": self.n_subjects,
            "n_records": self.n_records,
            "n_obs": self.n_obs,
            "converged": bool(self.converged),
            "convergence": self.convergence,
            "not_converged": self.not_converged,
            "drifting": dict(self.drifting),
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
            f"{self.aic:.2f}; BIC {self.bic:.2f}; converged: {'yes' if self.converged else 'NO'}"
        )
        lines.append(f"convergence: {self.convergence}")
        lines.extend(f"not converged: {item}" for item in self.not_converged)
        lines.extend(f"note: {n}" for n in self.notes)
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


def error_names(state):
    """``"<observable>.<sigma>"``: the names the single-patient fit uses (README "Fitting")."""
    for obs in state.data.observables:
        for p in state.error_models[obs].parameter_names:
            yield f"{obs}.{p}"


def estimates_table(model, state, free, cov_names, cov_refs, se):
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
    names = list(error_names(state))
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


def omega_table(state, free, ebe_phi, se):
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


def iwres(state, ipred):
    out = np.full(ipred.shape, np.nan)
    for k, name in enumerate(state.data.observables):
        em = state.error_models[name]
        sel = (state.obs_pad == k) & (state.cens_pad == 0) & state.valid
        p = np.where(sel, ipred, 1.0)
        out = np.where(sel, em.weighted_residual(p, np.where(sel, state.value_pad, 1.0)), out)
    return out
