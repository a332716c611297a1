"""The batch engine: many patients per compiled call (docs/design.md section 5).

Everything carries a leading patient axis ``n``. The path from covariates to metrics has no
per-patient Python for models whose ``individualize`` is array-valued (``Model(...,
batch=True)``; the built-in ``stein2019``):

::

    BatchContext.from_contexts([Context, ...]) or BatchContext.from_covariates(...)
      --individualize(model, theta, bctx)--> BatchIndividuals (p, y0, t0, stops, jumps)
      --solve(model, inds, t_eval)--> BatchSolution (y (n, n_t, n_states), status)
      --metrics(model, inds, ...)--> {metric: (n,)}    (in-kernel, no stored trajectories)

:func:`solve` and :func:`metrics` run one compiled, threaded call (numba ``prange`` over chunks
of patients) from the same generated, cached kernel file as :func:`cartkin.ode.solve_ode`, so each
patient's numbers are bit-identical to a ``solve_ode`` call with the same inputs, whatever the
thread count or chunking. Compiled code never raises: a failed patient gets a negative status
(:class:`cartkin.ode.Status`) and NaN outputs/metrics; :func:`solve` and :func:`metrics` do not
raise for it either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

import numba
import numpy as np

from cartkin import models
from cartkin.errors import ScenarioError
from cartkin.parameters import suggest

__all__ = [
    "KERNEL_ROLES",
    "METRIC_NAMES",
    "BatchContext",
    "BatchIndividuals",
    "BatchSolution",
    "individualize",
    "metrics",
    "observe",
    "solve",
]


# ---------------------------------------------------------------------------------------------
# Patient contexts with a patient axis
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BatchContext:
    """Patient covariates, regimen and fludarabine exposure of ``n`` patients, as arrays.

    Every array has the patient on axis 0. Ragged lists (doses, sessions) are padded: days with
    NaN, amounts with 0. Units as in :class:`cartkin.regimen.Context` and
    :mod:`cartkin.kidney`.

    Attributes
    ----------
    weight_kg, height_cm, age_years, bsa_m2 : numpy.ndarray, shape (n,)
    female : numpy.ndarray of bool, shape (n,)
    egfr_ml_min_173m2 : numpy.ndarray, shape (n,)
        eGFR used by every eGFR-driven effect (``kidney.egfr_for``).
    crcl_ml_min : numpy.ndarray, shape (n,)
        Creatinine clearance (``kidney.creatinine_clearance_ml_min``).
    on_dialysis : numpy.ndarray of bool, shape (n,)
    flu_auc_mg_h_per_l : numpy.ndarray, shape (n,)
        Cumulative fludarabine AUC, mg.h/L (as ``Context.flu_auc_mg_h_per_l``).
    flu_cl_l_h, flu_v1_l, flu_v2_l, flu_v3_l, flu_q2_l_h, flu_q3_l_h : numpy.ndarray, shape (n,)
        3-compartment F-ara-A PK parameters (``kidney.fludarabine_pk_parameters``).
    flu_dose_factor : numpy.ndarray, shape (n,)
        mg entering the PK model per mg fludarabine phosphate (dose basis).
    flu_dose_days, flu_dose_mg : numpy.ndarray, shape (n, m_f)
        Fludarabine phosphate doses after the dose rule (days NaN / mg 0 padded).
    flu_infusion_h : float
        Infusion duration, h.
    cy_days, cy_mg_m2 : numpy.ndarray, shape (n, m_c)
        Cyclophosphamide days and mg/m2 per day (NaN / 0 padded).
    cy_mg_m2_total : numpy.ndarray, shape (n,)
    cart_dose_days, cart_dose_cells : numpy.ndarray, shape (n, m_d)
        CAR-T infusions: day and total cells (NaN / 0 padded).
    dialysis_session_days : numpy.ndarray, shape (n, m_s)
        Dialysis session days (NaN padded; m_s may be 0).
    dialysis_duration_h, flu_removal_fraction : numpy.ndarray, shape (n,)
        Session length (NaN without dialysis) and fraction of body fludarabine removed per
        session (0 without dialysis).
    il6_elimination_per_day : numpy.ndarray, shape (n,)
        ``kidney.il6_elimination_rate_per_day`` with its defaults, 1/day.
    clearance_model : tuple of str, length n
    contexts : list of Context or None
        The scalar contexts (kept for reports and for models without an array-valued
        individualize); None for batches built from covariates.
    """

    weight_kg: np.ndarray
    height_cm: np.ndarray
    age_years: np.ndarray
    female: np.ndarray
    bsa_m2: np.ndarray
    egfr_ml_min_173m2: np.ndarray
    crcl_ml_min: np.ndarray
    on_dialysis: np.ndarray
    flu_auc_mg_h_per_l: np.ndarray
    flu_cl_l_h: np.ndarray
    flu_v1_l: np.ndarray
    flu_v2_l: np.ndarray
    flu_v3_l: np.ndarray
    flu_q2_l_h: np.ndarray
    flu_q3_l_h: np.ndarray
    flu_dose_factor: np.ndarray
    flu_dose_days: np.ndarray
    flu_dose_mg: np.ndarray
    flu_infusion_h: float
    cy_days: np.ndarray
    cy_mg_m2: np.ndarray
    cy_mg_m2_total: np.ndarray
    cart_dose_days: np.ndarray
    cart_dose_cells: np.ndarray
    dialysis_session_days: np.ndarray
    dialysis_duration_h: np.ndarray
    flu_removal_fraction: np.ndarray
    il6_elimination_per_day: np.ndarray
    clearance_model: tuple
    contexts: list | None = None

    @property
    def n(self) -> int:
        """Number of patients."""
        return int(self.weight_kg.shape[0])

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        models_used = sorted(set(self.clearance_model))
        return f"BatchContext(n={self.n}, clearance_model={models_used})"

    @classmethod
    def from_contexts(cls, contexts: Sequence) -> BatchContext:
        """Stack scalar :class:`cartkin.regimen.Context` objects (exactly the same numbers).

        Parameters
        ----------
        contexts : sequence of Context
            From :func:`cartkin.regimen.build_context`; at least one.

        Returns
        -------
        BatchContext
        """
        from cartkin import kidney

        contexts = list(contexts)
        if not contexts:
            raise ScenarioError("BatchContext.from_contexts: expected at least one Context")
        cols: dict[str, list] = {f.name: [] for f in fields(cls)}
        infusion = set()
        for i, c in enumerate(contexts):
            for attr in ("patient", "regimen", "exposure", "clearance_model"):
                if not hasattr(c, attr):
                    raise ScenarioError(
                        f"BatchContext.from_contexts: contexts[{i}] = {c!r} has no {attr!r}; "
                        "expected a cartkin.regimen.Context"
                    )
            pt, ld, ex = c.patient, c.regimen.lymphodepletion, c.exposure
            pk = kidney.fludarabine_pk_parameters(pt, c.clearance_model)
            dialysis = pt.dialysis
            cols["weight_kg"].append(c.weight_kg)
            cols["height_cm"].append(pt.height_cm)
            cols["age_years"].append(pt.age_years)
            cols["female"].append(pt.sex == "female")
            cols["bsa_m2"].append(c.bsa_m2)
            cols["egfr_ml_min_173m2"].append(c.egfr_ml_min_173m2)
            cols["crcl_ml_min"].append(ex.crcl_ml_min)
            cols["on_dialysis"].append(pt.on_dialysis)
            cols["flu_auc_mg_h_per_l"].append(c.flu_auc_mg_h_per_l)
            cols["flu_cl_l_h"].append(pk.cl_l_h)
            cols["flu_v1_l"].append(pk.v1_l)
            cols["flu_v2_l"].append(pk.v2_l)
            cols["flu_v3_l"].append(pk.v3_l)
            cols["flu_q2_l_h"].append(pk.q2_l_h)
            cols["flu_q3_l_h"].append(pk.q3_l_h)
            cols["flu_dose_factor"].append(pk.dose_factor)
            cols["flu_dose_days"].append(ex.dose_days)
            cols["flu_dose_mg"].append(ex.daily_doses_mg)
            infusion.add(ex.infusion_h)
            cols["cy_days"].append(tuple(ld.cy_days))
            cols["cy_mg_m2"].append((ld.cy_mg_m2,) * len(ld.cy_days))
            cols["cy_mg_m2_total"].append(c.cy_mg_m2_total)
            cols["cart_dose_days"].append(tuple(d for d, _ in c.cart_doses))
            cols["cart_dose_cells"].append(tuple(n for _, n in c.cart_doses))
            cols["dialysis_session_days"].append(dialysis.session_days if dialysis else ())
            cols["dialysis_duration_h"].append(dialysis.duration_h if dialysis else math.nan)
            cols["flu_removal_fraction"].append(dialysis.flu_removal_fraction if dialysis else 0.0)
            cols["il6_elimination_per_day"].append(c.il6_elimination_per_day)
            cols["clearance_model"].append(c.clearance_model)
        if len(infusion) != 1:
            raise ScenarioError(
                f"BatchContext.from_contexts: fludarabine infusion durations differ "
                f"({sorted(infusion)} h); expected one value for the batch"
            )
        out = {}
        for name, values in cols.items():
            if name in ("contexts", "flu_infusion_h"):
                continue
            if name == "clearance_model":
                out[name] = tuple(values)
            elif name in ("female", "on_dialysis"):
                out[name] = np.array(values, dtype=bool)
            elif name in _PADDED_DAYS or name in _PADDED_AMOUNTS:
                out[name] = _pad(values, math.nan if name in _PADDED_DAYS else 0.0)
            else:
                out[name] = np.array(values, dtype=np.float64)
        return cls(**out, flu_infusion_h=infusion.pop(), contexts=contexts)

    @classmethod
    def from_covariates(cls, weight_kg, height_cm, age_years, sex, **kwargs) -> BatchContext:
        """Build ``n`` patients from covariate arrays: the kidney.py functions, vectorized.

        Same numbers as ``from_contexts`` of the equivalent Patient/Regimen objects (fludarabine
        AUC within 1e-10 relative: closed-form PK in both), without per-patient Python.

        Parameters
        ----------
        weight_kg, height_cm, age_years : array_like, shape (n,) or scalar
        sex : str or array of str, shape (n,)
            "female" or "male".
        egfr_ml_min_173m2, crcl_ml_min, serum_creatinine_mg_dl : array_like, optional
            Kidney function, NaN where not given: exactly one per patient; on dialysis none
            (residual eGFR 5, assumption) or a residual eGFR or CrCL.
        on_dialysis : bool or array of bool
        dialysis_session_days : array_like, shape (m_s,) or (n, m_s)
            Session days relative to CAR-T infusion (NaN padded); used for patients on dialysis.
        dialysis_duration_h, flu_removal_fraction : float or array_like
        flu_mg_m2_per_day : float or array_like
            Fludarabine phosphate per day before the dose rule, mg/m2.
        flu_days, cy_days, cart_days : sequence of float
            Shared schedules, days relative to CAR-T infusion.
        flu_rule : str or array of str
            One of ``kidney.FLU_RULES`` per patient.
        flu_target_auc_mg_h_per_l : float or array_like
            Target of the ``auc_target`` rule, mg.h/L.
        cy_mg_m2 : float or array_like
            Cyclophosphamide per listed day, mg/m2.
        cart_cells_per_kg, cart_flat_cells : float or array_like
            CAR-T dose, NaN where not given: exactly one per patient.
        cart_fractions : sequence of float, optional
            Share of the dose on each of ``cart_days`` (default equal).
        clearance_model : str or array of str
            One of ``kidney.CLEARANCE_MODELS`` per patient.
        flu_infusion_h : float
            Infusion duration, h.

        Returns
        -------
        BatchContext
            With ``contexts=None``: models need an array-valued individualize.

        Raises
        ------
        ScenarioError
            Naming the argument, the value and the patient index.
        """
        from cartkin.kidney_batch import context_arrays

        return cls(**context_arrays(weight_kg, height_cm, age_years, sex, **kwargs))

    def take(self, index) -> BatchContext:
        """Patients ``index`` (integer array, may repeat; or a boolean mask), in that order.

        Fits use it to repeat patients across starts; sweeps to pick a chunk.
        """
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (self.n,):
                raise ScenarioError(
                    f"BatchContext.take: boolean mask of shape {index.shape}; expected ({self.n},)"
                )
            index = np.flatnonzero(index)
        index = index.astype(np.int64, copy=False).reshape(-1)
        if index.size and (index.min() < -self.n or index.max() >= self.n):
            bad = int(index[(index < -self.n) | (index >= self.n)][0])
            raise ScenarioError(
                f"BatchContext.take: index {bad} is out of range for {self.n} patients"
            )
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value[index]
            elif f.name == "clearance_model":
                changes[f.name] = tuple(value[i] for i in index)
            elif f.name == "contexts" and value is not None:
                changes[f.name] = [value[i] for i in index]
        return replace(self, **changes)


_PADDED_DAYS = ("flu_dose_days", "cy_days", "cart_dose_days", "dialysis_session_days")
_PADDED_AMOUNTS = ("flu_dose_mg", "cy_mg_m2", "cart_dose_cells")


def _pad(rows, fill) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), fill, dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


# ---------------------------------------------------------------------------------------------
# Kernel inputs with a patient axis
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BatchIndividuals:
    """Kernel inputs of ``n`` patients (the batch form of :class:`cartkin.models.Individual`).

    Attributes
    ----------
    p : numpy.ndarray, shape (n, n_kernel)
        Kernel vectors (``model.kernel_names`` order).
    y0 : numpy.ndarray, shape (n, n_states)
        State at ``t0``, before any jump.
    t0 : numpy.ndarray, shape (n,)
        Start of integration, days (<= 0).
    t_stops : numpy.ndarray, shape (n, m)
        Stop times per patient, non-decreasing in the first ``n_stops[i]`` entries, +inf after.
    jumps : numpy.ndarray, shape (n, m, n_states)
        Jumps added at the stops (zero padded).
    n_stops : numpy.ndarray of int64, shape (n,)
        Number of real stops of each patient.
    """

    p: np.ndarray
    y0: np.ndarray
    t0: np.ndarray
    t_stops: np.ndarray
    jumps: np.ndarray
    n_stops: np.ndarray

    @property
    def n(self) -> int:
        """Number of patients."""
        return int(self.p.shape[0])

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (
            f"BatchIndividuals(n={self.n}, n_kernel={self.p.shape[1]}, "
            f"n_states={self.y0.shape[1]}, max_stops={self.t_stops.shape[1]})"
        )

    @classmethod
    def from_individuals(cls, individuals: Sequence) -> BatchIndividuals:
        """Stack scalar :class:`cartkin.models.Individual` objects (padding the stops)."""
        individuals = list(individuals)
        if not individuals:
            raise ScenarioError("BatchIndividuals.from_individuals: expected at least one")
        n_states = individuals[0].y0.size
        m = max(ind.t_stops.size for ind in individuals)
        t_stops = np.full((len(individuals), m), np.inf)
        jumps = np.zeros((len(individuals), m, n_states))
        for i, ind in enumerate(individuals):
            k = ind.t_stops.size
            t_stops[i, :k] = ind.t_stops
            jumps[i, :k] = ind.jumps
        return cls(
            p=np.array([ind.p for ind in individuals], dtype=np.float64),
            y0=np.array([ind.y0 for ind in individuals], dtype=np.float64),
            t0=np.array([float(getattr(ind, "t0", 0.0)) for ind in individuals]),
            t_stops=t_stops,
            jumps=jumps,
            n_stops=np.array([ind.t_stops.size for ind in individuals], dtype=np.int64),
        )

    def individual(self, i: int):
        """Patient ``i`` as a scalar :class:`cartkin.models.Individual` (stops trimmed)."""
        from cartkin.models.base import Individual

        k = int(self.n_stops[i])
        return Individual(
            p=self.p[i].copy(),
            y0=self.y0[i].copy(),
            t_stops=self.t_stops[i, :k].copy(),
            jumps=self.jumps[i, :k].copy(),
            t0=float(self.t0[i]),
        )

    def take(self, index) -> BatchIndividuals:
        """Patients ``index`` (integer array, may repeat), in that order."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        return BatchIndividuals(
            p=self.p[index], y0=self.y0[index], t0=self.t0[index], t_stops=self.t_stops[index],
            jumps=self.jumps[index], n_stops=self.n_stops[index],
        )  # fmt: skip


