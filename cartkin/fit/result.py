"""Fit results: estimates with uncertainty, objective, per-start table, predictions, JSON.

JSON schema of :meth:`FitResult.to_json` (documented in README "Fitting"):

- ``kind``: "ml", "map" (priors) or "scenario" (summary targets: a scenario consistent with
  the case, not an estimate); ``label``: that sentence.
- ``estimates``: ``{name: {value, unit, se, ci_low, ci_high, identifiable, note, lower, upper,
  prior}}``; ``se`` from the Hessian (delta method), ``ci_low``/``ci_high`` the 95% profile
  interval; null where not available (flat profile, singular Hessian, at a bound).
- ``objective`` (-2 log-likelihood of data and targets), ``objective_prior`` (-2 log prior),
  ``aic``, ``bic``, ``n_records``, ``n_free``, ``converged``, ``convergence`` (the verdict in
  words), ``not_converged`` (what did not converge: the best start, profiles that found a lower
  objective or did not close), ``starts_agree``, ``starts`` (per-start table), ``unidentified``
  (names), ``error_models``, ``fixed_error`` (residual-error parameters held fixed,
  ``{"<observable>.sigma_add": value}``), ``targets``, ``target_values``, ``profiles``,
  ``profile_threshold`` (the -2LL rise that ends a profile interval), ``notes``, ``elapsed_s``.
- ``predictions``: records ``{id, time, observable, dv, pred, ipred, cens, limit, res, wres}``:
  ``pred`` the typical-value prediction at the estimates (parameters with a prior at its
  median, the others at their estimates; without priors equal to ``ipred``, as NONMEM's PRED
  for a model without random effects), ``ipred`` at the estimates, ``res`` = log(dv) -
  log(ipred) (NaN -> null when censored), ``wres`` the residual on the error model's scale
  divided by its SD (with no random effects WRES, CWRES and IWRES coincide).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cartkin.frames import Layout, fit_frame, fit_repr, fmt, table_xarray

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = ["Estimate", "FitResult", "prediction_records"]

SCENARIO_LABEL = "a scenario consistent with the case, not an estimate"


@dataclass(frozen=True)
class Estimate:
    """One estimated parameter (natural scale; ``unit`` from the parameter table)."""

    name: str
    value: float
    unit: str
    se: float | None
    ci_low: float | None
    ci_high: float | None
    identifiable: bool
    note: str = ""
    prior: dict | None = None
    lower: float | None = None
    upper: float | None = None


@dataclass
class FitResult:
    """Result of :func:`cartkin.fit.estimate.fit` (see the module docstring for fields)."""

    model: str
    estimates: list[Estimate]
    objective: float
    objective_prior: float
    n_records: int
    n_free: int
    converged: bool
    starts: list[dict]
    starts_agree: int
    predictions: list[dict]
    error_models: dict = field(default_factory=dict)
    targets: list[dict] = field(default_factory=list)
    target_values: list[dict] = field(default_factory=list)
    profiles: dict = field(default_factory=dict)
    kind: str = "ml"
    elapsed_s: float = math.nan
    notes: list[str] = field(default_factory=list)
    #: free parameter values (natural scale) of the estimate and of every profile point within
    #: the profiles' 95% threshold: the sets behind prediction ranges (cartkin.fit.outlook)
    profile_sets: list[dict] = field(default_factory=list)
    #: rise of -2LL that ends a 95% profile interval (cartkin.fit.profile.profile_threshold)
    profile_threshold: float = 3.841458820694124
    #: residual-error parameters held fixed, ``{"<observable>.<sigma>": value}``
    fixed_error: dict = field(default_factory=dict)
    #: dense model curves for the individual-fit figures: columns ``id, time, observable,
    #: pred, ipred`` (:meth:`cartkin.fit.problem.Problem.dense_curves`; not in the JSON)
    curves: dict = field(default_factory=dict, repr=False)

    def __getitem__(self, name) -> Estimate:
        for e in self.estimates:
            if e.name == name:
                return e
        raise KeyError(f"{name!r} was not estimated; estimated: {[e.name for e in self.estimates]}")

    @property
    def values(self) -> dict[str, float]:
        """Point estimates by name."""
        return {e.name: e.value for e in self.estimates}

    @property
    def aic(self) -> float:
        """Akaike information criterion: objective + 2 n_free."""
        return self.objective + 2.0 * self.n_free

    @property
    def bic(self) -> float:
        """Bayesian information criterion: objective + n_free ln(n_records)."""
        return self.objective + self.n_free * math.log(max(self.n_records, 1))

    @property
    def unidentified(self) -> list[str]:
        """Names of the estimates flagged as not identifiable."""
        return [e.name for e in self.estimates if not e.identifiable]

    def run_record(self):
        """The run record (the role of NONMEM's .ext file) as a pandas DataFrame: one row per
        start (``phase`` "start", ``iteration`` the start number, ``objective`` its final
        -2LL of data and targets plus -2 log prior, ``initial_objective``, ``converged``,
        ``n_iter``, then every free parameter's final value) and a last row ``phase``
        "final" with the estimate (``objective`` -2LL of data and targets)."""
        import pandas as pd

        rows = []
        for r in self.starts:
            row = {"phase": "start", "iteration": r["start"], "objective": r["objective"],
                   "initial_objective": r["initial_objective"], "converged": r["converged"],
                   "n_iter": r["n_iter"]}  # fmt: skip
            row.update(r["final"])
            rows.append(row)
        final = {"phase": "final", "iteration": len(self.starts), "objective": self.objective,
                 "initial_objective": math.nan, "converged": self.converged,
                 "n_iter": math.nan}  # fmt: skip
        final.update(self.values)
        rows.append(final)
        return pd.DataFrame(rows)

    @property
    def not_converged(self) -> list[str]:
        """What did not converge: the best start, profiles that found a lower objective or
        did not close (empty when everything did)."""
        out = []
        if not self.converged:
            best = min(self.starts, key=lambda r: r["objective"]) if self.starts else {}
            out.append(
                "optimizer: the best start stopped before its gradient test passed"
                + (f" after {best['n_iter']} iterations" if "n_iter" in best else "")
            )
        out.extend(n for n in self.notes if "lower objective" in n)
        for e in self.estimates:
            if "did not rise" in e.note:
                out.append(f"profile of {e.name}: {e.note}")
        return out

    @property
    def convergence(self) -> str:
        """The convergence verdict in one sentence."""
        bad = self.not_converged
        agree = f"{self.starts_agree} of {len(self.starts)} starts agree with the best"
        if not bad:
            return f"converged ({agree})"
        return f"NOT converged ({agree}): " + "; ".join(bad)

    @property
    def label(self) -> str:
        """What the result is, in words (an estimate, or a scenario consistent with a case)."""
        return {"scenario": SCENARIO_LABEL, "map": "maximum a posteriori estimate",
                "ml": "maximum-likelihood estimate"}[self.kind]  # fmt: skip

    def to_dict(self) -> dict:
        """The result as plain JSON-ready data (the fit JSON schema)."""
        return _clean({
            "model": self.model, "kind": self.kind, "label": self.label,
            "estimates": {e.name: {k: v for k, v in asdict(e).items() if k != "name"}
                          for e in self.estimates},
            "objective": self.objective, "objective_prior": self.objective_prior,
            "aic": self.aic, "bic": self.bic, "n_records": self.n_records, "n_free": self.n_free,
            "converged": self.converged, "convergence": self.convergence,
            "not_converged": self.not_converged, "starts_agree": self.starts_agree,
            "n_starts": len(self.starts), "unidentified": self.unidentified,
            "error_models": self.error_models, "fixed_error": self.fixed_error,
            "targets": self.targets, "profile_threshold": self.profile_threshold,
            "target_values": self.target_values, "starts": self.starts,
            "profiles": self.profiles, "notes": self.notes, "elapsed_s": self.elapsed_s,
            "predictions": self.predictions,
        })  # fmt: skip

    def to_json(self, **kwargs) -> str:
        """JSON text (NaN and inf written as null)."""
        return json.dumps(self.to_dict(), **kwargs)

    def to_dataframe(self, layout: Layout = "long", table: str = "estimates") -> pd.DataFrame:
        """The estimates or the per-record predictions as a pandas DataFrame.

        Parameters
        ----------
        layout : {"long", "wide"}
            Estimates: "long" one row per parameter (``name, value, unit, se, ci_low,
            ci_high, identifiable, ...``), "wide" one row of values. Predictions: "wide" one
            row per record, "long" one row per record and quantity.
        table : {"estimates", "predictions"}
        """
        return fit_frame(self._estimate_records(), self.predictions, layout, table)

    def to_xarray(self) -> xr.Dataset:
        """The estimates as an xarray Dataset along ``name`` (``value``, ``se``, ``ci_low``,
        ``ci_high``; ``unit`` and notes as coordinates), the objective as an attribute."""
        return table_xarray(self._estimate_records(), "name", "name",
                            {"model": self.model, "kind": self.kind, "objective": self.objective,
                             "converged": int(self.converged)})  # fmt: skip

    def _estimate_records(self) -> list[dict]:
        return [{k: v for k, v in asdict(e).items() if k != "prior"} for e in self.estimates]

    def __repr__(self) -> str:
        return fit_repr("FitResult", f"{self.model}, {self.label}", self._estimate_records(),
                        f"-2LL {fmt(self.objective)}, {self.n_records} records, "
                        f"converged: {self.converged}")  # fmt: skip

    def to_table(self) -> str:
        """Plain-text report: label, estimates with SE and profile CI, objective, starts."""
        lines = [f"{self.model}: {self.label}"]
        lines.append(
            f"{'parameter':<24}{'value':>11}{'SE':>11}{'95% CI (profile)':>26}  unit / note"
        )
        for e in self.estimates:
            ci = f"[{_f(e.ci_low)}, {_f(e.ci_high)}]"
            note = e.unit + (f"  ({e.note})" if e.note else "")
            lines.append(f"{e.name:<24}{_f(e.value):>11}{_f(e.se):>11}{ci:>26}  {note}")
        lines.append(
            f"-2LL {self.objective:.4f}  (-2 log prior {self.objective_prior:.4f})  AIC "
            f"{self.aic:.3f}  BIC {self.bic:.3f}  records {self.n_records}"
        )
        for obs, em in sorted(self.error_models.items()):
            sigmas = ", ".join(
                f"{k} {_f(v)}" + (" (fixed)" if f"{obs}.{k}" in self.fixed_error else "")
                for k, v in em.items() if k != "kind"
            )  # fmt: skip
            lines.append(f"residual error {obs}: {em.get('kind')} {sigmas}")
        lines.append(f"{self.convergence}; {self.elapsed_s:.2f} s")
        for t in self.target_values:
            lines.append(
                f"target {t['label']}: fitted {_f(t['fitted'])} (initial {_f(t['initial'])})"
            )
        if self.kind == "scenario" or self.unidentified:
            lines.append(
                "not identified by the data/targets: " + (", ".join(self.unidentified) or "none")
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def prediction_records(problem, curves, x_hat) -> list[dict]:
    """One record per observation (see the module docstring); ``curves`` holds the initial
    values' curves in row 0 and the estimates' in row 1."""
    if problem.n_obs == 0:
        return []
    pred = problem.record_predictions(curves)
    ems = problem.error_models_for(x_hat[None, :])
    out = []
    wres = np.full(problem.n_obs, np.nan)
    for name in np.unique(problem.obs_name):
        m = problem.obs_name == name
        em = ems[name]
        em = em.with_parameters(**{k: np.ravel(v)[0] for k, v in em.parameters.items()})
        with np.errstate(divide="ignore", invalid="ignore"):
            wres[m] = em.weighted_residual(pred[1, m], problem.obs_value[m])
    with np.errstate(divide="ignore", invalid="ignore"):
        res = np.log(problem.obs_value) - np.log(pred[1])
    for k in range(problem.n_obs):
        cens = int(problem.obs_cens[k])
        out.append({
            "id": _plain(problem.obs_id[k]), "time": float(problem.obs_time[k]),
            "observable": str(problem.obs_name[k]), "dv": float(problem.obs_value[k]),
            "pred": float(pred[0, k]), "ipred": float(pred[1, k]), "cens": cens,
            "limit": float(problem.obs_limit[k]),
            "res": float(res[k]) if cens == 0 else math.nan,
            "wres": float(wres[k]) if cens == 0 else math.nan,
        })  # fmt: skip
    return out


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _f(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.4g}"
