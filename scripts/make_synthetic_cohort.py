"""Generate the SYNTHETIC example cohort shipped in cartkin/data/examples/.

    python scripts/make_synthetic_cohort.py [OUTDIR]   # rewrites the files below (or into OUTDIR)

Writes
    cartkin/data/examples/synthetic_cohort.csv        NONMEM-style dataset (40 patients)
    cartkin/data/examples/synthetic_cohort_truth.csv  the parameters each patient was simulated with
    cartkin/data/examples/synthetic_cohort_long.csv   the same data in the long format

The data are simulated, not observed: the ``sle_cart_v1`` model with its default parameters as
typical values, log-normal between-patient variability on four parameters, log-normal residual
error, and censoring below an LLOQ. A fixed seed makes the files reproducible (same numpy
version: the generator is ``numpy.random.default_rng(SEED)``).

Choices (each is a source or an assumption, stated as such):

- Between-patient variability, omega^2 on the log scale, from Stein AM et al., CPT
  Pharmacometrics Syst Pharmacol 2019;8:285, Table 1 (MODEL.md section 2), mapped onto the
  sle_cart parameter with the same role: ``delta_E`` <- alpha (0.91), ``k_EM`` <- FB (0.8),
  ``delta_M`` <- beta (0.86). ``rho`` has no Stein counterpart; derived: rho ~ ln(foldx)/Tmax, so
  var(log rho) ~ (sd(log foldx)/ln 3900)^2 + var(log Tmax) = 2.4/8.27^2 + 0.38 = 0.41.
  A draw outside the parameter table's bounds is redrawn (a truncated log-normal; with these
  omegas it affects only large rho draws, above 5/day), so the empirical variance of rho is
  slightly below 0.41: compare fits with the truth file, not with OMEGA2 alone.
- Residual error: additive on the log scale (log-normal), SD sqrt(0.56) = 0.75 for CAR-T
  (assumption: Stein's residual 0.56 read as a variance) and 0.3 for B cells (assumption: flow
  counts of a major lymphocyte subset are more precise than a rare-cell count).
- LLOQ: CAR-T 0.05 cells/uL (flow, MODEL.md section 5); B cells 1 cell/uL (assumption: the
  usual quantification of CD19+ cells, also the aplasia threshold of cartkin.metrics).
- Covariates (assumption: an adult SLE cohort): weight log-normal around 65 kg (CV 20%), height
  normal 168 +/- 9 cm, age uniform 18-60 years, 85% female, eGFR uniform 30-120 mL/min/1.73m2 so
  kidney function (through fludarabine exposure) varies across the cohort.
- Dose: 1e5, 3e5 or 1e6 CAR-T cells/kg (the SLE dose levels in MODEL.md section 2), assigned in
  turn; written as EVID=1 rows with AMT in total cells. Lymphodepletion: the package default
  (fludarabine 25 mg/m2/day days -5..-3, cyclophosphamide 1000 mg/m2 day -3).
- Sampling (assumption, a typical CAR-T trial schedule): CAR-T on days 1, 3, 7, 10, 14, 21, 28,
  42, 56, 90, 120, 180; B cells on days 1, 7, 14, 28, 56, 90, 120, 150, 180.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np

import cartkin

SEED = 20261129
N_PATIENTS = 40
MODEL = "sle_cart_v1"
OMEGA2 = {"rho": 0.41, "delta_E": 0.91, "k_EM": 0.8, "delta_M": 0.86}
SIGMA_LOG = {"cart": math.sqrt(0.56), "b_cells": 0.3}
LLOQ = {"cart": 0.05, "b_cells": 1.0}
DOSES_PER_KG = (1e5, 3e5, 1e6)
DAYS = {
    "cart": (1, 3, 7, 10, 14, 21, 28, 42, 56, 90, 120, 180),
    "b_cells": (1, 7, 14, 28, 56, 90, 120, 150, 180),
}
OUT = Path(__file__).resolve().parents[1] / "cartkin" / "data" / "examples"

HEADER_LINES = (
    "SYNTHETIC DATA: simulated by scripts/make_synthetic_cohort.py (seed {seed}), not observed.",
    "Model sle_cart_v1, defaults as typical values; log-normal between-patient variability on "
    "rho, delta_E, k_EM, delta_M (omega^2 {omega}); log-normal residual error (log-scale SD "
    "CAR-T {s_c:.3f}, B cells {s_b:.2f}); CENS=1 below LIMIT (CAR-T 0.05, B cells 1 cells/uL).",
    "TIME in days from the CAR-T infusion; AMT in CAR-T cells; SEX F/M; EGFR in mL/min/1.73m2. "
    "True parameters per ID: synthetic_cohort_truth.csv. See README.md in this folder.",
)


def _covariates(rng, i):
    sex = "female" if rng.random() < 0.85 else "male"
    return {
        "weight_kg": round(float(65.0 * math.exp(rng.normal(0.0, 0.2))), 1),
        "height_cm": round(float(rng.normal(168.0 if sex == "male" else 163.0, 9.0)), 0),
        "age_years": round(float(rng.uniform(18.0, 60.0)), 0),
        "sex": sex,
        "egfr_ml_min_173m2": round(float(rng.uniform(30.0, 120.0)), 0),
        "dose_cells_per_kg": DOSES_PER_KG[i % len(DOSES_PER_KG)],
    }


def _draw_eta(rng, model, name, typical):
    """A log-normal random effect, redrawn while the value leaves the table's bounds."""
    par = model.parameters[name]
    while True:
        eta = float(rng.normal(0.0, math.sqrt(OMEGA2[name])))
        if par.lower <= typical * math.exp(eta) <= par.upper:
            return eta


