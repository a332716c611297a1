"""Python boundary of cartkin's compiled ODE integrators: `solve_ode`.

Checks the inputs, picks the kernel for the right-hand side (`cartkin.kernel.build`), runs it, and
turns its integer status into an `ODESolution` or a `SolverError` that says what to change.

Methods (all numba-compiled; see `cartkin/kernel/parts/` for tableaus and references):

``"tsit5"``
    Tsitouras 5(4) explicit Runge-Kutta with 4th-order dense output. The fastest choice for
    non-stiff problems (measured on the cart4 benchmark model). Gives up with status STIFF when
    Hairer's stiffness test fires over 500 steps.
``"dopri5"``
    Dormand-Prince 5(4) with Shampine's dense output; same behaviour as tsit5.
``"rodas5"`` (default)
    L-stable Rosenbrock 5(4) method of Di Marzo (Rodas5) with 4th-order dense output;
    finite-difference Jacobian unless ``jac`` is given; for stiff problems.
``"auto"``
    tsit5, switching to rodas5 for the rest of the current segment (up to the next stop time)
    when the stiffness test fires 15 times (6 non-stiff steps in a row reset the count). Every
    segment starts explicit again.
"""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit
from numba.core.dispatcher import Dispatcher
from numba.core.errors import NumbaError

from cartkin.errors import ScenarioError, SolverError
from cartkin.kernel import build

__all__ = ["METHODS", "RTOL_MIN", "ODESolution", "Status", "solve_ode"]


class Status(enum.IntEnum):
    """Integer status returned by the compiled integrators."""

    SUCCESS = 0
    MAX_STEPS = -1
    STEP_UNDERFLOW = -2
    NON_FINITE = -3
    STIFF = -4
    SINGULAR = -5
    NOT_BUILT = -6  # internal: a kernel asked for a method family it was not built for


_METHOD_CODES = {"tsit5": 0, "dopri5": 1, "rodas5": 2, "auto": 3}
# method code -> the kernel family it needs (cartkin.kernel.build builds one kernel per family)
_FAMILY = ("erk", "erk", "ros", "all")
METHODS = tuple(_METHOD_CODES)
_EXPLICIT = ("tsit5", "dopri5")
_EMPTY = np.zeros(0)
_EMPTY_2D: dict[int, np.ndarray] = {}
_STATUS = {int(s): s for s in Status}
_RTOL_MIN = 100 * np.finfo(float).eps
#: Smallest relative tolerance solve_ode accepts (100 x machine epsilon); scenario files use it too.
RTOL_MIN = float(_RTOL_MIN)
_ATOL_CACHE: dict[tuple[int, float], np.ndarray] = {}  # internal, never handed to users
_F64 = np.dtype(np.float64)
# (rhs, jac) -> kernel, for pairs already checked to be compiled functions: a repeated call
# skips those checks (the pairs are kept alive by cartkin.kernel.build's kernel table anyway).
_KERNELS: dict = {}
# (rhs, jac, n_states, n_p) whose first evaluation was bounds-checked (see _check_indexing)
_SHAPES_CHECKED: set = set()


@dataclass(slots=True, repr=False, eq=False)
class ODESolution:
    """Result of `solve_ode`.

    Attributes
    ----------
    t : ndarray, shape (n_times,)
        Output times (a copy of ``t_eval``), same unit as the rhs time.
    y : ndarray, shape (n_times, n_states)
        States at ``t``; right-continuous at stop times; rows past a failure are NaN.
    status : Status
    success : bool
    message : str
        What happened and, on failure, what to change.
    method : str
    n_steps, n_rejected, n_rhs, n_jac : int
        Accepted steps, rejected steps, right-hand side and Jacobian evaluations.
    """

    t: np.ndarray
    y: np.ndarray
    status: Status
    success: bool
    message: str
    method: str
    n_steps: int
    n_rejected: int
    n_rhs: int
    n_jac: int

    def __repr__(self):
        return (
            f"ODESolution(status={self.status.name}, method={self.method!r}, "
            f"n_times={self.t.size}, n_states={self.y.shape[1]}, n_steps={self.n_steps}, "
            f"n_rejected={self.n_rejected}, n_rhs={self.n_rhs}, n_jac={self.n_jac})"
        )


# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _check_values(t_eval, y0, t_stops, jumps):
    """(code, index) of the first bad value; code 0: all fine. Cheap for valid input."""
    m = t_eval.size
    for i in range(m):
        if not math.isfinite(t_eval[i]):
            return 1, i
        if i > 0 and not (t_eval[i] > t_eval[i - 1]):
            return 2, i
    for i in range(y0.size):
        if not math.isfinite(y0[i]):
            return 3, i
    for i in range(t_stops.size):
        s = t_stops[i]
        if not math.isfinite(s):
            return 4, i
        if s < t_eval[0] or s > t_eval[m - 1]:
            return 5, i
        if i > 0 and s < t_stops[i - 1]:
            return 6, i
    for i in range(jumps.shape[0]):
        for j in range(jumps.shape[1]):
            if not math.isfinite(jumps[i, j]):
                return 7, i
    return 0, 0


def _as_array(x, name, ndim, what):
    # fast path for the usual input (``dtype is`` is ~0.1 us cheaper than ``==``; an equal but
    # distinct dtype object just takes the general path)
    if type(x) is np.ndarray and x.dtype is _F64 and x.ndim == ndim and x.flags.c_contiguous:
        return x
    try:
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be {what} of real numbers; got {x!r:.80}") from exc
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {what}; got shape {a.shape}")
    return a


def _atol_array(atol, n):
    """atol as an (n,) array; scalar tolerances reuse a cached array (saves ~1 us a call)."""
    if type(atol) is float or type(atol) is int:
        key = (n, atol)
        arr = _ATOL_CACHE.get(key)
        if arr is not None:
            return arr
        value = _positive(atol, "atol")
        if len(_ATOL_CACHE) > 256:
            _ATOL_CACHE.clear()
        return _ATOL_CACHE.setdefault(key, np.full(n, value))
    if np.ndim(atol) == 0:
        return np.full(n, _positive(atol, "atol"))
    arr = _as_array(atol, "atol", 1, "a positive number or a 1-D array of them")
    if arr.shape != (n,) or not (arr > 0).all() or not np.isfinite(arr).all():
        raise ValueError(
            f"atol must be a positive number or {n} positive finite numbers (one per state); "
            f"got {atol!r}"
        )
    return arr


def _is_compiled(f) -> bool:
    if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]  # set at numba import
        return callable(f)
    return isinstance(f, Dispatcher)


def _positive(value, name, allow_inf=False):
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a positive number; got {value!r}") from exc
    if not (v > 0.0) or (math.isinf(v) and not allow_inf):
        extra = " (inf allowed)" if allow_inf else ""
        raise ValueError(f"{name} must be a positive finite number{extra}; got {value!r}")
    return v


