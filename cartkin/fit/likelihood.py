"""Residual error models, the censored (M3) likelihood and log-normal priors.

Every function here is a closed form, vectorized over observations (and over any leading axes:
starts, patients), with no Python loop per record.

Error models (``y`` observed, ``f`` model prediction, both on the observable's own scale):

=================  ==========================================  ================================
kind               model                                       parameters
=================  ==========================================  ================================
``"log"``          log y = log f + eps,  eps ~ N(0, a^2)        ``sigma_add`` = a (log units)
``"additive"``     y = f + eps,          eps ~ N(0, a^2)        ``sigma_add`` = a (unit of y)
``"proportional"`` y = f + eps,          eps ~ N(0, (b f)^2)    ``sigma_prop`` = b (-)
``"combined"``     y = f + eps,          eps ~ N(0, a^2 + (b f)^2)  both (Monolix "combined2",
                                                                NONMEM's sqrt-sum form)
=================  ==========================================  ================================

``"log"`` (additive on the log scale, exponential error) is the CAR-T standard: cellular
kinetics span five decades and the assay error is multiplicative.

Densities are on the scale of ``y`` for every kind, so -2 log-likelihoods and AIC compare across
error models: the ``"log"`` kind is the log-normal density of ``y``, i.e. the normal density of
``log y`` minus ``log y`` (the Jacobian). NONMEM's objective for log-transformed data omits that
term; it is a constant for fixed data and does not move estimates.

Censoring (``cens``, NONMEM's CENS column): ``0`` observed; ``1`` below the limit (left-censored,
``limit`` = LLOQ); ``-1`` above the limit (right-censored, ``limit`` = ULOQ). A censored record
contributes the probability of lying beyond its limit (Beal's M3 method, Beal SL, J Pharmacokinet
Pharmacodyn 2001;28:481): ``log Phi((g(LLOQ) - g(f)) / sd)`` with ``g = log`` for the ``"log"``
kind and the identity otherwise; ``log Phi(-(...))`` above an upper limit. Censored records are
never deleted or imputed (LLOQ/2), both of which bias terminal rates (tests/test_fit_m3.py).

Priors: :class:`LogNormalPrior` on a positive parameter, i.e. a normal prior on its log, the
scale on which cartkin estimates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from cartkin.errors import DataError, ScenarioError

__all__ = [
    "ERROR_KINDS",
    "ErrorModel",
    "LogNormalPrior",
    "error_model_from_spec",
    "loglik",
    "loglik_total",
    "prior_from_spec",
]

ERROR_KINDS = ("log", "additive", "proportional", "combined")
_ALIASES = {
    "log": "log",
    "log_additive": "log",
    "exponential": "log",
    "lognormal": "log",
    "additive": "additive",
    "constant": "additive",
    "proportional": "proportional",
    "combined": "combined",
}
# parameters each kind uses (the others must be None)
_USES = {
    "log": ("sigma_add",),
    "additive": ("sigma_add",),
    "proportional": ("sigma_prop",),
    "combined": ("sigma_add", "sigma_prop"),
}
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# prediction floor for the log kind: a zero prediction (before the first dose) stays finite
_TINY = 1e-300


@dataclass(frozen=True)
class ErrorModel:
    """Residual error model of one observable.

    Parameters
    ----------
    kind : {"log", "additive", "proportional", "combined"}
        See the module docstring (aliases: "log_additive", "exponential", "lognormal" for
        "log"; "constant" for "additive").
    sigma_add : float, optional
        Additive standard deviation: log units for ``"log"``, the observable's unit for
        ``"additive"`` and ``"combined"``. Positive.
    sigma_prop : float, optional
        Proportional standard deviation (fraction of the prediction, -). Positive.

    Raises
    ------
    ScenarioError
        Unknown kind, a parameter the kind needs missing or non-positive, or one it does not
        use given.
    """

    kind: str
    sigma_add: float | None = None
    sigma_prop: float | None = None

    def __post_init__(self):
        kind = _ALIASES.get(str(self.kind).lower())
        if kind is None:
            raise ScenarioError(
                f"error model kind {self.kind!r} is not known; expected one of {ERROR_KINDS}"
            )
        object.__setattr__(self, "kind", kind)
        for name in ("sigma_add", "sigma_prop"):
            value = getattr(self, name)
            if name in _USES[kind]:
                if value is None:
                    raise ScenarioError(f"error model {kind!r} needs {name} (a positive number)")
                v = np.asarray(value, dtype=np.float64)
                if not np.all(np.isfinite(v)) or np.any(v <= 0):
                    raise ScenarioError(
                        f"error model {kind!r}: {name} = {value!r}; expected a positive number"
                    )
                object.__setattr__(self, name, float(v) if v.ndim == 0 else v)
            elif value is not None:
                raise ScenarioError(
                    f"error model {kind!r} does not use {name} (got {value!r}); "
                    f"it uses {', '.join(_USES[kind])}"
                )

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the parameters this kind uses, in a fixed order."""
        return _USES[self.kind]

    @property
    def parameters(self) -> dict[str, float]:
        """The parameters this kind uses, by name."""
        return {name: getattr(self, name) for name in self.parameter_names}

    def with_parameters(self, **values) -> ErrorModel:
        """Same kind with other parameter values (floats or arrays broadcasting over starts)."""
        params = {**self.parameters, **values}
        return ErrorModel(self.kind, **params)

    def sd(self, pred) -> np.ndarray:
        """Residual standard deviation at ``pred`` (log units for ``"log"``), broadcast shape."""
        pred = np.asarray(pred, dtype=np.float64)
        if self.kind in ("log", "additive"):
            return np.broadcast_to(np.asarray(self.sigma_add, dtype=np.float64), pred.shape)
        if self.kind == "proportional":
            return np.abs(self.sigma_prop * pred)
        return np.sqrt(self.sigma_add**2 + (self.sigma_prop * pred) ** 2)

    def residual(self, pred, value) -> np.ndarray:
        """Raw residual on the error model's scale: log y - log f for ``"log"``, else y - f."""
        pred = np.asarray(pred, dtype=np.float64)
        value = np.asarray(value, dtype=np.float64)
        if self.kind == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.log(value) - np.log(np.maximum(pred, _TINY))
        return value - pred

    def weighted_residual(self, pred, value) -> np.ndarray:
        """Residual divided by its standard deviation (standard normal under the model)."""
        return self.residual(pred, value) / self.sd(pred)

    def to_dict(self) -> dict:
        """``{"kind": ..., <parameter>: value}`` (JSON and TOML form)."""
        out = {"kind": self.kind}
        for name, value in self.parameters.items():
            out[name] = np.asarray(value).tolist()
        return out


