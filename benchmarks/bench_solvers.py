"""Time cartkin's ODE solvers against scipy, numbalsoda and diffrax on the same problems.

Run from the repository root::

    python benchmarks/bench_solvers.py            # full run (several minutes) -> benchmarks/results/
    python benchmarks/bench_solvers.py --quick    # smoke run (seconds) -> benchmarks/results/quick/

What is measured, per problem and method, in one process, at the problem's headline tolerances
(the same rtol and atol for every method):

- first call: setup a user pays once per process (numba compile or cache load, jax tracing)
  plus the first solve, in seconds;
- time per solve: median and interquartile range of repeated solves after two warm-up calls,
  timed one by one with ``time.perf_counter`` and the garbage collector paused;
- steps, right-hand-side evaluations and Jacobian evaluations, as each library reports them;
- error: max over output times k and states j of |y_kj - ref_kj| / (atol + |ref_kj|), where
  ``ref`` is a scipy solution at rtol 1e-13, atol 1e-14 (DOP853 for the non-stiff problem, Radau
  for the stiff ones) and ``atol`` is the problem's headline atol. That is the relative error
  where |ref| >> atol and the error in units of atol where the state is near zero.

Then a work-precision sweep (rtol 1e-3..1e-10 in half decades, atol = rtol * headline atol /
headline rtol) gives error against median time per method, drawn to ``work_precision.png``; and,
for cartkin, a fresh ``python -c`` process (after one process that warms the cache) times
``import cartkin`` and the first ``solve_ode`` call of the built-in ``the generated rhs of cart4``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from methods import Method, all_methods  # noqa: E402
from problems import Problem, cart4_builtin, check_cart4_against_builtin, make_problems  # noqa: E402

REF_ATOL = 1e-14  # reference rtol is per problem (Problem.ref_rtol)
# Half-decade sweeps: the equal-accuracy ratio takes the cheapest point whose error is no worse
# than the peer's, so with decade points alone it could be off by up to a decade of tolerance
# (~1.6x in time for a 5th-order method); half decades bound that at ~1.26x, in the peer's favour.
FULL_RTOLS = tuple(10.0 ** (-k / 2) for k in range(6, 21))  # 1e-3, 3.2e-4, ..., 1e-10
QUICK_RTOLS = tuple(10.0 ** (-k / 2) for k in range(8, 17))  # 1e-4, 3.2e-5, ..., 1e-8
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: cart4 only, few repeats")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default benchmarks/results, or benchmarks/results/quick with --quick)",
    )
    parser.add_argument(
        "--problems",
        default=None,
        help="comma-separated subset of cart4,robertson,vdp,hires (default: all; cart4 with --quick)",
    )
    parser.add_argument(
        "--peers",
        default="all",
        help="'all', 'none' (cartkin and scipy only) or a comma list of numbalsoda,diffrax",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help="comma list of method keys or families to run (e.g. cartkin,scipy:LSODA)",
    )
    parser.add_argument(
        "--no-fresh-process",
        action="store_true",
        help="skip the fresh-process first-call measurement (skipped anyway with --quick)",
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="do not update benchmarks/README.md"
    )
    args = parser.parse_args(argv)
    known = set(make_problems())
    if args.problems is None:
        args.problems = ["cart4"] if args.quick else ["cart4", "robertson", "vdp", "hires"]
    else:
        args.problems = [s.strip() for s in args.problems.split(",") if s.strip()]
        bad = [p for p in args.problems if p not in known]
        if bad:
            parser.error(f"--problems: unknown {bad!r}; expected names from {sorted(known)!r}")
    families = {"numbalsoda", "diffrax"}
    if args.peers == "all":
        args.peers = families
    elif args.peers == "none":
        args.peers = set()
    else:
        args.peers = {s.strip() for s in args.peers.split(",") if s.strip()}
        if not args.peers <= families:
            parser.error(
                f"--peers: unknown {sorted(args.peers - families)!r}; expected {families!r}"
            )
    args.methods = None if args.methods is None else set(args.methods.split(","))
    if args.out is None:
        args.out = HERE / "results" / ("quick" if args.quick else "")
    # Timing budgets: each method's headline timing runs until both limits are met.
    args.budget_s, args.min_repeats = (0.05, 3) if args.quick else (2.0, 15)
    args.rounds = 1 if args.quick else 5
    args.wp_budget_s, args.wp_min_repeats = (0.02, 1) if args.quick else (0.3, 3)
    args.rtols = QUICK_RTOLS if args.quick else FULL_RTOLS
    return args


def selected_methods(args) -> list[Method]:
    out = []
    for m in all_methods():
        if m.family in ("numbalsoda", "diffrax") and m.family not in args.peers:
            continue
        if args.methods is not None and not {m.key, m.family} & args.methods:
            continue
        out.append(m)
    return out


# --------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------
def time_calls(fn, budget_s: float, min_repeats: int, max_repeats: int = 20_000) -> np.ndarray:
    """Seconds per call of ``fn()``, timed one call at a time.

    Stops once ``budget_s`` has passed and ``min_repeats`` calls are done, or after
    ``5 * budget_s`` whatever the count (at least one call), or at ``max_repeats``.
    """
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(times) < max_repeats:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - start
            if elapsed >= budget_s and len(times) >= min_repeats:
                break
            if elapsed >= 5 * budget_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return np.array(times)


def max_rel_error(y: np.ndarray, ref: np.ndarray, floor: float) -> float:
    """max_kj |y_kj - ref_kj| / (floor + |ref_kj|); inf if y has the wrong shape or non-finite."""
    y = np.asarray(y, dtype=float)
    if y.shape != ref.shape or not np.all(np.isfinite(y)):
        return math.inf
    return float(np.max(np.abs(y - ref) / (floor + np.abs(ref))))


def _reference_cache_key(problem: Problem, method: str) -> str:
    """Hash of everything the reference solution depends on."""
    import inspect

    import scipy

    h = hashlib.sha256()
    for part in (
        inspect.getsource(problem.rhs),
        problem.y0.tobytes(),
        problem.t_eval.tobytes(),
        problem.p.tobytes(),
        method,
        repr((problem.ref_rtol, REF_ATOL)),
        scipy.__version__,
    ):
        h.update(part if isinstance(part, bytes) else part.encode())
    return h.hexdigest()[:16]


def reference_solution(problem: Problem, cache_dir: Path, cross_check: bool = True) -> dict:
    """Tight scipy solution at ``t_eval`` and a cross-check by a second scipy method.

    Solutions are cached in ``cache_dir`` keyed by a hash of the problem and scipy version
    (Radau at rtol 1e-13 takes minutes on Van der Pol).
    """
    from methods import _numba_scipy_rhs
    from scipy.integrate import solve_ivp

    if problem.stiff:
        main, check, check_rtol = "Radau", "LSODA", 1e-12
    else:
        main, check, check_rtol = "DOP853", "Radau", 1e-12
    ref_rtol = problem.ref_rtol
    fun = _numba_scipy_rhs(problem)
    span = (float(problem.t_eval[0]), float(problem.t_eval[-1]))

    def solve(method, rtol):
        key = _reference_cache_key(problem, f"{method}@{rtol}")
        path = cache_dir / f"ref_{problem.name}_{method}_{key}.npy"
        if path.exists():
            return np.load(path), True
        t0 = time.perf_counter()
        sol = solve_ivp(
            fun, span, problem.y0, method=method, t_eval=problem.t_eval,
            rtol=rtol, atol=REF_ATOL, args=(problem.p,),
        )  # fmt: skip
        if not sol.success:
            raise RuntimeError(f"reference {method} failed on {problem.name}: {sol.message}")
        y = sol.y.T.copy()
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(path, y)
        print(
            f"  reference {problem.name} {method} rtol={rtol:g}: {time.perf_counter() - t0:.1f} s"
        )
        return y, False

    ref, cached = solve(main, ref_rtol)
    out = {
        "y": ref,
        "method": f"scipy {main} rtol={ref_rtol:g} atol={REF_ATOL:g}",
        "cached": cached,
    }
    if cross_check:
        other, _ = solve(check, check_rtol)
        out["cross_check"] = f"scipy {check} rtol={check_rtol:g} atol={REF_ATOL:g}"
        out["cross_check_error"] = max_rel_error(other, ref, problem.atol)
    return out


def bench_method(method: Method, problem: Problem, ref: np.ndarray, args) -> dict:
    """One row of the table: first call, timing, counts and error at the headline tolerances."""
    row = {"key": method.key, "label": method.label, "family": method.family}
    reason = method.available()
    if reason is not None:
        return row | {"status": "unavailable", "reason": reason}
    rtol, atol = problem.rtol, problem.atol
    t0 = time.perf_counter()
    try:
        prepared = method.prepare(problem)
        raw = prepared.run(rtol, atol)
    except Exception as exc:  # a benchmark reports a failing method, it does not stop
        return row | {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    row["first_call_s"] = time.perf_counter() - t0
    y, ok, message = prepared.extract(raw)
    row["error"] = max_rel_error(y, ref, problem.atol)
    row["status"] = "ok" if ok else "failed"
    row["message"] = message
    try:
        row |= prepared.stats(raw, rtol, atol)
    except Exception as exc:
        row["stats_error"] = f"{type(exc).__name__}: {exc}"[:300]
    if not ok:
        return row
    for _ in range(2):  # warm-up, not timed
        prepared.run(rtol, atol)
    row["_prepared"] = prepared
    return row


def time_rows(rows: list[dict], problem: Problem, args) -> None:
    """Headline timings, in ``args.rounds`` round-robin rounds over all methods.

    Interleaving spreads a change in machine load (other processes on a shared machine) over
    every method instead of charging it to whichever method was running then.
    """
    rtol, atol = problem.rtol, problem.atol
    samples = {id(r): [] for r in rows}
    for _ in range(args.rounds):
        for row in rows:
            prepared = row.get("_prepared")
            if prepared is None:
                continue
            samples[id(row)].extend(
                time_calls(
                    lambda p=prepared: p.run(rtol, atol),
                    args.budget_s / args.rounds,
                    max(1, args.min_repeats // args.rounds),
                )
            )
    for row in rows:
        times = samples[id(row)]
        if times:
            q1, med, q3 = np.percentile(times, [25, 50, 75])
            row |= {"median_s": med, "q1_s": q1, "q3_s": q3, "n_repeats": len(times)}


def work_precision(prepared, problem: Problem, ref: np.ndarray, args) -> list[dict]:
    """(rtol, atol, error, median time) over ``args.rtols``; failed points carry error None."""
    points = []
    ratio = problem.atol / problem.rtol
    for rtol in args.rtols:
        atol = rtol * ratio
        point = {"rtol": rtol, "atol": atol, "error": None, "median_s": None}
        try:
            y, ok, message = prepared.extract(prepared.run(rtol, atol))
        except Exception as exc:
            points.append(point | {"message": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        err = max_rel_error(y, ref, problem.atol)
        if ok and math.isfinite(err):
            times = time_calls(
                lambda r=rtol, a=atol: prepared.run(r, a), args.wp_budget_s, args.wp_min_repeats
            )
            point |= {"error": err, "median_s": float(np.median(times))}
        else:
            point["message"] = message
        points.append(point)
    return points


FRESH_SNIPPET = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    import cartkin
    from cartkin.models import cart4
    solve_ode = getattr(cartkin, "solve_ode", None)
    if solve_ode is None:
        from cartkin.ode import solve_ode
    t1 = time.perf_counter()
    names = list(cart4.PARAM_NAMES)
    sol = solve_ode(cartkin.models.get("cart4").rhs, np.array([1.2, 0.0, 200.0, 0.0]), np.arange(0.0, 366.0),
                            np.asarray(cart4.DEFAULT_P, dtype=float), method=METHOD,
                            rtol=1e-6, atol=1e-9)
    t2 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "first_call_s": t2 - t1, "success": bool(sol.success)}))
    """
)