def main(out: Path = OUT) -> None:
    """Write the three files into ``out`` (default: the package's examples folder)."""
    rng = np.random.default_rng(SEED)
    model = cartkin.models.get(MODEL)
    typical = model.parameters.defaults()
    base_ld = cartkin.Lymphodepletion()
    rows, truth = [], []
    for i in range(N_PATIENTS):
        pid = str(i + 1)
        cov = _covariates(rng, i)
        eta = {k: _draw_eta(rng, model, k, typical[k]) for k in OMEGA2}
        theta = {k: float(typical[k] * math.exp(e)) for k, e in eta.items()}
        patient = cartkin.Patient(
            weight_kg=cov["weight_kg"],
            height_cm=cov["height_cm"],
            age_years=cov["age_years"],
            sex=cov["sex"],
            egfr_ml_min_173m2=cov["egfr_ml_min_173m2"],
        )
        cells = cov["dose_cells_per_kg"] * cov["weight_kg"]
        regimen = cartkin.Regimen(lymphodepletion=base_ld, cart=cartkin.CarTDose(flat_cells=cells))
        times = sorted({0.0, *DAYS["cart"], *DAYS["b_cells"]})
        res = cartkin.simulate(model, patient, regimen, np.array(times), theta=theta)
        truth.append({"ID": pid, **theta, **{f"eta_{k}": v for k, v in eta.items()}})
        covs = {
            "WT": cov["weight_kg"],
            "HT": cov["height_cm"],
            "AGE": cov["age_years"],
            "SEX": "F" if cov["sex"] == "female" else "M",
            "EGFR": cov["egfr_ml_min_173m2"],
        }
        rows.append(
            {"ID": pid, "TIME": 0, "DV": ".", "MDV": 1, "EVID": 1, "AMT": f"{cells:.4g}",
             "DVID": ".", "CENS": 0, "LIMIT": ".", "UNIT": ".", **covs}
        )  # fmt: skip
        records = [(t, role) for role in ("cart", "b_cells") for t in DAYS[role]]
        for t, role in sorted(records, key=lambda r: (r[0], r[1] != "cart")):
            true = float(res.role(role)[times.index(float(t))])
            observed = true * math.exp(rng.normal(0.0, SIGMA_LOG[role]))
            cens = int(observed < LLOQ[role])
            rows.append(
                {"ID": pid, "TIME": t, "DV": "." if cens else f"{observed:.4g}", "MDV": 0,
                 "EVID": 0, "AMT": ".", "DVID": role, "CENS": cens, "LIMIT": LLOQ[role],
                 "UNIT": "cells/uL", **covs}
            )  # fmt: skip
    header = [
        line.format(seed=SEED, omega=OMEGA2, s_c=SIGMA_LOG["cart"], s_b=SIGMA_LOG["b_cells"])
        for line in HEADER_LINES
    ]
    path = out / "synthetic_cohort.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        for line in header:
            f.write(f"# {line}\n")
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    truth_path = out / "synthetic_cohort_truth.csv"
    with truth_path.open("w", newline="", encoding="utf-8") as f:
        f.write(f"# SYNTHETIC: true parameters of {path.name} (seed {SEED}); typical values are "
                f"the {MODEL} defaults; eta = log(value / typical)\n")  # fmt: skip
        writer = csv.DictWriter(f, fieldnames=list(truth[0]))
        writer.writeheader()
        writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()}
                         for r in truth)  # fmt: skip
    long_path = out / "synthetic_cohort_long.csv"
    long = cartkin.data.read(path, model=MODEL).to_long()
    with long_path.open("w", newline="", encoding="utf-8") as f:
        for line in header:
            f.write(f"# {line}\n")
        f.write(f"# The same data as {path.name}, in cartkin's long format.\n")
        long.to_csv(f, index=False)
    n_obs = sum(r["EVID"] == 0 for r in rows)
    n_cens = sum(r["EVID"] == 0 and r["CENS"] == 1 for r in rows)
    print(f"wrote {path} ({N_PATIENTS} patients, {n_obs} observations, {n_cens} censored) and "
          f"{truth_path} and {long_path}")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