def loglik(pred, value, cens, limit, error_model: ErrorModel) -> np.ndarray:
    """Log-likelihood of each record under one error model, with M3 censoring.

    Parameters
    ----------
    pred : array_like, shape (..., n_obs)
        Model predictions on the observable's scale. Non-finite predictions (a failed solve)
        give ``-inf``. For the ``"log"`` kind predictions <= 0 are floored at 1e-300.
    value : array_like, shape (n_obs,)
        Observed values (ignored where censored; may be NaN there).
    cens : array_like of int, shape (n_obs,)
        0 observed, 1 below ``limit``, -1 above ``limit``.
    limit : array_like, shape (n_obs,)
        Censoring limit (LLOQ or ULOQ) where ``cens != 0``; ignored elsewhere.
    error_model : ErrorModel
        Its parameters may be floats or arrays broadcasting against ``pred`` (for example
        shape (n_starts, 1) when ``pred`` has shape (n_starts, n_obs)).

    Returns
    -------
    numpy.ndarray, shape broadcast of ``pred`` and ``value``
        Log density of each observed ``value`` (on its own scale) or log probability of each
        censored record.

    Raises
    ------
    DataError
        ``cens`` not in {-1, 0, 1}; an observed value that is not finite, or <= 0 for the
        ``"log"`` kind; a censored record whose limit is not finite (or <= 0 for ``"log"``).
    """
    pred = np.asarray(pred, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    cens = np.asarray(cens)
    limit = np.asarray(limit, dtype=np.float64)
    observed = cens == 0
    censored = ~observed
    _check_records(value, cens, limit, observed, censored, error_model.kind)

    # x: where the record sits on the error model's scale (value, or limit when censored)
    x = np.where(observed, value, limit)
    if error_model.kind == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = np.log(np.maximum(pred, _TINY))
            x = np.log(np.where(x > 0, x, 1.0))
        jacobian = np.where(observed, x, 0.0)  # log y: density of y from density of log y
    else:
        mu = pred
        jacobian = 0.0
    sd = error_model.sd(pred)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - mu) / sd
        log_density = -0.5 * z * z - np.log(sd) - _HALF_LOG_2PI - jacobian
        # M3: P(Y < LLOQ) = Phi(z); P(Y > ULOQ) = Phi(-z)
        log_prob = log_ndtr(np.where(cens == -1, -z, z))
    out = np.where(observed, log_density, log_prob)
    return np.where(np.isfinite(pred) & (sd > 0), out, -np.inf)


