"""Where one sle_cart virtual patient's time goes in the batch engine (the numbers behind the
"why 100,000 patients/s is not reached" paragraph of benchmarks/README.md).

In one run, on 1 thread, for the virtual patients of ``bench_sweep.py`` at the shipped sweep
setting (``cartkin/models/solver_settings.json``: rodas5 with sle_cart's analytic Jacobian, rtol
1e-4, atol 1e-7 with per-state tolerances):

1. Steps: accepted, rejected and rhs calls per patient, and the accepted steps taken by the end
   of the lymphodepletion phase (day 0) and by a few later days (a solve to each of those days),
   at the shipped setting and with atol 1e-7 for every state (the setting before the per-state
   tolerances).
2. The same with the fludarabine states' error ignored (their atol set to 1e3): how many of the
   lymphodepletion steps the fludarabine PK's accuracy costs.
3. The cost of the pieces of one Rodas5 step, each timed in a numba loop of 100,000 calls with
   the kernel's own compiled functions on a real state (day -4.5, during lymphodepletion): the
   Jacobian pattern check, the Rosenbrock matrix (check + sparse build + factorization), one
   sparse solve, one rhs call (on states that change from call to call), the analytic Jacobian,
   and the whole step (``_ros_step``).
4. Patients/s of ``cartkin.batch.metrics`` and of ``cartkin.batch.solve`` with two outputs (the
   difference is what the in-kernel metrics cost).

Usage::

    python benchmarks/profile_step.py [--patients 2000]
    python benchmarks/profile_step.py --quick    # smoke run: 40 patients, 2,000 calls per piece
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_sweep import population, tiled  # noqa: E402

from cartkin import batch, models  # noqa: E402

RTOL, ATOL = 1e-4, 1e-7
PK_STATES = ("flu_central", "flu_peripheral_2", "flu_peripheral_3", "flu_auc")
REPS = 100_000


def _shipped_atol(model):
    """The shipped sweep setting's atol, one per state."""
    from cartkin.sweep.solver import sweep_solver

    setting = sweep_solver(model, None)
    return np.broadcast_to(setting.engine_options(model)["atol"], (model.n_states,)).copy()


def _steps(model, inds, t_end, atol):
    sol = batch.solve(model, inds, t_eval=np.array([float(inds.t0.min()), t_end]),
                      method="rodas5", rtol=RTOL, atol=atol, threads=1)  # fmt: skip
    return sol