def fresh_process_first_call(method: str) -> dict:
    """Import and first-call times of ``cart4`` in fresh processes with a fresh numba cache.

    Runs the same snippet twice with a new, empty ``NUMBA_CACHE_DIR``: the first process
    compiles and fills the cache (cold), the second loads it (warm).
    """
    code = FRESH_SNIPPET.replace("METHOD", repr(method))
    out = {"method": method}
    with tempfile.TemporaryDirectory(prefix="cartkin_bench_cache_") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            proc = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
            )
            if proc.returncode != 0:
                out[label] = {"error": proc.stderr.strip().splitlines()[-1:]}
                continue
            out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------------------------
# summarising
# --------------------------------------------------------------------------------------------
def _row(rows, key):
    return next((r for r in rows if r["key"] == key and r.get("median_s") is not None), None)


def _sweep_point(points, rtol):
    """The successful sweep point at ``rtol`` (relative match), or None."""
    for p in points:
        if math.isclose(p["rtol"], rtol, rel_tol=1e-9) and p["error"] is not None:
            return p
    return None


def _point_at_error(points, target_err):
    """The sweep point with the smallest median time among those with error <= ``target_err``."""
    ok = [p for p in points if p["error"] is not None and p["error"] <= target_err]
    return min(ok, key=lambda p: p["median_s"]) if ok else None


