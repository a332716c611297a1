"""sle_cart (v3): CD19 CAR-T in SLE with levels, dose response and persistence set by data.

Time in days (day 0 = CAR-T infusion; the solve starts at ``t0``, the first lymphodepletion
day), cells per uL of blood, fludarabine in mg (amounts) and mg/L, IL-15 and IL-6 in pg/mL,
anti-dsDNA in IU/mL, C3 in g/L, proteinuria in g/24h, kidney function in mL/min/1.73m2.
Version 2 stays available as ``sle_cart_v2`` and version 1 as ``sle_cart_v1``.
docs/models/sle_cart_v3_science.md gives every choice with its source, the calibration and the
validation tables.

What changed from v2, and why (issue 15)
----------------------------------------
- *Absolute scale from flow data.* The blood fraction of the infused cells is Kimmel 2021's
  0.011 (fixed, not fitted), and the expansion is calibrated to flow-cytometry peaks in cells/uL.
  Transgene copies/ug are derived at each time from the modelled nucleated cells: ``vcn * C /
  W * cells_per_ug`` with ``W = N + B + C + M`` (lymphocytes plus the myeloid cells ``M``,
  which lymphodepletion also lowers), not a fixed factor.
- *Saturating expansion by density dependence.* Proliferation ``rho * G * x / (1 + x) * (1 -
  C / K_C)``: CAR-T expansion is limited by a CAR-T carrying capacity ``K_C`` (Kimmel GJ, Locke
  FL, Altrock PM, Proc R Soc B 2021;288:20210229: expansion explained by reconstitution after
  lymphodepletion and competition, with a CAR-T carrying capacity). The peak then depends
  weakly on dose (Mueller 2017; Awasthi 2020: no relationship between dose and Cmax); the
  growth slows smoothly as ``C`` nears ``K_C`` (no clipping). The IL-15 sink includes CAR-T.
- *Long persistence with B-cell return.* The terminal phase is Stein 2019's beta (0.0032/d,
  half-life 217 d). B cells return after months because CAR-T kill the CD19+ B-lineage
  precursors (two maturation stages ``P_1 -> P_2``, CD19 is expressed from the pro-B stage):
  once effector CAR-T have contracted, new B cells need the maturation time to reach the
  blood. The production inhibition ``1/(1 + C/C_50)`` of v2 is gone (no sub-detectable pool).
- *Fludarabine kills the product.* Infused CAR-T are lymphocytes: from their infusion on they
  see the same exposure-driven kill as endogenous T cells (the same ``gamma_F``, ``gamma_C``
  and transit delay, through their own transit stages ``Kc_1 -> Kc_2`` fed only while CAR-T
  are present, flag ``H``), scaled by ``phi_C`` (1: same sensitivity). Residual F-ara-A at
  infusion therefore lowers expansion, and dialysis timing matters.
- *Dialysis removes cyclophosphamide too* (``k_DC``, from the measured removal per session),
  for sessions from the first dose until 2 days after the last cyclophosphamide dose, whether
  or not they remove fludarabine.
- *Lupus kidney from the chronicity index.* The irreversible share of the lost function is
  ``s_irr = 1 / (1 + exp(-(CI - CI_50) / w_CI))`` (explicit assumption: high chronicity, 6-12,
  predicts kidney failure, Bajema 2018), so recovery is capped by data on the biopsy, not by an
  equilibrium. Proteinuria follows activity and chronic damage and scales with filtration:
  ``U_ss = (u_L * L + u_C * CI) * GFR / (GFR + K_U)``.

The model is written once, as the :class:`~cartkin.models.Description` ``DESCRIPTION`` at the
end of this file (states, derived entries, equations, initial state, observables, dosing
inputs); its numba right-hand side, analytic Jacobian, sparsity and role function are generated
(:mod:`cartkin.kernel.codegen`). ``cartkin show sle_cart`` prints the equations.

Dosing (the engine's, from the regimen): fludarabine as 30-min infusions into the rate state
``R_F`` (dose x the clearance model's dose-basis factor); cyclophosphamide mg/m2 into ``X_C``;
CAR-T cells into ``C_E`` as ``n / (blood_l_per_kg x WT x 1e6) x f_blood`` cells/uL, and at the
first infusion the program stages ``G``, ``G_2``, ``G_1`` and the flag ``H`` set to 1; dialysis
sessions switch ``D`` (removal rate ``k_D = -ln(1 - f_removal) / session length``) from the
first dose up to 28 days after the last fludarabine dose, and, for the cyclophosphamide they
also remove (rate ``k_DC``), up to 2 days after the last cyclophosphamide dose. Integration
starts at the first dose.

Kernel parameter vector ``p``: the table entries in table order, then the derived entries.
Defaults of the parameters marked "calibrated" come from
``cartkin/models/calibration/sle_cart_v3.json`` (``scripts/calibrate_sle_cart_v3.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from cartkin.models.description import Bolus, Description, Infusion, Switch
from cartkin.parameters import Parameter, ParameterTable

#: Dialysis sessions count for fludarabine removal up to this many days after the last dose.
DIALYSIS_WINDOW_DAYS = 28.0
#: ... and for cyclophosphamide removal up to this many days after its last dose (its activity
#: is below 1% of the dose by then: half-life 7 h, ``k_C``).
CY_DIALYSIS_WINDOW_DAYS = 2.0

CALIBRATION_FILE = Path(__file__).parent / "calibration" / "sle_cart_v3.json"


def _calibrated() -> dict:
    """Fitted defaults from the calibration JSON (empty if the file is missing)."""
    try:
        return json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))["estimates"]
    except FileNotFoundError:
        return {}


_CAL = _calibrated()
_CAL_SRC = (
    "calibrated: scripts/calibrate_sle_cart_v3.py (cartkin.fit) to Stein 2019 Table 1 (Tmax "
    "9.3 d, alpha 0.16/d), lymphoma flow-cytometry peaks in cells/uL and Mackensen 2022 (B-cell "
    "return 110 d); targets and sources in the script and docs/models/sle_cart_v3_science.md"
)


def _cal(name, fallback):
    return float(_CAL.get(name, fallback))


# ---------------------------------------------------------------------------------------------
# Parameter table (kernel order: p[0] .. p[len-1]; derived entries follow, see DERIVED)
# ---------------------------------------------------------------------------------------------
RENAMED = {
    "C_50": "v3 has no production inhibition 1/(1 + C/C_50); CAR-T kill the CD19+ B-lineage "
    "precursors instead, whose maturation rate is 'k_P' (use sle_cart_v2 for C_50)",
    "f_irr_max": "the irreversible share now comes from the chronicity index through 'CI_50' "
    "and 'w_CI' (use sle_cart_v2 for f_irr_max)",
    "copies_per_cell": "transgene copies/ug are derived from the modelled nucleated cells; the "
    "vector copies per CAR-T cell are 'vcn' (use sle_cart_v2 for the fixed factor)",
    "f_Uc": "proteinuria now follows activity ('u_L', derived) and chronic damage ('u_C') "
    "scaled by filtration ('K_U')",
}

PARAMETERS = ParameterTable(
    [
        # --- CAR-T expansion and contraction -----------------------------------------------------
        Parameter("rho", _cal("rho", 1.5), "1/day", 0.1, 3.0,
                  "maximal CAR-T proliferation rate (program on, saturating stimulation, no "
                  "competition); upper bound 3/day = doubling in 5.5 h, faster than the 6-8 h "
                  "in-vivo CD8 T-cell cycle (Yoon 2010)", _CAL_SRC),
        Parameter("k_G", _cal("k_G", 0.3), "1/day", 0.01, 5.0,
                  "fading rate of the infused cells' proliferative program (Kaech & Ahmed 2001)",
                  _CAL_SRC),
        Parameter("K_C", _cal("K_C", 30.0), "cells/uL", 0.1, 1e4,
                  "CAR-T carrying capacity in blood (density dependence of proliferation, "
                  "Kimmel 2021)", _CAL_SRC),
        Parameter("K_B", 150.0, "cells/uL", 1.0, 1e5,
                  "B-cell count giving stimulation x = 1 (antigen)",
                  "assumption: equal to B_pre, so antigen alone gives x = 1 before "
                  "lymphodepletion (as v2)"),
        Parameter("I_50", 1.0, "pg/mL", 0.1, 1000.0,
                  "IL-15 concentration giving stimulation x = 1",
                  "assumption: below baseline IL-15 (2.4 pg/mL, De Bock 2013), so stimulation "
                  "is near saturation once lymphodepletion has raised IL-15: the benefit of "
                  "fludarabine exposure levels off above the thresholds of 13.8-14 mg.h/L "
                  "(Fabrizio 2022, Dekker 2022) instead of rising without limit"),
        Parameter("delta_E", _cal("delta_E", 0.16 * (1.0 - 0.0079)), "1/day", 0.0, 2.0,
                  "effector CAR-T loss rate (death)",
                  "derived: Stein 2019, Table 1: alpha 0.16/d = delta_E + k_EM, delta_E = "
                  "(1 - FB) x alpha with FB 0.0079"),
        Parameter("k_EM", _cal("k_EM", 0.16 * 0.0079), "1/day", 0.0, 0.5,
                  "effector-to-memory CAR-T differentiation rate",
                  "derived: Stein 2019, Table 1: k_EM = FB x alpha (FB 0.0079, the fraction of "
                  "effectors that become memory cells)"),
        Parameter("delta_M", 0.0032, "1/day", 0.0005, 0.5,
                  "memory CAR-T loss rate (terminal phase)",
                  "Stein 2019, Table 1: beta 0.0032/d (terminal half-life 217 d); CAR-T "
                  "transgene detectable for up to 693 d in JULIET (Awasthi 2020)"),
        Parameter("theta_M", 0.1, "-", 0.0, 2.0,
                  "B-lineage killing by memory CAR-T relative to effectors",
                  "assumption: resting memory cells are less cytotoxic than effectors; with "
                  "k_kill and k_P it sets when B cells return (not identified apart from them)"),
        Parameter("k_kill", 0.5, "uL/(cell*day)", 0.0, 10.0,
                  "B-lineage killing rate per functional CAR-T cell/uL",
                  "assumption: MODEL.md v1 (0.5)"),
        Parameter("phi_C", 2.4, "-", 0.0, 10.0,
                  "lymphodepletion kill of infused CAR-T relative to endogenous T cells (the "
                  "same exposure-driven kill, scaled)",
                  "derived: CD4+CD25+ T cells died 2.4 times faster than CD4+CD25- ones at the "
                  "same fludarabine exposure (PBMCs of 2 donors, 10 uM, 48 h, viable 7-AAD-/"
                  "annexin V- share of medium: 23/69 and 30/79 vs 66/91 and 52/90; mean -ln "
                  "survival 1.03 vs 0.43; donors alone 3.4 and 1.8), Beyer M et al., Blood "
                  "2005;106:2018-2025 (doi 10.1182/blood-2005-02-0642), table 'CD4+CD25+ T "
                  "cells are more susceptible to fludarabine-induced apoptosis'. Proxy: CD25+ "
                  "blood CD4 cells are mostly regulatory T cells, not activated effector cells "
                  "like the product, and 10 uM (2.85 mg/L) is 35-600 times the F-ara-A the "
                  "model leaves at infusion (about 5-80 ng/mL; the ratio is assumed "
                  "independent of concentration); no direct measurement on CAR-T cells was "
                  "found"),
        # --- B-lineage and autoreactive B-cell activity ----------------------------------------
        Parameter("B_pre", 150.0, "cells/uL", 1.0, 2000.0,
                  "CD19+ B cells before lymphodepletion (homeostatic set point)",
                  "assumption: SLE patients on immunosuppression are often B-lymphopenic "
                  "(healthy adults about 100-500/uL)"),
        Parameter("delta_B", 1.0 / 60.0, "1/day", 1.0 / 365.0, 1.0,
                  "B-cell death rate (1 / mature B-cell lifetime of 60 d)",
                  "Leon-Triana 2021"),
        Parameter("k_P", _cal("k_P", 0.05), "1/day", 0.002, 2.0,
                  "maturation rate of each of the two CD19+ B-lineage precursor stages (mean "
                  "time from the first CD19+ stage to the blood 2/k_P)", _CAL_SRC),
        Parameter("phi_B", 1.0, "-", 0.0, 3.0,
                  "lymphodepletion kill of B-lineage cells relative to T cells",
                  "assumption: Flu/Cy depletes B and T cells alike"),
        Parameter("r_S", 0.01, "1/day", 0.0, 1.0,
                  "self-renewal rate of autoreactive B-cell activity (logistic regrowth)",
                  "assumption: slow (drug-free remission through months, Mackensen 2022)"),
        # --- endogenous T cells ------------------------------------------------------------------
        Parameter("r_N", 0.17, "1/day", 0.01, 1.0,
                  "homeostatic T-cell recovery rate after lymphodepletion",
                  "Kimmel 2021"),
        Parameter("K_N", 500.0, "cells/uL", 50.0, 5000.0,
                  "T-cell carrying capacity (also the pre-lymphodepletion count)",
                  "Kimmel 2021"),
        # --- myeloid cells (for the nucleated-cell count behind copies/ug) ----------------------
        Parameter("M_0", 4000.0, "cells/uL", 100.0, 20000.0,
                  "non-lymphoid nucleated blood cells (granulocytes, monocytes) before "
                  "lymphodepletion",
                  "assumption: mid normal white count (4,000-10,000/uL) less lymphocytes"),
        Parameter("r_M", 0.1, "1/day", 0.01, 2.0,
                  "recovery rate of myeloid cells after lymphodepletion",
                  "assumption: recovery over 2-4 weeks (count recovery at month 1 in about a "
                  "third to two thirds of CAR-T patients, Jain 2020 Blood Adv 4:3776)"),
        Parameter("phi_M", 1.5, "-", 0.0, 3.0,
                  "lymphodepletion kill of myeloid cells relative to lymphocytes",
                  "assumption: gives a nadir of 500-1,000 cells/uL around infusion (grade 3 "
                  "neutropenia), which all 15 SLE patients had after Flu/Cy and CAR-T (grade "
                  ">= 3 in 100%, Feng J et al., Nat Med 2025;31:3725, abstract)"),
        # --- IL-15 -------------------------------------------------------------------------------
        Parameter("I_0", 2.4, "pg/mL", 0.1, 100.0,
                  "serum IL-15 before lymphodepletion",
                  "De Bock 2013 (2.4 pg/mL before conditioning)"),
        Parameter("k_I", 5.0, "1/day", 0.1, 100.0,
                  "IL-15 clearance rate at baseline lymphocyte counts",
                  "assumption: serum half-life of a few hours (3.3 h)"),
        Parameter("f_I_cons", 0.8, "-", 0.0, 0.999,
                  "share of baseline IL-15 clearance that is consumption by lymphocytes "
                  "(CAR-T included: the sink)",
                  "derived: the ceiling I_0 / (1 - f_I_cons) = 5 x baseline is De Bock 2013's "
                  "rise after deep conditioning (2.4 -> 12.5 pg/mL); consumption dominates "
                  "(Hangasky 2020)"),
        # --- lymphodepletion ---------------------------------------------------------------------
        Parameter("gamma_F", 1.5, "L/(mg*day)", 0.0, 50.0,
                  "lymphocyte kill rate per mg/L F-ara-A",
                  "assumption: gives an about 80% lymphocyte fall after Flu 30 mg/m2 x3 with "
                  "Cy 500 mg/m2 x3 at normal kidney function (Gandler 2025: 0.6 -> 0.1 x10^9/L)"),
        Parameter("gamma_C", 0.002, "m2/(mg*day)", 0.0, 1.0,
                  "lymphocyte kill rate per mg/m2 of cyclophosphamide activity",
                  "assumption: cyclophosphamide adds about a third of the fludarabine kill at "
                  "the usual doses"),
        Parameter("k_C", math.log(2.0) / (7.0 / 24.0), "1/day", 0.5, 50.0,
                  "decay rate of cyclophosphamide activity",
                  "assumption: half-life 7 h, inside the 3-12 h of the cyclophosphamide label"),
        Parameter("k_DC", 3.5, "1/day", 0.0, 20.0,
                  "removal rate of cyclophosphamide activity during a hemodialysis session",
                  "derived: a mean 37% of a 100-mg dose given just before a 4-h hemodialysis "
                  "was removed (4 patients on long-term hemodialysis; dialysis clearance 104 "
                  "mL/min against 95 mL/min metabolic; half-life 3.3 h during dialysis against "
                  "6.5 h in uremic patients), Clin Pharmacol Ther 1981;29(3):365-372, PMID "
                  "7471607 (abstract): k_DC / (k_C + k_DC) x (1 - exp(-(k_C + k_DC) x 4 h)) = "
                  "0.37 with k_C of this table gives 3.5/day (the two half-lives alone give "
                  "2.5/day). Assumption: the active metabolites, whose activity X_C stands for, "
                  "are removed at the parent drug's rate"),
        Parameter("k_tr", 1.0, "1/day", 0.1, 50.0,
                  "transit rate of the delayed lymphocyte kill (two stages, mean delay 2/k_tr)",
                  "assumption: value (lymphocyte nadir and IL-15 peak after infusion, IL-15 "
                  "peak median day +2 in Kochenderfer 2017); structure as McCune 2015"),
        # --- infusion ----------------------------------------------------------------------------
        Parameter("f_blood", 0.011, "-", 1e-6, 1.0,
                  "fraction of infused CAR-T found in circulating blood right after infusion",
                  "derived: Kimmel 2021 (0.36 cells/uL right after about 2e6 cells/kg; "
                  "MODEL.md section 4)"),
        Parameter("blood_l_per_kg", 0.07, "L/kg", 0.05, 0.1,
                  "blood volume per kg body weight",
                  "assumption: standard adult blood volume 70 mL/kg"),
        # --- IL-6 --------------------------------------------------------------------------------
        Parameter("IL6_0", 5.0, "pg/mL", 0.1, 100.0,
                  "baseline IL-6 at normal kidney function (eGFR 100)",
                  "assumption: MODEL.md v1"),
        Parameter("k_IL6_ref", 3.96, "1/day", 0.5, 50.0,
                  "IL-6 elimination rate at kidney function 100 mL/min/1.73m2",
                  "Hardiansyah & Ng 2019, Table S1"),
        Parameter("f_IL6_renal", 0.4, "-", 0.0, 1.0,
                  "renal share of IL-6 elimination (scales with GFR/100)",
                  "assumption: MODEL.md section 3 range 0.3-0.5"),
        Parameter("p_IL6", 7.0, "pg/mL per (cells/uL)", 0.0, 1e4,
                  "IL-6 released per CAR-T cell/uL produced by proliferation (activation)",
                  "assumption: gives an IL-6 peak about 2.4 times baseline (12 pg/mL) at 1e6 "
                  "cells/kg in the Erlangen scenario, as v2 did (grade 1 CRS at most in SLE, "
                  "Mackensen 2022)"),
        # --- anti-dsDNA and complement -----------------------------------------------------------
        Parameter("A_0", 100.0, "IU/mL", 1.0, 1e4,
                  "anti-dsDNA before treatment (steady state)", "assumption: active SLE"),
        Parameter("k_A", math.log(2.0) / 21.0, "1/day", 0.005, 0.5,
                  "anti-dsDNA elimination rate", "assumption: IgG half-life about 21 d"),
        Parameter("f_LLPC", 0.1, "-", 0.0, 1.0,
                  "share of anti-dsDNA made by CD19-negative long-lived plasma cells",
                  "assumption: below 0.15 so that anti-dsDNA (A_0 100 IU/mL) seroconverts "
                  "below 15 IU/mL, as in all 5 patients of Mackensen 2022"),
        Parameter("Q_0", 0.6, "g/L", 0.05, 2.0,
                  "complement C3 before treatment",
                  "assumption: low C3 of active lupus nephritis (lower normal limit about 0.9)"),
        Parameter("Q_norm", 1.2, "g/L", 0.5, 2.5,
                  "C3 without immune-complex consumption",
                  "assumption: mid normal range (0.9-1.8 g/L)"),
        Parameter("k_Q", 0.5, "1/day", 0.05, 5.0,
                  "C3 turnover rate",
                  "assumption: plasma half-life about 1.4 d; normalisation within weeks once "
                  "antibodies fall (Krickau 2024)"),
        # --- lupus nephritis ---------------------------------------------------------------------
        Parameter("L_0", 10.0, "0-24", 0.1, 24.0,
                  "renal activity index before treatment (NIH activity index scale)",
                  "assumption: active proliferative lupus nephritis (Bajema 2018 scale 0-24)"),
        Parameter("k_L", math.log(2.0) / 21.0, "1/day", 0.001, 1.0,
                  "rate at which renal activity follows the immune-complex load",
                  "assumption: half-time 3 weeks"),
        Parameter("CI", 2.0, "0-12", 0.0, 12.0,
                  "chronicity index of the kidney biopsy (covariate)",
                  "assumption: default for a patient without a biopsy (Bajema 2018 scale 0-12)"),
        Parameter("CI_50", 6.0, "0-12", 0.0, 12.0,
                  "chronicity index at which half of the lost kidney function is irreversible",
                  "assumption: the lower edge of the high chronicity band (6-12), which "
                  "predicts kidney failure and poor response (Bajema 2018)"),
        Parameter("w_CI", 1.0, "0-12", 0.1, 6.0,
                  "width of the chronicity-to-irreversibility relation (logistic scale)",
                  "assumption: the irreversible share goes from 27% to 73% over 2 index points "
                  "around CI_50"),
        Parameter("GFR_norm", 110.0, "mL/min/1.73m2", 30.0, 200.0,
                  "kidney function without any nephron loss or injury",
                  "assumption: normal young adult"),
        Parameter("k_heal", math.log(2.0) / 30.0, "1/day", 0.0005, 1.0,
                  "healing rate of reversible kidney injury",
                  "assumption: half-time 1 month: of dialysis-dependent lupus nephritis "
                  "patients who come off dialysis, almost all do so by 6 months (50.9% by 6 "
                  "months, 54.2% by 12, Marquez-Macedo 2023)"),
        Parameter("U_0", 5.0, "g/24h", 0.0, 30.0,
                  "proteinuria before treatment",
                  "assumption: nephrotic-range proteinuria of active lupus nephritis"),
        Parameter("k_U", math.log(2.0) / 30.0, "1/day", 0.001, 1.0,
                  "rate at which proteinuria follows activity, damage and filtration",
                  "assumption: half-time 1 month (EULAR targets: 25% fall by 3 months, 50% by "
                  "6 months, Kostopoulou 2020)"),
        Parameter("u_C", 0.3, "g/24h per CI point", 0.0, 5.0,
                  "proteinuria from chronic damage per chronicity-index point at full "
                  "filtration",
                  "assumption: 2.1 g/24h at CI 7, inside KDIGO's partial-response band (< 3 "
                  "g/g) that many patients with chronic lesions stay in"),
        Parameter("K_U", 5.0, "mL/min/1.73m2", 0.1, 100.0,
                  "kidney function at which filtration halves protein excretion",
                  "assumption: protein excretion needs filtration; nearly anuric kidneys "
                  "excrete little"),
        # --- assay -------------------------------------------------------------------------------
        Parameter("vcn", 2.0, "copies/cell", 0.1, 20.0,
                  "transgene (vector) copies per CAR-T cell",
                  "assumption: lentiviral CAR-T products carry about 1-3 copies per "
                  "transduced cell (release limit 5)"),
    ],
    renamed=RENAMED,
)  # fmt: skip


STATES = """
    F_1   flu_central         [mg]       F-ara-A amount, central compartment
    F_2   flu_peripheral_2    [mg]       F-ara-A amount, first peripheral compartment
    F_3   flu_peripheral_3    [mg]       F-ara-A amount, second peripheral compartment
    R_F   flu_infusion_rate   [mg/day]   running fludarabine infusion rate (flag)
    D     on_dialysis         [-]        1 during a dialysis session that removes drug, else 0 (flag)
    AUC_F flu_auc             [mg.h/L]   cumulative F-ara-A AUC since the first dose
    X_C   cy_activity         [mg/m2]    cyclophosphamide (active metabolite) activity
    N     t_cells             [cells/uL] endogenous (non-CAR) T cells in blood
    B     b_cells             [cells/uL] CD19+ B cells in blood
    S     autoreactive_b      [-]        autoreactive B-cell activity, 1 before treatment
    I     il15                [pg/mL]    serum IL-15 (homeostatic drive)
    G     program             [-]        proliferative program of the infused CAR-T, 1 at infusion
    C_E   effector            [cells/uL] effector CAR-T cells in blood
    C_M   memory              [cells/uL] memory CAR-T cells in blood
    IL6   il6                 [pg/mL]    serum IL-6
    A     anti_dsdna          [IU/mL]    serum anti-dsDNA antibodies
    Q     complement_c3       [g/L]      serum complement C3
    L     ln_activity         [0-24]     renal inflammation activity (activity index scale)
    J_k     kidney_injury       [-]        reversible share of kidney function lost
    U     proteinuria         [g/24h]    proteinuria
    G_1   program_early       [-]        first stage of the proliferative program, 1 at infusion
    K_1   kill_transit_1      [1/day]    lymphodepletion kill rate, first transit stage
    K_2   kill_transit_2      [1/day]    lymphodepletion kill rate acting on lymphocytes
    P_1   precursor_early     [cells/uL] CD19+ B-lineage precursors, first stage (marrow, in blood-B-cell equivalents)
    P_2   precursor_late      [cells/uL] CD19+ B-lineage precursors, second stage
    Kc_1  product_kill_1      [1/day]    kill rate on the infused CAR-T, first stage
    Kc_2  product_kill_2      [1/day]    kill rate acting on the infused CAR-T
    H     product_present     [-]        1 from the first CAR-T infusion on, else 0 (flag)
    M     myeloid             [cells/uL] non-lymphoid nucleated blood cells
    G_2   program_middle      [-]        second stage of the proliferative program, 1 at infusion
