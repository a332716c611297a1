"""Time and accuracy of cartkin's population fit (SAEM) against a naive two-stage peer.

Run from the repository root::

    python benchmarks/bench_population.py              # 40 patients, seeds 0-4 -> results/
    python benchmarks/bench_population.py --seeds 1    # one cohort (about a minute)
    python benchmarks/bench_population.py --quick      # 12 patients, short run (smoke test)

Problem (the issue's target): a SYNTHETIC cohort of 40 patients from ``stein2019`` with
log-normal variability on 4 parameters (cmax, foldx, tmax, alpha; omega2 0.5, 0.5, 0.1, 0.3),
qPCR transgene levels on 11 days (1-180), log-normal residual error sd 0.3 and records below
an LLOQ of 50 copies/ug censored (CENS=1). Fits start from values 2-4x away from the truth.

- cartkin: :func:`cartkin.fit.population.fit_population` with its defaults (SAEM 5 + 200 + 100
  iterations; EBEs; -2LL by importance sampling with 500 samples per subject; NPDE with 500
  replicates; Louis standard errors), batch engine, 1 numba thread.
- peer: the naive two-stage approach a modeler can write today in Python (there is no SAEM in
  scipy): per patient, ``scipy.optimize.least_squares`` on log residuals over the 4 log
  parameters through ``cartkin.simulate_context`` (context built once per patient), censored
  records deleted (the usual shortcut, which M3 replaces); then typical value = geometric mean
  and omega2 = variance of the individual log estimates.

Reported per cohort: wall time, iterations, model solves, errors of typical values
(``log(estimate / true typical)``) and of omega2 (``estimate / true omega2``), both against the
population truth and against the cohort's realised individual values (geometric mean and
variance of the true log values), and the mean over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from cartkin.fit.population import SAEMOptions, fit_population  # noqa: E402
from cartkin.fit.synthetic import synthetic_cohort  # noqa: E402

OBS = "transgene_copies_per_ug"
TYPICAL = {"cmax": 24000.0, "foldx": 3900.0, "tmax": 9.3, "alpha": 0.16}
OMEGA2 = {"cmax": 0.5, "foldx": 0.5, "tmax": 0.1, "alpha": 0.3}
START = {"cmax": 10000.0, "foldx": 1000.0, "tmax": 7.0, "alpha": 0.3}
SIGMA_LOG = 0.3
LLOQ = 50.0


def two_stage(subjects):
    """Naive two-stage fit: least_squares per patient (censored records deleted)."""
    from scipy.optimize import least_squares

    import cartkin

    names = list(TYPICAL)
    x0 = np.log([START[k] for k in names])
    lower = np.log([cartkin.models.get("stein2019").parameters[k].lower for k in names])
    upper = np.log([cartkin.models.get("stein2019").parameters[k].upper for k in names])
    lower, upper = np.maximum(lower, x0 - 12), np.minimum(upper, x0 + 12)
    estimates, n_sims = [], 0
    for s in subjects:
        keep = s.cens == 0
        t, y = s.t_days[keep], s.value[keep]

        def resid(x, ctx=s.context, t=t, y=y):
            nonlocal n_sims
            n_sims += 1
            theta = dict(zip(names, np.exp(x), strict=True))
            res = cartkin.simulate_context(
                "stein2019", ctx, t, theta, method="tsit5", rtol=1e-6, atol=1e-9
            )
            pred = res.observables[OBS]
            return np.log(np.maximum(pred, 1e-300)) - np.log(y)

        fit = least_squares(resid, x0, bounds=(lower, upper), x_scale=1.0)
        estimates.append(fit.x)
    est = np.array(estimates)
    typical = {k: float(np.exp(est[:, j].mean())) for j, k in enumerate(names)}
    omega2 = {k: float(est[:, j].var(ddof=1)) for j, k in enumerate(names)}
    return typical, omega2, n_sims


def run_cohort(n, seed, options, n_is, n_npde, peer=True):
    subjects, truth = synthetic_cohort(
        "stein2019", n, TYPICAL, OMEGA2, observable=OBS, sigma_log=SIGMA_LOG, lloq=LLOQ, seed=seed
    )
    n_cens = int(sum((s.cens != 0).sum() for s in subjects))
    t0 = time.perf_counter()
    res = fit_population(
        "stein2019",
        subjects,
        list(TYPICAL),
        init=START,
        options=options,
        n_is_samples=n_is,
        n_npde_sims=n_npde,
    )
    t_fit = time.perf_counter() - t0
    realised_typ = {k: float(np.exp(np.log(v).mean())) for k, v in truth.items()}
    realised_om = {k: float(np.log(v).var()) for k, v in truth.items()}
    row = {
        "seed": seed,
        "n_subjects": n,
        "n_records": int(sum(len(s.t_days) for s in subjects)),
        "n_censored": n_cens,
        "cartkin": {
            "time_s": t_fit,
            "iterations": int(res.trajectory.shape[0]),
            "solves": res.n_solves,
            "converged": res.converged,
            "objective": res.objective,
            "typical": {k: res.estimates[k]["value"] for k in TYPICAL},
            "omega2": {k: res.omega[k]["omega2"] for k in TYPICAL},
            "sigma": res.estimates[f"{OBS}.sigma_add"]["value"],
            "ebe_corr": {
                k: float(np.corrcoef(np.log(res.ebes[k]), np.log(truth[k]))[0, 1]) for k in TYPICAL
            },
        },
        "truth_realised": {"typical": realised_typ, "omega2": realised_om},
    }
    if peer:
        t0 = time.perf_counter()
        typ, om, n_sims = two_stage(subjects)
        row["two_stage"] = {
            "time_s": time.perf_counter() - t0,
            "solves": n_sims,
            "typical": typ,
            "omega2": om,
        }
    for who in ("cartkin", "two_stage"):
        if who not in row:
            continue
        r = row[who]
        r["typical_log_error"] = {k: math.log(r["typical"][k] / TYPICAL[k]) for k in TYPICAL}
        r["omega2_ratio"] = {k: r["omega2"][k] / OMEGA2[k] for k in TYPICAL}
        r["typical_log_error_vs_realised"] = {
            k: math.log(r["typical"][k] / realised_typ[k]) for k in TYPICAL
        }
        r["omega2_ratio_vs_realised"] = {k: r["omega2"][k] / realised_om[k] for k in TYPICAL}
    return row


def markdown(rows, args):
    lines = [
        f"Population fit benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, command: `{' '.join(sys.argv)}`)",
        "",
        f"Load average (1 min) at start and end: {args.load[0]:.1f}, {args.load[1]:.1f} "
        "(2 cores shared with other jobs).",
        "",
        "| seed | method | time (s) | solves | converged | "
        + " | ".join(f"{k} log-err" for k in TYPICAL)
        + " | "
        + " | ".join(f"omega2 {k} ratio" for k in TYPICAL)
        + " |",
        "|---" * (5 + 2 * len(TYPICAL)) + "|",
    ]
    for row in rows:
        for who in ("cartkin", "two_stage"):
            if who not in row:
                continue
            r = row[who]
            lines.append(
                f"| {row['seed']} | {who} | {r['time_s']:.1f} | {r['solves']} | "
                f"{r.get('converged', '-')} | "
                + " | ".join(f"{r['typical_log_error_vs_realised'][k]:+.3f}" for k in TYPICAL)
                + " | "
                + " | ".join(f"{r['omega2_ratio_vs_realised'][k]:.2f}" for k in TYPICAL)
                + " |"
            )
    lines += [
        "",
        "Errors against each cohort's realised values (geometric mean and variance of "
        "the true individual log values). Mean |log error| over seeds:",
        "",
    ]
    for who in ("cartkin", "two_stage"):
        rs = [row[who] for row in rows if who in row]
        if not rs:
            continue
        typ = {
            k: np.mean([abs(r["typical_log_error_vs_realised"][k]) for r in rs]) for k in TYPICAL
        }
        om = {
            k: np.mean([abs(math.log(r["omega2_ratio_vs_realised"][k])) for r in rs])
            for k in TYPICAL
        }
        t = np.mean([r["time_s"] for r in rs])
        lines.append(
            f"- {who}: mean time {t:.1f} s; typical "
            + ", ".join(f"{k} {v:.3f}" for k, v in typ.items())
            + "; |log omega2 ratio| "
            + ", ".join(f"{k} {v:.2f}" for k, v in om.items())
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seeds", type=int, default=5, help="number of cohorts (seeds 0..N-1)")
    ap.add_argument("--subjects", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="12 patients, short SAEM, no peer")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    if args.quick:
        args.subjects, args.seeds = 12, 1
        options, n_is, n_npde = SAEMOptions(n_explore=30, n_average=20, seed=1), 50, 50
    else:
        options, n_is, n_npde = SAEMOptions(seed=1), 500, 500
    load_start = os.getloadavg()[0]
    rows = []
    for seed in range(args.seeds):
        row = run_cohort(
            args.subjects, seed, options, n_is, n_npde, peer=not (args.quick or args.no_peer)
        )
        rows.append(row)
        c = row["cartkin"]
        print(
            f"seed {seed}: cartkin {c['time_s']:.1f} s, {c['iterations']} iterations, "
            f"{c['solves']} solves, converged {c['converged']}; typical log-err "
            + " ".join(f"{k} {v:+.3f}" for k, v in c["typical_log_error_vs_realised"].items())
            + "; omega2 ratio "
            + " ".join(f"{k} {v:.2f}" for k, v in c["omega2_ratio_vs_realised"].items()),
            flush=True,
        )
        if "two_stage" in row:
            p = row["two_stage"]
            print(
                f"         two-stage {p['time_s']:.1f} s, {p['solves']} solves; typical log-err "
                + " ".join(f"{k} {v:+.3f}" for k, v in p["typical_log_error_vs_realised"].items())
                + "; omega2 ratio "
                + " ".join(f"{k} {v:.2f}" for k, v in p["omega2_ratio_vs_realised"].items()),
                flush=True,
            )
    args.load = (load_start, os.getloadavg()[0])
    out = Path(args.out) / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": " ".join(sys.argv),
        "date_utc": datetime.now(UTC).isoformat(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "load_average_start_end": args.load,
        "typical": TYPICAL,
        "omega2": OMEGA2,
        "sigma_log": SIGMA_LOG,
        "lloq": LLOQ,
    }
    (out / "population.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    md = markdown(rows, args)
    (out / "population.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
