"""Several patients per SIMD lane: a structure-of-arrays Rosenbrock stepper, measured against
the scalar one, on sle_cart at the shipped sweep setting.

The scalar reference is the tableau-driven stepper of ``bench_rosenbrock.py`` (Rodas5, the
kernel's sparse LU, one patient at a time). The lane-block stepper integrates a block of ``L``
consecutive patients (blocks defined by patient index, so the result of a patient never depends
on the chunking) in lockstep iterations with **per-lane** step sizes, acceptance and stops: the
state is stored as ``y[state, lane]``, and the Rosenbrock matrix, its sparse LU on the model's
pattern, the eight solves and the stage sums loop over the lanes innermost, where the compiler
vectorizes them. The rhs and the Jacobian stay scalar per lane (gathered and scattered). A lane
whose patient has finished idles until the block is done.

Every lane performs the same floating-point operations in the same order as the scalar
stepper, so the outputs are compared for bit equality (not only within the tolerance).

The other design the issue names, a **shared step** with per-lane error control, is measured
beside it: the lanes of a block share one time and one step size, a step is accepted only when
every lane's error is, the controller follows the worst lane, and a segment ends at the earliest
stop of any lane. It takes another step sequence, so its outputs are held to a tight solve
(rtol 1e-10) instead of to the scalar stepper's bits.

Reported: CPU time per patient of each (1 thread), the ratio to the scalar stepper, attempted
steps per patient, the lane efficiency (mean over blocks of mean/max steps), whether the outputs
are identical to the scalar stepper's, and the worst relative error of the CAR-T and B-cell
curves against the tight solve. Writes ``OUT/lanes.json``.

Usage::

    python benchmarks/bench_lanes.py [--patients 512] [--lanes 4,8]
    python benchmarks/bench_lanes.py --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_rosenbrock import (  # noqa: E402
    GRID,
    controller,
    dense_outputs,
    make_integrator,
    population,
    rodas5_tableau,
    shrink,
    worst_error,
)

from cartkin import batch  # noqa: E402


def make_lane_integrator(model, lanes, kernel=None, shared=False):
    """``run(tab, Y0, T0, P, TS, JU, NS, t_eval, rtol, atol)`` like bench_rosenbrock's
    integrator (scalar rtol, per-state atol array), ``lanes`` patients at a time."""
    kernel = kernel or batch._kernel(model)
    rhs, jac = model.rhs, model.jac
    order, lptr, lrow = kernel.SP_ORDER, kernel.SP_LPTR, kernel.SP_LROW
    uptr, ucol, mi, mj = kernel.SP_UPTR, kernel.SP_UCOL, kernel.SP_MI, kernel.SP_MJ
    gamma_kernel = float(kernel.ROS_GAMMA)
    max_mult = float(kernel.SP_MAX_MULTIPLIER)
    initial_step = kernel._initial_step  # Hairer's starting step, the kernel's own
    L = int(lanes)
    eps_t = 1.4901161193847656e-08

    @njit
    def lane_lu(M, active, bad):
        """Sparse LU of M[:, :, l] on the plan, every lane at once (reciprocal diagonal)."""
        for s in range(order.size):
            k = order[s]
            for l in range(L):
                d = M[k, k, l]
                if active[l] and (d == 0.0 or d != d or abs(d) == math.inf):
                    bad[l] = True
                M[k, k, l] = 1.0 / d
            for e in range(lptr[s], lptr[s + 1]):
                i = lrow[e]
                for l in range(L):
                    f = M[i, k, l] * M[k, k, l]
                    if active[l] and abs(f) > max_mult:
                        bad[l] = True
                    M[i, k, l] = f
                for u in range(uptr[s], uptr[s + 1]):
                    j = ucol[u]
                    for l in range(L):
                        M[i, j, l] -= M[i, k, l] * M[k, j, l]

    @njit
    def lane_solve(M, x, v):
        for s in range(order.size):
            k = order[s]
            for e in range(lptr[s], lptr[s + 1]):
                i = lrow[e]
                for l in range(L):
                    x[i, l] -= M[i, k, l] * x[k, l]
        for s in range(order.size - 1, -1, -1):
            k = order[s]
            for l in range(L):
                v[l] = x[k, l]
            for u in range(uptr[s], uptr[s + 1]):
                j = ucol[u]
                for l in range(L):
                    v[l] -= M[k, j, l] * x[j, l]
            for l in range(L):
                x[k, l] = v[l] * M[k, k, l]

    @njit(inline="always")
    def lane_work(n, s, n_dense):
        """A block's work arrays: six (n, L) lane vectors (y, ynew, u, f(u), f0, f_t), the
        stages, the matrices, the scalar Jacobian, three scalar vectors, a lane vector, the
        dense-output coefficients."""
        return (np.zeros((6, n, L)), np.zeros((s, n, L)), np.ones((n, n, L)), np.zeros((n, n)),
                np.zeros((3, n)), np.zeros(L), np.zeros((n_dense, n)))  # fmt: skip

    @njit(inline="always")
    def lane_stages(tab, y, u, fu, f0, ft, K, M, ynew, t, h_step, P, pat, active, v, g, g2):
        """The Rosenbrock stages of every lane at once (the rhs per active lane); ynew."""
        tab_a, tab_c, ct, d = tab[1], tab[2], tab[3], tab[4]
        s = tab_a.shape[0]
        n = y.shape[0]
        for st in range(s):
            for j in range(n):
                for l in range(L):
                    u[j, l] = y[j, l]
            for m in range(st):
                a = tab_a[st, m]
                for j in range(n):
                    for l in range(L):
                        u[j, l] += a * K[m, j, l]
            if st == 0:
                for j in range(n):
                    for l in range(L):
                        fu[j, l] = f0[j, l]
            else:
                for l in range(L):
                    if active[l]:
                        for j in range(n):
                            g[j] = u[j, l]
                        rhs(t[l] + ct[st] * h_step[l], g, P[pat[l]], g2)
                        for j in range(n):
                            fu[j, l] = g2[j]
            for l in range(L):
                v[l] = h_step[l] * d[st]
            for j in range(n):
                for l in range(L):
                    K[st, j, l] = fu[j, l] + v[l] * ft[j, l]
            for m in range(st):
                for l in range(L):
                    v[l] = tab_c[st, m] / h_step[l]
                for j in range(n):
                    for l in range(L):
                        K[st, j, l] += v[l] * K[m, j, l]
            lane_solve(M, K[st], v)
        for j in range(n):
            for l in range(L):
                ynew[j, l] = u[j, l] + K[s - 1, j, l]

    @njit(inline="always")
    def lane_matrix(l, t, y, f0, ft, M, h_step, gamma, p, Jt, g, g2):
        """Lane ``l``: its Jacobian, f_t (forward difference) and I/(h gamma) - J on the plan."""
        n = y.shape[0]
        for j in range(n):
            g[j] = y[j, l]
        jac(t[l], g, p, Jt)
        tp = t[l] + eps_t * max(abs(t[l]), 1.0)
        rhs(tp, g, p, g2)
        for j in range(n):
            ft[j, l] = (g2[j] - f0[j, l]) / (tp - t[l])
        hh = h_step[l] * gamma / gamma_kernel  # the scalar stepper's operations, bit for bit
        inv_hg = 1.0 / (hh * gamma_kernel)
        for e in range(mi.size):
            M[mi[e], mj[e], l] = -Jt[mi[e], mj[e]]
        for j in range(n):
            M[j, j, l] += inv_hg

    @njit(inline="always")
    def lane_error(l, y, ynew, K, rtol, atol):
        """Lane ``l``'s scaled RMS error estimate (the last stage)."""
        n = y.shape[0]
        s = K.shape[0]
        err = 0.0
        for j in range(n):
            sc = atol[j] + rtol * max(abs(y[j, l]), abs(ynew[j, l]))
            err += (K[s - 1, j, l] / sc) ** 2
        return math.sqrt(err / n)

    @njit(inline="always")
    def lane_outputs(l, i, t0, t_new, t_end, h_step, y, ynew, K, H, Dn, t_eval, io, y_out):
        """Dense output of lane ``l`` (patient ``i``) at the output times in (t0, t_new]."""
        return dense_outputs(H, K[:, :, l], y[:, l], ynew[:, l], t0, h_step, t_new, t_end, t_eval,
                             io, y_out[i], Dn)  # fmt: skip

    @njit(inline="always")
    def lane_stops(l, i, t, y, ks, io, NS, TS, JU, t_eval, y_out):
        """Lane ``l`` (patient ``i``) at a segment start ``t``: the jumps of the stops at or before
        ``t``, then the outputs at or before ``t``; returns the new (ks, io)."""
        n = y.shape[0]
        while ks < NS[i] and TS[i, ks] <= t:
            for j in range(n):
                y[j, l] += JU[i, ks, j]
            ks += 1
        while io < t_eval.size and t_eval[io] <= t:
            for j in range(n):
                y_out[i, io, j] = y[j, l]
            io += 1
        return ks, io

    @njit
    def run(tab, Y0, T0, P, TS, JU, NS, t_eval, rtol, atol):
        gamma, tab_a, H, q = tab[0], tab[1], tab[5], tab[6]
        s = tab_a.shape[0]
        n_pat, n = Y0.shape
        m_out = t_eval.size
        y_out = np.full((n_pat, m_out, n), np.nan)
        counters = np.zeros((n_pat, 4), np.int64)  # accepted, rejected, rhs, bad LU
        expo = 1.0 / q  # as the kernel and bench_rosenbrock: the error estimate is O(h^q)
        W, K, M, Jt, G, v, Dn = lane_work(n, s, H.shape[0])
        y, ynew, u, fu, f0, ft = W[0], W[1], W[2], W[3], W[4], W[5]
        g, g2, g3 = G[0], G[1], G[2]
        pat = np.zeros(L, np.int64)
        t = np.zeros(L)
        h = np.zeros(L)
        h_step = np.ones(L)
        h_acc = np.zeros(L)
        log_err_acc = np.zeros(L)
        seg_end = np.zeros(L)
        ks = np.zeros(L, np.int64)
        io = np.zeros(L, np.int64)
        rejected = np.zeros(L, np.bool_)
        start = np.ones(L, np.bool_)
        active = np.zeros(L, np.bool_)
        last = np.zeros(L, np.bool_)
        bad = np.zeros(L, np.bool_)
        for b0 in range(0, n_pat, L):
            for l in range(L):
                pat[l] = b0 + l
                active[l] = b0 + l < n_pat
                start[l] = True
                if active[l]:
                    t[l] = T0[b0 + l]
                    ks[l] = 0
                    io[l] = 0
                    for j in range(n):
                        y[j, l] = Y0[b0 + l, j]
            while True:
                # -- per lane: segment starts (stops, outputs, f0, starting step)
                for l in range(L):
                    if not (active[l] and start[l]):
                        continue
                    i = pat[l]
                    ks[l], io[l] = lane_stops(
                        l, i, t[l], y, ks[l], io[l], NS, TS, JU, t_eval, y_out
                    )
                    if t[l] >= t_eval[-1]:
                        active[l] = False
                        continue
                    seg_end[l] = TS[i, ks[l]] if ks[l] < NS[i] else t_eval[-1]
                    for j in range(n):
                        g[j] = y[j, l]
                    rhs(t[l], g, P[i], g2)
                    for j in range(n):
                        f0[j, l] = g2[j]
                    h[l] = initial_step(
                        t[l], seg_end[l], g, g2, P[i], rtol, atol, q, math.inf, g3, Dn[0]
                    )
                    counters[i, 2] += 2
                    h_acc[l] = 0.0
                    log_err_acc[l] = 0.0
                    rejected[l] = False
                    start[l] = False
                if not active.any():
                    break
                # -- per lane: Jacobian, f_t, the matrix entries, the step size
                for l in range(L):
                    if not active[l]:
                        continue
                    last[l] = t[l] + 1.01 * h[l] >= seg_end[l]
                    h_step[l] = seg_end[l] - t[l] if last[l] else h[l]
                    lane_matrix(l, t, y, f0, ft, M, h_step, gamma, P[pat[l]], Jt, g, g2)
                    counters[pat[l], 2] += 1
                    bad[l] = False
                # -- every lane at once: LU and stages
                lane_lu(M, active, bad)
                lane_stages(tab, y, u, fu, f0, ft, K, M, ynew, t, h_step, P, pat, active, v, g, g2)
                # -- per lane: error, acceptance, outputs, controller
                for l in range(L):
                    if not active[l]:
                        continue
                    i = pat[l]
                    counters[i, 2] += s - 1
                    if bad[l]:  # the scalar kernel would use its dense LU here: counted
                        counters[i, 3] += 1
                    err = lane_error(l, y, ynew, K, rtol, atol)
                    if not (err <= 1.0):
                        counters[i, 1] += 1
                        h[l] = shrink(err, h_step[l], expo)
                        rejected[l] = True
                        continue
                    counters[i, 0] += 1
                    t_new = seg_end[l] if last[l] else t[l] + h_step[l]
                    io[l] = lane_outputs(l, i, t[l], t_new, seg_end[l], h_step[l], y, ynew, K, H,
                                         Dn, t_eval, io[l], y_out)  # fmt: skip
                    for j in range(n):
                        y[j, l] = ynew[j, l]
                    t[l] = t_new
                    h_next, log_err_acc[l] = controller(err, h_step[l], h_acc[l], log_err_acc[l],
                                                        rejected[l], expo)  # fmt: skip
                    h_acc[l] = h_step[l]
                    rejected[l] = False
                    if last[l]:
                        t[l] = seg_end[l]
                        start[l] = True
                        continue
                    for j in range(n):
                        g[j] = y[j, l]
                    rhs(t[l], g, P[i], g2)
                    for j in range(n):
                        f0[j, l] = g2[j]
                    counters[i, 2] += 1
                    h[l] = h_next
        return y_out, counters

    @njit
    def run_shared(tab, Y0, T0, P, TS, JU, NS, t_eval, rtol, atol):
        """The block's lanes share one step size and one time: a step is accepted when every
        lane's error is, the controller follows the worst lane, and a segment ends at the
        earliest stop of any lane (another step sequence than the scalar stepper)."""
        gamma, tab_a, H, q = tab[0], tab[1], tab[5], tab[6]
        s = tab_a.shape[0]
        n_pat, n = Y0.shape
        y_out = np.full((n_pat, t_eval.size, n), np.nan)
        counters = np.zeros((n_pat, 4), np.int64)  # accepted, rejected, rhs, bad LU
        expo = 1.0 / q  # as the kernel and bench_rosenbrock: the error estimate is O(h^q)
        W, K, M, Jt, G, v, Dn = lane_work(n, s, H.shape[0])
        y, ynew, u, fu, f0, ft = W[0], W[1], W[2], W[3], W[4], W[5]
        g, g2, g3 = G[0], G[1], G[2]
        pat = np.zeros(L, np.int64)
        t = np.zeros(L)
        h_step = np.ones(L)
        ks = np.zeros(L, np.int64)
        io = np.zeros(L, np.int64)
        active = np.zeros(L, np.bool_)
        pending = np.zeros(L, np.bool_)  # not started yet (its patient starts later)
        bad = np.zeros(L, np.bool_)
        for b0 in range(0, n_pat, L):
            tb = math.inf
            for l in range(L):
                pat[l] = b0 + l
                active[l] = False
                pending[l] = b0 + l < n_pat
                if pending[l]:
                    ks[l] = 0
                    io[l] = 0
                    tb = min(tb, T0[b0 + l])
                    for j in range(n):
                        y[j, l] = Y0[b0 + l, j]
            while True:
                # -- segment start, every lane at the block's time tb
                seg = t_eval[-1]
                for l in range(L):
                    if pending[l] and T0[pat[l]] <= tb:
                        pending[l] = False
                        active[l] = True
                    if pending[l]:
                        seg = min(seg, T0[pat[l]])
                        continue
                    if not active[l]:
                        continue
                    i = pat[l]
                    ks[l], io[l] = lane_stops(l, i, tb, y, ks[l], io[l], NS, TS, JU, t_eval, y_out)
                    if tb >= t_eval[-1]:
                        active[l] = False
                    elif ks[l] < NS[i]:
                        seg = min(seg, TS[i, ks[l]])
                if not (active.any() or pending.any()):
                    break
                if not active.any():
                    tb = seg
                    continue
                h = math.inf
                for l in range(L):
                    if active[l]:
                        t[l] = tb
                        for j in range(n):
                            g[j] = y[j, l]
                        rhs(tb, g, P[pat[l]], g2)
                        for j in range(n):
                            f0[j, l] = g2[j]
                        h = min(
                            h,
                            initial_step(
                                tb, seg, g, g2, P[pat[l]], rtol, atol, q, math.inf, g3, Dn[0]
                            ),
                        )
                        counters[pat[l], 2] += 2
                h_acc = 0.0
                log_err_acc = 0.0
                rejected = False
                while True:
                    last = tb + 1.01 * h >= seg
                    hs = seg - tb if last else h
                    for l in range(L):
                        if active[l]:
                            h_step[l] = hs
                            lane_matrix(l, t, y, f0, ft, M, h_step, gamma, P[pat[l]], Jt, g, g2)
                            counters[pat[l], 2] += 1
                            bad[l] = False
                    lane_lu(M, active, bad)
                    lane_stages(tab, y, u, fu, f0, ft, K, M, ynew, t, h_step, P, pat, active, v, g,
                                g2)  # fmt: skip
                    err = 0.0
                    for l in range(L):
                        if active[l]:
                            counters[pat[l], 2] += s - 1
                            if bad[l]:
                                counters[pat[l], 3] += 1
                            e = lane_error(l, y, ynew, K, rtol, atol)
                            err = max(err, e) if e == e else math.inf
                    if not (err <= 1.0):
                        for l in range(L):
                            if active[l]:
                                counters[pat[l], 1] += 1
                        h = shrink(err, hs, expo)
                        rejected = True
                        continue
                    t_new = seg if last else tb + hs
                    for l in range(L):
                        if active[l]:
                            counters[pat[l], 0] += 1
                            io[l] = lane_outputs(l, pat[l], tb, t_new, seg, hs, y, ynew, K, H, Dn,
                                                 t_eval, io[l], y_out)  # fmt: skip
                            for j in range(n):
                                y[j, l] = ynew[j, l]
                            t[l] = t_new
                    tb = t_new
                    h, log_err_acc = controller(err, hs, h_acc, log_err_acc, rejected, expo)
                    h_acc = hs
                    rejected = False
                    if last:
                        break
                    for l in range(L):
                        if active[l]:
                            for j in range(n):
                                g[j] = y[j, l]
                            rhs(tb, g, P[pat[l]], g2)
                            for j in range(n):
                                f0[j, l] = g2[j]
                            counters[pat[l], 2] += 1
        return y_out, counters

    return run_shared if shared else run