def solve_ode(
    rhs,
    y0,
    t_eval,
    p=None,
    *,
    method="rodas5",
    rtol=1e-6,
    atol=1e-9,
    jac=None,
    t_stops=None,
    jumps=None,
    first_step=None,
    max_step=np.inf,
    max_steps=100_000,
    fixed_step=None,
    throw=True,
):
    """Solve ``dy/dt = rhs(t, y, p)`` and report the states at ``t_eval``.

    Parameters
    ----------
    rhs : numba dispatcher
        ``rhs(t, y, p, dydt)`` writing the derivative into ``dydt`` (float64, shape (n,)).
        Define it with ``@numba.njit``; ``error_model="numpy"`` makes a division by zero
        give inf/NaN (reported as NON_FINITE) instead of an exception.
    y0 : array_like, shape (n,)
        State at ``t_eval[0]`` (before a jump at that time).
    t_eval : array_like, shape (n_times,)
        Strictly increasing output times (at least one), in the rhs time unit. The integration
        runs from ``t_eval[0]`` to ``t_eval[-1]``; outputs come from each method's dense output.
    p : array_like, shape (n_p,), optional
        Parameters passed to ``rhs`` and ``jac`` (default: empty).
    method : {"rodas5", "tsit5", "dopri5", "auto"}
        See the module docstring.
    rtol : float
        Relative tolerance, >= 100 * machine epsilon.
    atol : float or array_like, shape (n,)
        Absolute tolerance (per state if an array), > 0, in the state units.
    jac : numba dispatcher, optional
        ``jac(t, y, p, J)`` writing ``J[i, j] = d f_i / d y_j`` (shape (n, n)); used by rodas5.
    t_stops : array_like, shape (n_stops,), optional
        Non-decreasing times in ``[t_eval[0], t_eval[-1]]`` where the integrator stops and
        restarts (fresh first step). Equal stop times are merged: their jumps add up.
    jumps : array_like, shape (n_stops, n), optional
        ``jumps[k]`` is added to the state at ``t_stops[k]`` (default: zeros). Outputs at a stop
        time report the state after the jump; a stop at ``t_eval[0]`` applies to ``y0``.
    first_step : float, optional
        First step of every segment (default: Hairer's starting-step algorithm).
    max_step : float
        Largest step (default: no limit).
    max_steps : int
        Attempted steps allowed over the whole integration.
    fixed_step : float, optional
        Non-adaptive stepping with this step (segment ends shorten the last step);
        for convergence-order tests.
    throw : bool
        On failure raise `SolverError` (default) or return the partial solution.

    Returns
    -------
    ODESolution

    Raises
    ------
    SolverError
        The integration stopped early (``throw=True``); ``.solution`` holds the partial result.
    ValueError, TypeError
        Invalid arguments (the message names the argument, value and expectation), or an rhs
        that does not compile with the signature ``rhs(t, y, p, dydt)``.
    """
    code = _METHOD_CODES.get(method) if isinstance(method, str) else None
    if code is None:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    try:
        kernel = _KERNELS.get((rhs, jac, code))
    except TypeError:  # unhashable rhs or jac: not a compiled function, rejected below
        kernel = None
    if kernel is None:
        if not _is_compiled(rhs):
            raise TypeError(
                f"rhs must be a numba-compiled function rhs(t, y, p, dydt) (decorate it with "
                f"@numba.njit); got {type(rhs).__name__}"
            )
        if jac is not None and not _is_compiled(jac):
            raise TypeError(
                f"jac must be None or a numba-compiled function jac(t, y, p, J); "
                f"got {type(jac).__name__}"
            )
    t_eval = _as_array(t_eval, "t_eval", 1, "a 1-D array of output times")
    if t_eval.size < 1:
        raise ValueError("t_eval must hold at least one time; got an empty array")
    y0 = _as_array(y0, "y0", 1, "a 1-D array of initial states")
    n = y0.size
    if n < 1:
        raise ValueError("y0 must hold at least one state; got an empty array")
    p = _EMPTY if p is None else _as_array(p, "p", 1, "a 1-D array of parameters")

    if t_stops is None:
        if jumps is not None:
            raise ValueError("jumps were given without t_stops; give the stop time of each jump")
        t_stops = _EMPTY
        jumps = _EMPTY_2D.get(n)
        if jumps is None:
            jumps = _EMPTY_2D.setdefault(n, np.zeros((0, n)))
    else:
        t_stops = _as_array(t_stops, "t_stops", 1, "a 1-D array of stop times")
        if jumps is None:
            jumps = np.zeros((t_stops.size, n))
        else:
            jumps = _as_array(jumps, "jumps", 2, "a 2-D array of shape (n_stops, n_states)")
            if jumps.shape != (t_stops.size, n):
                raise ValueError(
                    f"jumps must have shape (n_stops, n_states) = ({t_stops.size}, {n}); "
                    f"got {jumps.shape}"
                )

    bad, i = _check_values(t_eval, y0, t_stops, jumps)
    if bad:
        _raise_bad_value(bad, i, t_eval, y0, t_stops)

    if type(rtol) is not float or not (_RTOL_MIN <= rtol < math.inf):
        rtol = _positive(rtol, "rtol")
        if rtol < _RTOL_MIN:
            raise ValueError(f"rtol must be >= 100*machine epsilon = 2.2e-14; got {rtol!r}")
    atol_arr = _atol_array(atol, n)
    first = 0.0 if first_step is None else _positive(first_step, "first_step")
    fixed = 0.0 if fixed_step is None else _positive(fixed_step, "fixed_step")
    if max_step != math.inf:
        max_step = _positive(max_step, "max_step", allow_inf=True)
    if type(max_steps) is not int:
        if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral):
            raise ValueError(f"max_steps must be a positive integer; got {max_steps!r}")
        max_steps = int(max_steps)
    if max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer; got {max_steps!r}")

    shape_key = (rhs, jac, n, p.size)
    if shape_key not in _SHAPES_CHECKED:
        _check_indexing(rhs, jac, t_eval[0], y0, p)
        _SHAPES_CHECKED.add(shape_key)
    if kernel is None:
        kernel = build.get_kernel(rhs, jac, family=_FAMILY[code])
    try:
        y, status, counters, t_reached = kernel._solve(
            code, t_eval, y0, p, t_stops, jumps, rtol, atol_arr, first, float(max_step),
            max_steps, fixed,
        )  # fmt: skip
    except NumbaError as exc:
        _KERNELS.pop((rhs, jac, code), None)
        raise TypeError(
            "rhs (or jac) could not be compiled into the integrator. Expected "
            "rhs(t: float, y: float64[n], p: float64[n_p], dydt: float64[n]) -> None, writing "
            "dydt in place (and jac(t, y, p, J: float64[n, n]) -> None). numba reported: "
            + str(exc).strip().splitlines()[0]
        ) from exc

    _KERNELS[(rhs, jac, code)] = kernel  # it ran: rhs (and jac) compile with the expected signature
    n_steps, n_rejected, n_rhs, n_jac, _, n_switches = counters.tolist()
    success = status == 0  # compared as an int: an IntEnum comparison costs ~0.2 us more
    if success:
        status = Status.SUCCESS
        message = "success"
        if n_switches:
            message = f"success; auto switched to rodas5 in {n_switches} segment(s)"
    else:
        status = _STATUS[status]
        if status != Status.NON_FINITE and t_reached == t_eval[0]:
            status = _nonfinite_at_start(rhs, t_eval[0], y0, p, t_stops, jumps, status)
        message = _failure_message(status, method, t_reached, t_eval, max_steps, rtol)
    sol = ODESolution(
        t_eval.copy(), y, status, success, message, method,
        n_steps, n_rejected, n_rhs, n_jac,
    )  # fmt: skip
    if throw and not sol.success:
        raise SolverError(message, solution=sol)
    return sol


