"""Work-precision of Rosenbrock methods on sle_cart at sweep accuracy: Rodas5 vs Rodas4 and
Rodas5P, and what restarting the step size at every stop costs.

One tableau-driven stepper (:func:`make_integrator`) runs every variant, so the comparison is
between methods, not between implementations. It reuses the compiled kernel's own Rosenbrock
matrix and sparse LU (``_ros_matrix`` with the step rescaled to the method's gamma, and
``_ros_solve``), the model's analytic Jacobian, the kernel's finite-difference ``f_t``, error
norm and Gustafsson step controller (exponent ``1/q`` for a method of order q, whose embedded
solution has order q - 1: 0.2 for the Rodas5 pair as in the kernel, 0.25 for Rodas4 as in
Hairer's RODAS), and
Hairer's starting step at every stop, as the kernel does. Variants:

- ``rodas5``: Di Marzo's Rodas5 (the kernel's own tableau, ``ROS_*``);
- ``rodas4``: Hairer-Wanner Rodas4 (``cartkin.kernel.rodas4``);
- ``rodas5p``: Steinebach's Rodas5P (``cartkin.kernel.rodas5p``);
- ``... keep-h``: the same, but after a stop the step size continues from the last accepted
  step (capped by the segment) instead of Hairer's starting step.

Accuracy: the CAR-T total (C_E + C_M) and the B cells on a 0.25-day grid from day 0 to 270, the
worst relative error over patients and grid points where the reference is above 1e-3 of that
patient's peak (a proxy for the in-kernel metrics: CMAX, the B-cell nadir and the crossing days
are read off these curves). Reference: the kernel's rodas5 at rtol 1e-10 (``cartkin.batch.solve``).
Cost: accepted and rejected steps per patient, rhs calls, and the process CPU time per patient
on 1 thread (the machine may be shared: compare variants within one run).

Writes ``OUT/rosenbrock_wp.json`` and ``OUT/rosenbrock_wp.png``.

Usage::

    python benchmarks/bench_rosenbrock.py [--patients 200] [--out benchmarks/results]
    python benchmarks/bench_rosenbrock.py --quick
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

from cartkin import batch, models  # noqa: E402
from cartkin.kernel.rodas4 import ROD4_A, ROD4_C, ROD4_CT, ROD4_D, ROD4_GAMMA, ROD4_H  # noqa: E402
from cartkin.kernel.rodas5p import (  # noqa: E402
    ROD5P_A,
    ROD5P_C,
    ROD5P_CT,
    ROD5P_D,
    ROD5P_GAMMA,
    ROD5P_H,
)

HORIZON = 270.0
GRID = np.arange(0.0, HORIZON + 1e-9, 0.25)


def rodas5_tableau():
    """The kernel's Rodas5 tableau (module globals ``ROS_*`` of the compiled sle_cart kernel)."""
    k = batch._kernel(models.get("sle_cart"))
    return (float(k.ROS_GAMMA), k.ROS_A, k.ROS_C, k.ROS_CT, k.ROS_D, k.ROS_H, 5)


def rodas4_tableau():
    return (ROD4_GAMMA, ROD4_A, ROD4_C, ROD4_CT, ROD4_D, ROD4_H, 4)


def rodas5p_tableau():
    """Steinebach's Rodas5P (``cartkin.kernel.rodas5p``): Rodas5's structure, new coefficients."""
    return (ROD5P_GAMMA, ROD5P_A, ROD5P_C, ROD5P_CT, ROD5P_D, ROD5P_H, 5)


@njit
def shrink(err, h_step, expo):
    """The step after a rejected one, as the kernel (a non-finite error: a quarter)."""
    if err != err or err == math.inf:
        return h_step * 0.25
    return h_step * max(0.2, 0.9 * math.exp(-expo * math.log(err)))


@njit
def controller(err, h_step, h_acc, log_err_acc, rejected, expo):
    """Gustafsson's predictive controller, as the kernel: (next step, log error to keep)."""
    log_err = math.log(max(err, 1e-10))
    log_fac = -expo * log_err
    if h_acc > 0.0:
        log_fac = min(log_fac, math.log(h_step / h_acc) + expo * (log_err_acc - 2.0 * log_err))
    fac = max(0.2, min(6.0, 0.9 * math.exp(log_fac)))
    if rejected:
        fac = min(fac, 1.0)
    return h_step * fac, max(log_err, math.log(1e-2))


