"""Predictions for the motivating patient across kidney function and CAR-T dose.

Prints a markdown table (Cmax, Tmax, B-cell recovery, fludarabine AUC) for the adolescent of
``scenarios/adolescent_hemodialysis_1e5.toml`` at eGFR 120/60/30/15 and on hemodialysis, for
CAR-T doses 0.3, 1, 3 x10^5 and 1x10^6 cells/kg, under both fludarabine clearance models.

    python scripts/motivating_case_grid.py
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cartkin
from cartkin import metrics

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "adolescent_hemodialysis_1e5.toml"
EGFRS = (120.0, 60.0, 30.0, 15.0, None)  # None: hemodialysis as in the scenario
DOSES = (3e4, 1e5, 3e5, 1e6)


def main() -> None:
    s = cartkin.load_scenario(SCENARIO)
    base = s.base
    print(
        "| clearance model | kidney | dose (cells/kg) | FLU_AUC (mg.h/L) | CMAX (cells/uL) "
        "| TMAX (d) | B aplasia (d) | TRECOV (d) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for clearance in ("langenhorst2019", "varela2025"):
        for egfr in EGFRS:
            if egfr is None:
                patient, kidney = base.patient, "hemodialysis"
            else:
                patient = dataclasses.replace(base.patient, dialysis=None, egfr_ml_min_173m2=egfr)
                kidney = f"eGFR {egfr:g}"
            for dose in DOSES:
                regimen = dataclasses.replace(
                    base.regimen, cart=cartkin.CarTDose(cells_per_kg=dose)
                )
                r = cartkin.simulate(
                    s.model,
                    patient,
                    regimen,
                    s.t_days,
                    theta=base.theta,
                    clearance_model=clearance,
                    **s.solver,
                )
                m = {x.name: x.value for x in metrics.compute(r)}
                print(
                    f"| {clearance} | {kidney} | {dose:.1e} | {m['FLU_AUC']:.1f} | "
                    f"{m['CMAX']:.3g} | {m['TMAX']:.1f} | {m['APLASIA_DUR']:.0f} | "
                    f"{m['TRECOV']:.0f} |"
                )


if __name__ == "__main__":
    main()