"""

DERIVED = """
    V_1 = flu_v1_l
    k_10 = 24.0 * flu_cl_l_h / flu_v1_l
    k_12 = 24.0 * flu_q2_l_h / flu_v1_l
    k_21 = 24.0 * flu_q2_l_h / flu_v2_l
    k_13 = 24.0 * flu_q3_l_h / flu_v1_l
    k_31 = 24.0 * flu_q3_l_h / flu_v3_l
    k_D = -log1p(-clip(flu_removal_fraction, 0.0, 1.0 - 1e-12)) / (where(dialysis_duration_h > 0.0, dialysis_duration_h, 4.0) / 24.0)
    s_I = k_I * I_0
    k_I_el = (1.0 - f_I_cons) * k_I
    k_cons = f_I_cons * k_I / K_N
    P_ss = delta_B * B_pre / k_P
    s_IL6 = k_IL6_ref * IL6_0
    k_IC = k_Q * max(Q_norm / Q_0 - 1.0, 0.0)
    s_irr = 1.0 / (1.0 + exp(-(CI - CI_50) / w_CI))
    GFR_cap = egfr_ml_min_173m2 + (1.0 - s_irr) * max(GFR_norm - egfr_ml_min_173m2, 0.0)
    J_0 = clip(1.0 - egfr_ml_min_173m2 / GFR_cap, 0.0, 0.999)
    k_inj = k_heal * J_0 / ((1.0 - J_0) * L_0 / 24.0)
    u_L = max(U_0 * (egfr_ml_min_173m2 + K_U) / egfr_ml_min_173m2 - u_C * CI, 0.0) / L_0
    egfr_0 = egfr_ml_min_173m2
    t0 = t_start
    C_E0 = first_cart_dose / (blood_l_per_kg * weight_kg * 1e6) * f_blood
    cells_per_ug = 1e6 / 6.6
