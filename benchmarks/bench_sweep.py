"""Sweep throughput of the batch engine (cartkin.batch) on the registered sle_cart (``--model v1``: sle_cart_v1), with peers.

What one run measures (all on this machine, same process, same virtual patients):

1. First compile (or cache load) of the metrics kernel, apart from the timings.
2. The sweep setting: the one shipped for the model (``cartkin/models/solver_settings.json``,
   what a sweep without ``[solver]`` uses), its worst relative metric error verified again in
   this run against rodas5 at rtol 1e-10 on a subset. With ``--curve``: the metric-error-vs-rtol
   curve (methods x rtol 1e-3..1e-6) is measured and the setting chosen from it: the fastest
   whose worst relative metric error is within ``--metric-rtol`` (default 3e-4: the worst error
   of the setting shipped before this curve, which sweep metrics, reported to 3 significant
   digits, must not get worse than) with no NaN mismatch and no failure, among the
   variants a sweep of the registered model runs (its analytic Jacobian when it has one; with
   the per-state tolerances of ``STATE_ATOL`` or without). "Fastest" is the fewest accepted +
   rejected steps per patient: deterministic, unlike a time on a shared machine.
   ``--write-settings`` writes it to the settings file (registered v2 only).
3. Patients/s of ``cartkin.batch.metrics`` at that setting for each population size, on 1 and
   2 threads, in chunks of ``--chunk`` patients (what a sweep does: memory does not grow with
   the number of patients), with the process CPU time per patient and the peak traced memory.
4. Peers on subsets, same process, per patient: a plain numba Dormand-Prince ``prange`` loop
   tracking the CAR-T peak (no outputs), on 1 and 2 threads, at rtol 1e-6; a
   ``cartkin.simulate_context`` + ``cartkin.metrics.compute`` loop (what a modeler writes
   without the sweep machinery), at the single-simulation default and at the sweep setting; a
   ``scipy.integrate.solve_ivp`` LSODA loop on the same equations (rhs as plain Python, daily
   outputs, no metrics). The engine/peer ratios use the same thread count where both have one.

Virtual patients: ``--unique`` patients (weight 40-100 kg, eGFR 5-120, dose 3e5 or 1e6 cells/kg,
Langenhorst or Varela clearance, Erlangen lymphodepletion) individualized through the model's
individualize (timed apart, per patient), then tiled to the population size with log-normal
between-patient variability on ``rho`` (omega^2 0.3) and ``delta_E`` (0.9) applied to the kernel
vector (both are table entries that no derived kernel entry depends on).

The machine may be shared: compare ratios measured in the same run, and the CPU time per
patient, rather than wall times across runs; the load average is recorded.

Usage::

    python benchmarks/bench_sweep.py --quick     # smoke run, seconds once the kernels are cached
    python benchmarks/bench_sweep.py             # 1e4 and 1e5 patients (1e6: --sizes 1e6)
    python benchmarks/bench_sweep.py --curve --write-settings --sizes 1e4   # re-measure the
                                                 # shipped sweep setting (after a model change)
    python benchmarks/bench_sweep.py --verify-scenario scenarios/sweep_dose_kidney.toml
                                                 # its setting's metric error over its own grid
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import os
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
from cartkin.sweep.solver import SolverSetting, sweep_solver  # noqa: E402

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


#: Log-normal between-patient variability (omega^2) applied to kernel entries that are table
#: parameters no derived entry depends on. sle_cart: rho 0.3, delta_E 0.9 (benchmark choices);
#: stein2019: alpha 0.91, beta 0.86, the omega^2 of the stein2019 test sweep
#: (tests/test_sweep_engine.py; Stein 2019; foldx is left out: the derived rho depends on it).
#: Other models: the sle_cart entries they have.
VARIABILITY = {"stein2019": (("alpha", 0.91), ("beta", 0.86))}


def tiled(model, inds, n, seed=1):
    """``n`` patients: the unique ones repeated, with log-normal variability (VARIABILITY)."""
    rng = np.random.default_rng(seed)
    out = inds.take(np.arange(n) % inds.n)
    p = out.p.copy()
    table = {par.name for par in model.parameters}
    for name, omega2 in VARIABILITY.get(model.name, (("rho", 0.3), ("delta_E", 0.9))):
        if name not in model.kernel_names or name not in table:  # another model: not varied
            continue
        k = model.kernel_names.index(name)
        par = model.parameters[name]
        p[:, k] = np.clip(
            p[:, k] * np.exp(rng.normal(0.0, math.sqrt(omega2), n)), par.lower, par.upper
        )
    return batch.BatchIndividuals(p=p, y0=out.y0, t0=out.t0, t_stops=out.t_stops, jumps=out.jumps,
                                  n_stops=out.n_stops)  # fmt: skip


def run_metrics(model, inds, chunk, cpu=False, **kw):
    """Metrics of every patient in chunks (constant memory); returns (dict, wall seconds), or
    (dict, wall seconds, process CPU seconds) with ``cpu``."""
    out = {}
    c0, t0 = time.process_time(), time.perf_counter()
    for lo in range(0, inds.n, chunk):
        part = batch.metrics(model, inds.take(np.arange(lo, min(inds.n, lo + chunk))), **kw)
        for k, v in part.items():
            out.setdefault(k, []).append(v)
    seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    res = {k: np.concatenate(v) for k, v in out.items()}
    return (res, seconds, cpu_s) if cpu else (res, seconds)


def compared(ref):
    """The metrics of COMPARED that the model has."""
    return [name for name in COMPARED if name in ref]


def relative_errors(got, ref):
    errs = {}
    for name in compared(ref):
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
    c0, t0 = time.process_time(), time.perf_counter()
    for ctx in ctxs:
        one(ctx)
    return (time.perf_counter() - t0) / len(ctxs), (time.process_time() - c0) / len(ctxs)


def peer_solve_ivp(model, inds, rtol, atol):
    """scipy LSODA per patient on the same equations (Python rhs), daily outputs, no metrics."""
    from scipy.integrate import solve_ivp

    f = model.rhs.py_func
    t_out = np.linspace(0.0, HORIZON_DAYS, 271)
    c0, t0 = time.process_time(), time.perf_counter()
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
    return (time.perf_counter() - t0) / inds.n, (time.process_time() - c0) / inds.n


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
# the setting: measured curve, shipped file
# ---------------------------------------------------------------------------------------------
REF = {"method": "rodas5", "rtol": 1e-10, "atol": 1e-12}
#: Per-state absolute tolerances tried by the curve as a second variant (state name -> atol in
#: the state's unit; the other states keep atol = rtol x 1e-3). sle_cart: the fludarabine
#: amounts (mg) and their AUC state (mg.h/L) enter the metrics only through the
#: lymphodepletion transit states K_1, K_2, which stay error-controlled, and the sweep's FLU_AUC
#: comes from the closed-form PK of the context, so their own error is loosened to 0.1; the
#: B-cell nadir (B_NADIR) reaches 1e-5 cells/uL in deep aplasia, far below the scalar atol, so
#: the B cells get 1e-9 cells/uL. Whether this keeps every metric within the budget is what
#: the curve measures.
STATE_ATOL = {
    "sle_cart": {"flu_central": 0.1, "flu_peripheral_2": 0.1, "flu_peripheral_3": 0.1,
                 "flu_auc": 0.1, "b_cells": 1e-9},
}  # fmt: skip
CURVE_RTOLS = (1e-3, 3e-4, 2e-4, 1e-4, 3e-5, 1e-5, 1e-6)


def worst_error(got, ref):
    """(worst relative error over COMPARED, NaN mismatches, failed patients, per-metric errors)."""
    errs = relative_errors(got, ref)
    return (max(e["max"] for e in errs.values()), sum(e["nan_mismatch"] for e in errs.values()),
            int(np.count_nonzero(got["status"])), errs)  # fmt: skip


def steps_per_patient(m, inds, **opts):
    """Mean accepted + rejected steps per patient over the horizon (deterministic: the cost
    measure the setting is chosen by, unlike times on a shared machine)."""
    t = np.array([float(inds.t0.min()), HORIZON_DAYS])
    sol = batch.solve(m, inds, t, threads=1, **opts)
    return float(np.mean(sol.n_steps + sol.n_rejected))


def measure_curve(variants, sub, ref, chunk, rtols, log=print):
    """Worst metric error, steps per patient and 1-thread speed for every (variant, rtol)."""
    curve = []
    for label, m, method, registered, atol_states in variants:
        for rtol in rtols:
            setting = SolverSetting(method, rtol, float(f"{rtol * 1e-3:.3g}"), "curve", None, "",
                                    atol_states)  # fmt: skip
            opts = setting.engine_options(m)
            got, sec = run_metrics(m, sub, chunk, t_end_days=HORIZON_DAYS, threads=1, **opts)
            worst, mism, fails, errs = worst_error(got, ref)
            steps = steps_per_patient(m, sub, **opts)
            curve.append({"method": label, "kernel_method": method, "registered": registered,
                          "rtol": rtol, "atol": setting.atol, "atol_states": atol_states,
                          "worst_rel_error": worst, "nan_mismatch": mism, "failed": fails,
                          "steps_per_patient": steps, "patients_per_s_1thread": sub.n / sec,
                          "errors": errs})  # fmt: skip
            log(f"  {label:<21} rtol {rtol:.0e}: worst metric error {worst:.2e} (NaN mismatches "
                f"{mism}, failed {fails}), {steps:5.1f} steps/patient, {sub.n / sec:5.0f} "
                "patients/s on 1 thread")  # fmt: skip
    return curve


def choose(curve, budget):
    """The registered-model point within the error budget with the fewest steps per patient
    (ties: the looser rtol); None if there is none."""
    ok = [c for c in curve if c["registered"] and c["worst_rel_error"] <= budget
          and c["nan_mismatch"] == 0 and not c["failed"]]  # fmt: skip
    return min(ok, key=lambda c: (c["steps_per_patient"], -c["rtol"])) if ok else None


def write_settings(model, best, n_patients, budget, curve, metrics_compared):
    """Write the chosen setting of ``model`` into cartkin/models/solver_settings.json."""
    from cartkin.sweep.solver import SETTINGS_FILE, model_fingerprint

    data = json.loads(SETTINGS_FILE.read_text()) if SETTINGS_FILE.is_file() else {}
    points = [{"method": c["method"], "rtol": c["rtol"], "atol_states": c["atol_states"],
               "worst_rel_error": float(f"{c['worst_rel_error']:.3g}"),
               "steps_per_patient": round(c["steps_per_patient"], 1)}
              for c in curve if c["registered"]]  # fmt: skip
    data[model.name] = {
        "method": best["kernel_method"],
        "rtol": best["rtol"],
        "atol": best["atol"],
        "atol_states": best["atol_states"],
        "jacobian": "analytic" if model.jac is not None else "finite differences",
        "worst_metric_error": float(f"{best['worst_rel_error']:.3g}"),
        "fingerprint": model_fingerprint(model),
        "command": "python benchmarks/bench_sweep.py --curve --write-settings"
        + ("" if model.name == "sle_cart" else f" --model {model.name}"),
        "curve": {
            "metrics": list(metrics_compared),
            "patients": n_patients,
            "reference": f"{REF['method']} rtol {REF['rtol']:g} atol {REF['atol']:g}",
            "error_budget": budget,
            "points": points,
        },
    }
    SETTINGS_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return SETTINGS_FILE


def verify_scenario(path, per_point, log=print):
    """Worst relative metric error of a sweep scenario's own setting (its [solver] table or the
    shipped one) against rodas5 at rtol 1e-10, on patients 0..per_point-1 of every grid point
    (the same draws, through the sweep's own engine)."""
    import dataclasses

    from cartkin.sweep import load_sweep
    from cartkin.sweep.population import batch_engine, draw_population

    sweep = load_sweep(path)
    ref_sweep = dataclasses.replace(
        sweep, solver=SolverSetting(REF["method"], REF["rtol"], REF["atol"], "reference", None, "")
    )
    names = [m for m in sweep.metrics if m != "FLU_AUC"]
    worst = {m: 0.0 for m in names}
    mismatch = failed = 0
    for g in range(sweep.n_points):
        got = batch_engine(draw_population(sweep, g, 0, per_point), names, threads=1)
        ref = batch_engine(draw_population(ref_sweep, g, 0, per_point), names, threads=1)
        failed += int(np.count_nonzero(got["status"]))
        for m in names:
            a, b = got[m], ref[m]
            both = np.isfinite(a) & np.isfinite(b)
            mismatch += int(np.count_nonzero(np.isfinite(a) != np.isfinite(b)))
            rel = np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-12)
            worst[m] = max(worst[m], float(rel.max()) if rel.size else 0.0)
    log(f"{path}: {sweep.solver.describe().split(' (')[0]}; {sweep.n_points} grid points x "
        f"{per_point} patients against {REF['method']} rtol {REF['rtol']:g}: NaN mismatches "
        f"{mismatch}, failed {failed}")  # fmt: skip
    for m, e in sorted(worst.items(), key=lambda kv: -kv[1]):
        log(f"  {m:<16} worst relative error {e:.1e}")
    return worst, mismatch, failed