def check_individuals(model, inds: BatchIndividuals) -> BatchIndividuals:
    """Shapes, dtypes and values of batch kernel inputs; C-contiguous float64 copies if needed.

    Raises
    ------
    RuntimeError
        When a model's ``individualize`` returned inconsistent arrays (a bug in the model).
    ScenarioError
        Non-finite initial states or jumps, stops out of order or before ``t0``, ``t0 > 0``.
    """
    n_kernel, n_states = len(model.kernel_names), model.n_states
    p = np.ascontiguousarray(inds.p, dtype=np.float64)
    n = p.shape[0] if p.ndim == 2 else -1
    y0 = np.ascontiguousarray(inds.y0, dtype=np.float64)
    t0 = np.ascontiguousarray(inds.t0, dtype=np.float64)
    t_stops = np.ascontiguousarray(inds.t_stops, dtype=np.float64)
    jumps = np.ascontiguousarray(inds.jumps, dtype=np.float64)
    n_stops = np.ascontiguousarray(inds.n_stops, dtype=np.int64)
    m = t_stops.shape[1] if t_stops.ndim == 2 else -1
    expected = {
        "p": (p, (n, n_kernel)),
        "y0": (y0, (n, n_states)),
        "t0": (t0, (n,)),
        "t_stops": (t_stops, (n, m)),
        "jumps": (jumps, (n, m, n_states)),
        "n_stops": (n_stops, (n,)),
    }
    for name, (arr, shape) in expected.items():
        if n < 0 or m < 0 or arr.shape != shape:
            raise RuntimeError(
                f"Model {model.name!r}: batch individualize gave {name} of shape {arr.shape}; "
                f"expected {shape} (n patients, {n_kernel} kernel entries, {n_states} states)"
            )
    _first_bad(~np.isfinite(y0).all(axis=1), "initial state y0 is not finite")
    _first_bad(~(np.isfinite(t0) & (t0 <= 0.0)), "t0 must be finite and <= 0 days", t0)
    _first_bad((n_stops < 0) | (n_stops > m), f"n_stops must lie in [0, {m}]", n_stops)
    real = np.arange(m)[None, :] < n_stops[:, None]
    _first_bad((real & ~np.isfinite(t_stops)).any(axis=1), "a stop time is not finite")
    _first_bad(
        (real & (t_stops < t0[:, None])).any(axis=1),
        "a stop (dose) lies before the model's start t0", t0,
    )  # fmt: skip
    if m > 1:
        _first_bad(
            (real[:, 1:] & (np.diff(t_stops, axis=1) < 0)).any(axis=1),
            "stop times must be non-decreasing",
        )
    _first_bad((real[:, :, None] & ~np.isfinite(jumps)).any(axis=(1, 2)), "a jump is not finite")
    return BatchIndividuals(p=p, y0=y0, t0=t0, t_stops=t_stops, jumps=jumps, n_stops=n_stops)


