"""Sweep throughput of the batch engine (cartkin.batch) on sle_cart (v2; ``--model v1``: sle_cart_v1), with peers.

What one run measures (all on this machine, same process, same virtual patients):

1. First compile (or cache load) of the metrics kernel, apart from the timings. v2 is the
   registered ``sle_cart`` with its analytic Jacobian (``cartkin.models.get("sle_cart").jac``); its finite-difference
   variant is the same model with ``jac=None``. v1 takes ``observe_roles`` and the Jacobian from
   ``sle_cart_extras.py`` (compiled in memory every run).
2. A metric-error-vs-rtol curve: in-kernel metrics at rtol 1e-3..1e-6 (methods rodas5 with the
   finite-difference or the analytic Jacobian, auto, tsit5) against rodas5 at rtol 1e-10, on a
   subset; the sweep tolerance is the loosest rtol whose worst relative metric error is below
   ``--metric-rtol`` (default 1e-3: metrics are reported to 3 significant digits).
3. Patients/s of ``cartkin.batch.metrics`` at that tolerance for each population size, on 1 and
   2 threads, in chunks of ``--chunk`` patients (what a sweep does: memory does not grow with the
   number of patients), and the peak traced memory of one call.
4. Peers on subsets, extrapolated per patient: a ``cartkin.simulate_context`` +
   ``cartkin.metrics.compute`` loop (what a modeler writes today), a ``scipy.integrate.solve_ivp``
   LSODA loop on the same equations (rhs as plain Python, outputs on a daily grid, no metrics),
   and a plain numba Dormand-Prince ``prange`` loop tracking the CAR-T peak (no outputs).

Virtual patients: ``--unique`` patients (weight 40-100 kg, eGFR 5-120, dose 3e5 or 1e6 cells/kg,
Langenhorst or Varela clearance, Erlangen lymphodepletion) individualized through the model's
individualize (timed apart, per patient), then tiled to the population size with log-normal
between-patient variability on ``rho`` (omega^2 0.3) and ``delta_E`` (0.9) applied to the kernel
vector (both are table entries that no derived kernel entry depends on).

Usage::

    python benchmarks/bench_sweep.py --quick     # about 3 minutes: 2e3 and 1e4 patients
    python benchmarks/bench_sweep.py             # 1e4 and 1e5 patients (1e6: --sizes 1e6)
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numba
import numpy as np

import cartkin

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from sle_cart_extras import sle_cart_with_extras  # noqa: E402

from cartkin import batch, metrics  # noqa: E402
from cartkin.covariates.patient import Patient  # noqa: E402
from cartkin.covariates.regimen import Lymphodepletion, Regimen, build_context  # noqa: E402

HORIZON_DAYS = 270.0
COMPARED = ("CMAX", "TMAX", "AUC0_28D", "TLST", "B_NADIR", "TAPLASIA", "TRECOV", "IL6_MAX")
SWEEP_METRICS = ("CMAX", "TMAX", "AUC0_28D", "APLASIA_DUR", "TRECOV", "FLU_AUC")


def population(n_unique, seed=20261129, lymphodepletion=True):
    """Contexts of ``n_unique`` virtual patients (see the module docstring); with
    ``lymphodepletion`` (v2) the Erlangen regimen of the shipped sweep (fludarabine 25 mg/m2
    days -5..-3, cyclophosphamide 1000 mg/m2 day -3)."""
    ld = Lymphodepletion(flu_mg_m2_per_day=25.0, flu_days=(-5.0, -4.0, -3.0), cy_mg_m2=1000.0,
                         cy_days=(-3.0,)) if lymphodepletion else None  # fmt: skip
    rng = np.random.default_rng(seed)
    models = ("langenhorst2019", "varela2025")
    ctxs = []
    for i in range(n_unique):
        pt = Patient(weight_kg=float(rng.uniform(40, 100)), height_cm=float(rng.uniform(150, 190)),
                     age_years=float(rng.uniform(18, 70)), sex=("female", "male")[i % 2],
                     egfr_ml_min_173m2=float(rng.uniform(5, 120)))  # fmt: skip
        cart = {"cells_per_kg": float(rng.choice([3e5, 1e6]))}
        reg = Regimen(cart=cart, lymphodepletion=ld) if ld else Regimen(cart=cart)
        ctxs.append(build_context(pt, reg, models[i % 2]))
    return ctxs


def tiled(model, inds, n, seed=1):
    """``n`` patients: the unique ones repeated, with log-normal variability on rho, delta_E."""
    rng = np.random.default_rng(seed)
    out = inds.take(np.arange(n) % inds.n)
    p = out.p.copy()
    for name, omega2 in (("rho", 0.3), ("delta_E", 0.9)):
        k = model.kernel_names.index(name)
        par = model.parameters[name]
        p[:, k] = np.clip(
            p[:, k] * np.exp(rng.normal(0.0, math.sqrt(omega2), n)), par.lower, par.upper
        )
    return batch.BatchIndividuals(p=p, y0=out.y0, t0=out.t0, t_stops=out.t_stops, jumps=out.jumps,
                                  n_stops=out.n_stops)  # fmt: skip


def run_metrics(model, inds, chunk, **kw):
    """Metrics of every patient in chunks (constant memory); returns (dict, seconds)."""
    out = {}
    t0 = time.perf_counter()
    for lo in range(0, inds.n, chunk):
        part = batch.metrics(model, inds.take(np.arange(lo, min(inds.n, lo + chunk))), **kw)
        for k, v in part.items():
            out.setdefault(k, []).append(v)
    seconds = time.perf_counter() - t0
    return {k: np.concatenate(v) for k, v in out.items()}, seconds


def relative_errors(got, ref):
    errs = {}
    for name in COMPARED:
        a, b = got[name], ref[name]
        both = np.isfinite(a) & np.isfinite(b)
        mismatch = int(np.count_nonzero(np.isfinite(a) != np.isfinite(b)))
        rel = np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-12)
        errs[name] = {"max": float(rel.max()) if rel.size else 0.0, "nan_mismatch": mismatch}
    return errs


# ---------------------------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------------------------
def peer_simulate(ctxs, method, rtol, atol, name="sle_cart"):
    """cartkin.simulate + metrics.compute per patient (the modeler's loop today; registered
    sle_cart, cached kernel, one untimed warm-up call)."""
    t = np.linspace(0.0, HORIZON_DAYS, 271)

    def one(ctx):
        res = cartkin.simulate(name, ctx.patient, ctx.regimen, t, clearance_model=ctx.clearance_model,
                               method=method, rtol=rtol, atol=atol)  # fmt: skip
        metrics.compute(res)

    one(ctxs[0])
    t0 = time.perf_counter()
    for ctx in ctxs:
        one(ctx)
    return (time.perf_counter() - t0) / len(ctxs)


def peer_solve_ivp(model, inds, rtol, atol):
    """scipy LSODA per patient on the same equations (Python rhs), daily outputs, no metrics."""
    from scipy.integrate import solve_ivp

    f = model.rhs.py_func
    t_out = np.linspace(0.0, HORIZON_DAYS, 271)
    t0 = time.perf_counter()
    for i in range(inds.n):
        ind = inds.individual(i)
        dydt = np.empty(model.n_states)

        def fun(t, y, p=ind.p, dydt=dydt):
            f(t, y, p, dydt)
            return dydt.copy()

        y = ind.y0.copy()
        start = float(ind.t0)
        inner = {float(s) for s in ind.t_stops if start < s < HORIZON_DAYS}
        edges = [start, *sorted(inner), HORIZON_DAYS]
        for s, jump in zip(ind.t_stops, ind.jumps, strict=True):
            if s == start:
                y = y + jump
        for a, b in itertools.pairwise(edges):
            sel = t_out[(t_out >= a) & (t_out <= b)]
            sol = solve_ivp(fun, (a, b), y, method="LSODA", t_eval=np.union1d(sel, [b]),
                            rtol=rtol, atol=atol)  # fmt: skip
            y = sol.y[:, -1] + sum(j for s, j in zip(ind.t_stops, ind.jumps, strict=True) if s == b)
    return (time.perf_counter() - t0) / inds.n


def make_plain_prange(rhs, i_ce, i_cm):
    """The simplest compiled baseline: Dormand-Prince 5(4) with a basic step controller in a
    numba prange loop over patients (from each patient's ``t0``), tracking the CAR-T peak
    (states ``i_ce + i_cm``), no outputs."""
    a = np.array([[0, 0, 0, 0, 0, 0], [1 / 5, 0, 0, 0, 0, 0], [3 / 40, 9 / 40, 0, 0, 0, 0],
                  [44 / 45, -56 / 15, 32 / 9, 0, 0, 0],
                  [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0],
                  [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0]])  # fmt: skip
    c = np.array([0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
    b = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
    e = b - np.array([5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100])
    e7 = -1.0 / 40.0

    @numba.njit(parallel=True)
    def run(Y0, T0, P, TS, JU, NS, t_end, rtol, atol):
        n_pat, n = Y0.shape
        peak = np.zeros(n_pat)
        steps = np.zeros(n_pat, np.int64)
        for i in numba.prange(n_pat):
            y = Y0[i].copy()
            k = np.zeros((6, n))
            k7 = np.empty(n)
            yt = np.empty(n)
            yn = np.empty(n)
            t = T0[i]
            ks = 0
            h = 1e-3
            while t < t_end and steps[i] < 200000:
                while ks < NS[i] and TS[i, ks] <= t:
                    y += JU[i, ks]
                    ks += 1
                seg = TS[i, ks] if ks < NS[i] else t_end
                h = min(h, seg - t)
                for s in range(6):
                    for j in range(n):
                        acc = y[j]
                        for r in range(s):
                            acc += h * a[s, r] * k[r, j]
                        yt[j] = acc
                    rhs(t + c[s] * h, yt, P[i], k[s])
                for j in range(n):
                    acc = y[j]
                    for s in range(6):
                        acc += h * b[s] * k[s, j]
                    yn[j] = acc
                rhs(t + h, yn, P[i], k7)  # the 7th (FSAL) stage enters the error estimate
                err = 0.0
                for j in range(n):
                    er = h * e7 * k7[j]
                    for s in range(6):
                        er += h * e[s] * k[s, j]
                    sc = atol + rtol * max(abs(y[j]), abs(yn[j]))
                    err += (er / sc) ** 2
                err = math.sqrt(err / n)
                if err <= 1.0:
                    t += h
                    y[:] = yn
                    steps[i] += 1
                    peak[i] = max(peak[i], y[i_ce] + y[i_cm])
                fac = 0.9 * err**-0.2 if err > 0 else 5.0
                h *= min(5.0, max(0.2, fac))
        return peak, steps

    return run


# ---------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and subsets (smoke run)")
    ap.add_argument("--model", choices=("v2", "v1"), default="v2", help="sle_cart version")
    ap.add_argument("--sizes", default=None, help="comma-separated population sizes")
    ap.add_argument("--unique", type=int, default=None, help="distinct individualized patients")
    ap.add_argument("--chunk", type=int, default=10_000, help="patients per kernel call")
    ap.add_argument("--metric-rtol", type=float, default=1e-3, help="accepted metric error")
    ap.add_argument("--out", default=str(HERE / "results"), help="output folder")
    args = ap.parse_args(argv)
    sizes = [
        int(float(s)) for s in (args.sizes or ("2e3,1e4" if args.quick else "1e4,1e5")).split(",")
    ]
    n_unique = args.unique or (64 if args.quick else 256)
    n_sub = 8 if args.quick else 24
    threads_max = numba.config.NUMBA_NUM_THREADS
    report = {"machine": {"python": platform.python_version(), "numba": numba.__version__,
                          "numpy": np.__version__, "cpus": threads_max,
                          "platform": platform.platform()},
              "quick": args.quick, "horizon_days": HORIZON_DAYS, "model": args.model}  # fmt: skip

    print(f"population: {n_unique} unique patients -> sizes {sizes}")
    t0 = time.perf_counter()
    ctxs = population(n_unique, lymphodepletion=args.model == "v2")
    t_ctx = (time.perf_counter() - t0) / n_unique
    if args.model == "v1":
        name = "sle_cart_v1"
        model = sle_cart_with_extras(with_jac=False)
        model_jac = sle_cart_with_extras(with_jac=True)
    else:
        name = "sle_cart"
        model_jac = cartkin.models.get("sle_cart")
        model = copy.copy(model_jac)
        model.jac = None
    bctx = batch.BatchContext.from_contexts(ctxs)
    t0 = time.perf_counter()
    inds = batch.individualize(model, None, bctx)
    t_ind = (time.perf_counter() - t0) / n_unique
    report["per_patient_python_us"] = {
        "build_context": 1e6 * t_ctx,
        "individualize": 1e6 * t_ind,
    }
    print(
        f"  build_context {1e6 * t_ctx:.0f} us/patient, individualize {1e6 * t_ind:.0f} us/patient"
    )

    compile_s = {}
    for label, m in (("fd", model), ("jac", model_jac)):
        t0 = time.perf_counter()
        batch.metrics(m, inds.take([0]), t_end_days=HORIZON_DAYS)
        compile_s[label] = time.perf_counter() - t0
    report["first_compile_s"] = compile_s
    print(f"  first compile or cache load: {compile_s}")

    # -- metric error vs rtol
    sub = tiled(model, inds, 32 if args.quick else 128)
    ref, _ = run_metrics(model, sub, args.chunk, t_end_days=HORIZON_DAYS, method="rodas5",
                         rtol=1e-10, atol=1e-12)  # fmt: skip
    curve = []
    for label, m, method in (("rodas5", model, "rodas5"), ("rodas5+jac", model_jac, "rodas5"),
                             ("auto", model, "auto"), ("tsit5", model, "tsit5")):  # fmt: skip
        for rtol in (1e-3, 3e-4, 1e-4, 1e-5, 1e-6):
            got, sec = run_metrics(m, sub, args.chunk, t_end_days=HORIZON_DAYS, method=method,
                                   rtol=rtol, atol=rtol * 1e-3, threads=1)  # fmt: skip
            errs = relative_errors(got, ref)
            worst = max(e["max"] for e in errs.values())
            mism = sum(e["nan_mismatch"] for e in errs.values())
            fails = int(np.count_nonzero(got["status"]))
            curve.append({"method": label, "rtol": rtol, "worst_rel_error": worst, "nan_mismatch": mism,
                          "failed": fails, "patients_per_s_1thread": sub.n / sec, "errors": errs})  # fmt: skip
            print(f"  {label:<11} rtol {rtol:.0e}: worst metric error {worst:.2e} (NaN mismatches {mism}, "
                  f"failed {fails}), {sub.n / sec:.0f} patients/s on 1 thread")  # fmt: skip
    report["error_vs_rtol"] = curve
    ok = [
        c
        for c in curve
        if c["worst_rel_error"] <= args.metric_rtol and c["nan_mismatch"] == 0 and not c["failed"]
    ]
    best = max(ok, key=lambda c: c["patients_per_s_1thread"]) if ok else curve[-1]
    method = "rodas5" if best["method"].startswith("rodas5") else best["method"]
    m_best = model_jac if best["method"] == "rodas5+jac" else model
    rtol = best["rtol"]
    report["sweep_setting"] = {"method": best["method"], "rtol": rtol, "atol": rtol * 1e-3,
                               "worst_rel_error": best["worst_rel_error"]}  # fmt: skip
    print(
        f"  sweep setting: {best['method']} rtol {rtol:g} (worst metric error {best['worst_rel_error']:.1e})"
    )

    # -- throughput
    rows = []
    for n in sizes:
        pop = tiled(model, inds, n)
        for threads in sorted({1, min(2, threads_max)}):
            tracemalloc.start()
            _, sec = run_metrics(m_best, pop, args.chunk, names=SWEEP_METRICS[:-1],
                                 t_end_days=HORIZON_DAYS, method=method, rtol=rtol, atol=rtol * 1e-3,
                                 threads=threads)  # fmt: skip
            peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            rows.append({"n": n, "threads": threads, "seconds": sec, "patients_per_s": n / sec,
                         "peak_traced_mb": peak_mb})  # fmt: skip
            print(f"  n={n:>8} threads={threads}: {sec:7.2f} s, {n / sec:9.0f} patients/s, "
                  f"peak traced memory {peak_mb:.1f} MB")  # fmt: skip
    report["throughput"] = rows
    engine = max(r["patients_per_s"] for r in rows if r["n"] == sizes[-1])

    # -- peers (subsets, per patient, extrapolated)
    peers = {}
    some = ctxs[:n_sub]
    peers["cartkin.simulate + metrics.compute (defaults: rodas5, rtol 1e-8)"] = peer_simulate(
        some[: max(4, n_sub // 3)], "rodas5", 1e-8, 1e-10, name
    )
    peers[f"cartkin.simulate + metrics.compute ({method}, rtol {rtol:g})"] = peer_simulate(
        some[: max(4, n_sub // 3)], method, rtol, rtol * 1e-3, name
    )
    peers["scipy solve_ivp LSODA loop (rtol 1e-6, daily outputs, no metrics)"] = peer_solve_ivp(
        model, tiled(model, inds, n_sub // 2), 1e-6, 1e-9
    )
    i_ce, i_cm = (model.state_symbols.index(s) for s in ("C_E", "C_M"))
    plain = make_plain_prange(model.rhs, i_ce, i_cm)
    pop = tiled(model, inds, 2000 if args.quick else 20000)
    plain(
        pop.y0[:2],
        pop.t0[:2],
        pop.p[:2],
        pop.t_stops[:2],
        pop.jumps[:2],
        pop.n_stops[:2],
        HORIZON_DAYS,
        1e-6,
        1e-9,
    )
    best_plain = math.inf
    for threads in sorted({1, min(2, threads_max)}):
        numba.set_num_threads(threads)
        t0 = time.perf_counter()
        _, steps = plain(
            pop.y0, pop.t0, pop.p, pop.t_stops, pop.jumps, pop.n_stops, HORIZON_DAYS, 1e-6, 1e-9
        )
        best_plain = min(best_plain, (time.perf_counter() - t0) / pop.n)
    numba.set_num_threads(threads_max)
    peers[
        f"plain numba Dormand-Prince prange loop (rtol 1e-6, peak only; {int(steps.mean())} steps)"
    ] = best_plain
    report["peers_seconds_per_patient"] = peers
    report["engine_patients_per_s"] = engine
    print(
        f"  batch engine: {engine:.0f} patients/s ({method}, rtol {rtol:g}, all of {', '.join(SWEEP_METRICS)})"
    )
    for name, sec in peers.items():
        print(
            f"  peer {name}: {1.0 / sec:9.0f} patients/s -> engine is {engine * sec:6.1f}x faster"
        )

    out = Path(args.out) / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {out / 'sweep.json'}")
    return report


if __name__ == "__main__":
    main()