class _Guarded(np.ndarray):
    """An ndarray that names itself when indexed out of bounds (for the first rhs evaluation)."""

    def __array_finalize__(self, obj):
        self.arg_name = getattr(obj, "arg_name", None)

    def _check(self, index):
        if isinstance(index, tuple):
            return
        if isinstance(index, (int, np.integer)) and not -self.shape[0] <= index < self.shape[0]:
            raise _OutOfBounds(self.arg_name, int(index), self.shape[0])

    def __getitem__(self, index):
        self._check(index)
        return super().__getitem__(index)

    def __setitem__(self, index, value):
        self._check(index)
        super().__setitem__(index, value)


class _OutOfBounds(Exception):
    def __init__(self, name, index, size):
        super().__init__(name, index, size)
        self.name, self.index, self.size = name, index, size


_UNWRITTEN = -1.2345678901234567e300  # a value no rhs writes by chance


def _guarded(a, name):
    g = np.array(a, dtype=np.float64).view(_Guarded)
    g.arg_name = name
    return g


def _check_indexing(rhs, jac, t0, y0, p):
    """Run the Python source of ``rhs`` (and ``jac``) once on bounds-checked arrays.

    Compiled code does not check indexes: an rhs reading ``p[0]`` from an empty ``p`` reads
    memory it does not own and returns wrong numbers with status SUCCESS. One evaluation of
    the uncompiled function at ``(t0, y0, p)`` finds such a mismatch. A function whose Python
    source cannot run outside numba (a rare numba-only construct) is not checked.
    """
    n = y0.size
    sizes = {"y0": n, "p": p.size, "dydt": n, "J": n}
    what = {
        "y0": "y0 (the states)",
        "p": "p (the parameters)",
        "dydt": "dydt (one derivative per state, as many as y0)",
        "J": "J (the Jacobian, n x n with n = y0.size)",
    }
    calls = [(rhs, "rhs", (_guarded(y0, "y0"), _guarded(p, "p"), _guarded(np.zeros(n), "dydt")))]
    if jac is not None:
        calls.append(
            (jac, "jac", (_guarded(y0, "y0"), _guarded(p, "p"), _guarded(np.zeros((n, n)), "J")))
        )
    for func, label, args in calls:
        py = getattr(func, "py_func", func)
        out = args[2]
        out.fill(_UNWRITTEN)  # to see which entries the function writes
        try:
            with np.errstate(all="ignore"):
                py(float(t0), *args)
        except _OutOfBounds as exc:
            raise ValueError(
                f"{label} indexes {what[exc.name]} at [{exc.index}], but it has "
                f"{sizes[exc.name]} entries (y0 has {n}, p has {p.size}); give a longer "
                f"{'y0' if exc.name in ('y0', 'dydt', 'J') else 'p'} or fix the indexes in {label}"
            ) from None
        except IndexError as exc:
            raise ValueError(
                f"{label} indexes past the end of an argument at t={float(t0)!r} (y0 has {n} "
                f"entries, p has {p.size}): {exc}; check the sizes of y0 and p against {label}"
            ) from None
        except Exception:  # numba-only code: leave the check to the user
            continue
        unwritten = np.flatnonzero(np.asarray(out).reshape(n, -1)[:, 0] == _UNWRITTEN)
        if label == "rhs" and unwritten.size:
            raise ValueError(
                f"rhs did not write dydt[{int(unwritten[0])}] at t={float(t0)!r} (y0 has {n} "
                f"states, p has {p.size}; dydt has one entry per state and the rhs must write "
                "every one, or compiled code reads leftover memory); give y0 one entry per "
                "state of the rhs"
            )