# ---------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and subsets (smoke run)")
    ap.add_argument("--model", default="sle_cart",
                    help="a registered model with sle_cart's inputs (sle_cart, sle_cart_v2, "
                         "stein2019, ...) or v1 (sle_cart_v1 with a benchmark Jacobian)")  # fmt: skip
    ap.add_argument("--sizes", default=None, help="comma-separated population sizes")
    ap.add_argument("--unique", type=int, default=None, help="distinct individualized patients")
    ap.add_argument("--chunk", type=int, default=10_000, help="patients per kernel call")
    ap.add_argument("--curve", action="store_true",
                    help="measure the metric-error-vs-rtol curve and choose the setting from it")  # fmt: skip
    ap.add_argument("--write-settings", action="store_true",
                    help="with --curve: write the chosen setting to the shipped settings file")  # fmt: skip
    ap.add_argument("--metric-rtol", type=float, default=3e-4, help="accepted metric error")
    ap.add_argument("--compare-scalar-atol", action="store_true",
                    help="also time the setting without its per-state tolerances")  # fmt: skip
    ap.add_argument("--out", default=str(HERE / "results"), help="output folder")
    ap.add_argument(
        "--verify-scenario",
        type=Path,
        default=None,
        help="only: the metric error of this sweep scenario's setting over its grid",
    )
    ap.add_argument("--per-point", type=int, default=8, help="patients per grid point to verify")
    args = ap.parse_args(argv)
    if args.verify_scenario is not None:
        worst, mismatch, failed = verify_scenario(args.verify_scenario, args.per_point)
        return {"worst": worst, "nan_mismatch": mismatch, "failed": failed}
    if args.write_settings and not (args.curve and args.model != "v1"):
        ap.error("--write-settings needs --curve and a registered model (not --model v1)")
    sizes = [int(float(s)) for s in (args.sizes or ("400" if args.quick else "1e4,1e5")).split(",")]
    n_unique = args.unique or (8 if args.quick else 256)
    n_err = 16 if args.quick else 128  # patients of the error check / curve
    threads_max = numba.config.NUMBA_NUM_THREADS
    thread_counts = sorted({1, min(2, threads_max)})
    report = {"machine": {"python": platform.python_version(), "numba": numba.__version__,
                          "numpy": np.__version__, "cpus": threads_max,
                          "platform": platform.platform(),
                          "load_average_start": os.getloadavg()[0]},
              "quick": args.quick, "horizon_days": HORIZON_DAYS,
              "model": "sle_cart_v1" if args.model == "v1" else args.model,
              "sizes": sizes}  # fmt: skip

    print(f"population: {n_unique} unique patients -> sizes {sizes}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    t0 = time.perf_counter()
    ctxs = population(n_unique, lymphodepletion=args.model != "v1")
    t_ctx = (time.perf_counter() - t0) / n_unique
    if args.model == "v1":
        name = "sle_cart_v1"
        model = sle_cart_with_extras(with_jac=False)
        model_jac = sle_cart_with_extras(with_jac=True)
        registered = model  # the registered v1 has no Jacobian
    else:
        name = args.model
        model_jac = registered = cartkin.models.get(name)
        model = copy.copy(model_jac)
        model.jac = None
    bctx = batch.BatchContext.from_contexts(ctxs)
    t0 = time.perf_counter()
    inds = batch.individualize(model, None, bctx)
    t_ind = (time.perf_counter() - t0) / n_unique
    report["per_patient_python_us"] = {"build_context": 1e6 * t_ctx, "individualize": 1e6 * t_ind}
    print(f"  build_context {1e6 * t_ctx:.0f} us/patient, individualize {1e6 * t_ind:.0f} "
          "us/patient")  # fmt: skip

    compile_s = {}
    for label, m in (("registered", registered), *((("fd", model),) if args.curve else ())):
        t0 = time.perf_counter()
        batch.metrics(m, inds.take([0]), t_end_days=HORIZON_DAYS)
        compile_s[label] = time.perf_counter() - t0
    report["first_compile_s"] = compile_s
    print(f"  first compile or cache load: {compile_s}")

    # -- the setting and its metric error
    sub = tiled(model, inds, n_err)
    ref, _ = run_metrics(registered, sub, args.chunk, t_end_days=HORIZON_DAYS, **REF)
    shipped = sweep_solver(registered, None)
    print(f"  shipped sweep setting: {shipped.describe()}")
    report["shipped_setting"] = json.loads(shipped.to_json())
    setting = shipped
    if args.curve:
        per_state = {k: v for k, v in STATE_ATOL.get(registered.name, {}).items()
                     if k in registered.state_names}  # fmt: skip
        reg = args.model != "v1"
        variants = [("rodas5+jac", model_jac, "rodas5", reg, {}),
                    *((("rodas5+jac+state-atol", model_jac, "rodas5", reg, per_state),)
                      if per_state else ()),
                    ("rodas5", model, "rodas5", args.model == "v1", {}),
                    ("auto", model, "auto", False, {})]  # fmt: skip
        curve = measure_curve(variants, sub, ref, args.chunk,
                              CURVE_RTOLS[:3] if args.quick else CURVE_RTOLS)  # fmt: skip
        report["error_vs_rtol"] = curve
        best = choose(curve, args.metric_rtol)
        if best is None:
            raise SystemExit(f"bench_sweep: no setting reaches the metric error {args.metric_rtol}")
        setting = SolverSetting(best["kernel_method"], best["rtol"], best["atol"], "curve",
                                best["worst_rel_error"], "", best["atol_states"])  # fmt: skip
        print(f"  chosen from the curve: {best['method']} rtol {best['rtol']:g} "
              f"(worst metric error {best['worst_rel_error']:.1e})")  # fmt: skip
        if args.write_settings:
            print(
                f"  wrote {write_settings(registered, best, sub.n, args.metric_rtol, curve, compared(ref))}"
            )
    opts = setting.engine_options(registered)
    got, _ = run_metrics(registered, sub, args.chunk, t_end_days=HORIZON_DAYS, threads=1, **opts)
    worst, mism, fails, _ = worst_error(got, ref)
    report["sweep_setting"] = {**setting.options(), "atol_states": setting.atol_states,
                               "worst_rel_error": worst, "nan_mismatch": mism, "failed": fails,
                               "patients": sub.n}  # fmt: skip
    print(f"  setting used: {setting.describe().split(' (')[0]}: worst metric error in this run "
          f"{worst:.1e} on {sub.n} patients (NaN mismatches {mism}, failed {fails})")  # fmt: skip

    # -- throughput
    rows = []
    sweep_metrics = [m for m in SWEEP_METRICS[:-1] if m in ref]
    for n in sizes:
        pop = tiled(model, inds, n)
        for threads in thread_counts:
            tracemalloc.start()
            _, sec, cpu = run_metrics(registered, pop, args.chunk, cpu=True,
                                      names=sweep_metrics, t_end_days=HORIZON_DAYS,
                                      threads=threads, **opts)  # fmt: skip
            peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            rows.append({"n": n, "threads": threads, "seconds": sec, "patients_per_s": n / sec,
                         "cpu_us_per_patient": 1e6 * cpu / n, "peak_traced_mb": peak_mb})  # fmt: skip
            print(f"  engine n={n:>8} threads={threads}: {sec:7.2f} s, {n / sec:9.0f} patients/s, "
                  f"CPU {1e6 * cpu / n:6.0f} us/patient, peak traced memory {peak_mb:.1f} MB")  # fmt: skip
    report["throughput"] = rows
    if args.compare_scalar_atol and setting.atol_states:
        # the same setting without its per-state tolerances (the setting shipped before them),
        # timed in the same run: the gain of the per-state tolerances under the same load
        scalar = {**opts, "atol": setting.atol}
        pop = tiled(model, inds, sizes[-1])
        base = {"steps_per_patient": steps_per_patient(registered, sub, **scalar),
                "steps_per_patient_setting": steps_per_patient(registered, sub, **opts)}  # fmt: skip
        for threads in thread_counts:
            for label, o in (("setting", opts), ("scalar atol", scalar)):
                _, sec, cpu = run_metrics(registered, pop, args.chunk, cpu=True,
                                          names=sweep_metrics, t_end_days=HORIZON_DAYS,
                                          threads=threads, **o)  # fmt: skip
                base[f"{label}, {threads} thread(s)"] = {"patients_per_s": pop.n / sec,
                                                         "cpu_us_per_patient": 1e6 * cpu / pop.n}  # fmt: skip
                print(f"  {label:<11} n={pop.n} threads={threads}: {pop.n / sec:9.0f} patients/s, "
                      f"CPU {1e6 * cpu / pop.n:6.0f} us/patient")  # fmt: skip
        print(f"  steps/patient: {base['steps_per_patient_setting']:.1f} with the per-state atol, "
              f"{base['steps_per_patient']:.1f} with atol {setting.atol:g} for every state")  # fmt: skip
        report["scalar_atol_comparison"] = base
    engine = {t: max(r["patients_per_s"] for r in rows if r["n"] == sizes[-1] and r["threads"] == t)
              for t in thread_counts}  # fmt: skip
    engine_cpu = min(r["cpu_us_per_patient"] for r in rows if r["n"] == sizes[-1])

    # -- peers (subsets, per patient)
    peers = []
    has_cart = {"C_E", "C_M"} <= set(model.state_symbols)
    if has_cart:
        i_ce, i_cm = (model.state_symbols.index(s) for s in ("C_E", "C_M"))
        plain = make_plain_prange(model.rhs, i_ce, i_cm)
        pop = tiled(model, inds, 200 if args.quick else 20000)
        plain(pop.y0[:2], pop.t0[:2], pop.p[:2], pop.t_stops[:2], pop.jumps[:2], pop.n_stops[:2],
              HORIZON_DAYS, 1e-6, 1e-9)  # fmt: skip
    else:
        print(f"  (no plain Dormand-Prince peer: {name} has no C_E, C_M states)")
    for threads in thread_counts if has_cart else ():
        numba.set_num_threads(threads)
        c0, t0 = time.process_time(), time.perf_counter()
        _, steps = plain(pop.y0, pop.t0, pop.p, pop.t_stops, pop.jumps, pop.n_stops, HORIZON_DAYS,
                         1e-6, 1e-9)  # fmt: skip
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        peers.append({"peer": f"plain numba Dormand-Prince prange loop, {threads} thread(s) (rtol "
                              f"1e-6, CAR-T peak only; {steps.mean():.0f} steps/patient)",
                      "threads": threads, "patients_per_s": pop.n / sec,
                      "cpu_us_per_patient": 1e6 * cpu / pop.n})  # fmt: skip
    numba.set_num_threads(threads_max)
    n_sim = 2 if args.quick else 8
    some = ctxs[:n_sim]
    for label, peer_opts in (("defaults: rodas5, rtol 1e-8", ("rodas5", 1e-8, 1e-10)),
                        (f"sweep setting: {setting.method}, rtol {setting.rtol:g}",
                         (opts["method"], opts["rtol"], opts["atol"]))):  # fmt: skip
        sec, cpu = peer_simulate(some, *peer_opts, name)
        peers.append({"peer": f"cartkin.simulate + metrics.compute loop ({label})", "threads": 1,
                      "patients_per_s": 1 / sec,
                      "cpu_us_per_patient": 1e6 * cpu})  # fmt: skip
    sec, cpu = peer_solve_ivp(model, tiled(model, inds, n_sim), 1e-6, 1e-9)
    peers.append({"peer": "scipy solve_ivp LSODA loop (rtol 1e-6, daily outputs, no metrics)",
                  "threads": 1, "patients_per_s": 1 / sec,
                  "cpu_us_per_patient": 1e6 * cpu})  # fmt: skip
    for peer in peers:
        peer["engine_ratio"] = engine[peer["threads"]] / peer["patients_per_s"]
        peer["engine_cpu_ratio"] = peer["cpu_us_per_patient"] / engine_cpu
    report["peers"] = peers
    report["engine_patients_per_s"] = {str(t): v for t, v in engine.items()}
    report["load_average_end"] = os.getloadavg()[0]
    print(f"  batch engine at n={sizes[-1]}: " + ", ".join(
        f"{v:.0f} patients/s on {t} thread(s)" for t, v in engine.items()) +
        f"; {engine_cpu:.0f} us CPU per patient (all of {', '.join(sweep_metrics)}, FLU_AUC)")  # fmt: skip
    print(f"  {'peer':<92} {'patients/s':>10} {'engine is (same threads)':>25} {'CPU ratio':>10}")
    for peer in peers:
        print(f"  {peer['peer']:<92} {peer['patients_per_s']:10.0f} "
              f"{peer['engine_ratio']:24.1f}x {peer['engine_cpu_ratio']:9.1f}x")  # fmt: skip
    print(f"  load average at the end: {report['load_average_end']:.1f}")

    out = Path(args.out) / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    name = "sweep_curve.json" if args.curve else "sweep.json"  # a curve run keeps sweep.json
    (out / name).write_text(json.dumps(report, indent=1))
    print(f"wrote {out / name}")
    return report


if __name__ == "__main__":
    main()
