"""Solver adapters for ``bench_solvers.py``: one per method, each in its library's own idiom.

Every adapter has the same shape:

- ``available()`` returns None, or a short reason why the method cannot run here
  ("not installed", "cartkin.solve_ode not available yet", ...);
- ``prepare(problem)`` does the per-process setup that a user would pay once (compiling a numba
  right-hand side, building a numba cfunc, tracing a jax function) and returns a ``Prepared``;
- ``Prepared.run(rtol, atol)`` is the call that gets timed: one solve, outputs at ``t_eval``;
- ``Prepared.extract(raw)`` turns its return value into ``(y[n_times, n_states], ok, message)``;
- ``Prepared.stats(raw, rtol, atol)`` returns ``{"n_steps", "n_rhs", "n_jac"}`` (None where the
  library does not say); it may solve once more, untimed, to count.

The first-call time reported by the benchmark is ``prepare`` plus the first ``run``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_STEPS = 1_000_000  # generous for every library: the benchmark compares, it does not cap


@dataclass
class Prepared:
    run: Callable[[float, float], Any]
    extract: Callable[[Any], tuple[np.ndarray, bool, str]]
    stats: Callable[[Any, float, float], dict]


@dataclass
class Method:
    """A solver as one row of the benchmark table.

    Attributes
    ----------
    key : str
        Stable identifier used in the JSON output, e.g. ``"scipy:LSODA"``.
    label : str
        What the table shows.
    family : str
        ``"cartkin"``, ``"scipy"``, ``"numbalsoda"`` or ``"diffrax"``.
    explicit : bool
        Explicit methods are not run on stiff problems.
    available : callable
        ``available() -> str | None``.
    prepare : callable
        ``prepare(problem) -> Prepared``.
    """

    key: str
    label: str
    family: str
    explicit: bool
    available: Callable[[], str | None]
    prepare: Callable[[Any], Prepared]


def _pad(y: np.ndarray, n_times: int, n_states: int) -> np.ndarray:
    """Rows past a failure are missing in some libraries: pad them with NaN."""
    out = np.full((n_times, n_states), np.nan)
    y = np.asarray(y, dtype=float).reshape(-1, n_states)
    out[: len(y)] = y[:n_times]
    return out


# --------------------------------------------------------------------------------------------
# cartkin
# --------------------------------------------------------------------------------------------
def cartkin_solve_ode():
    """``cartkin.solve_ode`` (or ``cartkin.ode.solve_ode`` before it is re-exported), or None."""
    try:
        import cartkin
    except ImportError:  # pragma: no cover - cartkin is this repository
        return None
    if hasattr(cartkin, "solve_ode"):
        return cartkin.solve_ode
    try:
        from cartkin.ode import solve_ode
    except ImportError:
        return None
    return solve_ode


def _cartkin_available(method: str) -> str | None:
    if cartkin_solve_ode() is None:
        return "cartkin.solve_ode not available yet"
    try:
        from cartkin.ode import METHODS
    except ImportError:
        return None
    return None if method in METHODS else "not implemented in cartkin"


def _cartkin_method(method: str) -> Method:
    def prepare(problem) -> Prepared:
        import numba

        solve_ode = cartkin_solve_ode()
        if problem.cartkin_rhs is not None:
            rhs, p = problem.cartkin_rhs, problem.cartkin_p
        else:
            # A user-supplied rhs: cartkin compiles a kernel for it once per process.
            rhs, p = numba.njit(problem.rhs), problem.p
        y0, t = problem.y0, problem.t_eval

        def run(rtol, atol):
            return solve_ode(
                rhs, y0, t, p, method=method, rtol=rtol, atol=atol, max_steps=MAX_STEPS, throw=False
            )

        def extract(sol):
            return np.asarray(sol.y, dtype=float), bool(sol.success), str(sol.message)

        def stats(sol, rtol, atol):
            return {
                "n_steps": int(sol.n_steps),
                "n_rejected": int(sol.n_rejected),
                "n_rhs": int(sol.n_rhs),
                "n_jac": int(sol.n_jac),
                "solver": str(sol.method),
            }

        return Prepared(run, extract, stats)

    return Method(
        key=f"cartkin:{method}",
        label=f"cartkin {method}",
        family="cartkin",
        explicit=method in ("tsit5", "dopri5"),
        available=lambda: _cartkin_available(method),
        prepare=prepare,
    )


# --------------------------------------------------------------------------------------------
# scipy
# --------------------------------------------------------------------------------------------
def _numba_scipy_rhs(problem) -> Callable:
    """The problem's rhs compiled with numba and returning a new array, as scipy wants."""
    import numba

    core = numba.njit(problem.rhs)

    @numba.njit
    def f(t, y, p):
        dydt = np.empty_like(y)
        core(t, y, p, dydt)
        return dydt

    return f


