"""The single-patient path: warm ``cartkin.simulate`` and ``cartkin simulate SCENARIO`` wall time.

    python benchmarks/bench_single.py [--scenario PATH] [--runs 5] [--rounds 5] [--out FILE]

In one run:

1. **warm simulate**: the README patient (16 years, 50 kg, on hemodialysis; Erlangen
   lymphodepletion; 1e5 CAR-T cells/kg; outputs every 0.25 d to day 270; the default solver,
   rodas5 at rtol 1e-8) for ``sle_cart`` and ``sle_cart_v1``. After warm-up, calls are timed one
   at a time with ``time.perf_counter`` (garbage collector paused) in ``--rounds`` rounds that
   visit every item in turn (0.3 s per item per round), so machine load hits all alike; the
   median and the 25-75 % range are reported. The split times each stage alone the same way:
   ``build_context`` (fludarabine exposure), ``individualize`` (kernel inputs), ``solve_ode``
   (the compiled solve with its argument checks) and the rest (``simulate`` minus those three:
   output checks, observables, the result object).
2. **command line**: ``python -m cartkin.cli simulate SCENARIO`` (stdout discarded) in ``--runs``
   fresh processes after one untimed run (which compiles the kernel if the cache lacks it);
   median, min and max wall time. Then one fresh process that times the stages of the same work
   (imports, reading the scenario, the first compiled call, the first run, a second run,
   metrics) and ``python -X importtime`` of the command, whose largest top-level imports are
   listed (a nested import is counted in its parent).

Writes ``results/single.json`` (every number, the machine, versions and the environment that
affects start-up). The numba and cartkin cache folders are the caller's (``NUMBA_CACHE_DIR``,
``CARTKIN_CACHE_DIR``). Targets (issue 9): warm simulate under 2 ms, the command under 0.7 s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = ROOT / "scenarios" / "adolescent_hemodialysis_1e5.toml"
MODELS = ("sle_cart", "sle_cart_v1")
TARGET_SIMULATE_MS = 2.0
TARGET_CLI_S = 0.7
_ENV = ("NUMBA_CACHE_DIR", "CARTKIN_CACHE_DIR", "PYTHONDONTWRITEBYTECODE", "OPENBLAS_NUM_THREADS")
HEAVY = ("matplotlib", "scipy.special", "pandas", "xarray", "zarr", "dask", "tqdm")

# The stages of `cartkin simulate SCENARIO`, timed in a fresh interpreter (printed as JSON).
_STAGES_PROBE = r"""
import json, sys, time
import gc
t = [time.perf_counter()]
from cartkin import cli
cli.build_parser()
t.append(time.perf_counter())
freeze = getattr(cli, "console", None) is not None  # as the `cartkin` script does
if freeze:
    gc.freeze()
import numpy as np
from cartkin import metrics, ode
from cartkin.scenario import load_scenario
scenario = load_scenario(sys.argv[1])
t.append(time.perf_counter())
e = np.zeros(1)  # the first compiled call pays numba's one-time target set-up
ode._check_values(e, e, np.zeros(0), np.zeros((0, 1)))
t.append(time.perf_counter())
results = scenario.run()
t.append(time.perf_counter())
scenario.run()
t.append(time.perf_counter())
for r in results:
    metrics.compute(r, outcomes=scenario.outcomes)
t.append(time.perf_counter())
heavy = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"t": t, "heavy": heavy}), flush=True)
if freeze:
    gc.freeze()