def _check_records(value, cens, limit, observed, censored, kind):
    bad = ~np.isin(cens, (-1, 0, 1))
    if np.any(bad):
        i = int(np.flatnonzero(bad.ravel())[0])
        raise DataError(
            f"record {i}: cens = {cens.ravel()[i].item()!r}; expected 0, 1 (below) or -1"
        )
    positive = kind == "log"
    v = np.broadcast_to(value, observed.shape)
    bad = observed & ~(np.isfinite(v) & ((v > 0) if positive else True))
    if np.any(bad):
        i = int(np.flatnonzero(bad.ravel())[0])
        expected = "a positive finite value (log error model)" if positive else "a finite value"
        raise DataError(f"record {i}: observed value {float(v.ravel()[i])!r}; expected {expected}")
    lim = np.broadcast_to(limit, censored.shape)
    bad = censored & ~(np.isfinite(lim) & ((lim > 0) if positive else True))
    if np.any(bad):
        i = int(np.flatnonzero(bad.ravel())[0])
        raise DataError(
            f"record {i}: censored (cens = {cens.ravel()[i]}) but limit = {float(lim.ravel()[i])!r}; "
            "expected a finite" + (" positive" if positive else "") + " limit (LLOQ or ULOQ)"
        )


def loglik_total(pred, value, cens, limit, observable, error_models: Mapping[str, ErrorModel]):
    """Sum of :func:`loglik` over records, each under its observable's error model.

    Parameters
    ----------
    pred : array_like, shape (..., n_obs)
    value, cens, limit : array_like, shape (n_obs,)
    observable : array_like of str, shape (n_obs,)
        Observable name of each record.
    error_models : mapping of str to ErrorModel
        One error model per observable present.

    Returns
    -------
    numpy.ndarray, shape (...)
        Total log-likelihood over the last axis.
    """
    pred = np.asarray(pred, dtype=np.float64)
    observable = np.asarray(observable)
    total = np.zeros(pred.shape[:-1])
    for name in np.unique(observable):
        if name not in error_models:
            raise ScenarioError(
                f"no error model for observable {str(name)!r}; given for {sorted(error_models)}"
            )
        m = observable == name
        total = total + loglik(
            pred[..., m], np.asarray(value)[m], np.asarray(cens)[m], np.asarray(limit)[m],
            error_models[name],
        ).sum(axis=-1)  # fmt: skip
    return total