def _scipy_ivp(method: str, numba_rhs: bool = False) -> Method:
    def prepare(problem) -> Prepared:
        from scipy.integrate import solve_ivp

        if numba_rhs:
            fun, args = _numba_scipy_rhs(problem), (problem.p,)
        else:
            fun, args = problem.scipy_rhs(), None
        y0, t = problem.y0, problem.t_eval
        span = (float(t[0]), float(t[-1]))

        def run(rtol, atol):
            return solve_ivp(
                fun, span, y0, method=method, t_eval=t, rtol=rtol, atol=atol, args=args
            )

        def extract(sol):
            y = _pad(sol.y.T, len(t), len(y0))
            return y, bool(sol.success), str(sol.message)

        def stats(sol, rtol, atol):
            # Without t_eval solve_ivp returns every accepted step; the step sequence does not
            # depend on t_eval, so this counts the steps of the timed solve.
            steps = solve_ivp(fun, span, y0, method=method, rtol=rtol, atol=atol, args=args)
            return {
                "n_steps": len(steps.t) - 1,
                "n_rejected": None,
                # scipy's nfev leaves out the calls made by its finite-difference Jacobian.
                "n_rhs": int(sol.nfev),
                "n_jac": int(sol.njev),
            }

        return Prepared(run, extract, stats)

    suffix = " (numba rhs)" if numba_rhs else ""
    return Method(
        key=f"scipy:{method}" + ("+numba" if numba_rhs else ""),
        label=f"scipy solve_ivp {method}{suffix}",
        family="scipy",
        explicit=method in ("RK45", "RK23", "DOP853"),
        available=lambda: None,
        prepare=prepare,
    )


def _scipy_odeint(numba_rhs: bool = False) -> Method:
    def prepare(problem) -> Prepared:
        from scipy.integrate import odeint

        if numba_rhs:
            fun, args = _numba_scipy_rhs(problem), (problem.p,)
        else:
            fun, args = problem.scipy_rhs(), ()
        y0, t = problem.y0, problem.t_eval

        def run(rtol, atol):
            return odeint(
                fun,
                y0,
                t,
                args=args,
                tfirst=True,
                rtol=rtol,
                atol=atol,
                mxstep=MAX_STEPS,
                full_output=True,
            )

        def extract(raw):
            y, info = raw
            ok = info["message"] == "Integration successful."
            return np.asarray(y, dtype=float), ok, str(info["message"])

        def stats(raw, rtol, atol):
            info = raw[1]
            return {
                "n_steps": int(info["nst"][-1]),
                "n_rejected": None,
                "n_rhs": int(info["nfe"][-1]),
                "n_jac": int(info["nje"][-1]),
            }

        return Prepared(run, extract, stats)

    suffix = " (numba rhs)" if numba_rhs else ""
    return Method(
        key="scipy:odeint" + ("+numba" if numba_rhs else ""),
        label=f"scipy odeint{suffix}",
        family="scipy",
        explicit=False,
        available=lambda: None,
        prepare=prepare,
    )


# --------------------------------------------------------------------------------------------
# numbalsoda
# --------------------------------------------------------------------------------------------
def _numbalsoda_available() -> str | None:
    try:
        import numbalsoda  # noqa: F401
    except ImportError:
        return "not installed (pip install numbalsoda)"
    return None


def _numbalsoda_cfunc(problem, count: bool):
    """A numba cfunc with numbalsoda's signature; with ``count`` it adds 1 to ``p[n_params]``."""
    import numba
    from numbalsoda import lsoda_sig

    core = numba.njit(problem.rhs)
    n, n_p = problem.n_states, len(problem.p)

    if count:

        @numba.cfunc(lsoda_sig)
        def f(t, u, du, p):
            p_ = numba.carray(p, (n_p + 1,))
            p_[n_p] += 1.0
            core(t, numba.carray(u, (n,)), p_, numba.carray(du, (n,)))

    else:

        @numba.cfunc(lsoda_sig)
        def f(t, u, du, p):
            core(t, numba.carray(u, (n,)), numba.carray(p, (n_p,)), numba.carray(du, (n,)))

    return f