def _key(lanes, shared):
    return f"{lanes} lanes, {'shared step' if shared else 'per-lane steps'}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=512)
    ap.add_argument("--lanes", default="4,8")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--quick", action="store_true", help="smoke run: 16 patients, 4 lanes")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    n = 16 if args.quick else args.patients
    lane_counts = [4] if args.quick else [int(x) for x in args.lanes.split(",")]
    if args.quick:
        args.rounds = 1
    numba.set_num_threads(1)
    from cartkin.sweep.solver import sweep_solver

    model, inds = population(n)
    setting = sweep_solver(model, None)
    atol = np.broadcast_to(setting.engine_options(model)["atol"], (model.n_states,)).copy()
    rtol = setting.rtol
    tab = rodas5_tableau()
    pop = (inds.y0, inds.t0, inds.p, inds.t_stops, inds.jumps, inds.n_stops)
    scalar = make_integrator(model)
    # the scalar stepper takes a scalar atol: give it the per-state one through the same code
    # (numba specializes on the array type)
    scalar(tab, *(a[:1] for a in pop), GRID, rtol, atol, False, 0.0)
    load0 = os.getloadavg()[0]
    print(f"sle_cart, {n} patients, Rodas5 rtol {rtol:g} with the shipped per-state atol, 1 "
          f"thread, load average {load0:.1f}")  # fmt: skip
    runs = {"scalar": lambda: scalar(tab, *pop, GRID, rtol, atol, False, 0.0)}
    variants = [(lanes, shared) for lanes in lane_counts for shared in (False, True)]
    for lanes, shared in variants:
        run = make_lane_integrator(model, lanes, shared=shared)
        run(tab, *(a[:lanes] for a in pop), GRID, rtol, atol)  # compile
        runs[_key(lanes, shared)] = lambda run=run: run(tab, *pop, GRID, rtol, atol)
    # interleaved rounds: a change in machine load hits every variant alike; medians reported
    times = {k: [] for k in runs}
    results = {}
    for _ in range(args.rounds):
        for key, fn in runs.items():
            c0 = time.process_time()
            results[key] = fn()
            times[key].append(1e6 * (time.process_time() - c0) / n)
    ref, cnt = results["scalar"]
    # accuracy of every variant against a tight solve (CAR-T and B-cell curves)
    tight = batch.solve(model, inds, GRID, method="rodas5", rtol=1e-10, atol=1e-12, threads=1).y
    base = float(np.median(times["scalar"]))
    rows = {"scalar": {"cpu_us_per_patient": base, "rounds_us": times["scalar"],
                       "steps": float((cnt[:, 0] + cnt[:, 1]).mean()),
                       "worst_rel_error": worst_error(model, ref, tight)}}  # fmt: skip
    print(f"  scalar:  {base:6.0f} us CPU/patient (median of {args.rounds} rounds: "
          f"{', '.join(f'{x:.0f}' for x in times['scalar'])}), "
          f"{rows['scalar']['steps']:.1f} steps, worst error {rows['scalar']['worst_rel_error']:.1e}")  # fmt: skip
    for lanes, shared in variants:
        key = _key(lanes, shared)
        got, cnt_l = results[key]
        cpu = float(np.median(times[key]))
        steps = (cnt_l[:, 0] + cnt_l[:, 1]).astype(float)
        blocks = [steps[b : b + lanes] for b in range(0, n, lanes)]
        eff = float(np.mean([blk.mean() / blk.max() for blk in blocks]))
        same = bool(np.array_equal(got, ref, equal_nan=True))
        diff = float(np.nanmax(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)))
        worst = worst_error(model, got, tight)
        rows[key] = {"cpu_us_per_patient": cpu, "rounds_us": times[key], "speedup": base / cpu,
                     "steps": float(steps.mean()), "lane_efficiency": eff, "bit_identical": same,
                     "max_rel_diff": diff, "worst_rel_error": worst,
                     "bad_lu_lanes": int(cnt_l[:, 3].sum())}  # fmt: skip
        print(f"  {key}: {cpu:6.0f} us CPU/patient ({', '.join(f'{x:.0f}' for x in times[key])}; "
              f"{base / cpu:.2f}x the scalar stepper), {steps.mean():.1f} steps, lane efficiency "
              f"{eff:.2f}, outputs bit-identical: {same} (max rel diff {diff:.1e}), worst error "
              f"{worst:.1e}, lanes needing the dense LU: {int(cnt_l[:, 3].sum())}")  # fmt: skip
    out = args.out / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    (out / "lanes.json").write_text(json.dumps({"patients": n, "rtol": rtol, "rows": rows,
                                                "load_average": [load0, os.getloadavg()[0]]},
                                               indent=1) + "\n")  # fmt: skip
    print(f"wrote {out / 'lanes.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