def _first_bad(mask, what, values=None):
    if np.any(mask):
        i = int(np.flatnonzero(mask)[0])
        shown = "" if values is None else f" (value {values[i]!r})"
        raise ScenarioError(
            f"patient {i} of {mask.size}: {what}{shown}; {int(mask.sum())} patient(s) affected"
        )


# ---------------------------------------------------------------------------------------------
# individualize
# ---------------------------------------------------------------------------------------------
def parameter_values(model, theta, n: int) -> dict[str, np.ndarray]:
    """Table values of ``n`` patients: defaults with ``theta`` overrides, validated at once.

    Parameters
    ----------
    model : Model
    theta : mapping of str to float or array of shape (n,), or None
    n : int

    Returns
    -------
    dict of str to numpy.ndarray, shape (n,)
        In table order.

    Raises
    ------
    ScenarioError
        An unknown name (with a hint), a value that is not a number, a wrong shape, a non-finite
        value or a value outside the parameter's bounds; the message names the parameter, the
        offending value and its patient index.
    """
    table = model.parameters
    values = {p.name: np.full(n, float(p.default)) for p in table}
    if theta is None:
        return values
    if not isinstance(theta, Mapping):
        raise TypeError(f"theta must be a mapping of parameter name to values, got {theta!r}")
    for name, value in theta.items():
        par = table[name]  # ScenarioError with a hint on an unknown name
        try:
            x = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ScenarioError(
                f"Parameter {name!r}: value {value!r} is not a number ({par.unit})"
            ) from None
        if x.ndim == 0:
            x = np.full(n, float(x))
        if x.shape != (n,):
            raise ScenarioError(
                f"Parameter {name!r}: got shape {x.shape}; expected a number or one value per "
                f"patient, shape ({n},)"
            )
        bad = ~np.isfinite(x) | (x < par.lower) | (x > par.upper)
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            what = "must be finite" if not np.isfinite(x[i]) else "is outside its bounds"
            raise ScenarioError(
                f"Parameter {name!r} = {x[i]:g} {par.unit} for patient {i} {what} "
                f"[{par.lower:g}, {par.upper:g}] {par.unit} ({par.description}); "
                f"{int(bad.sum())} of {n} value(s) bad"
            )
        values[name] = np.array(x, dtype=np.float64)
    return values