"""

EQUATIONS = """
    C = C_E + C_M
    C_F = F_1 / V_1
    kill_in = gamma_F * C_F + gamma_C * X_C
    k_LD = K_2
    x = B / K_B + I / I_50
    drive = rho * G * x / (1.0 + x) * (1.0 - C / K_C)
    C_func = C_E + theta_M * C_M
    kill_B = k_kill * C_func
    kill_C = phi_C * Kc_2
    GFR = GFR_cap * (1.0 - J_k)
    k_IL6 = k_IL6_ref * (1.0 - f_IL6_renal + f_IL6_renal * GFR / 100.0)
    U_ss = (u_L * L + u_C * CI) * GFR / (GFR + K_U)
    d/dt(F_1) = R_F - (k_10 + k_12 + k_13 + k_D * D) * F_1 + k_21 * F_2 + k_31 * F_3
    d/dt(F_2) = k_12 * F_1 - (k_21 + k_D * D) * F_2
    d/dt(F_3) = k_13 * F_1 - (k_31 + k_D * D) * F_3
    d/dt(R_F) = 0.0
    d/dt(D) = 0.0
    d/dt(AUC_F) = 24.0 * C_F
    d/dt(X_C) = -(k_C + k_DC * D) * X_C
    d/dt(N) = r_N * N * (1.0 - (N + C) / K_N) - k_LD * N
    d/dt(P_1) = k_P * P_ss - (k_P + kill_B + phi_B * k_LD) * P_1
    d/dt(P_2) = k_P * P_1 - (k_P + kill_B + phi_B * k_LD) * P_2
    d/dt(B) = k_P * P_2 - delta_B * B - kill_B * B - phi_B * k_LD * B
    d/dt(S) = r_S * S * (1.0 - S) - kill_B * S - phi_B * k_LD * S
    d/dt(I) = s_I - (k_I_el + k_cons * (N + C)) * I
    d/dt(G) = k_G * (G_2 - G)
    d/dt(G_2) = k_G * (G_1 - G_2)
    d/dt(G_1) = -k_G * G_1
    d/dt(K_1) = k_tr * (kill_in - K_1)
    d/dt(K_2) = k_tr * (K_1 - K_2)
    d/dt(Kc_1) = k_tr * (H * kill_in - Kc_1)
    d/dt(Kc_2) = k_tr * (Kc_1 - Kc_2)
    d/dt(H) = 0.0
    d/dt(C_E) = (drive - delta_E - k_EM - kill_C) * C_E
    d/dt(C_M) = k_EM * C_E - (delta_M + kill_C) * C_M
    d/dt(M) = r_M * (M_0 - M) - phi_M * k_LD * M
    d/dt(IL6) = s_IL6 - k_IL6 * IL6 + p_IL6 * drive * C_E
    d/dt(A) = k_A * (A_0 * ((1.0 - f_LLPC) * S + f_LLPC) - A)
    d/dt(Q) = k_Q * (Q_norm - Q) - k_IC * (A / A_0) * Q
    d/dt(L) = k_L * (L_0 * A / A_0 - L)
    d/dt(J_k) = k_inj * (L / 24.0) * (1.0 - J_k) - k_heal * J_k
    d/dt(U) = k_U * (U_ss - U)
