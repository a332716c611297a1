"""Validate sle_cart v3 against published data that the calibration did not use.

The calibration (``scripts/calibrate_sle_cart_v3.py``) used Stein 2019's Tmax and alpha, one
lymphoma flow-cytometry peak (Blood Adv 2021;5:2523), the absence of a dose-Cmax relationship
(Mueller 2017, Awasthi 2020) and Mackensen 2022's B-cell return. Each row here is a different
study, with the model value, the published value and the window the model must fall in:

1. B-cell recovery 2-6 months after BCMA-CD19 compound CAR-T at 3e6 cells/kg in lupus
   nephritis (Ann Rheum Dis 2024;83:1304, abstract: "complete recovery of B cells was seen in
   2-6 months"). Model: the Erlangen regimen at 3e6 cells/kg (the product's CD19 arm only;
   the BCMA arm is not modelled), first return to >= 10 cells/uL. Window 60-180 d.
2. CAR-T peak within 2 weeks after axi-cel in lymphoma (ZUMA-1 phase 1, Locke FL et al., Mol
   Ther 2017;25:285, abstract: "peak expansion within 2 weeks"). Model: Flu 30/Cy 500 x3, 2e6
   cells/kg. Window 7-14 d (a peak before day 7 would contradict Stein's 9.3 d).
3. Serum IL-15 peak at a median of day +2 after Cy/Flu (Kochenderfer JN et al., J Clin Oncol
   2017;35:1803). Model: the lymphoma scenario. Window 0-5 d.
4. CAR-T detectable by flow cytometry for up to 554 days in responders (JULIET, Awasthi 2020,
   Blood Adv 4:560, abstract). Model: lymphoma scenario at 4e6 cells/kg (JULIET's median dose
   about 3e8 cells at about 75 kg); blood CAR-T at day 554 above a flow LLOQ of 0.05 cells/uL
   (cartkin.metrics). Window > 0.05 cells/uL.
5. Tisagenlecleucel persists for years (Mueller 2017): terminal half-life over days 180-365
   at 1e6 cells/kg (Erlangen scenario) in the 100-1000 d range that a year-long persistence
   needs. Window 100-1000 d. Stein's beta sets it (a calibration input, fixed, not fitted):
   this row checks that nothing else in the model shortens it.
6. SLE against lymphoma in one centre (Mueller F et al., Blood 2025, doi
   10.1182/blood.2025028375, abstract): "similar CAR T-cell expansion" in SLE and B-cell
   lymphoma, "CAR T-cell persistence was consistently shorter" and "the reconstitution of
   conventional T and B cells was faster in SLE". The abstract gives no numbers (nor the
   lymphoma cohort's product and dose), so the model is compared with itself at the same dose
   (1e6 cells/kg), Erlangen regimen against the lymphoma regimen: peak ratio SLE/lymphoma in
   0.5-2 (assumption: "similar" read as within twofold); persistence ratio (CAR-T at day 180
   relative to the peak, SLE over lymphoma) below 1; B-cell return ratio (first return to >=
   10 cells/uL, SLE over lymphoma) below 1. No SLE peak in cells/uL or % of T cells was found
   as text (Mackensen 2022 and Mueller 2024 show them in figures only), so these ratios are
   the SLE expansion data the model can be held to.
7. Plasma F-ara-A on the day of cell infusion (Bone Marrow Transplant 2011;46:20-26, PMID
   20383215, abstract: 87 adults, fludarabine 30-40 mg/m2/day on days -6..-2 before
   hematopoietic cells on day 0, concentration on day 0 median 16.0 ng/mL, range 0.1-144.1).
   This is the drug the model lets kill the product (``phi_C``). Model: 70 kg adult, eGFR 90,
   fludarabine 40 mg/m2 on days -6..-2 (cyclophosphamide and TBI do not enter the F-ara-A
   kinetics), F-ara-A at day 0. Window: the published range.

``KNOWN_MISSES`` lists the rows the model is known to fall outside, with the reason; they are
reported as such (``inside`` False), not hidden.

Run: ``python scripts/validate_sle_cart_v3.py`` (prints a markdown table; ``--json PATH``
writes the rows).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from cartkin import metrics
from cartkin.simulate import simulate_context

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_sle_cart_v3 import MODEL, erlangen_context, lymphoma_context

from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import CarTDose, Lymphodepletion, Regimen, build_context

#: Rows the model is known to fall outside (quantity -> reason); reported, not hidden.
KNOWN_MISSES = {
    "persistence_sle_vs_lymphoma": (
        "v3 has one memory loss rate (Stein's beta) for every disease: after the same dose "
        "CAR-T persist alike (no disease-specific persistence mechanism)"),
}


def hct_context():
    """Fludarabine 40 mg/m2 on days -6..-2 (Bone Marrow Transplant 2011;46:20), 70 kg, eGFR 90."""
    patient = Patient(weight_kg=70.0, height_cm=170.0, age_years=55.0, sex="female",
                      egfr_ml_min_173m2=90.0)  # fmt: skip
    ld = Lymphodepletion(flu_mg_m2_per_day=40.0, flu_days=(-6, -5, -4, -3, -2), cy_mg_m2=0.0,
                         cy_days=())  # fmt: skip
    return build_context(patient, Regimen(lymphodepletion=ld, cart=CarTDose(cells_per_kg=1e6)))


def rows() -> list[dict]:
    """Model vs published, one dict per validation datum."""
    out = []
    t = np.arange(0.0, 366.0, 0.25)
    res = simulate_context(MODEL, erlangen_context(3e6), t)
    trecov = metrics.compute(res, b_cell_threshold_cells_per_ul=10.0).value("TRECOV")
    out.append(dict(quantity="b_cell_return_bcma_cd19_3e6", datum="B-cell recovery after BCMA-CD19 cCAR, 3e6/kg, LN",
                    source="Ann Rheum Dis 2024;83:1304 (abstract)", published="2-6 months",
                    model=trecov, unit="day", low=60.0, high=180.0))  # fmt: skip
    t_short = np.arange(0.0, 60.0, 0.05)
    lym = simulate_context(MODEL, lymphoma_context(2e6), t_short)
    c = lym.role("cart")
    out.append(dict(quantity="tmax_zuma1_phase1", datum="CAR-T peak day, axi-cel, lymphoma", source="Locke 2017 Mol Ther "
                    "25:285 (abstract)", published="within 2 weeks", model=float(t_short[np.argmax(c)]),
                    unit="day", low=7.0, high=14.0))  # fmt: skip
    il15 = lym.state("I")
    out.append(dict(quantity="il15_tmax_cy_flu", datum="IL-15 peak day after Cy/Flu", source="Kochenderfer 2017 JCO 35:1803",
                    published="median day +2", model=float(t_short[np.argmax(il15)]), unit="day",
                    low=0.0, high=5.0))  # fmt: skip
    t_long = np.arange(0.0, 555.0, 1.0)
    juliet = simulate_context(MODEL, lymphoma_context(4e6), t_long)
    out.append(dict(quantity="cart_flow_day_554", datum="CAR-T by flow at day 554 (JULIET responders)",
                    source="Awasthi 2020 Blood Adv 4:560 (abstract)",
                    published="detectable up to 554 d", model=float(juliet.role("cart")[-1]),
                    unit="cells/uL", low=0.05, high=math.inf))  # fmt: skip
    c_e = simulate_context(MODEL, erlangen_context(1e6), t).role("cart")
    sel = (t >= 180.0) & (t <= 365.0)
    term = math.log(2.0) / -np.polyfit(t[sel], np.log(c_e[sel]), 1)[0]
    out.append(dict(quantity="terminal_half_life_180_365", datum="terminal half-life, days 180-365, 1e6/kg", source="Mueller 2017 "
                    "Blood 130:2317 (persistence for years)", published="long (years)",
                    model=float(term), unit="day", low=100.0, high=1000.0))  # fmt: skip
    sle = simulate_context(MODEL, erlangen_context(1e6), t)
    lym = simulate_context(MODEL, lymphoma_context(1e6), t)
    c_s, c_l = sle.role("cart"), lym.role("cart")
    out.append(dict(quantity="cmax_sle_vs_lymphoma", datum="CAR-T peak, SLE / lymphoma, same dose (1e6/kg)",
                    source="Mueller F 2025 Blood doi 10.1182/blood.2025028375 (abstract)",
                    published="similar expansion", model=float(c_s.max() / c_l.max()), unit="(ratio)",
                    low=0.5, high=2.0))  # fmt: skip
    persist = (np.interp(180.0, t, c_s) / c_s.max()) / (np.interp(180.0, t, c_l) / c_l.max())
    out.append(dict(quantity="persistence_sle_vs_lymphoma", datum="CAR-T at day 180 / peak, SLE over lymphoma",
                    source="Mueller F 2025 Blood (abstract)", published="consistently shorter in SLE",
                    model=float(persist), unit="(ratio)", low=0.0, high=1.0))  # fmt: skip
    b_s = metrics.compute(sle, b_cell_threshold_cells_per_ul=10.0).value("TRECOV")
    b_l = metrics.compute(lym, b_cell_threshold_cells_per_ul=10.0).value("TRECOV")
    out.append(dict(quantity="b_cell_return_sle_vs_lymphoma", datum="B-cell return, SLE over lymphoma (1e6/kg)",
                    source="Mueller F 2025 Blood (abstract)", published="faster in SLE",
                    model=float(b_s / b_l), unit="(ratio)", low=0.0, high=1.0))  # fmt: skip
    hct = simulate_context(MODEL, hct_context(), np.arange(0.0, 2.0, 0.25))
    day0 = 1000.0 * hct.evaluate([0.0]).observables["fludarabine_mg_per_l"][0]
    out.append(dict(quantity="flu_day0_hct", datum="F-ara-A on day 0 after Flu 40 mg/m2 days -6..-2",
                    source="Bone Marrow Transplant 2011;46:20 (abstract)",
                    published="median 16.0 (0.1-144.1) ng/mL", model=float(day0), unit="ng/mL",
                    low=0.1, high=144.1))  # fmt: skip
    for row in out:
        row["inside"] = bool(row["low"] <= row["model"] <= row["high"])
        row["known_miss"] = KNOWN_MISSES.get(row["quantity"], "")
    return out


def markdown(table) -> str:
    lines = ["| datum (not used in calibration) | source | published | model | window | inside |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in table:
        high = "inf" if math.isinf(r["high"]) else f"{r['high']:g}"
        inside = "yes" if r["inside"] else "NO (known: " + r["known_miss"] + ")" if r["known_miss"] else "NO"
        lines.append(f"| {r['datum']} | {r['source']} | {r['published']} | {r['model']:.3g} "
                     f"{r['unit']} | {r['low']:g}-{high} | {inside} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    table = rows()
    print(markdown(table))
    if "--json" in args:
        path = Path(args[args.index("--json") + 1])
        path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