@dataclass(frozen=True)
class LogNormalPrior:
    """Log-normal prior: ``log(theta) ~ N(log(median), sd_log^2)``.

    Parameters
    ----------
    median : float
        Prior median (the parameter's unit), positive.
    sd_log : float
        Standard deviation of ``log(theta)`` (-), positive; for a between-patient variance
        omega^2 (Stein 2019, Table 1) use ``sd_log = sqrt(omega^2)``.
    source : str
        Where the prior comes from (paper + table) or "assumption: why".
    """

    median: float
    sd_log: float
    source: str = ""

    def __post_init__(self):
        for name in ("median", "sd_log"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ScenarioError(f"log-normal prior: {name} = {v!r}; expected a positive number")

    @property
    def mu_log(self) -> float:
        """Mean of ``log(theta)``."""
        return math.log(self.median)

    def logpdf_log(self, log_theta) -> np.ndarray:
        """Normal log density of ``log(theta)`` (the MAP term on the estimation scale)."""
        z = (np.asarray(log_theta, dtype=np.float64) - self.mu_log) / self.sd_log
        return -0.5 * z * z - math.log(self.sd_log) - _HALF_LOG_2PI

    def logpdf(self, theta) -> np.ndarray:
        """Log-normal log density of ``theta`` (> 0) on its own scale."""
        theta = np.asarray(theta, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.logpdf_log(np.log(theta)) - np.log(theta)
        return np.where(theta > 0, out, -np.inf)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Central prior interval of ``theta`` at ``level``."""
        from scipy.stats import norm

        q = norm.ppf(0.5 + level / 2.0) * self.sd_log
        return self.median * math.exp(-q), self.median * math.exp(q)

    def to_dict(self) -> dict:
        """``{"median", "sd_log", "source"}`` (JSON and TOML form)."""
        return {"median": self.median, "sd_log": self.sd_log, "source": self.source}


def error_model_from_spec(where: str, spec) -> ErrorModel:
    """An :class:`ErrorModel` from a TOML/JSON table ``{kind = ..., sigma_add = ..., ...}``."""
    if isinstance(spec, ErrorModel):
        return spec
    if not isinstance(spec, Mapping) or "kind" not in spec:
        raise ScenarioError(
            f"{where}: expected a table {{kind = 'log', sigma_add = 0.5}}; got {spec!r}"
        )
    unknown = set(spec) - {"kind", "sigma_add", "sigma_prop"}
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key(s) {sorted(unknown)}; expected kind, sigma_add, sigma_prop"
        )
    try:
        return ErrorModel(spec["kind"], spec.get("sigma_add"), spec.get("sigma_prop"))
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def prior_from_spec(where: str, spec) -> LogNormalPrior:
    """A :class:`LogNormalPrior` from ``{median = ..., sd_log = ... | omega2 = ..., source = ...}``."""
    if isinstance(spec, LogNormalPrior):
        return spec
    if not isinstance(spec, Mapping):
        raise ScenarioError(
            f"{where}: expected a table {{median = 1.3, sd_log = 0.5}}; got {spec!r}"
        )
    unknown = set(spec) - {"median", "sd_log", "omega2", "source"}
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key(s) {sorted(unknown)}; expected median, sd_log or omega2, source"
        )
    if ("sd_log" in spec) == ("omega2" in spec):
        raise ScenarioError(f"{where}: give exactly one of sd_log and omega2 (= sd_log^2)")
    sd = spec["sd_log"] if "sd_log" in spec else _sqrt_checked(where, spec["omega2"])
    try:
        return LogNormalPrior(spec.get("median"), sd, str(spec.get("source", "")))
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _sqrt_checked(where, omega2):
    if not (isinstance(omega2, (int, float)) and math.isfinite(omega2) and omega2 > 0):
        raise ScenarioError(f"{where}: omega2 = {omega2!r}; expected a positive number")
    return math.sqrt(omega2)