def individualize(model, theta, bctx: BatchContext) -> BatchIndividuals:
    """Kernel inputs of every patient of ``bctx`` (theta validated against the table at once).

    Parameters
    ----------
    model : str or Model
    theta : mapping of str to float or array of shape (n,), or None
        Overrides of the parameter table; one number for all patients or one per patient.
    bctx : BatchContext

    Returns
    -------
    BatchIndividuals
    """
    model = models.get(model)
    if not isinstance(bctx, BatchContext):
        raise ScenarioError(f"individualize: bctx = {bctx!r}; expected a BatchContext")
    values = parameter_values(model, theta, bctx.n)
    return model.individualize_batch(values, bctx)


# ---------------------------------------------------------------------------------------------
# solve, observe
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BatchSolution:
    """Trajectories of ``n`` patients.

    Attributes
    ----------
    t : numpy.ndarray, shape (n_t,)
        Output times, days.
    y : numpy.ndarray, shape (n, n_t, n_states)
        States; NaN before a patient's ``t0`` and after a failure.
    status : numpy.ndarray of int64, shape (n,)
        :class:`cartkin.ode.Status` codes (0 = success).
    n_steps, n_rejected, n_rhs : numpy.ndarray of int64, shape (n,)
    method : str
    """

    t: np.ndarray
    y: np.ndarray
    status: np.ndarray
    n_steps: np.ndarray
    n_rejected: np.ndarray
    n_rhs: np.ndarray
    method: str

    @property
    def success(self) -> np.ndarray:
        """Boolean per patient, shape (n,)."""
        return self.status == 0

    def __repr__(self) -> str:
        failed = int(np.count_nonzero(self.status))
        return (
            f"BatchSolution(n={self.y.shape[0]}, n_times={self.t.size}, method={self.method!r}, "
            f"failed={failed})"
        )


