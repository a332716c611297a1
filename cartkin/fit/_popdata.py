"""Population data and batched predictions for :mod:`cartkin.fit.population`.

A cohort is a sequence of :class:`Subject` (one patient context and its observations).
:class:`CohortData` flattens the observations of all subjects into arrays so that likelihoods,
residuals and sums per subject are numpy operations over the whole cohort, and
:class:`Predictor` computes model predictions for many (subject, parameter set) pairs in one
call: the only place that runs the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cartkin.errors import DataError, ScenarioError

__all__ = [
    "CENSORING",
    "CohortData",
    "Predictor",
    "Subject",
    "subjects_from_dataset",
    "subjects_from_table",
]

#: CENS codes as in NONMEM's M3 convention: 0 observed, 1 below LIMIT (left), -1 above LIMIT.
CENSORING = (0, 1, -1)


@dataclass(frozen=True, eq=False)
class Subject:
    """One patient of a cohort: its context and its observations.

    Parameters
    ----------
    id : str
        Subject identifier (the dataset's ID).
    context : cartkin.covariates.regimen.Context
        Patient, regimen and derived numbers (``cartkin.covariates.regimen.build_context``).
    t_days : array_like, shape (m,)
        Observation times, days after CAR-T infusion.
    observable : sequence of str, length m
        Model observable name of each record (``"transgene_copies_per_ug"``, ...).
    value : array_like, shape (m,)
        Observed value in the observable's unit; for a censored record, the limit.
    cens : array_like of int, shape (m,), optional
        0 observed, 1 below ``limit`` (left-censored), -1 above ``limit``. Default all 0.
    limit : array_like, shape (m,), optional
        Censoring limit in the observable's unit (needed where ``cens != 0``).
    """

    id: str
    context: object
    t_days: np.ndarray
    observable: tuple
    value: np.ndarray
    cens: np.ndarray | None = None
    limit: np.ndarray | None = None

    def __post_init__(self):
        m = np.asarray(self.t_days).size
        set_ = object.__setattr__
        set_(self, "id", str(self.id))
        set_(self, "t_days", _floats(self.t_days, f"subject {self.id}: t_days"))
        set_(self, "observable", tuple(str(o) for o in np.atleast_1d(self.observable)))
        set_(self, "value", _floats(self.value, f"subject {self.id}: value"))
        cens = np.zeros(m, dtype=np.int64) if self.cens is None else self.cens
        set_(self, "cens", np.atleast_1d(np.asarray(cens)).astype(np.int64))
        limit = np.full(m, np.nan) if self.limit is None else self.limit
        set_(self, "limit", _floats(limit, f"subject {self.id}: limit"))
        for name in ("observable", "value", "cens", "limit"):
            if len(getattr(self, name)) != m:
                raise DataError(
                    f"subject {self.id}: {name} has {len(getattr(self, name))} entries, "
                    f"t_days has {m}; expected one per observation"
                )


def subjects_from_dataset(dataset, base_regimen=None, base_patient=None, clearance_model=None):
    """Subjects of a :class:`cartkin.data.Dataset` (one per ID, in file order).

    Parameters
    ----------
    dataset : cartkin.data.Dataset
        Validated observations (``id, time_days, observable, value, cens, limit``).
    base_regimen, base_patient, clearance_model
        Passed to ``dataset.contexts`` (the regimen and patient fields the file does not give).

    Returns
    -------
    list of Subject
    """
    contexts = dataset.contexts(base_regimen, base_patient, clearance_model)
    obs = dataset.observations
    subjects = []
    for pid in dataset.ids:
        rows = obs[obs["id"] == pid]
        if rows.empty:
            continue
        subjects.append(
            Subject(
                pid,
                contexts[pid],
                rows["time_days"].to_numpy(dtype=np.float64),
                tuple(rows["observable"]),
                rows["value"].to_numpy(dtype=np.float64),
                rows["cens"].to_numpy(dtype=np.int64),
                rows["limit"].to_numpy(dtype=np.float64),
            )
        )
    return subjects


def _floats(values, what: str) -> np.ndarray:
    try:
        return np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        raise DataError(f"{what} = {values!r}: expected numbers") from None


class CohortData:
    """All observations of a cohort as flat arrays (one entry per record).

    Parameters
    ----------
    model : Model
        The model whose observables the records name.
    subjects : sequence of Subject
        At least one subject with at least one record each.

    Attributes
    ----------
    n : int
        Number of subjects.
    ids : list of str
    contexts : list of Context
    observables : tuple of str
        Observable names used by the records, in first-seen order.
    t_grid : numpy.ndarray, shape (n_grid,)
        Sorted unique observation times, days (every prediction is made on this grid).
    subject, t_index, obs_index : numpy.ndarray of int, shape (n_obs,)
        Per record: subject number, position in ``t_grid``, position in ``observables``.
    t_days, value, limit : numpy.ndarray, shape (n_obs,)
    cens : numpy.ndarray of int, shape (n_obs,)
    n_obs_per_subject : numpy.ndarray of int, shape (n,)
    """

    def __init__(self, model, subjects: Sequence[Subject]):
        subjects = list(subjects)
        if not subjects:
            raise DataError("population fit: no subjects given")
        ids = [s.id for s in subjects]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise DataError(f"population fit: duplicate subject ids {dup}")
        known = set(model.observable_names)
        observables: list[str] = []
        for s in subjects:
            if len(s.t_days) == 0:
                raise DataError(f"subject {s.id}: no observations")
            for row, (t, o, v, c, lim) in enumerate(
                zip(s.t_days, s.observable, s.value, s.cens, s.limit, strict=True)
            ):
                where = f"subject {s.id}, record {row}"
                if o not in known:
                    raise DataError(
                        f"{where}: observable {o!r} is not an observable of model "
                        f"{model.name!r}; expected one of {sorted(known)}"
                    )
                if not np.isfinite(t) or t < 0:
                    raise DataError(f"{where}: time {float(t)!r} days; expected a finite time >= 0")
                if c not in CENSORING:
                    raise DataError(f"{where}: CENS = {int(c)}; expected 0, 1 (below LIMIT) or -1")
                if c != 0 and not (np.isfinite(lim) and lim > 0):
                    raise DataError(
                        f"{where}: CENS = {int(c)} needs a positive LIMIT; got {float(lim)!r}"
                    )
                if c == 0 and not np.isfinite(v):
                    raise DataError(f"{where}: value {float(v)!r} is not a finite number")
                if o not in observables:
                    observables.append(o)
        self.model = model
        self.subjects = subjects
        self.n = len(subjects)
        self.ids = ids
        self.contexts = [s.context for s in subjects]
        self.observables = tuple(observables)
        self.t_days = np.concatenate([s.t_days for s in subjects])
        self.t_grid = np.unique(self.t_days)
        self.subject = np.concatenate(
            [np.full(len(s.t_days), k, dtype=np.int64) for k, s in enumerate(subjects)]
        )
        self.t_index = np.searchsorted(self.t_grid, self.t_days)
        self.obs_index = np.array(
            [observables.index(o) for s in subjects for o in s.observable], dtype=np.int64
        )
        self.cens = np.concatenate([s.cens for s in subjects])
        self.limit = np.concatenate([s.limit for s in subjects])
        value = np.concatenate([s.value for s in subjects])
        # a censored record's DV is its limit (NONMEM M3 convention)
        self.value = np.where(self.cens != 0, self.limit, value)
        self.n_obs_per_subject = np.bincount(self.subject, minlength=self.n)
        self.n_obs = int(self.t_days.size)

    def covariate(self, name: str) -> np.ndarray:
        """Per-subject covariate from the contexts (``weight_kg``, ``egfr_ml_min_173m2``, ...).

        Returns
        -------
        numpy.ndarray, shape (n,)
        """
        values = []
        for ctx, sid in zip(self.contexts, self.ids, strict=True):
            v = getattr(ctx, name, None)
            if v is None:
                v = getattr(getattr(ctx, "patient", None), name, None)
            if v is None or not np.isfinite(float(v)) or float(v) <= 0:
                raise ScenarioError(
                    f"covariate {name!r} of subject {sid}: {v!r}; expected a positive number "
                    "from the patient context (weight_kg, egfr_ml_min_173m2, bsa_m2, age_years)"
                )
            values.append(float(v))
        return np.array(values)

    def per_subject_sum(self, per_record: np.ndarray) -> np.ndarray:
        """Sum a per-record quantity over each subject's records, shape (n_rows, n)."""
        per_record = np.atleast_2d(per_record)
        out = np.zeros((per_record.shape[0], self.n))
        np.add.at(out, (slice(None), self.subject), per_record)
        return out


class Predictor:
    """Model predictions at every record for many (subject, parameter set) pairs.

    Parameters
    ----------
    data : CohortData
    free : sequence of str
        Names of the parameters given per row to :meth:`predict`.
    fixed : mapping of str to float
        Values of the other table parameters (defaults where not given).
    method, rtol, atol, max_steps
        Solver settings (:func:`cartkin.ode.solve_ode`).
    engine : {"batch", "loop"}
        ``"batch"``: every call is one compiled, threaded call of :func:`cartkin.batch.solve`;
        ``"loop"``: one :func:`cartkin.ode.solve_ode` per row (the reference; same numbers).
    threads : int or None
        numba threads of each batch call (None: numba's setting).

    Notes
    -----
    Every call of :meth:`grid` is one batch: one MCMC sweep over all subjects, one chunk of
    importance samples, one Nelder-Mead step.
    """

    def __init__(
        self,
        data: CohortData,
        free: Sequence[str],
        fixed: Mapping[str, float],
        *,
        method: str = "auto",
        rtol: float = 1e-6,
        atol: float = 1e-9,
        max_steps: int = 100_000,
        engine: str = "batch",
        threads: int | None = 1,
    ):
        model = data.model
        self.data = data
        self.model = model
        self.free = tuple(free)
        self.base = model.parameters.values(fixed)
        self.lower = np.array([model.parameters[name].lower for name in self.free])
        self.upper = np.array([model.parameters[name].upper for name in self.free])
        self.options = {"method": method, "rtol": rtol, "atol": atol, "max_steps": max_steps}
        if engine not in ("batch", "loop"):
            raise ScenarioError(f"engine = {engine!r}; expected 'batch' or 'loop'")
        self.engine = engine
        self.fixed = dict(fixed)
        self.threads = threads
        self._bctx = None
        self.n_solves = 0

    def in_bounds(self, values: np.ndarray) -> np.ndarray:
        """Rows of ``values`` (n_rows, n_free) inside the parameter table's bounds."""
        finite = np.all(np.isfinite(values), axis=1)
        return finite & np.all((values >= self.lower) & (values <= self.upper), axis=1)

    def grid(self, values: np.ndarray, subject: np.ndarray) -> np.ndarray:
        """Predictions on the time grid for every row.

        Parameters
        ----------
        values : numpy.ndarray, shape (n_rows, n_free)
            Parameter values (natural scale) in ``free`` order.
        subject : numpy.ndarray of int, shape (n_rows,)
            Subject number of each row.

        Returns
        -------
        numpy.ndarray, shape (n_rows, n_grid, n_observables)
            NaN for rows out of bounds or where the solver failed.
        """
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        subject = np.asarray(subject, dtype=np.int64)
        out = np.full((len(values), self.data.t_grid.size, len(self.data.observables)), np.nan)
        rows = np.flatnonzero(self.in_bounds(values))
        if rows.size:
            solve = self._grid_batch if self.engine == "batch" else self._grid_loop
            out[rows] = solve(values[rows], subject[rows])
            self.n_solves += int(rows.size)
        return out

    def _grid_batch(self, values, subject):
        """All rows in one compiled call of the batch engine (docs/design.md section 5)."""
        from cartkin import batch

        if self._bctx is None:
            self._bctx = batch.BatchContext.from_contexts(self.data.contexts)
        theta = dict(self.fixed)
        theta.update({name: values[:, j] for j, name in enumerate(self.free)})
        inds = batch.individualize(self.model, theta, self._bctx.take(subject))
        sol = batch.solve(self.model, inds, self.data.t_grid, threads=self.threads, **self.options)
        obs = batch.observe(self.model, inds, sol)
        out = np.stack([obs[name] for name in self.data.observables], axis=-1)
        out[sol.status != 0] = np.nan
        return out

    def _grid_loop(self, values, subject):
        """Reference path: one :func:`cartkin.ode.solve_ode` call per row."""
        from cartkin.ode import solve_ode

        model, data = self.model, self.data
        out = np.full((len(values), data.t_grid.size, len(data.observables)), np.nan)
        theta = dict(self.base)
        for row in range(len(values)):
            theta.update(zip(self.free, values[row], strict=True))
            ind = model.individualize(theta, data.contexts[subject[row]])
            t0 = float(getattr(ind, "t0", 0.0))
            grid = data.t_grid if data.t_grid[0] == t0 else np.concatenate([[t0], data.t_grid])
            keep = ind.t_stops <= grid[-1]
            sol = solve_ode(
                model.rhs,
                ind.y0,
                grid,
                ind.p,
                jac=model.jac,
                t_stops=ind.t_stops[keep],
                jumps=ind.jumps[keep],
                throw=False,
                **self.options,
            )
            if not sol.success:
                continue
            states = sol.y if grid is data.t_grid else sol.y[1:]
            obs = model.observe(states, ind.p)
            for k, name in enumerate(data.observables):
                out[row, :, k] = obs[name]
        return out

    def records(self, values: np.ndarray, subject: np.ndarray) -> np.ndarray:
        """Predictions at each row's subject's records, padded.

        Returns
        -------
        numpy.ndarray, shape (n_rows, max records per subject)
            Row ``r`` holds the predictions of subject ``subject[r]``'s records in data order,
            then NaN.
        """
        pred = self.grid(values, subject)
        return self.data_gather(pred, subject)

    def data_gather(self, pred_grid: np.ndarray, subject: np.ndarray) -> np.ndarray:
        """Pick each row's records out of grid predictions (see :meth:`records`)."""
        d = self.data
        slots = _record_slots(d)[subject]
        valid = slots >= 0
        safe = np.where(valid, slots, 0)
        rows = np.arange(len(subject))[:, None]
        out = pred_grid[rows, d.t_index[safe], d.obs_index[safe]]
        return np.where(valid, out, np.nan)


def _record_slots(data: CohortData) -> np.ndarray:
    """(n, max records) table of record numbers per subject, -1 padded (cached on data)."""
    slots = getattr(data, "_slots", None)
    if slots is None:
        m = int(data.n_obs_per_subject.max())
        slots = np.full((data.n, m), -1, dtype=np.int64)
        start = 0
        for k, count in enumerate(data.n_obs_per_subject):
            slots[k, :count] = np.arange(start, start + count)
            start += count
        data._slots = slots
    return slots


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
