"""Time a cartkin fit against the peer a modeler would write today, in one run.

Run from the repository root::

    python benchmarks/bench_fit.py            # -> benchmarks/results/fit.json and fit.md
    python benchmarks/bench_fit.py --repeats 1

Problem (the issue's target): one patient (the Erlangen scenario: adult, 1e6 CAR-T cells/kg after
Flu/Cy), sle_cart CAR-T counts (cells/uL) at 12 days from 1 to 150, simulated from rho 1.3,
delta_E 0.12, delta_M 0.05 with log-normal noise (sd 0.3, seed 5) and censored below an LLOQ of
0.5 cells/uL. Four parameters: rho, delta_E, delta_M and the residual SD on the log scale.
Eight starts (the same Latin hypercube points for both sides, seed 0).

- cartkin: :func:`cartkin.fit.estimate.fit`, M3 likelihood, every objective and gradient through
  one batch-engine call; timed without profiles (``profile=False``: the multistart ML fit with
  Hessian SEs), and once more with profile-likelihood intervals.
- peer: ``scipy.optimize.least_squares`` (trf, bounds, 2-point finite differences) on the log
  residuals, one :func:`cartkin.simulate.simulate` call per residual evaluation, looping over the
  same 8 starts, records below the LLOQ deleted (what least squares allows); the residual SD is
  concentrated out (RMS of the residuals).

Reported: wall time per fit (the best of ``--repeats`` runs, after one warm-up that compiles),
the ratio peer / cartkin, the number of simulations each made, and accuracy beside it: each
side's estimates against the truth, and the M3 -2LL of each side's estimates under the same
likelihood. Shared 2-core machine: treat times as +/- 30%.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cartkin.covariates.patient import Patient  # noqa: E402
from cartkin.covariates.regimen import Regimen, build_context  # noqa: E402
from cartkin.fit.estimate import fit_problem, start_points  # noqa: E402
from cartkin.fit.problem import Problem  # noqa: E402
from cartkin.simulate import simulate  # noqa: E402

TRUTH = {"rho": 1.3, "delta_E": 0.12, "delta_M": 0.05}
SIGMA, LLOQ, SEED, STARTS = 0.3, 0.5, 5, 8
T_DAYS = np.array([1, 2, 4, 7, 9, 11, 14, 21, 28, 56, 90, 150.0])
OBS = "cart_cells_per_ul"


def setup():
    patient = Patient(weight_kg=60, height_cm=165, age_years=22, sex="female",
                      egfr_ml_min_173m2=100)  # fmt: skip
    regimen = Regimen(
        lymphodepletion={"flu_mg_m2_per_day": 25.0, "flu_days": (-5, -4, -3),
                         "cy_mg_m2": 1000.0, "cy_days": (-3,)},
        cart={"cells_per_kg": 1e6},
    )  # fmt: skip
    y = simulate("sle_cart", patient, regimen, T_DAYS, TRUTH).observables[OBS]
    dv = y * np.exp(np.random.default_rng(SEED).normal(0.0, SIGMA, T_DAYS.size))
    cens = (dv < LLOQ).astype(int)
    obs = {"id": np.zeros(T_DAYS.size, int), "time_days": T_DAYS, "observable": [OBS] * T_DAYS.size,
           "value": np.where(cens == 1, np.nan, dv), "cens": cens,
           "limit": np.full(T_DAYS.size, LLOQ)}  # fmt: skip
    return patient, regimen, obs


def run_cartkin(patient, regimen, obs, profile):
    """The fit from the data: build the problem (context included) and fit."""
    ctx = build_context(patient, regimen)
    problem = Problem("sle_cart", {0: ctx}, obs, list(TRUTH), free_error="all")
    result = fit_problem(problem, starts=STARTS, seed=0, profile=profile)
    result.n_simulated = problem.n_simulated
    return result


def run_peer(patient, regimen, obs, x0s):
    """least_squares over cartkin.simulate, censored records deleted, from each start."""
    from scipy.optimize import least_squares

    from cartkin import models

    table = models.get("sle_cart").parameters
    keep = obs["cens"] == 0
    t, log_dv = T_DAYS[keep], np.log(obs["value"][keep])
    names = list(TRUTH)
    lo = np.log([max(table[n].lower, 1e-3 * table[n].default) for n in names]) + 1e-9
    hi = np.log([table[n].upper for n in names]) - 1e-9
    n_sim = 0

    def residuals(z):
        nonlocal n_sim
        n_sim += 1
        theta = dict(zip(names, np.exp(z), strict=True))
        y = simulate("sle_cart", patient, regimen, t, theta).observables[OBS]
        return np.log(np.maximum(y, 1e-300)) - log_dv

    best = None
    for x0 in x0s:
        r = least_squares(residuals, np.clip(x0[: len(names)], lo, hi), bounds=(lo, hi))
        if best is None or r.cost < best.cost:
            best = r
    sigma = float(np.sqrt(np.mean(best.fun**2)))
    return dict(zip(names, np.exp(best.x).tolist(), strict=True)), sigma, n_sim


def m3_objective(patient, regimen, obs, values, sigma):
    """-2LL (M3, log error) of one parameter set: the same yardstick for both sides."""
    ctx = build_context(patient, regimen)
    prob = Problem("sle_cart", {0: ctx}, obs, list(TRUTH), free_error="all")
    x = np.log([*(values[n] for n in TRUTH), sigma])
    return float(sum(v[0] for v in prob.terms(x[None, :])))


def timed(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    patient, regimen, obs = setup()
    ctx = build_context(patient, regimen)
    x0s = start_points(Problem("sle_cart", {0: ctx}, obs, list(TRUTH), free_error="all"), STARTS, 0)

    t0 = time.perf_counter()
    run_cartkin(patient, regimen, obs, profile=False)  # warm-up: compile or load the kernels
    first_s = time.perf_counter() - t0
    run_peer(patient, regimen, obs, x0s[:1])
    t_ck, res = timed(lambda: run_cartkin(patient, regimen, obs, False), args.repeats)
    t_prof, res_prof = timed(lambda: run_cartkin(patient, regimen, obs, True), 1)
    t_peer, (peer_vals, peer_sigma, n_sim_peer) = timed(
        lambda: run_peer(patient, regimen, obs, x0s), args.repeats
    )
    n_sim_ck = res.n_simulated
    ck_vals = res.values
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
        "problem": f"sle_cart, 1 patient, {T_DAYS.size} records ({int(obs['cens'].sum())} "
        f"below LLOQ {LLOQ}), 4 parameters, {STARTS} starts",
        "first_fit_s": first_s,
        "cartkin_fit_s": t_ck,
        "cartkin_fit_with_profiles_s": t_prof,
        "peer_fit_s": t_peer,
        "ratio_peer_over_cartkin": t_peer / t_ck,
        "target_s": 1.0,
        "target_met": bool(t_ck < 1.0),
        "simulations": {"cartkin": n_sim_ck, "peer": n_sim_peer},
        "truth": {**TRUTH, "sigma": SIGMA},
        "cartkin_estimates": ck_vals,
        "cartkin_ci": {e.name: [e.ci_low, e.ci_high] for e in res_prof.estimates},
        "peer_estimates": {**peer_vals, "sigma": peer_sigma},
        "m3_neg2ll": {
            "cartkin": m3_objective(patient, regimen, obs, ck_vals, list(ck_vals.values())[-1]),
            "peer": m3_objective(patient, regimen, obs, peer_vals, peer_sigma),
        },
        "cartkin_starts_agree": f"{res.starts_agree}/{STARTS}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fit.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "| fit (8 starts, 4 parameters) | time per fit (s) | simulations | rho | delta_E | delta_M | sigma | M3 -2LL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, t, n, vals, m3 in (
        ("cartkin (M3, batched)", t_ck, n_sim_ck, ck_vals, report["m3_neg2ll"]["cartkin"]),
        ("peer (least_squares + simulate, deletion)", t_peer, n_sim_peer,
         report["peer_estimates"], report["m3_neg2ll"]["peer"]),
    ):  # fmt: skip
        v = list(vals.values())
        lines.append(f"| {label} | {t:.3g} | {n} | " + " | ".join(f"{x:.4g}" for x in v)
                     + f" | {m3:.3f} |")  # fmt: skip
    lines.append(
        f"| truth | | | {TRUTH['rho']} | {TRUTH['delta_E']} | {TRUTH['delta_M']} | {SIGMA} | |"
    )
    lines.append("")
    lines.append(f"ratio peer / cartkin: {t_peer / t_ck:.2f}x; cartkin with profile intervals: "
                 f"{t_prof:.3g} s; first fit in a process (compile/cache load): {first_s:.3g} s; "
                 f"target < 1 s: {'met' if t_ck < 1 else 'NOT met'}")  # fmt: skip
    (args.out / "fit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
