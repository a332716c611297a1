"""Virtual patients of one chunk and the engines that compute their metrics.

A chunk is one grid point and a range of patient indices. :func:`draw_population` turns it into
arrays: the grid point's parameter values times log-normal factors ``exp(omega * z)``, with
``z`` from :mod:`cartkin.sweep.seeds` (a pure function of the root seed, the patient index and
the parameter name), and the fludarabine clearance likewise.

An *engine* maps a :class:`Population` to ``{metric: (n,) float64, "status": (n,) int}``:

- :func:`batch_engine` (the default): one call of :func:`cartkin.batch.metrics` per chunk (the
  compiled, threaded kernel with in-kernel metrics; design.md section 5).
- :func:`reference_engine`: the scalar solver (``cartkin.ode.solve_ode``) and
  ``cartkin.metrics.compute`` one patient at a time. Tens of ms per patient: an oracle for
  tests and a check of the batch engine, not a way to run sweeps.

Tests inject other engines with the same signature.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cartkin.errors import CartkinError, SolverError
from cartkin.metrics import B_CELL_THRESHOLD_CELLS_PER_UL
from cartkin.sweep.seeds import standard_normal
from cartkin.sweep.spec import FLU_CLEARANCE, Sweep

__all__ = [
    "ENGINE_ERROR",
    "Population",
    "batch_engine",
    "batch_trajectories",
    "draw_population",
    "reference_engine",
]

#: Status of every patient of a chunk whose engine call raised (not an integrator status; the
#: integrator's own codes are cartkin.ode.Status, 0 = success, negative = failure).
ENGINE_ERROR = -100


@dataclass(frozen=True)
class Population:
    """The virtual patients of one chunk.

    Attributes
    ----------
    sweep : Sweep
    point : int
        Flat grid-point index.
    patients : numpy.ndarray, shape (n,), int64
        Virtual patient indices (the same k at every grid point: common random numbers).
    theta : dict of str to numpy.ndarray, shape (n,)
        Every model parameter value (table order), after the grid point's overrides and the
        variability draws, clipped to the parameter's bounds.
    flu_cl_factor : numpy.ndarray, shape (n,)
        Factor on the fludarabine clearance, ``exp(eta_CL)`` (ones without variability); the
        patient's cumulative AUC is recomputed exactly with it (:meth:`batch_context`).
    n_clipped : dict of str to int
        Draws clipped to a parameter bound, by parameter.
    """

    sweep: Sweep
    point: int
    patients: np.ndarray
    theta: dict
    flu_cl_factor: np.ndarray
    n_clipped: dict

    @property
    def n(self) -> int:
        return int(self.patients.size)

    @property
    def scenario(self):
        """The grid point's scenario."""
        return self.sweep.points[self.point]

    @property
    def context(self):
        """The grid point's scalar :class:`cartkin.covariates.regimen.Context` (built once per process)."""
        return _context(self.sweep, self.point)

    @cached_property
    def bctx(self):
        """The grid point's :class:`cartkin.batch.BatchContext` repeated for the ``n``
        patients, with each patient's fludarabine clearance and cumulative AUC."""
        base = _batch_context(self.sweep, self.point)
        bctx = base.take(np.zeros(self.n, dtype=np.intp))
        if np.all(self.flu_cl_factor == 1.0):
            return bctx
        cl = bctx.flu_cl_l_h * self.flu_cl_factor
        if np.all(bctx.flu_removal_fraction == 0.0):
            auc = bctx.flu_auc_mg_h_per_l / self.flu_cl_factor  # linear PK: AUC = dose / CL
        else:
            auc = _flu_auc(bctx, cl)  # removal at sessions depends on the time course
        return dataclasses.replace(bctx, flu_cl_l_h=cl, flu_auc_mg_h_per_l=auc)

    def batch_context(self):
        """:attr:`bctx` (computed once per population)."""
        return self.bctx

    @property
    def flu_auc_mg_h_per_l(self) -> np.ndarray:
        """Cumulative fludarabine AUC of each patient, mg.h/L, shape (n,)."""
        return self.batch_context().flu_auc_mg_h_per_l


_CONTEXTS: dict = {}


def _context(sweep: Sweep, point: int):
    from cartkin.covariates.regimen import build_context

    key = (sweep.scenario_hash, point)
    if key not in _CONTEXTS:
        arm = sweep.points[point].base
        _CONTEXTS[key] = build_context(arm.patient, arm.regimen, arm.clearance_model)
    return _CONTEXTS[key]


def _batch_context(sweep: Sweep, point: int):
    from cartkin.batch import BatchContext

    key = (sweep.scenario_hash, point, "batch")
    if key not in _CONTEXTS:
        _CONTEXTS[key] = BatchContext.from_contexts([_context(sweep, point)])
    return _CONTEXTS[key]


def _flu_auc(bctx, cl_l_h) -> np.ndarray:
    """Cumulative F-ara-A AUC with individual clearances, exactly (dialysis sessions included).

    The doses are those of the grid point after its dose rule, which used the typical
    clearance (a dose rule cannot know a patient's deviation from it).
    """
    from cartkin.covariates.flu_pk import pk_course

    return pk_course(
        cl_l_h, bctx.flu_v1_l, bctx.flu_v2_l, bctx.flu_v3_l, bctx.flu_q2_l_h, bctx.flu_q3_l_h,
        24.0 * bctx.flu_dose_days, bctx.flu_dose_mg * bctx.flu_dose_factor[:, None],
        bctx.flu_infusion_h, 24.0 * bctx.dialysis_session_days, bctx.flu_removal_fraction,
    )  # fmt: skip