"""

INITIAL = """
    N = K_N
    B = B_pre
    P_1 = P_ss
    P_2 = P_ss
    S = 1.0
    I = I_0
    M = M_0
    IL6 = s_IL6 / (k_IL6_ref * (1.0 - f_IL6_renal + f_IL6_renal * egfr_ml_min_173m2 / 100.0))
    A = A_0
    Q = Q_0
    L = L_0
    J_k = J_0
    U = U_0
"""

OBSERVABLES = """
    cart_cells_per_ul [cells/uL] = C_E + C_M  # CAR-T cells in blood (flow): C_E + C_M
    cart_percent_of_t_cells [%] = 100.0 * (C_E + C_M) / max(C_E + C_M + N, 1e-300)  # CAR-T share of all T cells (flow): 100 C / (C + N)
    transgene_copies_per_ug [copies/ug] = vcn * (C_E + C_M) / max(N + B + C_E + C_M + M, 1e-300) * cells_per_ug  # CAR transgene by qPCR: vcn C / (N + B + C + M) x nucleated cells per ug DNA (1e6 / 6.6 pg per diploid cell)
    t_cells_per_ul [cells/uL] = N  # endogenous T cells: N
    nucleated_cells_per_ul [cells/uL] = N + B + C_E + C_M + M  # nucleated blood cells: N + B + C + M
    myeloid_cells_per_ul [cells/uL] = M  # non-lymphoid nucleated cells: M
    b_cells_per_ul [cells/uL] = B  # CD19+ B cells (flow): B
    il15_pg_per_ml [pg/mL] = I  # serum IL-15: I
    il6_pg_per_ml [pg/mL] = IL6  # serum IL-6: IL6
    fludarabine_mg_per_l [mg/L] = F_1 / V_1  # plasma F-ara-A (on the clearance model's dose basis): F_1 / V_1
    fludarabine_auc_mg_h_per_l [mg.h/L] = AUC_F  # cumulative F-ara-A AUC: AUC_F
    anti_dsdna_iu_per_ml [IU/mL] = A  # serum anti-dsDNA: A
    complement_c3_g_per_l [g/L] = Q  # serum complement C3: Q
    ln_activity_index [0-24] = L  # renal activity (activity index scale): L
    proteinuria_g_per_24h [g/24h] = U  # proteinuria: U
    kidney_function_ml_min_173m2 [mL/min/1.73m2] = GFR_cap * (1.0 - J_k)  # residual kidney function: GFR_cap (1 - J_k)