def _timed(fn, *args):
    fn(*args, 10)
    t0 = time.perf_counter()
    fn(*args, REPS)
    return (time.perf_counter() - t0) / REPS * 1e9


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="smoke run: 40 patients, fewer calls")
    args = ap.parse_args(argv)
    global REPS
    if args.quick:
        args.patients, REPS = 40, 2000
    model = models.get("sle_cart")
    inds = tiled(model, batch.individualize(model, None, batch.BatchContext.from_contexts(
        population(min(256, args.patients)))), args.patients)  # fmt: skip
    kernel = batch._kernel(model)
    n = model.n_states

    shipped = _shipped_atol(model)
    print(f"sle_cart, {inds.n} virtual patients, rodas5 rtol {RTOL:g}, 1 thread; atol: shipped "
          f"{dict(zip(model.state_names, shipped.tolist(), strict=True))}")  # fmt: skip
    print(f"stops per patient: {inds.n_stops.mean():.1f}; first stop times (patient 0): "
          f"{np.round(inds.t_stops[0][: inds.n_stops[0]], 3).tolist()}")  # fmt: skip
    atol_pk = np.full(n, ATOL)
    atol_pk[[model.state_names.index(s) for s in PK_STATES]] = 1e3
    full = _steps(model, inds, 270.0, shipped)
    scalar = _steps(model, inds, 270.0, ATOL)
    for label, sol in (("shipped setting", full), (f"atol {ATOL:g} for every state", scalar)):
        print(f"whole solve to day 270, {label}: {sol.n_steps.mean():.1f} accepted, "
              f"{sol.n_rejected.mean():.2f} rejected, {sol.n_rhs.mean():.0f} rhs calls")  # fmt: skip
    for day in (0.0, 5.0, 30.0, 120.0):
        a = _steps(model, inds, day, shipped).n_steps.mean()
        b = _steps(model, inds, day, ATOL).n_steps.mean()
        c = _steps(model, inds, day, atol_pk).n_steps.mean()
        print(f"  accepted steps by day {day:5.0f}: {a:5.1f} shipped, {b:5.1f} atol {ATOL:g} "
              f"(fludarabine error ignored: {c:5.1f})")  # fmt: skip

    # -- the pieces of one step, on a state during lymphodepletion
    p = inds.p[0].copy()
    y = batch.solve(model, inds.take(np.arange(1)), t_eval=np.array([float(inds.t0[0]), -4.5]),
                    method="rodas5", rtol=1e-8, atol=1e-11).y[0, -1].copy()  # fmt: skip
    J = np.empty((n, n))
    model.jac(-4.5, y, p, J)
    M = np.empty((n, n))
    piv = np.empty(n, np.int64)
    f0 = np.empty(n)
    model.rhs(-4.5, y, p, f0)
    ft = np.zeros(n)
    W = np.zeros((11, n))
    states = np.abs(y)[None, :] * np.exp(np.random.default_rng(0).normal(0.0, 0.01, (64, n)))
    k = kernel

    @njit
    def t_check(J, reps):
        c = 0
        for _ in range(reps):
            c += k._sp_fits(J)
        return c

    @njit
    def t_matrix(J, M, piv, reps):
        for _ in range(reps):
            k._ros_matrix(0.1, J, M, piv)

    @njit
    def t_solve(M, x, reps):
        for _ in range(reps):
            k._sp_lu_solve(M, x)

    @njit
    def t_rhs(Y, p, f, reps):
        s = 0.0
        for r in range(reps):
            k.rhs(1.0, Y[r % Y.shape[0]], p, f)
            s += f[8]
        return s

    @njit
    def t_jac(Y, p, J, reps):
        s = 0.0
        for r in range(reps):
            k.jac(1.0, Y[r % Y.shape[0]], p, J)
            s += J[8, 8]
        return s

    @njit
    def t_step(y, p, f0, ft, J, M, piv, W, reps):
        cnt = np.zeros(k.N_COUNTERS, np.int64)
        K, u, fu, ynew = W[0:8], W[8], W[9], W[10]  # views made once, as _segment_ros does
        for _ in range(reps):
            k._ros_step(-4.5, 0.1, y, p, f0, ft, J, M, piv, K, u, fu, ynew, cnt)

    _, sparse = k._ros_matrix(0.1, J, M, piv)
    print(f"one Rodas5 step on a day -4.5 state (sparse LU used: {bool(sparse)}), ns per call:")
    print(f"  pattern check           {_timed(t_check, J):7.0f}  (per step: "
          f"{'yes' if k.SP_CHECK else 'no, the generated Jacobian is exact'})")  # fmt: skip
    print(f"  matrix (check + factor) {_timed(t_matrix, J, M, piv):7.0f}")
    print(f"  one sparse solve        {_timed(t_solve, M, np.ones(n)):7.0f}  (8 per step)")
    print(f"  one rhs call            {_timed(t_rhs, states, p, f0):7.0f}  (7 per step)")
    print(f"  analytic Jacobian       {_timed(t_jac, states, p, J):7.0f}  (1 per step)")
    print(f"  whole _ros_step         {_timed(t_step, y, p, f0, ft, J, M, piv, W):7.0f}")

    # -- engine with and without the in-kernel metrics
    opts = {"method": "rodas5", "rtol": RTOL, "atol": shipped, "threads": 1}
    batch.metrics(model, inds.take(np.arange(4)), **opts)
    c0 = time.process_time()
    batch.solve(model, inds, t_eval=np.array([float(inds.t0.min()), 270.0]), **opts)
    solve_us = (time.process_time() - c0) / inds.n * 1e6
    c0 = time.process_time()
    batch.metrics(model, inds, **opts)
    metrics_us = (time.process_time() - c0) / inds.n * 1e6
    print(f"per patient, 1 thread, CPU time: solve with 2 outputs {solve_us:.0f} us, with all in-kernel "
          f"metrics {metrics_us:.0f} us ({1e6 / metrics_us:.0f} patients/s)")  # fmt: skip
    per_step = 1e3 * metrics_us / full.n_steps.mean()
    print(f"  = {per_step:.0f} ns per accepted step; 100,000 patients/s on 2 cores needs "
          f"{2e6 / 1e5 / full.n_steps.mean() * 1e3:.0f} ns per step at this step count")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