""".replace("HEAVY", repr(HEAVY))
_STAGE_NAMES = (
    "import cartkin.cli + build the parser",
    "read the scenario",
    "first compiled call (numba target set-up)",
    "first scenario.run (kernel load + solves)",
    "second scenario.run (solves only)",
    "metrics.compute",
)


# ---------------------------------------------------------------------------------------------
def _readme_patient():
    import cartkin

    patient = cartkin.Patient(
        weight_kg=50, height_cm=160, age_years=16, sex="female",
        dialysis=cartkin.DialysisSchedule(session_days=(-7.5, -4.5, -2.5, -0.5)),
    )  # fmt: skip
    regimen = cartkin.Regimen(
        lymphodepletion=cartkin.Lymphodepletion(
            flu_mg_m2_per_day=25, flu_days=(-5, -4, -3), cy_mg_m2=1000, cy_days=(-3,),
            flu_rule="none",
        ),
        cart=cartkin.CarTDose(cells_per_kg=1e5),
    )  # fmt: skip
    return patient, regimen, np.arange(0.0, 270.25, 0.25)


def _items(name: str, patient, regimen, t_days) -> tuple[dict, dict]:
    """Callables to time for one model, and the solver's step counts."""
    import cartkin
    from cartkin import models
    from cartkin.covariates.regimen import build_context
    from cartkin.ode import solve_ode

    model = models.get(name)
    ctx = build_context(patient, regimen, "langenhorst2019")
    ind = model.individualize(None, ctx)
    grid = t_days if t_days[0] == ind.t0 else np.concatenate([[ind.t0], t_days])
    keep = ind.t_stops <= grid[-1]
    stops, jumps = ind.t_stops[keep], ind.jumps[keep]

    def solve():
        return solve_ode(
            model.rhs, ind.y0, grid, ind.p, jac=model.jac, t_stops=stops, jumps=jumps,
            method="rodas5", rtol=1e-8, atol=1e-10, max_steps=100_000,
        )  # fmt: skip

    reference = cartkin.simulate(name, patient, regimen, t_days)
    sol = solve()
    if not np.array_equal(sol.y[-t_days.size :], reference.states):
        raise RuntimeError(f"{name}: the timed solve is not the one simulate makes")
    items = {
        "simulate": lambda: cartkin.simulate(name, patient, regimen, t_days),
        "build_context": lambda: build_context(patient, regimen, "langenhorst2019"),
        "individualize": lambda: model.individualize(None, ctx),
        "solve_ode": solve,
    }
    counts = {"n_states": model.n_states, "n_steps": sol.n_steps, "n_rhs": sol.n_rhs,
              "n_jac": sol.n_jac, "analytic_jacobian": model.jac is not None}  # fmt: skip
    return items, counts


def _time_rounds(items: dict, rounds: int, seconds: float = 0.3) -> dict[str, np.ndarray]:
    """Per-call times (s) of every item, interleaved over rounds, gc paused."""
    times = {k: [] for k in items}
    for f in items.values():  # warm-up
        for _ in range(3):
            f()
    gc.disable()
    try:
        for _ in range(rounds):
            for key, f in items.items():
                end = time.perf_counter() + seconds
                n = 0
                while n < 5 or time.perf_counter() < end:
                    t0 = time.perf_counter()
                    f()
                    times[key].append(time.perf_counter() - t0)
                    n += 1
    finally:
        gc.enable()
    return {k: np.array(v) for k, v in times.items()}


def _stats_ms(x: np.ndarray) -> dict:
    q25, q50, q75 = np.percentile(x * 1e3, [25, 50, 75])
    return {"median_ms": q50, "q25_ms": q25, "q75_ms": q75, "n_calls": int(x.size)}


def warm_simulate(rounds: int) -> dict:
    patient, regimen, t_days = _readme_patient()
    out = {}
    for name in MODELS:
        items, counts = _items(name, patient, regimen, t_days)
        times = _time_rounds(items, rounds)
        stats = {k: _stats_ms(v) for k, v in times.items()}
        parts = ("build_context", "individualize", "solve_ode")
        rest = stats["simulate"]["median_ms"] - sum(stats[k]["median_ms"] for k in parts)
        out[name] = {"stages": stats, "rest_median_ms": rest, **counts}
    return out