def _options(model, rtol, atol, method, max_steps, threads):
    from cartkin import ode

    if method not in ode.METHODS:
        raise ScenarioError(f"method = {method!r}: expected one of {', '.join(ode.METHODS)}")
    rtol = float(rtol)
    if not (math.isfinite(rtol) and rtol >= 100 * np.finfo(float).eps):
        raise ScenarioError(f"rtol = {rtol!r}: expected a number >= {100 * np.finfo(float).eps:g}")
    atol = np.broadcast_to(np.asarray(atol, dtype=np.float64), (model.n_states,)).copy()
    if not np.all(np.isfinite(atol) & (atol > 0)):
        raise ScenarioError(f"atol = {atol!r}: expected positive numbers, one or one per state")
    if not (isinstance(max_steps, int | np.integer) and max_steps > 0):
        raise ScenarioError(f"max_steps = {max_steps!r}: expected a positive integer")
    if threads is not None:
        if not (
            isinstance(threads, int | np.integer) and 1 <= threads <= numba.config.NUMBA_NUM_THREADS
        ):
            raise ScenarioError(
                f"threads = {threads!r}: expected an integer in [1, "
                f"{numba.config.NUMBA_NUM_THREADS}] (numba's thread pool)"
            )
    return ode._METHOD_CODES[method], rtol, atol, int(max_steps)