def _time_at_error(points, target_err):
    """Smallest median time among sweep points whose error is <= ``target_err``."""
    p = _point_at_error(points, target_err)
    return None if p is None else p["median_s"]


def targets(results: dict) -> list[dict]:
    """The issue's targets as measured ratios (each with the numbers it came from)."""
    out = []
    cart = results["problems"].get("cart4")
    if cart:
        rows = cart["rows"]
        ours = [r for r in rows if r["family"] == "cartkin" and r.get("median_s") is not None]
        best = min(ours, key=lambda r: r["median_s"]) if ours else None
        peers = (("scipy:LSODA", 100.0), ("numbalsoda:lsoda", 2.0), ("numbalsoda:dop853", 2.0))
        for peer_key, goal in peers:
            peer = _row(rows, peer_key)
            if best is None or peer is None:
                out.append({"target": f"cart4: best cartkin vs {peer_key} >= {goal:g}x",
                            "met": None, "note": "not measured"})  # fmt: skip
                continue
            same_tol = peer["median_s"] / best["median_s"]
            # At equal or better accuracy, all times from the sweep (measured in the same phase):
            # the peer's point at the headline rtol against the cheapest cartkin point (any
            # cartkin method) whose error is no worse than the peer's there.
            peer_pt = _sweep_point(cart["work_precision"].get(peer_key, []), cart["rtol"])
            equal_acc = None
            equal_acc_at = None
            if peer_pt is not None:
                cheapest = None  # (point, label)
                for r in ours:
                    pt = _point_at_error(cart["work_precision"].get(r["key"], []), peer_pt["error"])
                    if pt is not None and (
                        cheapest is None or pt["median_s"] < cheapest[0]["median_s"]
                    ):
                        cheapest = (pt, r["label"])
                if cheapest is not None:
                    pt, label = cheapest
                    equal_acc = peer_pt["median_s"] / pt["median_s"]
                    equal_acc_at = (
                        f"{label} rtol {pt['rtol']:.2g} (error {pt['error']:.2g}, "
                        f"{pt['median_s'] * 1e6:.1f} us) vs {peer['label']} rtol "
                        f"{peer_pt['rtol']:.2g} (error {peer_pt['error']:.2g}, "
                        f"{peer_pt['median_s'] * 1e6:.1f} us)"
                    )
            ratio = equal_acc if equal_acc is not None else same_tol
            out.append(
                {
                    "target": f"cart4: best cartkin vs {peer['label']} >= {goal:g}x faster",
                    "best_cartkin": best["label"],
                    "ratio_same_tolerance": same_tol,
                    "ratio_equal_accuracy": equal_acc,
                    "equal_accuracy_points": equal_acc_at,
                    "errors": {best["label"]: best["error"], peer["label"]: peer["error"]},
                    "met": bool(ratio >= goal),
                }
            )
    for name, prob in results["problems"].items():
        if not prob["stiff"]:
            continue
        rows = prob["rows"]
        radau = _row(rows, "scipy:Radau")
        for r in rows:
            if r["family"] != "cartkin" or r.get("median_s") is None or r["key"] == "cartkin:auto":
                continue
            if radau is None:
                continue
            step_ratio = (
                r["n_steps"] / radau["n_steps"]
                if r.get("n_steps") and radau.get("n_steps")
                else None
            )
            speedup = radau["median_s"] / r["median_s"]
            radau_pt = _sweep_point(prob["work_precision"].get("scipy:Radau", []), prob["rtol"])
            t_eq = None
            if radau_pt is not None:
                t_eq = _time_at_error(prob["work_precision"].get(r["key"], []), radau_pt["error"])
            out.append(
                {
                    "target": f"{name}: {r['label']} steps <= 3x Radau and >= 50x faster",
                    "step_ratio": step_ratio,
                    "speedup_vs_radau": speedup,
                    "speedup_vs_radau_equal_accuracy": (
                        radau_pt["median_s"] / t_eq if t_eq is not None else None
                    ),
                    "errors": {r["label"]: r["error"], radau["label"]: radau["error"]},
                    "met": bool(step_ratio is not None and step_ratio <= 3 and speedup >= 50),
                }
            )
    fresh = results.get("fresh_process")
    if fresh and "warm" in fresh and "first_call_s" in fresh["warm"]:
        out.append(
            {
                "target": "fresh process, warm cache: first solve_ode call of cart4 < 0.5 s",
                "import_s": fresh["warm"]["import_s"],
                "first_call_s": fresh["warm"]["first_call_s"],
                "met": bool(fresh["warm"]["first_call_s"] < 0.5),
            }
        )
    return out