"""

ROLE_MAP = {
    "cart": "cart_cells_per_ul",
    "cart_copies": "transgene_copies_per_ug",
    "cart_percent_t": "cart_percent_of_t_cells",
    "b_cells": "b_cells_per_ul",
    "il6": "il6_pg_per_ml",
    "anti_dsdna": "anti_dsdna_iu_per_ml",
    "complement": "complement_c3_g_per_l",
    "ln_activity": "ln_activity_index",
    "proteinuria": "proteinuria_g_per_24h",
    "kidney_function": "kidney_function_ml_min_173m2",
}

CART_LEVEL = "dose / (blood_l_per_kg * weight_kg * 1e6) * f_blood"

DESCRIPTION = Description(
    name="sle_cart",
    description=(
        "Mechanistic CD19 CAR-T kinetics in SLE, version 3: levels in cells/uL calibrated to "
        "flow-cytometry data (blood fraction of the infused cells from Kimmel 2021), expansion "
        "saturating at a CAR-T carrying capacity (Kimmel 2021), Stein's long terminal phase, "
        "B cells returning through CD19+ precursors once effectors have contracted, "
        "fludarabine killing the infused cells as it kills endogenous lymphocytes (residual "
        "drug at infusion lowers expansion), transgene copies/ug from the modelled nucleated "
        "cells, and a lupus kidney whose reversible share follows the chronicity index. "
        "Fludarabine PK (3 compartments, kidney function, dialysis sessions) and IL-15 as in "
        "version 2; dialysis sessions also remove cyclophosphamide. Day 0 is the CAR-T "
        "infusion."
    ),
    parameters=PARAMETERS,
    states=STATES,
    derived=DERIVED,
    equations=EQUATIONS,
    initial=INITIAL,
    observables=OBSERVABLES,
    roles=ROLE_MAP,
    inputs=[
        Infusion("fludarabine", rate="R_F", amount="dose * flu_dose_factor"),
        Bolus("cyclophosphamide", into="X_C", amount="dose", unit="mg/m2"),
        Bolus("cart", into="C_E", amount=CART_LEVEL, unit="cells/uL"),
        Bolus("cart", into="G", amount="1.0", first_only=True),
        Bolus("cart", into="G_1", amount="1.0", first_only=True),
        Bolus("cart", into="G_2", amount="1.0", first_only=True),
        Bolus("cart", into="H", amount="1.0", first_only=True),
        Switch("dialysis", flag="D",
               when=f"((k_D > 0.0) & (day >= t_start) & (day <= last_fludarabine_day + {DIALYSIS_WINDOW_DAYS})) "
                    f"| ((k_DC > 0.0) & (day >= t_start) & (day <= last_cyclophosphamide_day + {CY_DIALYSIS_WINDOW_DAYS}))"),
    ],
    start="first_dose",
    ignores=(
        "tissue CAR-T (blood levels stand for the killing pool)",
    ),
)  # fmt: skip