def _n_chunks(n: int, threads: int) -> int:
    # a few chunks per thread balance uneven patients; chunking never changes the numbers
    return max(1, min(n, 8 * threads))


class _Threads:
    """Run with ``threads`` numba threads, restoring the previous setting afterwards."""

    def __init__(self, threads):
        self.threads = threads

    def __enter__(self):
        self.old = numba.get_num_threads()
        if self.threads is not None:
            numba.set_num_threads(int(self.threads))
        return numba.get_num_threads()

    def __exit__(self, *exc):
        numba.set_num_threads(self.old)


def _kernel(model):
    from cartkin.kernel import build

    return build.get_kernel(model.rhs, model.jac, getattr(model, "observe_roles", None))


def solve(
    model,
    inds: BatchIndividuals,
    t_eval,
    *,
    method: str = "auto",
    rtol: float = 1e-6,
    atol=1e-9,
    max_steps: int = 100_000,
    threads: int | None = None,
) -> BatchSolution:
    """Solve every patient of ``inds`` in one compiled, threaded call.

    Each patient is integrated from its ``t0`` to ``t_eval[-1]`` through its stops (stops after
    ``t_eval[-1]`` are ignored), exactly as :func:`cartkin.ode.solve_ode` would with the grid
    ``[t0, t_eval...]``: the numbers are bit-identical to that call.

    Parameters
    ----------
    model : str or Model
    inds : BatchIndividuals
    t_eval : array_like, shape (n_t,)
        Strictly increasing output times, days. Outputs before a patient's ``t0`` are NaN.
    method : {"auto", "tsit5", "dopri5", "rodas5"}
    rtol : float
    atol : float or array_like, shape (n_states,)
    max_steps : int
        Step budget per patient.
    threads : int, optional
        numba threads for this call (default: numba's current setting).

    Returns
    -------
    BatchSolution
        Failed patients have a negative status and NaN rows from the failure on; nothing raises
        for them.
    """
    from cartkin.simulate import _check_times

    model = models.get(model)
    code, rtol, atol, max_steps = _options(model, rtol, atol, method, max_steps, threads)
    inds = check_individuals(model, inds)
    t = _check_times(t_eval)
    n, n_states = inds.n, model.n_states
    first_out = np.searchsorted(t, inds.t0, side="left").astype(np.int64)
    y = np.full((n, t.size, n_states), np.nan)
    status = np.zeros(n, np.int64)
    kernel = _kernel(model)
    counters = np.zeros((n, kernel.N_COUNTERS), np.int64)
    if n:
        with _Threads(threads) as n_threads:
            kernel._solve_batch(
                code, t, first_out, inds.y0, inds.p, inds.t0, inds.t_stops, inds.jumps,
                inds.n_stops, rtol, atol, np.inf, max_steps, _n_chunks(n, n_threads), y, status,
                counters,
            )  # fmt: skip
    return BatchSolution(
        t=t, y=y, status=status, n_steps=counters[:, kernel.I_STEPS],
        n_rejected=counters[:, kernel.I_REJECTED], n_rhs=counters[:, kernel.I_RHS],
        method=method,
    )  # fmt: skip


def observe(model, inds: BatchIndividuals, sol: BatchSolution) -> dict[str, np.ndarray]:
    """Every observable of every patient, ``{name: (n, n_t)}``.

    Applies the model's observable functions (``fn(states (n_t, n_states), p)``) patient by
    patient: a Python loop over patients, for reports and fits on stored trajectories; sweeps use
    :func:`metrics`, which needs no trajectories.
    """
    model = models.get(model)
    n, n_t, _n_states = sol.y.shape
    out = {}
    for obs in model.observables:
        out[obs.name] = np.stack(
            [np.asarray(obs.fn(sol.y[i], inds.p[i]), dtype=np.float64) for i in range(n)]
        ) if n else np.zeros((0, n_t))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# in-kernel metrics