def draw_population(sweep: Sweep, point: int, start: int, stop: int) -> Population:
    """Virtual patients ``start <= k < stop`` of grid point ``point``.

    Parameters
    ----------
    sweep : Sweep
    point : int
        Flat grid-point index, ``0 <= point < sweep.n_points``.
    start, stop : int
        Patient index range, ``0 <= start < stop <= sweep.n_patients``.

    Returns
    -------
    Population
    """
    patients = np.arange(start, stop, dtype=np.int64)
    arm = sweep.points[point].base
    table = sweep.model.parameters
    values = table.values(arm.theta)
    theta, n_clipped = {}, {}
    for name, value in values.items():
        x = np.full(patients.size, value, dtype=np.float64)
        omega2 = sweep.variability.get(name, 0.0)
        if omega2 > 0:
            x = x * np.exp(math.sqrt(omega2) * standard_normal(sweep.seed, patients, name))
            par = table[name]
            clipped = np.clip(x, par.lower, par.upper)
            n_clipped[name] = int(np.count_nonzero(clipped != x))
            x = clipped
        theta[name] = x
    omega2 = sweep.variability.get(FLU_CLEARANCE, 0.0)
    factor = np.ones(patients.size)
    if omega2 > 0:
        factor = np.exp(math.sqrt(omega2) * standard_normal(sweep.seed, patients, FLU_CLEARANCE))
    return Population(sweep, point, patients, theta, factor, n_clipped)


# ---------------------------------------------------------------------------------------------
# engines
# ---------------------------------------------------------------------------------------------


def _solver(pop: Population) -> dict:
    return dict(pop.scenario.solver)


def _t_end(pop: Population) -> float:
    return float(pop.scenario.t_days[-1])


def batch_engine(pop: Population, names, threads: int | None = None) -> dict:
    """Metrics of a chunk with :func:`cartkin.batch.metrics` (one compiled, threaded call).

    Parameters
    ----------
    pop : Population
    names : sequence of str
        Metric names (see :data:`cartkin.batch.METRIC_NAMES`).
    threads : int, optional
        numba threads for the call (default: numba's setting).

    Returns
    -------
    dict
        ``{name: (n,) float64}`` for every name, plus ``"status"``: (n,) int.
    """
    from cartkin import batch

    bctx = pop.batch_context()
    inds = batch.individualize(pop.sweep.model, pop.theta, bctx)
    # the B-cell threshold of cartkin.metrics.compute (one threshold for aplasia and recovery)
    b_cells = B_CELL_THRESHOLD_CELLS_PER_UL
    out = batch.metrics(
        pop.sweep.model, inds, names=list(names), t_end_days=_t_end(pop), bctx=bctx,
        threads=threads, aplasia_cells_per_ul=b_cells, recovery_cells_per_ul=b_cells,
        **_solver(pop),
    )  # fmt: skip
    result = {m: np.asarray(out[m], dtype=np.float64) for m in names}
    result["status"] = np.asarray(out["status"], dtype=np.int64)
    return result


def batch_trajectories(pop: Population, t_days, threads: int | None = None) -> dict:
    """Every observable of the chunk's patients on ``t_days`` (one :func:`cartkin.batch.solve`).

    Returns
    -------
    dict
        ``{observable name: (n, n_t) float64}`` plus ``"status"``: (n,) int.
    """
    from cartkin import batch

    bctx = pop.batch_context()
    inds = batch.individualize(pop.sweep.model, pop.theta, bctx)
    sol = batch.solve(pop.sweep.model, inds, t_days, threads=threads, **_solver(pop))
    out = batch.observe(pop.sweep.model, inds, sol)
    out["status"] = np.asarray(sol.status, dtype=np.int64)
    return out


def reference_engine(pop: Population, names, threads: int | None = None) -> dict:
    """Metrics of a chunk one patient at a time: the scalar solver and ``metrics.compute``.

    Each patient's kernel inputs come from the model's individualize on that patient's own
    batch context (so the fludarabine clearance draw reaches models that simulate the PK in
    time); the solve (``cartkin.ode.solve_ode`` through ``cartkin.simulate``) and the metrics
    (``cartkin.metrics.compute`` on its 0.02-day grid) share no code with the batch kernel.
    Same arguments and result as :func:`batch_engine`. Per-patient Python (tens of ms each):
    for tests and spot checks only.
    """
    from cartkin import batch, metrics
    from cartkin.simulate import run_individual

    scenario = pop.scenario
    model = scenario.model
    bctx, ctx = pop.bctx, pop.context
    auc = bctx.flu_auc_mg_h_per_l
    options = {**_solver(pop), "max_steps": 100_000}
    out = {m: np.full(pop.n, np.nan) for m in names}
    status = np.zeros(pop.n, dtype=np.int64)
    for i in range(pop.n):
        theta = {name: float(v[i]) for name, v in pop.theta.items()}
        ctx_i = dataclasses.replace(ctx, flu_auc_mg_h_per_l=float(auc[i]))
        try:
            ind = batch.individualize(model, theta, bctx.take(np.array([i]))).individual(0)
            result = run_individual(model, ind, ctx_i, theta, scenario.t_days, options, model.name)
        except SolverError as exc:
            sol = getattr(exc, "solution", None)
            status[i] = int(getattr(sol, "status", ENGINE_ERROR))
            continue
        except CartkinError:
            status[i] = ENGINE_ERROR
            continue
        table = {m.name: m.value for m in metrics.compute(result)}
        for m in names:
            out[m][i] = float(auc[i]) if m == "FLU_AUC" else float(table.get(m, np.nan))
    out["status"] = status
    return out