def _fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt_num(x, spec="{:.3g}"):
    return "-" if x is None else spec.format(x)


def _fmt_err(e):
    if e is None or not math.isfinite(e):
        return "inf"
    return f"{e:.1e}"


def table_markdown(prob: dict) -> str:
    rows = prob["rows"]
    lsoda = _row(rows, "scipy:LSODA")
    nbl = _row(rows, "numbalsoda:lsoda")
    lines = [
        "| method | first call | median per solve | IQR | LSODA / this | numbalsoda / this "
        "| steps | RHS evals | Jac evals | max rel error | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    missing = []
    for r in rows:
        if r["status"] in ("unavailable", "error"):
            missing.append(f"{r['label']}: {r['status']} ({r.get('reason', '')})")
            continue
        med = r.get("median_s")
        iqr = None if med is None else r["q3_s"] - r["q1_s"]
        vs_lsoda = lsoda["median_s"] / med if (lsoda and med) else None
        vs_nbl = nbl["median_s"] / med if (nbl and med) else None
        lines.append(
            f"| {r['label']} | {_fmt_time(r.get('first_call_s'))} | {_fmt_time(med)} "
            f"| {_fmt_time(iqr)} | {_fmt_num(vs_lsoda)} | {_fmt_num(vs_nbl)} "
            f"| {_fmt_num(r.get('n_steps'), '{}')} | {_fmt_num(r.get('n_rhs'), '{}')} "
            f"| {_fmt_num(r.get('n_jac'), '{}')} | {_fmt_err(r.get('error'))} | {r['status']} |"
        )
    text = "\n".join(lines)
    if missing:
        text += "\n\nNot run: " + "; ".join(missing) + "."
    return text


def results_markdown(results: dict) -> str:
    env = results["environment"]
    out = [
        f"Run {results['date_utc']} ({'quick' if results['quick'] else 'full'} run), "
        f"command `{results['command']}`.",
        "",
        f"Machine: {env['cpu']}, {env['n_cpus']} logical CPUs, {env['os']}; load average "
        f"(1 min) {env['load_start']:.2f} at start, {env['load_end']:.2f} at end.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        "",
    ]
    for name, prob in results["problems"].items():
        ref = prob["reference"]
        out += [
            f"### {name}: {prob['title']}",
            "",
            f"rtol {prob['rtol']:g}, atol {prob['atol']:g}"
            + (f" ({prob['notes']})" if prob["notes"] else "")
            + f". Reference: {ref['method']}"
            + (
                f"; cross-check {ref['cross_check']} differs by "
                f"{_fmt_err(ref['cross_check_error'])} in the same error metric."
                if "cross_check" in ref
                else "."
            ),
            "",
            table_markdown(prob),
            "",
        ]
    tg = results["targets"]
    if tg:
        out += ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
        for t in tg:
            measured = ", ".join(
                f"{k} {_fmt_num(v) if isinstance(v, float) else v}"
                for k, v in t.items()
                if k not in ("target", "met", "errors", "note")
            )
            if "errors" in t:
                measured += "; errors " + ", ".join(
                    f"{k} {_fmt_err(v)}" for k, v in t["errors"].items()
                )
            met = {True: "yes", False: "NO", None: "not measured"}[t["met"]]
            out.append(f"| {t['target']} | {measured or t.get('note', '')} | {met} |")
        out.append("")
    fresh = results.get("fresh_process")
    if fresh:
        parts = []
        for label in ("cold", "warm"):
            d = fresh.get(label, {})
            if "first_call_s" in d:
                parts.append(
                    f"{label} cache: import {d['import_s']:.2f} s, first call "
                    f"{d['first_call_s']:.3f} s"
                )
            else:
                parts.append(f"{label} cache: {d.get('error', 'not run')}")
        out += [f"Fresh process, cart4 with {fresh['method']}: " + "; ".join(parts) + ".", ""]
    return "\n".join(out)


def plot_work_precision(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = [(n, p) for n, p in results["problems"].items() if p["work_precision"]]
    if not probs:
        return
    ncol = min(2, len(probs))
    nrow = math.ceil(len(probs) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.5 * ncol, 4.8 * nrow), squeeze=False)
    styles = {"cartkin": "-", "scipy": "--", "numbalsoda": "-.", "diffrax": ":"}
    keys = [m.key for m in all_methods()]
    cmap = plt.get_cmap("tab20")
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # the 10 strong colours first, then pale ones
    colors = {k: cmap(order[i % 20]) for i, k in enumerate(keys)}
    handles = {}
    for ax, (name, prob) in zip(axes.flat, probs, strict=False):
        for key, points in prob["work_precision"].items():
            pts = [p for p in points if p["error"] is not None and p["error"] > 0]
            if not pts:
                continue
            family = key.split(":")[0]
            label = next(r["label"] for r in prob["rows"] if r["key"] == key)
            (line,) = ax.loglog(
                [p["median_s"] for p in pts],
                [p["error"] for p in pts],
                styles.get(family, "-"),
                color=colors.get(key),
                marker="o",
                markersize=3,
                linewidth=2.4 if family == "cartkin" else 1.2,
                label=label,
            )
            handles.setdefault(label, line)
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, min(top, 10.0))  # errors above 10 (failed accuracy) are off scale
        ax.set_title(f"{name}: {prob['title']}", fontsize=9)
        ax.set_xlabel("median time per solve (s)")
        ax.set_ylabel("max relative error")
        ax.grid(True, which="major", alpha=0.3)
    for ax in list(axes.flat)[len(probs) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"Work-precision, rtol {max(results['rtols']):g} to {min(results['rtols']):g}; "
        f"error as in the README, errors above 10 off scale "
        f"({results['environment']['cpu']}, {results['date_utc'][:10]})",
        fontsize=10,
    )
    ncol_legend = 4
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=ncol_legend, fontsize=8)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * math.ceil(len(handles) / ncol_legend), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def environment() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for pkg in ("cartkin", "numpy", "scipy", "numba", "numbalsoda", "jax", "diffrax"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "n_cpus": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
        "git_commit": commit,
        "load_start": os.getloadavg()[0],
    }


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items() if not k.startswith("_")}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def update_readme(md_text: str) -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        print(f"README.md has no {README_START} / {README_END} markers; not updated")
        return
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{md_text}\n{README_END}{tail}")


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment()
    problems = make_problems()
    methods = selected_methods(args)
    results = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/bench_solvers.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "rtols": list(args.rtols),
        "error_metric": "max over outputs k and states j of |y_kj - ref_kj| / (atol + |ref_kj|),"
        " atol = the problem's headline atol",
        "environment": env,
        "problems": {},
    }
    builtin = cart4_builtin()
    if builtin is not None and "cart4" in args.problems:
        problems["cart4"].cartkin_p = check_cart4_against_builtin(problems["cart4"], builtin)
        problems["cart4"].cartkin_rhs = builtin.MODEL_RHS

    for name in args.problems:
        problem = problems[name]
        print(f"== {name}: {problem.title}")
        ref = reference_solution(problem, args.out / ".cache", cross_check=not args.quick)
        rows, sweeps = [], {}
        for method in methods:
            if problem.stiff and method.explicit:
                continue
            if name == "cart4" and method.family == "cartkin" and problem.cartkin_rhs is None:
                rows.append({"key": method.key, "label": method.label, "family": "cartkin",
                             "status": "unavailable", "reason": "cartkin.models.cart4 missing"})  # fmt: skip
                continue
            rows.append(bench_method(method, problem, ref["y"], args))
        time_rows(rows, problem, args)
        for row in rows:
            print(
                f"  {row['label']:<34} {row['status']:<11} first {_fmt_time(row.get('first_call_s')):>10}"
                f"  median {_fmt_time(row.get('median_s')):>10}  err {_fmt_err(row.get('error'))}"
                + (f"  ({row.get('reason')})" if row.get("reason") else "")
            )
        for row in rows:
            prepared = row.pop("_prepared", None)
            if prepared is not None:
                sweeps[row["key"]] = work_precision(prepared, problem, ref["y"], args)
        results["problems"][name] = {
            "title": problem.title,
            "rtol": problem.rtol,
            "atol": problem.atol,
            "notes": problem.notes,
            "stiff": problem.stiff,
            "n_states": problem.n_states,
            "n_outputs": len(problem.t_eval),
            "reference": {k: v for k, v in ref.items() if k != "y"},
            "rows": rows,
            "work_precision": sweeps,
        }

    if not args.quick and not args.no_fresh_process and _cartkin_has_solver() and builtin:
        results["fresh_process"] = fresh_process_first_call(_fresh_method(results))
    env["load_end"] = os.getloadavg()[0]
    results["targets"] = targets(results)

    md_text = results_markdown(results)
    (args.out / "solvers.json").write_text(json.dumps(_jsonable(results), indent=1) + "\n")
    (args.out / "solvers.md").write_text(md_text + "\n")
    plot_work_precision(results, args.out / "work_precision.png")
    if not args.quick and not args.no_readme and args.out.resolve() == (HERE / "results").resolve():
        update_readme(md_text + "\n\n![work-precision diagram](results/work_precision.png)\n")
    print(f"wrote {args.out / 'solvers.json'}, solvers.md, work_precision.png")
    return results


def _cartkin_has_solver() -> bool:
    from methods import cartkin_solve_ode

    return cartkin_solve_ode() is not None


def _fresh_method(results) -> str:
    """The cartkin method that was fastest on cart4 (falls back to the design default)."""
    rows = results["problems"].get("cart4", {}).get("rows", [])
    ours = [r for r in rows if r["family"] == "cartkin" and r.get("median_s") is not None]
    if not ours:
        return "rodas5"
    return min(ours, key=lambda r: r["median_s"])["key"].split(":", 1)[1]


if __name__ == "__main__":
    main()