@njit
def dense_outputs(H, K, y, ynew, t0, h_step, t_new, t_end, t_eval, io, y_row, Dn):
    """Dense output of one accepted step (t0 -> t_new, size h_step; stage rows ``K[m]``) at
    the output times in (t0, t_new] before the segment end ``t_end`` into ``y_row[io:]``;
    returns the next output index. ``Dn`` is work space (H rows x n). Shared with
    bench_lanes.py, whose lanes pass their column views, so both steppers interpolate alike."""
    n = y.shape[0]
    s = K.shape[0]
    m_out = t_eval.size
    if io < m_out and t_eval[io] < t_new:
        for r in range(H.shape[0]):
            for j in range(n):
                acc = 0.0
                for m in range(s):
                    acc += H[r, m] * K[m, j]
                Dn[r, j] = acc
    while io < m_out and t_eval[io] <= t_new and t_eval[io] < t_end:
        th = (t_eval[io] - t0) / h_step
        th1 = 1.0 - th
        for j in range(n):
            inner = 0.0
            for r in range(H.shape[0] - 1, -1, -1):
                inner = Dn[r, j] + th * inner
            y_row[io, j] = th1 * y[j] + th * (ynew[j] + th1 * inner)
        io += 1
    return io


def make_integrator(model, kernel=None):
    """A tableau-driven Rosenbrock integrator over patients for ``model`` (numba, 1 thread).

    ``run(tab, Y0, T0, P, TS, JU, NS, t_eval, rtol, atol, keep_h, fixed_h)`` (``atol`` one per
    state) returns
    ``(y_out (n_pat, m, n), counters (n_pat, 3): accepted, rejected, rhs)``. With ``fixed_h > 0``
    the steps have that size (no error control; for convergence-order tests). ``kernel``: the
    compiled module whose ``_ros_matrix``/``_ros_solve`` factor and solve (default: the model's
    batch kernel; it provides the sparse LU of the model's pattern).
    """
    kernel = kernel or batch._kernel(model)
    rhs, jac = model.rhs, model.jac
    ros_matrix, ros_solve = kernel._ros_matrix, kernel._ros_solve
    gamma_kernel = float(kernel.ROS_GAMMA)
    has_jac = jac is not None
    if not has_jac:
        raise ValueError("make_integrator needs a model with an analytic Jacobian")
    eps_t = 1.4901161193847656e-08

    initial_step = kernel._initial_step  # Hairer's starting step, the kernel's own

    @njit
    def step(tab_a, tab_c, ct, d, gamma, t, h, y, p, f0, ft, J, M, piv, K, u, fu, ynew):
        s = tab_a.shape[0]
        n = y.size
        code, sparse = ros_matrix(h * gamma / gamma_kernel, J, M, piv)
        if code != 0:
            return code
        for i in range(s):
            for j in range(n):
                acc = y[j]
                for m in range(i):
                    acc += tab_a[i, m] * K[m, j]
                u[j] = acc
            if i == 0:
                for j in range(n):
                    fu[j] = f0[j]
            else:
                rhs(t + ct[i] * h, u, p, fu)
            for j in range(n):
                acc = fu[j] + h * d[i] * ft[j]
                for m in range(i):
                    acc += tab_c[i, m] / h * K[m, j]
                K[i, j] = acc
            ros_solve(M, piv, K[i], sparse)
        for j in range(n):
            ynew[j] = u[j] + K[s - 1, j]  # stiffly accurate: last stage argument + last stage
        return 0

    @njit
    def run(tab, Y0, T0, P, TS, JU, NS, t_eval, rtol, atol, keep_h, fixed_h):
        gamma, tab_a, tab_c, ct, d, H, q = tab
        s = tab_a.shape[0]
        n_pat, n = Y0.shape
        m_out = t_eval.size
        y_out = np.full((n_pat, m_out, n), np.nan)
        counters = np.zeros((n_pat, 3), np.int64)
        K = np.zeros((s, n))
        u = np.zeros(n)
        fu = np.zeros(n)
        ynew = np.zeros(n)
        f0 = np.zeros(n)
        ft = np.zeros(n)
        J = np.zeros((n, n))
        M = np.zeros((n, n))
        piv = np.zeros(n, np.int64)
        Dn = np.zeros((H.shape[0], n))
        expo = 1.0 / q  # the local error estimate is O(h^q)
        for i in range(n_pat):
            y = Y0[i].copy()
            p = P[i]
            t = T0[i]
            ks = 0
            io = 0
            h_carry = 0.0
            while True:
                while ks < NS[i] and TS[i, ks] <= t:
                    y += JU[i, ks]
                    ks += 1
                while io < m_out and t_eval[io] <= t:
                    y_out[i, io] = y
                    io += 1
                if t >= t_eval[-1]:
                    break
                seg_end = TS[i, ks] if ks < NS[i] else t_eval[-1]
                rhs(t, y, p, f0)
                counters[i, 2] += 1
                if fixed_h > 0.0:
                    h = fixed_h
                elif keep_h and h_carry > 0.0:
                    h = h_carry
                else:
                    h = initial_step(t, seg_end, y, f0, p, rtol, atol, q, math.inf, u, fu)
                    counters[i, 2] += 1
                h_acc = 0.0
                log_err_acc = 0.0
                rejected = False
                while True:
                    jac(t, y, p, J)
                    tp = t + eps_t * max(abs(t), 1.0)
                    rhs(tp, y, p, fu)
                    for j in range(n):
                        ft[j] = (fu[j] - f0[j]) / (tp - t)
                    counters[i, 2] += 1
                    last = t + 1.01 * h >= seg_end
                    h_step = seg_end - t if last else h
                    t_new = seg_end if last else t + h_step
                    code = step(tab_a, tab_c, ct, d, gamma, t, h_step, y, p, f0, ft, J, M, piv,
                                K, u, fu, ynew)  # fmt: skip
                    counters[i, 2] += s - 1
                    if code != 0:
                        h *= 0.25
                        counters[i, 1] += 1
                        continue
                    err = 0.0
                    if fixed_h <= 0.0:
                        for j in range(n):
                            sc = atol[j] + rtol * max(abs(y[j]), abs(ynew[j]))
                            err += (K[s - 1, j] / sc) ** 2
                        err = math.sqrt(err / n)
                        if not (err <= 1.0):
                            counters[i, 1] += 1
                            h = shrink(err, h_step, expo)
                            rejected = True
                            continue
                    counters[i, 0] += 1
                    io = dense_outputs(H, K, y, ynew, t, h_step, t_new, seg_end, t_eval, io,
                                       y_out[i], Dn)  # fmt: skip
                    y[:] = ynew
                    t = t_new
                    if fixed_h > 0.0:
                        h_next = fixed_h
                    else:
                        h_next, log_err_acc = controller(err, h_step, h_acc, log_err_acc,
                                                         rejected, expo)  # fmt: skip
                        h_acc = h_step
                        rejected = False
                    if last:
                        h_carry = h_next if h_step >= h else h  # a truncated last step: keep h
                        break
                    rhs(t, y, p, f0)
                    counters[i, 2] += 1
                    h = h_next
                t = seg_end
        return y_out, counters

    return run


