"""The numbers of docs/models/sle_cart_v3_science.md, sections 6 and 7 (v3 beside v2).

Section 7's mechanism check (product survival in the dialysis arms, the peak against
fludarabine exposure with the drug gone by infusion, and an uncalibrated ``I_50`` sensitivity)
is printed after the v3/v2 comparison. Run: ``python scripts/sle_cart_v3_report.py`` (about a
minute). Scenarios as in
``tests/test_sle_cart_v3.py``: lymphoma (70 kg, eGFR 90, Flu 30/Cy 500 mg/m2 x3), Erlangen (60
kg, eGFR 100, Flu 25 x3/Cy 1000) and the adolescent case (50 kg, Flu 25 x3/Cy 1000, 1e5/kg) at
several kidney functions and on hemodialysis with sessions after each fludarabine dose or none
until after infusion.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_sle_cart_v3 import (
    AFTER_EACH,
    NONE_UNTIL,
    adolescent,
    erlangen,
    lymphoma,
    post_peak_half_life,
    terminal_half_life,
)

from cartkin import metrics
from cartkin.models import sle_cart
from cartkin.simulate import simulate_context

T = np.arange(0.0, 366.0, 0.25)


def doubling_time(res):
    t, c = res.t_days, res.role("cart")
    tmax = t[int(np.argmax(c))]
    sel = (t >= 1.0) & (t <= tmax - 2.0)
    return math.log(2.0) / np.polyfit(t[sel], np.log(c[sel]), 1)[0]


def main() -> int:
    for model in ("sle_cart", "sle_cart_v2"):
        print(f"== {model}")
        for label, make, doses in (("lymphoma", lymphoma, (2e5, 1e6, 2e6, 3e6)),
                                   ("erlangen", erlangen, (1e5, 3e5, 1e6, 3e6))):  # fmt: skip
            for dose in doses:
                r = simulate_context(model, make(dose), T)
                c = r.role("cart")
                k = int(np.argmax(c))
                trecov = metrics.compute(r, b_cell_threshold_cells_per_ul=10.0).value("TRECOV")
                print(f"{label} {dose:.0e}/kg: Cmax {c[k]:.3g} cells/uL, Tmax {r.t_days[k]:.2f} d, "
                      f"{r.role('cart_percent_t')[k]:.3g}% of T cells, "
                      f"{r.role('cart_copies')[k]:.4g} copies/ug, doubling "
                      f"{doubling_time(r):.2f} d, post-peak half-life "
                      f"{post_peak_half_life(r):.2f} d, terminal {terminal_half_life(r):.0f} d, "
                      f"B-cell return {trecov:.1f} d")  # fmt: skip
        for egfr in (120.0, 60.0, 30.0, 15.0, 5.0, 2.5):
            r = simulate_context(model, adolescent(egfr), T[:240])
            residual = r.evaluate([0.0]).observables["fludarabine_mg_per_l"][0]
            print(f"adolescent eGFR {egfr:g}: Cmax {r.role('cart').max():.3g} cells/uL, "
                  f"AUC {r.exposure.auc_mg_h_per_l:.1f} mg.h/L, F-ara-A at infusion "
                  f"{residual:.4f} mg/L")  # fmt: skip
        for rule in ("none", "renal_bands"):
            for removal in (0.3, 0.5, 0.8):
                a = simulate_context(model, adolescent(2.5, AFTER_EACH, removal, rule), T[:240])
                b = simulate_context(model, adolescent(2.5, NONE_UNTIL, removal, rule), T[:240])
                ca, cb = a.role("cart").max(), b.role("cart").max()
                print(f"dialysis, dose rule {rule}, removal {removal}: sessions after each dose "
                      f"Cmax {ca:.4g} (AUC {a.exposure.auc_mg_h_per_l:.1f}), none until after "
                      f"infusion {cb:.4g} (AUC {b.exposure.auc_mg_h_per_l:.1f}), ratio "
                      f"{cb / ca:.3f}")  # fmt: skip
    t_fine = np.arange(0.0, 30.0, 0.01)
    for label, sessions in (("after each dose", AFTER_EACH), ("none until after infusion", NONE_UNTIL)):
        r = simulate_context("sle_cart", adolescent(2.5, sessions, 0.5), t_fine)
        kill = np.trapezoid(sle_cart.PARAMETERS["phi_C"].default * r.state("Kc_2"), t_fine)
        print(f"dialysis, removal 0.5, sessions {label}: product kill integral {kill:.3f}, "
              f"survival {math.exp(-kill):.3f}")  # fmt: skip
    # does the lymphodepletion benefit saturate? eGFR 120 (drug gone by infusion), phi_C 0
    for flu in (5.0, 10.0, 15.0, 25.0, 40.0, 60.0):
        ctx = adolescent(120.0, flu_mg_m2=flu)
        r = simulate_context("sle_cart", ctx, T[:240], {"phi_C": 0.0})
        print(f"eGFR 120, Flu {flu:g} mg/m2 x3, phi_C 0: AUC {r.exposure.auc_mg_h_per_l:.1f} "
              f"mg.h/L, Cmax {r.role('cart').max():.3f} cells/uL, T-cell nadir "
              f"{r.state('N').min():.1f}, IL-15 peak {r.state('I').max():.2f} pg/mL")  # fmt: skip
    for i50 in (1.0, 0.3, 0.1):  # uncalibrated sensitivity, not a default
        peaks = {}
        for phi in (0.0, 2.4):
            for label, sessions in (("after", AFTER_EACH), ("none", NONE_UNTIL)):
                r = simulate_context("sle_cart", adolescent(2.5, sessions, 0.5), T[:240],
                                     {"I_50": i50, "phi_C": phi})  # fmt: skip
                peaks[phi, label] = r.role("cart").max()
        print(f"I_50 {i50:g}: peak ratio none until / after each, phi_C 0 "
              f"{peaks[0.0, 'none'] / peaks[0.0, 'after']:.3f}, phi_C 2.4 "
              f"{peaks[2.4, 'none'] / peaks[2.4, 'after']:.3f}")  # fmt: skip
    for phi in (0.0, 1.0, 2.4, 3.0, 4.0, 6.0):
        a = simulate_context("sle_cart", adolescent(2.5, AFTER_EACH, 0.5), T[:240], {"phi_C": phi})
        b = simulate_context("sle_cart", adolescent(2.5, NONE_UNTIL, 0.5), T[:240], {"phi_C": phi})
        print(f"phi_C {phi:g}: peak ratio none until / after each {b.role('cart').max() / a.role('cart').max():.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