# ---------------------------------------------------------------------------------------------
def _run(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    # this checkout's cartkin first, whatever else is installed
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, proc


def cli_wall(scenario: Path, runs: int) -> dict:
    cmd = [sys.executable, "-m", "cartkin.cli", "simulate", str(scenario)]
    first, _ = _run(cmd)  # compiles the kernel when the cache lacks it
    walls = np.array([_run(cmd)[0] for _ in range(runs)])
    bare = np.array([_run([sys.executable, "-c", "pass"])[0] for _ in range(runs)])
    return {
        "command": "python -m cartkin.cli simulate " + os.path.relpath(scenario, ROOT),
        "untimed_first_run_s": first,
        "median_s": float(np.median(walls)),
        "min_s": float(walls.min()),
        "max_s": float(walls.max()),
        "runs_s": walls.tolist(),
        "bare_interpreter_median_s": float(np.median(bare)),
    }


def cli_stages(scenario: Path) -> dict:
    wall, proc = _run([sys.executable, "-c", _STAGES_PROBE, str(scenario)])
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    t = probe["t"]
    stages = {name: (t[k + 1] - t[k]) * 1e3 for k, name in enumerate(_STAGE_NAMES)}
    # the probe runs one more scenario.run than the command does
    stages["interpreter start-up and exit (the rest of the wall time)"] = (
        wall - (t[-1] - t[0])
    ) * 1e3
    return {"stages_ms": stages, "heavy_modules_loaded": probe["heavy"]}


def import_offenders(scenario: Path, top: int) -> dict:
    _, proc = _run([sys.executable, "-X", "importtime", "-m", "cartkin.cli", "simulate",
                    str(scenario)])  # fmt: skip
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    top_level = sorted(((us, name) for us, depth, name in rows if depth == 0), reverse=True)
    loaded = {name for _, _, name in rows}
    return {
        "total_import_ms": sum(us for us, _ in top_level) / 1e3,
        "top_level_ms": [(name, us / 1e3) for us, name in top_level[:top]],
        "heavy_modules_imported": [m for m in HEAVY if m in loaded],
    }


# ---------------------------------------------------------------------------------------------
def _print_report(res: dict) -> None:
    print(f"# cartkin single-patient path ({res['machine']['date_utc']} UTC, load average "
          f"{res['machine']['load_average']})\n")  # fmt: skip
    print("## warm cartkin.simulate (README patient, rodas5 rtol 1e-8, 1081 outputs)\n")
    print("| model | states | steps | simulate median (IQR) | build_context | individualize "
          "| solve_ode | rest |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in res["warm_simulate"].items():
        s = r["stages"]
        print(f"| {name} | {r['n_states']} | {r['n_steps']} | "
              f"{s['simulate']['median_ms']:.3f} ms ({s['simulate']['q25_ms']:.3f}-"
              f"{s['simulate']['q75_ms']:.3f}) | {s['build_context']['median_ms']:.3f} | "
              f"{s['individualize']['median_ms']:.3f} | {s['solve_ode']['median_ms']:.3f} | "
              f"{r['rest_median_ms']:.3f} |")  # fmt: skip
    print(f"\ntarget: simulate under {TARGET_SIMULATE_MS:g} ms warm (stage columns in ms)\n")
    c = res["cli"]
    print(f"## `{c['command']}`\n")
    print(f"wall over {len(c['runs_s'])} fresh processes: median {c['median_s']:.3f} s "
          f"(min {c['min_s']:.3f}, max {c['max_s']:.3f}); bare interpreter "
          f"{c['bare_interpreter_median_s']:.3f} s; target {TARGET_CLI_S:g} s\n")  # fmt: skip
    print("stages in one fresh process (ms):")
    for name, ms in res["cli_stages"]["stages_ms"].items():
        print(f"  {ms:8.1f}  {name}")
    imp = res["imports"]
    print(f"\n`python -X importtime` of the command: {imp['total_import_ms']:.0f} ms of imports; "
          "largest top-level entries (ms, nested imports counted in their parent):")  # fmt: skip
    for name, ms in imp["top_level_ms"]:
        print(f"  {ms:8.1f}  {name}")
    print(f"heavy modules imported: {imp['heavy_modules_imported'] or 'none'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--runs", type=int, default=5, help="fresh CLI processes timed")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of warm-simulate timing")
    parser.add_argument("--top", type=int, default=12, help="import offenders listed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "single.json")
    args = parser.parse_args(argv)

    import numba

    import cartkin

    res = {
        "machine": {
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "cartkin": cartkin.__version__,
            "env": {k: os.environ.get(k) for k in _ENV},
        },
        "warm_simulate": warm_simulate(args.rounds),
        "cli": cli_wall(args.scenario, args.runs),
        "cli_stages": cli_stages(args.scenario),
        "imports": import_offenders(args.scenario, args.top),
    }
    _print_report(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=float) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