# ---------------------------------------------------------------------------------------------
#: The roles a model's compiled ``observe_roles(y, p, out)`` writes, in this order (``out`` has
#: this length; NaN for a role the model lacks). A fixed subset of ``cartkin.models.ROLES``, so
#: roles added later for other uses do not change the kernel contract.
KERNEL_ROLES = ("cart", "cart_copies", "cart_percent_t", "b_cells", "il6", "anti_dsdna")

#: Metrics computed inside the kernel, with their unit and the role they need (None: always).
METRIC_NAMES = {
    "CMAX": ("cells/uL", "cart"),
    "TMAX": ("day", "cart"),
    "CMAX_COPIES": ("copies/ug", "cart_copies"),
    "CMAX_PCT_T": ("%", "cart_percent_t"),
    "AUC0_28D": ("cells/uL*day", "cart"),
    "CLST": ("cells/uL", "cart"),
    "TLST": ("day", "cart"),
    "PERSIST": ("day", "cart"),
    "B_NADIR": ("cells/uL", "b_cells"),
    "B_TNADIR": ("day", "b_cells"),
    "TAPLASIA": ("day", "b_cells"),
    "APLASIA_DUR": ("day", "b_cells"),
    "TRECOV": ("day", "b_cells"),
    "IL6_MAX": ("pg/mL", "il6"),
    "IL6_TMAX": ("day", "il6"),
    "IL6_T_ABOVE": ("day", "il6"),
    "ADSDNA_D90_PCT": ("%", "anti_dsdna"),
    "FLU_AUC": ("mg.h/L", None),
}