def population(n):
    """``n`` of bench_sweep.py's virtual patients (64 unique ones tiled, variability on rho and
    delta_E)."""
    from bench_sweep import population as ctxs_of
    from bench_sweep import tiled

    model = models.get("sle_cart")
    inds = batch.individualize(model, None, batch.BatchContext.from_contexts(ctxs_of(min(64, n))))
    return model, tiled(model, inds, n)


def curves(model, y_out):
    """(CAR-T total, B cells) of y_out (n_pat, m, n_states)."""
    sym = model.state_symbols
    return y_out[..., sym.index("C_E")] + y_out[..., sym.index("C_M")], y_out[..., sym.index("B")]


def worst_error(model, got, ref):
    worst = 0.0
    for a, b in zip(curves(model, got), curves(model, ref), strict=True):
        floor = 1e-3 * np.max(np.abs(b), axis=1, keepdims=True)
        mask = np.abs(b) > floor
        rel = np.abs(a - b) / np.where(mask, np.abs(b), 1.0)
        if not np.all(np.isfinite(a[mask])):
            return math.inf
        worst = max(worst, float(np.max(np.where(mask, rel, 0.0))))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="smoke run: 8 patients, 3 tolerances")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    n = 8 if args.quick else args.patients
    rtols = (1e-3, 1e-4, 1e-5) if args.quick else (3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6)
    numba.set_num_threads(1)
    model, inds = population(n)
    ref = batch.solve(model, inds, GRID, method="rodas5", rtol=1e-10, atol=1e-12, threads=1).y
    run = make_integrator(model)
    tabs = {"rodas5": rodas5_tableau(), "rodas5p": rodas5p_tableau(), "rodas4": rodas4_tableau()}
    args_pop = (inds.y0, inds.t0, inds.p, inds.t_stops, inds.jumps, inds.n_stops, GRID)
    for tab in tabs.values():  # compile (one specialization per tableau shape)
        run(tab, *(a[:1] for a in args_pop[:-1]), GRID, 1e-4, np.full(model.n_states, 1e-7),
            False, 0.0)  # fmt: skip
    load0 = os.getloadavg()[0]
    print(f"sle_cart, {n} virtual patients, 1 thread, load average {load0:.1f}")
    rows = []
    for rtol in rtols:
        for name, tab in tabs.items():
            for keep_h in (False, True):
                c0 = time.process_time()
                atol = np.full(model.n_states, rtol * 1e-3)
                y_out, cnt = run(tab, *args_pop, rtol, atol, keep_h, 0.0)
                cpu_us = 1e6 * (time.process_time() - c0) / n
                row = {"method": name + (" keep-h" if keep_h else ""), "rtol": rtol,
                       "error": worst_error(model, y_out, ref),
                       "steps": float(cnt[:, 0].mean()), "rejected": float(cnt[:, 1].mean()),
                       "rhs": float(cnt[:, 2].mean()), "cpu_us_per_patient": cpu_us}  # fmt: skip
                rows.append(row)
                print(f"  {row['method']:<13} rtol {rtol:.0e}: error {row['error']:.2e}, "
                      f"{row['steps']:6.1f} steps + {row['rejected']:4.1f} rejected, "
                      f"{row['rhs']:6.0f} rhs, {cpu_us:6.0f} us CPU/patient")  # fmt: skip
    # at metric-level accuracy: the cheapest point of each method with error <= 1e-3
    best = {}
    for row in rows:
        if row["error"] <= 1e-3:
            cur = best.get(row["method"])
            if cur is None or row["cpu_us_per_patient"] < cur["cpu_us_per_patient"]:
                best[row["method"]] = row
    print("cheapest point with error <= 1e-3:")
    for name, row in best.items():
        print(f"  {name:<13} rtol {row['rtol']:.0e}: {row['cpu_us_per_patient']:.0f} us CPU, "
              f"{row['steps']:.1f} steps, error {row['error']:.1e}")  # fmt: skip
    out = args.out / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    report = {"patients": n, "load_average": [load0, os.getloadavg()[0]], "rows": rows,
              "best_within_1e-3": best, "command": "python benchmarks/bench_rosenbrock.py "
              + " ".join(sys.argv[1:] if argv is None else argv)}  # fmt: skip
    (out / "rosenbrock_wp.json").write_text(json.dumps(report, indent=1) + "\n")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["method"] for r in rows):
        pts = [r for r in rows if r["method"] == name and math.isfinite(r["error"])]
        style = "--" if "keep-h" in name else "-"
        for k, key in enumerate(("cpu_us_per_patient", "steps")):
            ax[k].loglog([r["error"] for r in pts], [r[key] for r in pts], style, marker="o",
                         label=name)  # fmt: skip
    for k, label in enumerate(("CPU time per patient (us, 1 thread)", "accepted steps/patient")):
        ax[k].axvline(1e-3, color="grey", lw=0.8)
        ax[k].set_xlabel("worst relative error, CAR-T and B cells (0.25-day grid)")
        ax[k].set_ylabel(label)
        ax[k].legend(fontsize=8)
    fig.suptitle(f"sle_cart, {n} virtual patients: work-precision of Rosenbrock methods")
    fig.tight_layout()
    fig.savefig(out / "rosenbrock_wp.png", dpi=110)
    print(f"wrote {out / 'rosenbrock_wp.json'} and {out / 'rosenbrock_wp.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