def _numbalsoda(solver_name: str) -> Method:
    def prepare(problem) -> Prepared:
        import numbalsoda

        solver = getattr(numbalsoda, solver_name)
        address = _numbalsoda_cfunc(problem, count=False).address
        y0, t = np.ascontiguousarray(problem.y0), np.ascontiguousarray(problem.t_eval)
        p = np.ascontiguousarray(problem.p, dtype=np.float64)

        def run(rtol, atol):
            return solver(address, y0, t, data=p, rtol=rtol, atol=atol, mxstep=MAX_STEPS)

        def extract(raw):
            y, ok = raw
            return np.asarray(y, dtype=float), bool(ok), "success" if ok else "failed"

        def stats(raw, rtol, atol):
            counting = _numbalsoda_cfunc(problem, count=True)
            data = np.append(p, 0.0)
            solver(counting.address, y0, t, data=data, rtol=rtol, atol=atol, mxstep=MAX_STEPS)
            return {"n_steps": None, "n_rejected": None, "n_rhs": int(data[-1]), "n_jac": None}

        return Prepared(run, extract, stats)

    return Method(
        key=f"numbalsoda:{solver_name}",
        label=f"numbalsoda {solver_name}",
        family="numbalsoda",
        explicit=solver_name == "dop853",
        available=_numbalsoda_available,
        prepare=prepare,
    )


# --------------------------------------------------------------------------------------------
# diffrax
# --------------------------------------------------------------------------------------------
def _diffrax_available() -> str | None:
    try:
        import diffrax  # noqa: F401
        import jax  # noqa: F401
    except ImportError:
        return "not installed (pip install jax diffrax)"
    return None


def _diffrax(solver_name: str) -> Method:
    def prepare(problem) -> Prepared:
        import jax

        jax.config.update("jax_enable_x64", True)
        import diffrax

        term = diffrax.ODETerm(lambda t, y, args: problem.jax_rhs(t, y, args))
        solver = getattr(diffrax, solver_name)()
        t = jax.numpy.asarray(problem.t_eval)
        y0 = jax.numpy.asarray(problem.y0)
        p = jax.numpy.asarray(problem.p)
        t0, t1 = float(problem.t_eval[0]), float(problem.t_eval[-1])

        @jax.jit
        def solve(y0, p, rtol, atol):
            return diffrax.diffeqsolve(
                term,
                solver,
                t0,
                t1,
                dt0=None,
                y0=y0,
                args=p,
                saveat=diffrax.SaveAt(ts=t),
                stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                max_steps=100_000,
                throw=False,
            )

        def run(rtol, atol):
            return jax.block_until_ready(solve(y0, p, rtol, atol))

        def extract(sol):
            ok = bool(sol.result == diffrax.RESULTS.successful)
            return np.asarray(sol.ys, dtype=float), ok, "success" if ok else str(sol.result)

        def stats(sol, rtol, atol):
            return {
                "n_steps": int(sol.stats["num_accepted_steps"]),
                "n_rejected": int(sol.stats["num_rejected_steps"]),
                "n_rhs": None,  # diffrax does not count right-hand-side evaluations
                "n_jac": None,
            }

        return Prepared(run, extract, stats)

    return Method(
        key=f"diffrax:{solver_name}",
        label=f"diffrax {solver_name} (jit, CPU)",
        family="diffrax",
        explicit=solver_name in ("Tsit5", "Dopri5", "Dopri8"),
        available=_diffrax_available,
        prepare=prepare,
    )


CARTKIN_METHODS = ("tsit5", "dopri5", "rodas5", "rodas4", "auto")


def all_methods() -> list[Method]:
    """Every method the benchmark knows, in table order."""
    methods = [_cartkin_method(m) for m in CARTKIN_METHODS]
    methods += [
        _scipy_ivp("LSODA"),
        _scipy_ivp("BDF"),
        _scipy_ivp("Radau"),
        _scipy_ivp("RK45"),
        _scipy_odeint(),
        _scipy_ivp("LSODA", numba_rhs=True),
        _scipy_odeint(numba_rhs=True),
        _numbalsoda("lsoda"),
        _numbalsoda("dop853"),
        _diffrax("Tsit5"),
        _diffrax("Kvaerno5"),
    ]
    return methods