def _nonfinite_at_start(rhs, t0, y0, p, t_stops, jumps, status):
    """NON_FINITE when the rhs is already NaN/inf at the start (reported as MAX_STEPS before)."""
    y = y0.copy()
    for k in range(t_stops.size):
        if t_stops[k] <= t0:
            y += jumps[k]
    dydt = np.zeros(y.size)
    try:
        with np.errstate(all="ignore"):
            rhs(float(t0), y, p, dydt)
    except Exception:  # keep the kernel's status
        return status
    return status if np.isfinite(dydt).all() else Status.NON_FINITE


def _raise_bad_value(bad, i, t_eval, y0, t_stops):
    if bad == 1:
        raise ValueError(f"t_eval must be finite; t_eval[{i}] = {float(t_eval[i])!r}")
    if bad == 2:
        raise ValueError(
            f"t_eval must be strictly increasing; t_eval[{i - 1}] = {float(t_eval[i - 1])!r} is followed "
            f"by t_eval[{i}] = {float(t_eval[i])!r}"
        )
    if bad == 3:
        raise ValueError(f"y0 must be finite; y0[{i}] = {float(y0[i])!r}")
    if bad == 4:
        raise ValueError(f"t_stops must be finite; t_stops[{i}] = {float(t_stops[i])!r}")
    if bad == 5:
        raise ValueError(
            f"t_stops must lie in the integration span [t_eval[0], t_eval[-1]] = "
            f"[{float(t_eval[0])!r}, {float(t_eval[-1])!r}]; t_stops[{i}] = {float(t_stops[i])!r}"
        )
    if bad == 6:
        raise ValueError(
            f"t_stops must be sorted (non-decreasing); t_stops[{i - 1}] = {float(t_stops[i - 1])!r} is "
            f"followed by t_stops[{i}] = {float(t_stops[i])!r}"
        )
    raise ValueError(f"jumps must be finite; row {i} (t_stops[{i}]) holds NaN or inf")


def _failure_message(status, method, t, t_eval, max_steps, rtol):
    where = f"at t={t:.6g} (integration from {t_eval[0]:.6g} to {t_eval[-1]:.6g})"
    if status == Status.MAX_STEPS:
        hint = f"raise max_steps (now {max_steps}) or loosen rtol (now {rtol:g})/atol"
        if method in _EXPLICIT:
            hint += ', or use method="rodas5"/"auto" if the problem is stiff'
        return f"MAX_STEPS: took max_steps={max_steps} steps and stopped {where}; {hint}"
    if status == Status.STEP_UNDERFLOW:
        return (
            f"STEP_UNDERFLOW: the step size fell below the resolvable minimum {where}; the rhs "
            f"may be discontinuous or singular near t={t:.6g} (put a discontinuity in t_stops), "
            f"or loosen rtol/atol"
        )
    if status == Status.NON_FINITE and t == t_eval[0]:
        return (
            f"NON_FINITE: the rhs gives NaN or inf at the start, t={t:.6g}, with y0 and p as "
            f"given; check the rhs, y0 and p for NaN/inf, division by zero or log of zero"
        )
    if status == Status.NON_FINITE:
        return (
            f"NON_FINITE: the rhs gave NaN or inf {where}, even with tiny steps; check the rhs "
            f"and p for NaN/inf, division by zero or overflow near t={t:.6g}"
        )
    if status == Status.STIFF:
        return (
            f"STIFF: method={method!r} is limited by stability {where} (the problem is stiff); "
            f'use method="rodas5" or method="auto"'
        )
    if status == Status.NOT_BUILT:
        return f"NOT_BUILT: internal error, the kernel was not built for method={method!r}"
    return (
        f"SINGULAR: the Rosenbrock matrix I/(h*gamma) - J was singular {where} for several "
        f"step sizes; check jac (if given) and the rhs near t={t:.6g}"
    )


def check_times(t_days) -> np.ndarray:
    """``t_days`` as a float64 array: 1-D, finite, strictly increasing (ScenarioError if not)."""
    try:
        t = np.asarray(t_days, dtype=np.float64)
    except (TypeError, ValueError):
        raise ScenarioError(f"t_days = {t_days!r}: expected an array of days") from None
    if t.ndim != 1 or t.size < 1:
        raise ScenarioError(
            f"t_days: expected a 1-D array of at least one time, got shape {t.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise ScenarioError("t_days: all output times must be finite")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        k = int(np.argmin(np.diff(t) > 0))
        raise ScenarioError(
            f"t_days must be strictly increasing; t_days[{k}] = {t[k]:g} and "
            f"t_days[{k + 1}] = {t[k + 1]:g}"
        )
    return t