def metrics(
    model,
    inds: BatchIndividuals,
    *,
    names: Sequence[str] | None = None,
    t_end_days: float = 270.0,
    bctx: BatchContext | None = None,
    lloq_cells_per_ul: float = 0.05,
    aplasia_cells_per_ul: float = 10.0,  # metrics.compute: one B-cell threshold (10 cells/uL)
    recovery_cells_per_ul: float = 10.0,
    il6_threshold_pg_per_ml: float = 20.0,
    auc_end_days: float = 28.0,
    method: str = "auto",
    rtol: float = 1e-6,
    atol=1e-9,
    max_steps: int = 100_000,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Metrics of every patient, computed inside the kernel as the solution is produced.

    No trajectory is stored and nothing is solved twice: every accepted step hands its dense
    output to the metric accumulators (extremes refined on the interpolant, crossings by root
    finding on it, AUC by Gauss-Legendre quadrature of it). Definitions and thresholds are those
    of :func:`cartkin.metrics.compute` over days [0, ``t_end_days``]; with the same solver
    settings they agree with it evaluated on a fine grid (``tests/test_batch.py``). Not computed
    here: AUC0_28D_OBS (needs output times), THALF_INIT and LAMZHL (least-squares fits).

    Parameters
    ----------
    model : str or Model
        Must have a compiled ``observe_roles`` (``Model(..., observe_roles=f)``).
    inds : BatchIndividuals
    names : sequence of str, optional
        Metrics to return (default: every one the model's roles allow; see ``METRIC_NAMES``).
    t_end_days : float
        Horizon, days after CAR-T infusion (> 0).
    bctx : BatchContext, optional
        Needed for FLU_AUC (passed through from the context).
    lloq_cells_per_ul, aplasia_cells_per_ul, recovery_cells_per_ul, il6_threshold_pg_per_ml,
    auc_end_days : float
        As in :func:`cartkin.metrics.compute`.
    method, rtol, atol, max_steps, threads
        As in :func:`solve`.

    Returns
    -------
    dict of str to numpy.ndarray, shape (n,)
        One entry per metric (NaN where not reached, or for a failed patient) and
        ``"status"`` (int64, :class:`cartkin.ode.Status`).
    """
    model = models.get(model)
    if getattr(model, "observe_roles", None) is None:
        raise ScenarioError(
            f"Model {model.name!r} has no compiled observe_roles(y, p, out), so in-kernel "
            "metrics are not available for it; use cartkin.batch.solve with "
            "cartkin.metrics.compute per patient, or give the model an observe_roles "
            "(docs/design.md section 5)"
        )
    code, rtol, atol, max_steps = _options(model, rtol, atol, method, max_steps, threads)
    inds = check_individuals(model, inds)
    horizon = float(t_end_days)
    if not (math.isfinite(horizon) and horizon > 0):
        raise ScenarioError(f"t_end_days = {t_end_days!r}: expected a positive number of days")
    thresholds = {
        "lloq_cells_per_ul": lloq_cells_per_ul,
        "aplasia_cells_per_ul": aplasia_cells_per_ul,
        "recovery_cells_per_ul": recovery_cells_per_ul,
        "il6_threshold_pg_per_ml": il6_threshold_pg_per_ml,
        "auc_end_days": auc_end_days,
    }
    for key, value in thresholds.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ScenarioError(f"{key} = {value!r}: expected a positive number")
    has = {role: model.roles.get(role) is not None for role in KERNEL_ROLES}
    available = [m for m, (_, role) in METRIC_NAMES.items() if role is None or has[role]]
    if bctx is None:
        available.remove("FLU_AUC")
    if names is None:
        names = available
    names = list(names)
    for name in names:
        if name not in available:
            why = (
                "it needs bctx=" if name == "FLU_AUC"
                else f"model {model.name!r} has no role {METRIC_NAMES[name][1]!r}"
                if name in METRIC_NAMES
                else f"unknown metric.{suggest(name, METRIC_NAMES)}"
            )  # fmt: skip
            raise ScenarioError(
                f"metric {name!r} not available ({why}); available: {', '.join(available)}"
            )
    if bctx is not None and bctx.n != inds.n:
        raise ScenarioError(f"bctx has {bctx.n} patients but inds has {inds.n}")
    kernel = _kernel(model)
    cfg = np.zeros(kernel.N_CFG)
    cfg[kernel.C_LLOQ] = lloq_cells_per_ul
    cfg[kernel.C_APLASIA] = aplasia_cells_per_ul
    cfg[kernel.C_RECOVERY] = recovery_cells_per_ul
    cfg[kernel.C_IL6_THR] = il6_threshold_pg_per_ml
    cfg[kernel.C_AUC_END] = auc_end_days
    cfg[kernel.C_HORIZON] = horizon
    cfg[kernel.C_ADS_DAY] = 90.0
    for k, role in enumerate(KERNEL_ROLES):
        cfg[kernel.C_HAS + k] = 1.0 if has[role] else 0.0
    n = inds.n
    acc = np.full((n, kernel.N_ACC), np.nan)
    status = np.zeros(n, np.int64)
    counters = np.zeros((n, kernel.N_COUNTERS), np.int64)
    if n:
        with _Threads(threads) as n_threads:
            kernel._metrics_batch(
                code, horizon, inds.y0, inds.p, inds.t0, inds.t_stops, inds.jumps, inds.n_stops,
                rtol, atol, np.inf, max_steps, _n_chunks(n, n_threads), cfg, acc, status,
                counters,
            )  # fmt: skip
    table = _metric_table(kernel, acc, horizon, auc_end_days)
    if bctx is not None:
        table["FLU_AUC"] = np.asarray(bctx.flu_auc_mg_h_per_l, dtype=np.float64).copy()
    out = {}
    failed = status != 0
    for name in names:
        values = table[name]
        if name != "FLU_AUC":
            values = np.where(failed, np.nan, values)
        out[name] = values
    out["status"] = status
    return out


def _metric_table(k, acc, horizon, auc_end_days) -> dict[str, np.ndarray]:
    """Accumulators -> metric values (the NaN rules of cartkin.metrics.compute)."""
    cmax = acc[:, k.A_CMAX]
    no_cart = ~(cmax > 0)
    t_apl = acc[:, k.A_T_APLASIA]
    t_apl_end = acc[:, k.A_T_APLASIA_END]
    ads0 = acc[:, k.A_ADS_0]
    with np.errstate(invalid="ignore", divide="ignore"):
        ads_pct = np.where((horizon >= 90.0) & (ads0 > 0), 100.0 * acc[:, k.A_ADS_DAY] / ads0,
                           np.nan)  # fmt: skip
    return {
        "CMAX": cmax,
        "TMAX": np.where(no_cart, np.nan, acc[:, k.A_TMAX]),
        "CMAX_COPIES": acc[:, k.A_COPIES_MAX],
        "CMAX_PCT_T": acc[:, k.A_PCT_MAX],
        "AUC0_28D": acc[:, k.A_AUC] if horizon >= auc_end_days else np.full(len(acc), np.nan),
        "CLST": acc[:, k.A_CLST],
        "TLST": acc[:, k.A_TLST],
        "PERSIST": acc[:, k.A_PERSIST],
        "B_NADIR": acc[:, k.A_B_MIN],
        "B_TNADIR": acc[:, k.A_B_TMIN],
        "TAPLASIA": t_apl,
        "APLASIA_DUR": t_apl_end - t_apl,
        "TRECOV": acc[:, k.A_T_RECOVERY],
        "IL6_MAX": acc[:, k.A_IL6_MAX],
        "IL6_TMAX": acc[:, k.A_IL6_TMAX],
        "IL6_T_ABOVE": acc[:, k.A_IL6_ABOVE],
        "ADSDNA_D90_PCT": ads_pct,
    }
