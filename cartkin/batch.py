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
from dataclasses import dataclass

import numba
import numpy as np

from cartkin import models
from cartkin.covariates.context import BatchContext
from cartkin.errors import ScenarioError
from cartkin.measures import (
    ADSDNA_DAY,
    AUC_END_DAYS,
    B_CELL_THRESHOLD_CELLS_PER_UL,
    IL6_THRESHOLD_PG_PER_ML,
    LLOQ_CELLS_PER_UL,
)
from cartkin.models.base import BatchIndividuals, check_individuals
from cartkin.ode import check_times
from cartkin.parameters import suggest

__all__ = [
    "KERNEL_ROLES",
    "METRIC_NAMES",
    "BatchContext",
    "BatchIndividuals",
    "BatchSolution",
    "check_individuals",
    "individualize",
    "metrics",
    "observe",
    "solve",
]


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
    model = models.get(model)
    code, rtol, atol, max_steps = _options(model, rtol, atol, method, max_steps, threads)
    inds = check_individuals(model, inds)
    t = check_times(t_eval)
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
    lloq_cells_per_ul: float = LLOQ_CELLS_PER_UL,
    aplasia_cells_per_ul: float = B_CELL_THRESHOLD_CELLS_PER_UL,
    recovery_cells_per_ul: float = B_CELL_THRESHOLD_CELLS_PER_UL,
    il6_threshold_pg_per_ml: float = IL6_THRESHOLD_PG_PER_ML,
    auc_end_days: float = AUC_END_DAYS,
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
    cfg[kernel.C_ADS_DAY] = ADSDNA_DAY
    # a role is tracked only when a requested metric needs it (the CAR-T role always is)
    wanted = {METRIC_NAMES[name][1] for name in names}
    for k, role in enumerate(KERNEL_ROLES):
        cfg[kernel.C_HAS + k] = 1.0 if has[role] and role in wanted else 0.0
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
        ads_pct = np.where((horizon >= ADSDNA_DAY) & (ads0 > 0), 100.0 * acc[:, k.A_ADS_DAY] / ads0,
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
