"""Summary targets: published summaries of a case or cohort as likelihood terms.

Cases published only as summaries ("B cells return at 110 +/- 32 d", "peak between day 7 and
14", "Cmax above 15 cells/uL") enter the objective as terms on model metrics computed from the
simulated curve of each parameter set. A fit to such targets is a scenario consistent with the
case, not an estimate: :class:`cartkin.fit.result.FitResult` says so and lists the parameters
the targets leave unidentified.

Kinds (``x`` the model metric; every term is a -2 log-likelihood):

- ``normal``: ``x ~ N(mean, sd^2)`` -> ``((x - mean)/sd)^2 + log(2 pi sd^2)``. A TRECOV that is
  not reached by the simulation horizon is right-censored there (M3: ``-2 log P(X > horizon)``).
- ``interval``: ``lower <= x <= upper`` with soft edges of width ``sd`` ->
  ``-2 log(Phi((upper - x)/sd) - Phi((lower - x)/sd))``; one side may be open ("Cmax above
  15": ``lower = 15``). With ``log = true`` the comparison is on the log scale (``sd`` then in
  log units), the natural scale for cell counts.

Metrics (vectorized over parameter sets, on a dense grid of ``step_days``):

- ``TMAX`` (day) and ``CMAX`` (the observable's unit): peak of the CAR-T role observable, the
  peak time refined by the vertex of the parabola through the grid maximum and its neighbours
  (so it moves continuously with the parameters and finite-difference gradients exist).
- ``FOLD`` (-): fold expansion, ``CMAX`` over the CAR-T level at the first grid time (day 0:
  the blood level right after infusion; Stein 2019's fold expansion).
- ``THALF`` (day): post-peak half-life, ``ln 2`` over minus the least-squares slope of the log
  CAR-T level on ``[TMAX, TMAX + 21 d]`` (Stein 2019's alpha phase; grid points in that window).
- ``TRECOV`` (day): first return of the B-cell role observable to >= ``threshold`` (default 10
  cells/uL, as :func:`cartkin.metrics.compute`) after it first fell below it; 0 when it never
  fell below.
- ``TAPLASIA`` (day): first time the B-cell observable is below ``threshold`` (default 10, the
  single B-cell threshold of :func:`cartkin.metrics.compute`).
- ``B_NADIR`` (cells/uL): minimum of the B-cell observable.
- ``VALUE``: the named ``observable`` at ``day`` (interpolated on the grid).
- ``OUTCOME``: a derived lupus-nephritis outcome (``quantity``) at ``day``: one of
  :data:`OUTCOME_QUANTITIES` (SLEDAI-2K total in points, dialysis sessions per week, dialysis
  interval in days, and the role observables proteinuria, kidney function, activity index,
  anti-dsDNA, C3), computed by :func:`cartkin.outcomes.derived_series` from the model's outcome
  role curves of all parameter sets at once (:func:`add_outcome_curves`; no per-set Python).
  SLEDAI-2K and the dialysis rule are step functions of the model curves (items switch at
  thresholds, sessions change by band), so their terms are piecewise constant in the
  parameters: finite-difference gradients see none of them between steps, and they act
  through the start design and the profiles (which show their edges as jumps). The dialysis
  interval is ``inf`` with no dialysis need, which lies outside any finite target (a -2LL of
  1e10); target ``dialysis_sessions_per_week`` (finite, 0 when dialysis-free) to avoid that
  cliff (interval 7 d = 1 session/week).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from cartkin.errors import ScenarioError

__all__ = [
    "METRICS",
    "OUTCOME_QUANTITIES",
    "Target",
    "add_outcome_curves",
    "metric_values",
    "target_from_spec",
    "targets_from_summaries",
    "targets_neg2ll",
]

METRICS = ("TMAX", "CMAX", "FOLD", "THALF", "TRECOV", "TAPLASIA", "B_NADIR", "VALUE", "OUTCOME")
#: Window of the post-peak decline of THALF, days after TMAX (Stein 2019's 3-week alpha phase).
POST_PEAK_WINDOW_DAYS = 21.0
#: Quantities an OUTCOME target may read (cartkin.outcomes.CASE_QUANTITIES less the biopsy
#: chronicity index, which is a covariate, never a model output).
OUTCOME_QUANTITIES = ("sledai2k", "dialysis_sessions_per_week", "dialysis_interval_days",
                      "proteinuria_g_per_24h", "kidney_function_ml_min_173m2",
                      "ln_activity_index", "anti_dsdna_iu_per_ml", "complement_c3_g_per_l")  # fmt: skip
#: Prefix of the pseudo-observables that carry derived outcome curves in a fit's curve dict.
OUTCOME_PREFIX = "outcome:"
_ROLE = {"TMAX": "cart", "CMAX": "cart", "FOLD": "cart", "THALF": "cart", "TRECOV": "b_cells", "TAPLASIA": "b_cells",
         "B_NADIR": "b_cells"}  # fmt: skip
# as cartkin.metrics.compute: one B-cell threshold for aplasia and recovery
_DEFAULT_THRESHOLD = {"TRECOV": 10.0, "TAPLASIA": 10.0}
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Target:
    """One summary target.

    Parameters
    ----------
    metric : str
        One of :data:`METRICS`.
    kind : {"normal", "interval"}
    mean, sd : float, optional
        ``normal``: mean and standard deviation of the metric (its unit, or log units when
        ``log``). ``interval``: ``sd`` is the width of the soft edges (default: a tenth of the
        interval width, or 0.1 log units for a one-sided bound on the log scale; assumption:
        edges soft enough for gradients, sharp enough to matter).
    lower, upper : float, optional
        ``interval`` limits (one may be omitted).
    log : bool
        Compare on the log scale (metric, mean and limits positive).
    observable : str, optional
        Observable for ``VALUE`` (or to override the role observable of the metric).
    day : float, optional
        Day of a ``VALUE`` target.
    threshold : float, optional
        Threshold of ``TRECOV``/``TAPLASIA`` (cells/uL).
    quantity : str, optional
        Derived outcome of an ``OUTCOME`` target (one of :data:`OUTCOME_QUANTITIES`).
    source : str
        Where the summary comes from (paper, table or text).
    patient : str, optional
        Id of the context the target applies to (default: the problem's ``target_id``, or
        its first context), so one fit can hold summaries of several scenarios.
    """

    metric: str
    kind: str = "normal"
    mean: float | None = None
    sd: float | None = None
    lower: float | None = None
    upper: float | None = None
    log: bool = False
    observable: str | None = None
    day: float | None = None
    threshold: float | None = None
    quantity: str | None = None
    source: str = ""
    patient: str | None = None

    def __post_init__(self):
        metric = str(self.metric).upper()
        if metric not in METRICS:
            raise ScenarioError(
                f"target metric {self.metric!r} is not known; expected one of {METRICS}"
            )
        object.__setattr__(self, "metric", metric)
        where = f"target {metric}"
        if self.kind == "normal":
            _positive(where, "sd", self.sd)
            if self.mean is None or not math.isfinite(self.mean):
                raise ScenarioError(
                    f"{where}: normal target needs a finite mean, got {self.mean!r}"
                )
        elif self.kind == "interval":
            lo, hi = self.lower, self.upper
            if lo is None and hi is None:
                raise ScenarioError(f"{where}: interval target needs lower and/or upper")
            if lo is not None and hi is not None and not lo < hi:
                raise ScenarioError(f"{where}: lower = {lo!r} must be below upper = {hi!r}")
            if self.sd is None:
                sd = (hi - lo) / 10.0 if lo is not None and hi is not None else None
                if sd is None:
                    sd = 0.1 if self.log else abs(lo if lo is not None else hi) / 10.0
                object.__setattr__(self, "sd", sd)
            _positive(where, "sd", self.sd)
        else:
            raise ScenarioError(f"{where}: kind {self.kind!r}; expected 'normal' or 'interval'")
        if self.log:
            for name in ("mean", "lower", "upper"):
                v = getattr(self, name)
                if v is not None and not v > 0:
                    raise ScenarioError(f"{where}: {name} = {v!r} must be positive with log = true")
        if metric == "VALUE" and (self.observable is None or self.day is None):
            raise ScenarioError(f"{where}: a VALUE target needs observable and day")
        if metric == "OUTCOME":
            if self.quantity not in OUTCOME_QUANTITIES:
                raise ScenarioError(
                    f"{where}: quantity = {self.quantity!r}; expected one of {OUTCOME_QUANTITIES}"
                )
            if self.day is None or not (math.isfinite(self.day) and self.day >= 0):
                raise ScenarioError(f"{where}: day = {self.day!r}; expected a day >= 0")
            if self.observable is not None:
                raise ScenarioError(
                    f"{where}: an OUTCOME target reads its quantity, not observable = "
                    f"{self.observable!r}"
                )
        elif self.quantity is not None:
            raise ScenarioError(f"{where}: quantity = {self.quantity!r} is only for OUTCOME")
        if self.threshold is None and metric in _DEFAULT_THRESHOLD:
            object.__setattr__(self, "threshold", _DEFAULT_THRESHOLD[metric])

    @property
    def label(self) -> str:
        """Short text, e.g. ``TRECOV ~ N(110, 32)`` or ``TMAX in [7, 14]``."""
        name = self.metric
        if self.metric in ("VALUE", "OUTCOME"):
            name = f"{self.observable or self.quantity}@{self.day:g}d"
        if self.kind == "normal":
            return f"{name} ~ N({self.mean:g}, {self.sd:g}{' log' if self.log else ''})"
        lo = "-inf" if self.lower is None else f"{self.lower:g}"
        hi = "inf" if self.upper is None else f"{self.upper:g}"
        return f"{name} in [{lo}, {hi}]"

    def observable_for(self, model) -> str:
        """The observable this target reads (its own, or the model's role for the metric)."""
        if self.metric == "OUTCOME":
            return OUTCOME_PREFIX + self.quantity
        if self.observable is not None:
            return self.observable
        name = model.roles.get(_ROLE[self.metric])
        if name is None:
            raise ScenarioError(
                f"target {self.metric}: model {model.name!r} has no {_ROLE[self.metric]!r} role"
            )
        return name

    def neg2ll(self, x, horizon_days: float) -> np.ndarray:
        """-2 log-likelihood of metric values ``x`` (any shape)."""
        x = np.asarray(x, dtype=np.float64)
        censored = np.zeros(x.shape, dtype=bool)
        if self.metric == "TRECOV":
            censored = np.isnan(x)  # not back by the horizon
            x = np.where(censored, horizon_days, x)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.log(np.where(x > 0, x, 1e-300))
        f = (lambda v: math.log(v)) if self.log else (lambda v: v)
        s = self.sd
        if self.kind == "normal":
            z = (x - f(self.mean)) / s
            out = z * z + _LOG_2PI + 2.0 * math.log(s)
            out = np.where(censored, -2.0 * log_ndtr(-z), out)
        else:
            hi = np.inf if self.upper is None else f(self.upper)
            lo = -np.inf if self.lower is None else f(self.lower)
            # log(Phi(a) - Phi(b)) = log Phi(a) + log1p(-exp(log Phi(b) - log Phi(a)))
            la, lb = log_ndtr((hi - x) / s), log_ndtr((lo - x) / s)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = -2.0 * (la + np.log1p(-np.exp(lb - la)))
        return np.where(np.isfinite(out), out, 1e10)

    def to_dict(self) -> dict:
        """The target as plain data (JSON and TOML form)."""
        keys = ("metric", "kind", "mean", "sd", "lower", "upper", "log", "observable", "day",
                "threshold", "quantity", "source")  # fmt: skip
        return {k: getattr(self, k) for k in keys if getattr(self, k) not in (None, "")}


def metric_values(target: Target, t_days, y) -> np.ndarray:
    """The target's metric for each parameter set.

    Parameters
    ----------
    target : Target
    t_days : numpy.ndarray, shape (n_t,)
        Dense grid, days (increasing).
    y : numpy.ndarray, shape (n_sets, n_t)
        The target's observable on the grid.

    Returns
    -------
    numpy.ndarray, shape (n_sets,)
        NaN where undefined (TRECOV not reached, a failed solve).
    """
    t = np.asarray(t_days, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m = target.metric
    if m in ("TMAX", "CMAX", "FOLD"):
        tmax, cmax = _peak(t, y)
        if m == "FOLD":
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(y[:, 0] > 0, cmax / y[:, 0], np.nan)
        return tmax if m == "TMAX" else cmax
    if m == "THALF":
        return _post_peak_half_life(t, y)
    if m == "B_NADIR":
        return y.min(axis=1)
    if m in ("VALUE", "OUTCOME"):
        k = np.searchsorted(t, target.day)
        k = int(np.clip(k, 1, t.size - 1))
        w = (target.day - t[k - 1]) / (t[k] - t[k - 1])
        a, b = y[:, k - 1], y[:, k]
        with np.errstate(invalid="ignore"):  # inf dialysis intervals stay inf
            return np.where(w == 0.0, a, np.where(w == 1.0, b, (1.0 - w) * a + w * b))
    below = y < target.threshold
    if m == "TAPLASIA":
        return _first_crossing(t, y, below, target.threshold)
    ever = below.any(axis=1)
    first_below = np.argmax(below, axis=1)
    after = (np.arange(t.size)[None, :] > first_below[:, None]) & ~below
    out = _first_crossing(t, y, after, target.threshold)
    return np.where(ever, out, 0.0)


def _peak(t, y):
    k = np.argmax(y, axis=1)
    rows = np.arange(y.shape[0])
    cmax = y[rows, k]
    kk = np.clip(k, 1, t.size - 2)
    t0, t1, t2 = t[kk - 1], t[kk], t[kk + 1]
    y0, y1, y2 = y[rows, kk - 1], y[rows, kk], y[rows, kk + 1]
    # vertex of the parabola through three points (Lagrange form)
    num = (t1 - t0) ** 2 * (y1 - y2) - (t1 - t2) ** 2 * (y1 - y0)
    den = (t1 - t0) * (y1 - y2) - (t1 - t2) * (y1 - y0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tv = t1 - 0.5 * num / den
    interior = (k >= 1) & (k <= t.size - 2) & np.isfinite(tv) & (den != 0)
    tv = np.clip(tv, t0, t2)
    return np.where(interior, tv, t[k]), cmax


def _post_peak_half_life(t, y):
    """ln 2 / -slope of log y on [t_peak, t_peak + window] per row (grid argmax as t_peak)."""
    t_peak = t[np.argmax(y, axis=1)]
    w = (t[None, :] >= t_peak[:, None]) & (t[None, :] <= t_peak[:, None] + POST_PEAK_WINDOW_DAYS)
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.where(w & (y > 0), np.log(np.where(y > 0, y, 1.0)), 0.0)
        w = w & (y > 0)
        n = w.sum(axis=1)
        tb = (w * t[None, :]).sum(axis=1) / n
        yb = ly.sum(axis=1) / n
        dt = np.where(w, t[None, :] - tb[:, None], 0.0)
        slope = (dt * (ly - yb[:, None])).sum(axis=1) / (dt * dt).sum(axis=1)
        out = math.log(2.0) / -slope
    return np.where((n >= 3) & (slope < 0), out, np.nan)


def _first_crossing(t, y, hit, threshold):
    """First index where ``hit``, linearly interpolated from the previous sample; NaN if none."""
    any_hit = hit.any(axis=1)
    k = np.argmax(hit, axis=1)
    rows = np.arange(y.shape[0])
    km = np.maximum(k - 1, 0)
    ya, yb = y[rows, km], y[rows, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(yb != ya, (threshold - ya) / (yb - ya), 1.0)
    tc = np.where(k > 0, t[km] + np.clip(frac, 0.0, 1.0) * (t[k] - t[km]), t[k])
    return np.where(any_hit, tc, np.nan)


def targets_neg2ll(targets, t_days, curves: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sum of target terms for every parameter set.

    Parameters
    ----------
    targets : sequence of Target
    t_days : numpy.ndarray, shape (n_t,)
    curves : mapping of str to numpy.ndarray, shape (n_sets, n_t)
        Observables by name (those the targets read).

    Returns
    -------
    numpy.ndarray, shape (n_sets,)
    """
    total = 0.0
    for target, name in targets:
        x = metric_values(target, t_days, curves[name])
        total = total + target.neg2ll(x, float(t_days[-1]))
    return np.asarray(total, dtype=np.float64)


#: Outcome roles each OUTCOME quantity is derived from (any one suffices for SLEDAI-2K).
_QUANTITY_ROLES = {
    "sledai2k": ("proteinuria", "complement", "anti_dsdna"),
    "dialysis_sessions_per_week": ("kidney_function",),
    "dialysis_interval_days": ("kidney_function",),
    "proteinuria_g_per_24h": ("proteinuria",),
    "kidney_function_ml_min_173m2": ("kidney_function",),
    "ln_activity_index": ("ln_activity",),
    "anti_dsdna_iu_per_ml": ("anti_dsdna",),
    "complement_c3_g_per_l": ("complement",),
}


def outcome_observables(model, targets) -> list[str]:
    """The model observables (outcome roles) the ``OUTCOME`` targets among ``targets`` need.

    Raises
    ------
    ScenarioError
        When the model plays none of the roles a target's quantity is derived from.
    """
    from cartkin.outcomes.report import OUTCOME_ROLES

    quantities = [t.quantity for t in targets if t.metric == "OUTCOME"]
    if not quantities:
        return []
    played = {r for r in OUTCOME_ROLES if model.roles.get(r)}
    for q in quantities:
        if not played & set(_QUANTITY_ROLES[q]):
            raise ScenarioError(
                f"OUTCOME target {q!r}: model {model.name!r} plays no outcome role it is derived "
                f"from ({', '.join(_QUANTITY_ROLES[q])}); use a model with the lupus layer "
                "(sle_cart)"
            )
    return [model.roles[r] for r in OUTCOME_ROLES if r in played]


def add_outcome_curves(model, t_days, curves, targets, settings=None) -> dict:
    """Add the derived outcome curves the ``OUTCOME`` targets read to ``curves``.

    Parameters
    ----------
    model : Model
        Its roles name the outcome observables.
    t_days : numpy.ndarray, shape (n_t,)
    curves : dict of str to numpy.ndarray, shape (n_sets, n_patients, n_t)
        Simulated observables, including :func:`outcome_observables`; updated in place.
    targets : sequence of Target
    settings : cartkin.outcomes.OutcomeSettings, optional
        Dialysis rule and SLEDAI-2K settings (default: the KDOQI stepwise rule and the
        default SLEDAI-2K thresholds).

    Returns
    -------
    dict
        ``curves`` with ``"outcome:<quantity>"`` entries of the same shape, computed for all
        parameter sets and patients in one :func:`cartkin.outcomes.derived_series` call.
    """
    from cartkin.outcomes.report import OUTCOME_ROLES, derived_series

    quantities = sorted({t.quantity for t in targets if t.metric == "OUTCOME"})
    if not quantities:
        return curves
    by_role = {r: curves[model.roles[r]] for r in OUTCOME_ROLES if model.roles.get(r) in curves}
    series = derived_series(t_days, by_role, settings)
    for q in quantities:
        if q not in series:
            raise ScenarioError(
                f"OUTCOME target {q!r}: model {model.name!r} does not give it (it needs the "
                f"outcome roles; the model has {sorted(by_role)})"
            )
        curves[OUTCOME_PREFIX + q] = np.asarray(series[q], dtype=np.float64)
    return curves


def target_from_spec(where: str, spec) -> Target:
    """A :class:`Target` from a TOML table (``metric``, ``kind`` and the fields above)."""
    if isinstance(spec, Target):
        return spec
    if not isinstance(spec, Mapping) or "metric" not in spec:
        raise ScenarioError(
            f"{where}: expected a table like {{metric = 'TRECOV', kind = 'normal', mean = 110, "
            f"sd = 32}}; got {spec!r}"
        )
    allowed = set(Target.__dataclass_fields__)
    unknown = set(spec) - allowed
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(allowed)}"
        )
    try:
        return Target(**spec)
    except (ScenarioError, TypeError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _positive(where, name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ScenarioError(f"{where}: {name} = {value!r}; expected a positive number")


def targets_from_summaries(frame, names=None) -> list[Target]:
    """Targets from a summary-target table (:func:`cartkin.data.read_summary_targets`).

    Rows convert by their ``statistic``: ``mean_sd`` -> normal (mean ``value``, sd ``spread``);
    ``median_range`` and ``median_iqr`` -> interval [``lower``, ``upper``];
    ``lower_bound`` / ``upper_bound`` -> one-sided interval at ``value``. ``typical`` and
    ``value`` rows carry no spread and give no likelihood term; rows whose ``metric`` is not
    one of :data:`METRICS` cannot be computed. Both are skipped, unless named in ``names``,
    which raises.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``target, metric, statistic, value, spread, lower, upper, study, source``.
    names : sequence of str, optional
        Rows (by ``target``) to convert; default all that can be.

    Returns
    -------
    list of Target
    """
    rows = frame.to_dict("records")
    wanted = None if names is None else list(names)
    if wanted is not None:
        missing = sorted(set(wanted) - {r["target"] for r in rows})
        if missing:
            raise ScenarioError(f"summary targets {missing} are not in the table")
    out = []
    for r in rows:
        if wanted is not None and r["target"] not in wanted:
            continue
        metric, stat = str(r.get("metric") or "").upper(), r.get("statistic")
        source = f"{r.get('study', '')}: {r.get('source', '')}".strip(": ")
        why = None
        if metric not in METRICS or metric == "VALUE":
            why = f"metric {r.get('metric')!r} is not one cartkin.fit.targets computes"
        elif stat == "mean_sd" and _finite(r.get("spread")):
            out.append(Target(metric, "normal", mean=float(r["value"]), sd=float(r["spread"]),
                              source=source))  # fmt: skip
        elif (
            stat in ("median_range", "median_iqr")
            and _finite(r.get("lower"))
            and _finite(r.get("upper"))
        ):
            out.append(Target(metric, "interval", lower=float(r["lower"]),
                              upper=float(r["upper"]), source=source))  # fmt: skip
        elif stat in ("lower_bound", "upper_bound"):
            side = "lower" if stat == "lower_bound" else "upper"
            out.append(Target(metric, "interval", **{side: float(r["value"])}, source=source))
        else:
            why = f"statistic {stat!r} without a spread gives no likelihood term"
        if why and wanted is not None:
            raise ScenarioError(f"summary target {r['target']!r}: {why}")
    return out


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
