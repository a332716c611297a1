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
- *Lupus kidney from the chronicity index.* The irreversible share of the lost function is
  ``s_irr = 1 / (1 + exp(-(CI - CI_50) / w_CI))`` (explicit assumption: high chronicity, 6-12,
  predicts kidney failure, Bajema 2018), so recovery is capped by data on the biopsy, not by an
  equilibrium. Proteinuria follows activity and chronic damage and scales with filtration:
  ``U_ss = (u_L * L + u_C * CI) * GFR / (GFR + K_U)``.

Equations (exactly as in :func:`rhs`)
-------------------------------------
::

    C = C_E + C_M
    C_F = F_1 / V_1
    kill_in = gamma_F * C_F + gamma_C * X_C
    k_LD = K_2
    x = B / K_B + I / I_50
    drive = rho * G * x / (1.0 + x) * (1.0 - C / K_C)
    C_func = C_E + theta_M * C_M
    kill_B = k_kill * C_func
    kill_C = phi_C * Kc_2
    GFR = GFR_cap * (1.0 - J)
    k_IL6 = k_IL6_ref * (1.0 - f_IL6_renal + f_IL6_renal * GFR / 100.0)
    U_ss = (u_L * L + u_C * CI) * GFR / (GFR + K_U)
    dF_1 = R_F - (k_10 + k_12 + k_13 + k_D * D) * F_1 + k_21 * F_2 + k_31 * F_3
    dF_2 = k_12 * F_1 - (k_21 + k_D * D) * F_2
    dF_3 = k_13 * F_1 - (k_31 + k_D * D) * F_3
    dR_F = 0.0
    dD = 0.0
    dAUC_F = 24.0 * C_F
    dX_C = -k_C * X_C
    dN = r_N * N * (1.0 - (N + C) / K_N) - k_LD * N
    dP_1 = k_P * P_ss - (k_P + kill_B + phi_B * k_LD) * P_1
    dP_2 = k_P * P_1 - (k_P + kill_B + phi_B * k_LD) * P_2
    dB = k_P * P_2 - delta_B * B - kill_B * B - phi_B * k_LD * B
    dS = r_S * S * (1.0 - S) - kill_B * S - phi_B * k_LD * S
    dI = s_I - (k_I_el + k_cons * (N + C)) * I
    dG = k_G * (G_2 - G)
    dG_2 = k_G * (G_1 - G_2)
    dG_1 = -k_G * G_1
    dK_1 = k_tr * (kill_in - K_1)
    dK_2 = k_tr * (K_1 - K_2)
    dKc_1 = k_tr * (H * kill_in - Kc_1)
    dKc_2 = k_tr * (Kc_1 - Kc_2)
    dH = 0.0
    dC_E = (drive - delta_E - k_EM - kill_C) * C_E
    dC_M = k_EM * C_E - (delta_M + kill_C) * C_M
    dM = r_M * (M_0 - M) - phi_M * k_LD * M
    dIL6 = s_IL6 - k_IL6 * IL6 + p_IL6 * drive * C_E
    dA = k_A * (A_0 * ((1.0 - f_LLPC) * S + f_LLPC) - A)
    dQ = k_Q * (Q_norm - Q) - k_IC * (A / A_0) * Q
    dL = k_L * (L_0 * A / A_0 - L)
    dJ = k_inj * (L / 24.0) * (1.0 - J) - k_heal * J
    dU = k_U * (U_ss - U)

Initial state, dosing and derived entries (:func:`individualize`)
-----------------------------------------------------------------
::

    t0 = min(0, first fludarabine day, first cyclophosphamide day, first CAR-T day)
    y(t0): F = R_F = D = AUC_F = X_C = G = G_1 = G_2 = C_E = C_M = K = Kc = H = 0; N = K_N;
           B = B_pre; P_1 = P_2 = P_ss; S = 1; I = I_0; M = M_0;
           IL6 = s_IL6 / k_IL6(eGFR_0); A = A_0; Q = Q_0; L = L_0; J = J_0; U = U_0
    fludarabine dose d (mg phosphate x dose basis factor) on day t: R_F += d / T_inf at t,
        R_F -= d / T_inf at t + T_inf (T_inf = 0.5 h)
    cyclophosphamide c mg/m2 on day t: X_C += c;  dialysis session: D += 1 at its start, -= 1
        at its end (sessions up to 28 days after the last fludarabine dose)
    CAR-T n cells on day t: C_E += n / (blood_l_per_kg * WT * 1e6) * f_blood; at the first:
        G, G_1 and G_2 += 1 (so G(t) = (1 + k_G t + (k_G t)^2 / 2) exp(-k_G t)) and H
        += 1
    k_10 = 24 CL / V_1, k_12 = 24 Q_2 / V_1, k_21 = 24 Q_2 / V_2, k_13 = 24 Q_3 / V_1,
        k_31 = 24 Q_3 / V_3 (per day; CL, V, Q from kidney.fludarabine_pk_parameters at the
        eGFR of lymphodepletion)
    k_D = -ln(1 - f_removal) / session duration (per day)
    s_I = k_I * I_0,  k_I_el = (1 - f_I_cons) * k_I,  k_cons = f_I_cons * k_I / K_N
    P_ss = delta_B * B_pre / k_P
    s_IL6 = k_IL6_ref * IL6_0,  k_IC = k_Q * (Q_norm / Q_0 - 1)
    s_irr = 1 / (1 + exp(-(CI - CI_50) / w_CI)),
    GFR_cap = eGFR_0 + (1 - s_irr) * max(GFR_norm - eGFR_0, 0),
    J_0 = 1 - eGFR_0 / GFR_cap,  k_inj = k_heal * J_0 / ((1 - J_0) * L_0 / 24)
    u_L = max(U_0 * (eGFR_0 + K_U) / eGFR_0 - u_C * CI, 0) / L_0

Kernel parameter vector ``p``: the table entries in table order, then ``DERIVED``.
Defaults of the parameters marked "calibrated" come from
``cartkin/models/calibration/sle_cart_v3.json`` (``scripts/calibrate_sle_cart_v3.py``).
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numba
import numpy as np

from cartkin.models.base import Model, Observable, State
from cartkin.parameters import Parameter, ParameterTable

UL_PER_L = 1e6
DIALYSIS_WINDOW_DAYS = 28.0
#: nucleated cells per ug of genomic DNA: 1 / 6.6 pg of DNA per diploid human cell
CELLS_PER_UG_DNA = 1.0e6 / 6.6

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
                  "derived: activated (CD25+) CD4 T cells died 2.4 times faster than CD25- ones "
                  "at the same fludarabine exposure (10 uM, 48 h, two donors: survival 0.33 "
                  "and 0.38 vs 0.73 and 0.58; -log ratio 1.03 vs 0.43), Beyer M et al., Blood "
                  "2005;106:2018, table of fludarabine-induced apoptosis; the product is "
                  "activated T cells (MODEL.md section 8)"),
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
        Parameter("phi_M", 0.3, "-", 0.0, 3.0,
                  "lymphodepletion kill of myeloid cells relative to lymphocytes",
                  "assumption: Flu/Cy is lymphoselective; transient granulocytopenia"),
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
        Parameter("p_IL6", 1.0, "pg/mL per (cells/uL)", 0.0, 1e4,
                  "IL-6 released per CAR-T cell/uL produced by proliferation (activation)",
                  "assumption: gives an IL-6 peak of some tens of pg/mL at 1e6 cells/kg "
                  "(grade 1 CRS at most in SLE, Mackensen 2022)"),
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

DERIVED = (
    "V_1", "k_10", "k_12", "k_21", "k_13", "k_31", "k_D",
    "s_I", "k_I_el", "k_cons", "P_ss", "s_IL6", "k_IC",
    "s_irr", "GFR_cap", "J_0", "k_inj", "u_L", "egfr_0", "t0", "C_E0",
)  # fmt: skip

STATES = (
    State("flu_central", "F_1", "mg", "F-ara-A amount, central compartment"),
    State("flu_peripheral_2", "F_2", "mg", "F-ara-A amount, first peripheral compartment"),
    State("flu_peripheral_3", "F_3", "mg", "F-ara-A amount, second peripheral compartment"),
    State("flu_infusion_rate", "R_F", "mg/day", "running fludarabine infusion rate (flag)"),
    State("on_dialysis", "D", "-", "1 during a dialysis session, else 0 (flag)"),
    State("flu_auc", "AUC_F", "mg.h/L", "cumulative F-ara-A AUC since the first dose"),
    State("cy_activity", "X_C", "mg/m2", "cyclophosphamide (active metabolite) activity"),
    State("t_cells", "N", "cells/uL", "endogenous (non-CAR) T cells in blood"),
    State("b_cells", "B", "cells/uL", "CD19+ B cells in blood"),
    State("autoreactive_b", "S", "-", "autoreactive B-cell activity, 1 before treatment"),
    State("il15", "I", "pg/mL", "serum IL-15 (homeostatic drive)"),
    State("program", "G", "-", "proliferative program of the infused CAR-T, 1 at infusion"),
    State("effector", "C_E", "cells/uL", "effector CAR-T cells in blood"),
    State("memory", "C_M", "cells/uL", "memory CAR-T cells in blood"),
    State("il6", "IL6", "pg/mL", "serum IL-6"),
    State("anti_dsdna", "A", "IU/mL", "serum anti-dsDNA antibodies"),
    State("complement_c3", "Q", "g/L", "serum complement C3"),
    State("ln_activity", "L", "0-24", "renal inflammation activity (activity index scale)"),
    State("kidney_injury", "J", "-", "reversible share of kidney function lost"),
    State("proteinuria", "U", "g/24h", "proteinuria"),
    State("program_early", "G_1", "-", "first stage of the proliferative program, 1 at infusion"),
    State("kill_transit_1", "K_1", "1/day", "lymphodepletion kill rate, first transit stage"),
    State("kill_transit_2", "K_2", "1/day", "lymphodepletion kill rate acting on lymphocytes"),
    State("precursor_early", "P_1", "cells/uL eq.", "CD19+ B-lineage precursors, first stage "
          "(marrow; in blood-B-cell equivalents)"),
    State("precursor_late", "P_2", "cells/uL eq.", "CD19+ B-lineage precursors, second stage"),
    State("product_kill_1", "Kc_1", "1/day", "kill rate on the infused CAR-T, first stage"),
    State("product_kill_2", "Kc_2", "1/day", "kill rate acting on the infused CAR-T"),
    State("product_present", "H", "-", "1 from the first CAR-T infusion on, else 0 (flag)"),
    State("myeloid", "M", "cells/uL", "non-lymphoid nucleated blood cells"),
    State("program_middle", "G_2", "-", "second stage of the proliferative program, 1 at "
          "infusion"),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Compiled code of this model (keep all of it in this file)
# ---------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def rhs(t, y, p, dydt):
    """sle_cart v3 dy/dt (per day); ``p`` in kernel order (module docstring)."""
    rho = p[0]
    k_G = p[1]
    K_C = p[2]
    K_B = p[3]
    I_50 = p[4]
    delta_E = p[5]
    k_EM = p[6]
    delta_M = p[7]
    theta_M = p[8]
    k_kill = p[9]
    phi_C = p[10]
    delta_B = p[12]
    k_P = p[13]
    phi_B = p[14]
    r_S = p[15]
    r_N = p[16]
    K_N = p[17]
    M_0 = p[18]
    r_M = p[19]
    phi_M = p[20]
    gamma_F = p[24]
    gamma_C = p[25]
    k_C = p[26]
    k_tr = p[27]
    k_IL6_ref = p[31]
    f_IL6_renal = p[32]
    p_IL6 = p[33]
    A_0 = p[34]
    k_A = p[35]
    f_LLPC = p[36]
    Q_norm = p[38]
    k_Q = p[39]
    L_0 = p[40]
    k_L = p[41]
    CI = p[42]
    k_heal = p[46]
    k_U = p[48]
    u_C = p[49]
    K_U = p[50]
    V_1 = p[52]
    k_10 = p[53]
    k_12 = p[54]
    k_21 = p[55]
    k_13 = p[56]
    k_31 = p[57]
    k_D = p[58]
    s_I = p[59]
    k_I_el = p[60]
    k_cons = p[61]
    P_ss = p[62]
    s_IL6 = p[63]
    k_IC = p[64]
    GFR_cap = p[66]
    k_inj = p[68]
    u_L = p[69]

    F_1 = y[0]
    F_2 = y[1]
    F_3 = y[2]
    R_F = y[3]
    D = y[4]
    X_C = y[6]
    N = y[7]
    B = y[8]
    S = y[9]
    I = y[10]
    G = y[11]
    C_E = y[12]
    C_M = y[13]
    IL6 = y[14]
    A = y[15]
    Q = y[16]
    L = y[17]
    J = y[18]
    U = y[19]
    G_1 = y[20]
    K_1 = y[21]
    K_2 = y[22]
    P_1 = y[23]
    P_2 = y[24]
    Kc_1 = y[25]
    Kc_2 = y[26]
    H = y[27]
    M = y[28]
    G_2 = y[29]

    C = C_E + C_M
    C_F = F_1 / V_1
    kill_in = gamma_F * C_F + gamma_C * X_C
    k_LD = K_2
    x = B / K_B + I / I_50
    drive = rho * G * x / (1.0 + x) * (1.0 - C / K_C)
    C_func = C_E + theta_M * C_M
    kill_B = k_kill * C_func
    kill_C = phi_C * Kc_2
    GFR = GFR_cap * (1.0 - J)
    k_IL6 = k_IL6_ref * (1.0 - f_IL6_renal + f_IL6_renal * GFR / 100.0)
    U_ss = (u_L * L + u_C * CI) * GFR / (GFR + K_U)
    dF_1 = R_F - (k_10 + k_12 + k_13 + k_D * D) * F_1 + k_21 * F_2 + k_31 * F_3
    dF_2 = k_12 * F_1 - (k_21 + k_D * D) * F_2
    dF_3 = k_13 * F_1 - (k_31 + k_D * D) * F_3
    dR_F = 0.0
    dD = 0.0
    dAUC_F = 24.0 * C_F
    dX_C = -k_C * X_C
    dN = r_N * N * (1.0 - (N + C) / K_N) - k_LD * N
    dP_1 = k_P * P_ss - (k_P + kill_B + phi_B * k_LD) * P_1
    dP_2 = k_P * P_1 - (k_P + kill_B + phi_B * k_LD) * P_2
    dB = k_P * P_2 - delta_B * B - kill_B * B - phi_B * k_LD * B
    dS = r_S * S * (1.0 - S) - kill_B * S - phi_B * k_LD * S
    dI = s_I - (k_I_el + k_cons * (N + C)) * I
    dG = k_G * (G_2 - G)
    dG_2 = k_G * (G_1 - G_2)
    dG_1 = -k_G * G_1
    dK_1 = k_tr * (kill_in - K_1)
    dK_2 = k_tr * (K_1 - K_2)
    dKc_1 = k_tr * (H * kill_in - Kc_1)
    dKc_2 = k_tr * (Kc_1 - Kc_2)
    dH = 0.0
    dC_E = (drive - delta_E - k_EM - kill_C) * C_E
    dC_M = k_EM * C_E - (delta_M + kill_C) * C_M
    dM = r_M * (M_0 - M) - phi_M * k_LD * M
    dIL6 = s_IL6 - k_IL6 * IL6 + p_IL6 * drive * C_E
    dA = k_A * (A_0 * ((1.0 - f_LLPC) * S + f_LLPC) - A)
    dQ = k_Q * (Q_norm - Q) - k_IC * (A / A_0) * Q
    dL = k_L * (L_0 * A / A_0 - L)
    dJ = k_inj * (L / 24.0) * (1.0 - J) - k_heal * J
    dU = k_U * (U_ss - U)

    dydt[0] = dF_1
    dydt[1] = dF_2
    dydt[2] = dF_3
    dydt[3] = dR_F
    dydt[4] = dD
    dydt[5] = dAUC_F
    dydt[6] = dX_C
    dydt[7] = dN
    dydt[8] = dB
    dydt[9] = dS
    dydt[10] = dI
    dydt[11] = dG
    dydt[12] = dC_E
    dydt[13] = dC_M
    dydt[14] = dIL6
    dydt[15] = dA
    dydt[16] = dQ
    dydt[17] = dL
    dydt[18] = dJ
    dydt[19] = dU
    dydt[20] = dG_1
    dydt[21] = dK_1
    dydt[22] = dK_2
    dydt[23] = dP_1
    dydt[24] = dP_2
    dydt[25] = dKc_1
    dydt[26] = dKc_2
    dydt[27] = dH
    dydt[28] = dM
    dydt[29] = dG_2


@numba.njit(cache=True)
def observe_roles(y, p, out):
    """Role observables at one time, in ``cartkin.models.ROLES`` order (NaN if absent).

    ``y`` shape (n_states,), ``p`` the kernel vector, ``out`` shape (len(ROLES),): cart
    (cells/uL), cart_copies (copies/ug, from the modelled nucleated cells), cart_percent_t (%),
    b_cells (cells/uL), il6 (pg/mL), anti_dsdna (IU/mL), complement (g/L), ln_activity (0-24),
    proteinuria (g/24h), kidney_function (mL/min/1.73m2).
    """
    c = y[12] + y[13]
    nucleated = y[7] + y[8] + c + y[28]
    out[0] = c
    out[1] = p[51] * c / max(nucleated, 1e-300) * CELLS_PER_UG_DNA
    out[2] = 100.0 * c / max(c + y[7], 1e-300)
    out[3] = y[8]
    out[4] = y[14]
    out[5] = y[15]
    out[6] = y[16]
    out[7] = y[17]
    out[8] = y[19]
    out[9] = p[66] * (1.0 - y[18])


# ---------------------------------------------------------------------------------------------
# Python side: individualize (array-valued over patients), observables
# ---------------------------------------------------------------------------------------------
_N_STATES = len(STATES)
_S = {s.symbol: k for k, s in enumerate(STATES)}


def _per_patient(x, n: int) -> np.ndarray:
    """``x`` (scalar or array) as float64 of shape (n,); read-only use (may be ``x`` itself)."""
    a = np.asarray(x, dtype=np.float64)
    if a.shape == (n,):  # the usual case; a cheap check, since a scalar individualize pays it
        return a
    return np.broadcast_to(np.atleast_1d(a), (n,)).astype(np.float64)


def individualize(values, bctx):
    """Kernel inputs for ``n`` patients at once (array-valued; see the module docstring).

    Parameters
    ----------
    values : dict of str to numpy.ndarray, shape (n,)
        Table values per patient, in table order.
    bctx : cartkin.batch.BatchContext
        Arrays with a leading patient axis (docs/design.md section 5): ``weight_kg``,
        ``egfr_ml_min_173m2``, ``flu_cl_l_h``, ``flu_v1_l``, ``flu_v2_l``, ``flu_v3_l``,
        ``flu_q2_l_h``, ``flu_q3_l_h``, ``flu_dose_factor`` (n,); ``flu_dose_days``,
        ``flu_dose_mg`` (n, m_f); ``flu_infusion_h`` (float); ``cy_days``, ``cy_mg_m2``
        (n, m_c); ``cart_dose_days``, ``cart_dose_cells`` (n, m_d); ``dialysis_session_days``
        (n, m_s), ``dialysis_duration_h``, ``flu_removal_fraction`` (n,). Pads are NaN or 0.

    Returns
    -------
    cartkin.batch.BatchIndividuals
        ``p`` (n, n_kernel), ``y0`` (n, n_states), ``t0`` (n,), ``t_stops`` (n, m) padded with
        +inf, ``jumps`` (n, m, n_states) zero-padded, ``n_stops`` (n,).
    """
    from cartkin.batch import BatchIndividuals

    n = int(np.asarray(bctx.weight_kg).shape[0])
    v = {k: _per_patient(x, n) for k, x in values.items()}
    f = {
        name: np.asarray(getattr(bctx, name), dtype=np.float64).reshape(n)
        for name in ("weight_kg", "egfr_ml_min_173m2", "flu_cl_l_h", "flu_v1_l", "flu_v2_l",
                     "flu_v3_l", "flu_q2_l_h", "flu_q3_l_h", "flu_dose_factor",
                     "dialysis_duration_h", "flu_removal_fraction")
    }  # fmt: skip
    flu_days = np.asarray(bctx.flu_dose_days, dtype=np.float64).reshape(n, -1)
    flu_mg = np.nan_to_num(np.asarray(bctx.flu_dose_mg, dtype=np.float64).reshape(n, -1))
    cy_days = np.asarray(bctx.cy_days, dtype=np.float64).reshape(n, -1)
    cy_mg = np.nan_to_num(np.asarray(bctx.cy_mg_m2, dtype=np.float64).reshape(n, -1))
    cart_days = np.asarray(bctx.cart_dose_days, dtype=np.float64).reshape(n, -1)
    cart_cells = np.nan_to_num(np.asarray(bctx.cart_dose_cells, dtype=np.float64).reshape(n, -1))
    sessions = np.asarray(bctx.dialysis_session_days, dtype=np.float64).reshape(n, -1)
    infusion_d = float(bctx.flu_infusion_h) / 24.0

    # -- derived kernel entries (all (n,)) ----------------------------------------------------
    v1 = f["flu_v1_l"]
    k10, k12 = 24.0 * f["flu_cl_l_h"] / v1, 24.0 * f["flu_q2_l_h"] / v1
    k21, k13 = 24.0 * f["flu_q2_l_h"] / f["flu_v2_l"], 24.0 * f["flu_q3_l_h"] / v1
    k31 = 24.0 * f["flu_q3_l_h"] / f["flu_v3_l"]
    removal = np.clip(f["flu_removal_fraction"], 0.0, 1.0 - 1e-12)
    duration_d = np.where(f["dialysis_duration_h"] > 0, f["dialysis_duration_h"], 4.0) / 24.0
    k_d = -np.log1p(-removal) / duration_d
    s_i = v["k_I"] * v["I_0"]
    k_i_el = (1.0 - v["f_I_cons"]) * v["k_I"]
    k_cons = v["f_I_cons"] * v["k_I"] / v["K_N"]
    p_ss = v["delta_B"] * v["B_pre"] / v["k_P"]
    s_il6 = v["k_IL6_ref"] * v["IL6_0"]
    k_ic = v["k_Q"] * np.maximum(v["Q_norm"] / v["Q_0"] - 1.0, 0.0)
    egfr0 = f["egfr_ml_min_173m2"]
    s_irr = 1.0 / (1.0 + np.exp(-(v["CI"] - v["CI_50"]) / v["w_CI"]))
    gfr_cap = egfr0 + (1.0 - s_irr) * np.maximum(v["GFR_norm"] - egfr0, 0.0)
    j0 = np.clip(1.0 - egfr0 / gfr_cap, 0.0, 0.999)
    k_inj = v["k_heal"] * j0 / ((1.0 - j0) * v["L_0"] / 24.0)
    u_l = np.maximum(v["U_0"] * (egfr0 + v["K_U"]) / egfr0 - v["u_C"] * v["CI"], 0.0) / v["L_0"]
    k_il6_0 = v["k_IL6_ref"] * (1.0 - v["f_IL6_renal"] + v["f_IL6_renal"] * egfr0 / 100.0)
    blood_ul = v["blood_l_per_kg"] * f["weight_kg"] * UL_PER_L
    levels = cart_cells / blood_ul[:, None] * v["f_blood"][:, None]

    # -- stops and jumps (array-valued: no per-patient Python) ---------------------------------
    # Event columns in a fixed order (fludarabine start/end per dose, cyclophosphamide, CAR-T
    # doses by day with the programme switches at the first, dialysis sessions); a stable sort
    # by time keeps that order among equal times.
    S = _S
    flu_ok = np.isfinite(flu_days) & (flu_mg > 0)
    rate = flu_mg * f["flu_dose_factor"][:, None] / infusion_d
    cy_ok = np.isfinite(cy_days) & (cy_mg > 0)
    cart_ok = np.isfinite(cart_days) & (levels > 0)
    by_day = np.lexsort((levels, np.where(cart_ok, cart_days, np.inf)), axis=1)
    cart_days = np.take_along_axis(cart_days, by_day, axis=1)
    levels = np.take_along_axis(levels, by_day, axis=1)
    cart_ok = np.take_along_axis(cart_ok, by_day, axis=1)
    first = np.zeros_like(cart_ok)
    first[:, :1] = cart_ok[:, :1]
    c_e0 = np.where(first[:, 0], levels[:, 0], 0.0) if levels.shape[1] else np.zeros(n)
    starts = np.concatenate(
        [np.where(flu_ok, flu_days, np.inf), np.where(cy_ok, cy_days, np.inf),
         np.where(cart_ok, cart_days, np.inf), np.zeros((n, 1))], axis=1)  # fmt: skip
    t0 = starts.min(axis=1)
    flu_last = np.where(flu_mg > 0, flu_days, -np.inf).max(axis=1, initial=-np.inf)
    last = flu_last + DIALYSIS_WINDOW_DAYS
    dia_ok = (
        (k_d > 0)[:, None] & np.isfinite(sessions) & (sessions >= t0[:, None])
        & (sessions <= last[:, None])
    )  # fmt: skip
    dia_on = np.ones_like(sessions)
    cart_1 = np.ones_like(cart_days)
    # (time, state, amount, valid) per column; interleave pairs so each dose's events stay in
    # the order of the formulas above
    pairs = [
        ((flu_days, S["R_F"], rate, flu_ok), (flu_days + infusion_d, S["R_F"], -rate, flu_ok)),
        ((cy_days, S["X_C"], cy_mg, cy_ok),),
        ((cart_days, S["C_E"], levels, cart_ok), (cart_days, S["G"], cart_1, first),
         (cart_days, S["G_1"], cart_1, first), (cart_days, S["H"], cart_1, first),
         (cart_days, S["G_2"], cart_1, first)),
        ((sessions, S["D"], dia_on, dia_ok),
         (sessions + duration_d[:, None], S["D"], -dia_on, dia_ok)),
    ]  # fmt: skip
    times, states, amounts, valid = [], [], [], []
    for group in pairs:
        width = group[0][0].shape[1]
        for q in range(width):
            for t_col, state, amount, ok in group:
                times.append(t_col[:, q])
                states.append(np.full(n, state))
                amounts.append(amount[:, q])
                valid.append(ok[:, q])
    if times:
        T, St = np.stack(times, axis=1), np.stack(states, axis=1)
        A, V = np.stack(amounts, axis=1), np.stack(valid, axis=1)
    else:
        T, St, A, V = (
            np.zeros((n, 0)),
            np.zeros((n, 0), np.int64),
            np.zeros((n, 0)),
            np.zeros((n, 0), bool),
        )
    T = np.where(V, T, np.inf)
    order = np.argsort(T, axis=1, kind="stable")
    n_stops = V.sum(axis=1).astype(np.int64)
    m = int(n_stops.max(initial=0))
    order = order[:, :m]
    t_stops = np.take_along_axis(T, order, axis=1)
    A = np.take_along_axis(np.where(V, A, 0.0), order, axis=1)
    St = np.take_along_axis(St, order, axis=1).astype(np.int64)
    jumps = np.zeros((n, m, _N_STATES))
    rows, cols = np.nonzero(np.take_along_axis(V, order, axis=1))
    jumps[rows, cols, St[rows, cols]] = A[rows, cols]

    # -- state at t0 -----------------------------------------------------------------------------
    y0 = np.zeros((n, _N_STATES))
    y0[:, _S["N"]] = v["K_N"]
    y0[:, _S["B"]] = v["B_pre"]
    y0[:, _S["S"]] = 1.0
    y0[:, _S["I"]] = v["I_0"]
    y0[:, _S["IL6"]] = s_il6 / k_il6_0
    y0[:, _S["A"]] = v["A_0"]
    y0[:, _S["Q"]] = v["Q_0"]
    y0[:, _S["L"]] = v["L_0"]
    y0[:, _S["J"]] = j0
    y0[:, _S["U"]] = v["U_0"]
    y0[:, _S["P_1"]] = p_ss
    y0[:, _S["P_2"]] = p_ss
    y0[:, _S["M"]] = v["M_0"]

    derived = [v1, k10, k12, k21, k13, k31, k_d, s_i, k_i_el, k_cons, p_ss, s_il6, k_ic, s_irr,
               gfr_cap, j0, k_inj, u_l, egfr0, t0, c_e0]  # fmt: skip
    # (n_kernel, n) stacked then transposed: 3x faster than column_stack for a single patient
    p = np.array([*(v[name] for name in PARAMETERS.names), *derived], dtype=np.float64)
    p = np.ascontiguousarray(p.T)
    return BatchIndividuals(p=p, y0=y0, t0=t0, t_stops=t_stops, jumps=jumps, n_stops=n_stops)


_I = {name: k for k, name in enumerate((*PARAMETERS.names, *DERIVED))}


def _cart(states, p):
    return states[:, _S["C_E"]] + states[:, _S["C_M"]]


def _nucleated(states, p):
    return np.maximum(
        states[:, _S["N"]] + states[:, _S["B"]] + _cart(states, p) + states[:, _S["M"]], 1e-300
    )


def _state(symbol):
    k = _S[symbol]
    return lambda s, p: s[:, k]


OBSERVABLES = (
    Observable("cart_cells_per_ul", "cells/uL", "CAR-T cells in blood (flow): C_E + C_M", _cart),
    Observable(
        "cart_percent_of_t_cells",
        "%",
        "CAR-T share of all T cells (flow): 100 * C / (C + N)",
        lambda s, p: 100.0 * _cart(s, p) / np.maximum(_cart(s, p) + s[:, _S["N"]], 1e-300),
    ),
    Observable(
        "transgene_copies_per_ug",
        "copies/ug",
        "CAR transgene by qPCR: vcn * C / (N + B + C + M) * nucleated cells per ug DNA "
        "(1e6 / 6.6 pg per diploid cell)",
        lambda s, p: p[_I["vcn"]] * _cart(s, p) / _nucleated(s, p) * CELLS_PER_UG_DNA,
    ),
    Observable("t_cells_per_ul", "cells/uL", "endogenous T cells: N", _state("N")),
    Observable(
        "nucleated_cells_per_ul", "cells/uL", "nucleated blood cells: N + B + C + M", _nucleated
    ),
    Observable("myeloid_cells_per_ul", "cells/uL", "non-lymphoid nucleated cells: M", _state("M")),
    Observable("b_cells_per_ul", "cells/uL", "CD19+ B cells (flow): B", _state("B")),
    Observable("il15_pg_per_ml", "pg/mL", "serum IL-15: I", _state("I")),
    Observable("il6_pg_per_ml", "pg/mL", "serum IL-6: IL6", _state("IL6")),
    Observable(
        "fludarabine_mg_per_l",
        "mg/L",
        "plasma F-ara-A (on the clearance model's dose basis): F_1 / V_1",
        lambda s, p: s[:, _S["F_1"]] / p[_I["V_1"]],
    ),
    Observable(
        "fludarabine_auc_mg_h_per_l", "mg.h/L", "cumulative F-ara-A AUC: AUC_F", _state("AUC_F")
    ),
    Observable("anti_dsdna_iu_per_ml", "IU/mL", "serum anti-dsDNA: A", _state("A")),
    Observable("complement_c3_g_per_l", "g/L", "serum complement C3: Q", _state("Q")),
    Observable(
        "ln_activity_index", "0-24", "renal activity (activity index scale): L", _state("L")
    ),
    Observable("proteinuria_g_per_24h", "g/24h", "proteinuria: U", _state("U")),
    Observable(
        "kidney_function_ml_min_173m2",
        "mL/min/1.73m2",
        "residual kidney function: GFR_cap * (1 - J)",
        lambda s, p: p[_I["GFR_cap"]] * (1.0 - s[:, _S["J"]]),
    ),
)

EQUATIONS = textwrap.dedent(__doc__.split("::", 1)[1].split("Initial state", 1)[0]).strip()

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

MODEL = Model(
    name="sle_cart_v3",
    description=(
        "Mechanistic CD19 CAR-T kinetics in SLE, version 3: levels in cells/uL calibrated to "
        "flow-cytometry data (blood fraction of the infused cells from Kimmel 2021), expansion "
        "saturating at a CAR-T carrying capacity (Kimmel 2021), Stein's "
        "long terminal phase, B cells returning through CD19+ precursors once effectors have "
        "contracted, fludarabine killing the infused cells as it kills endogenous lymphocytes "
        "(residual drug at infusion lowers expansion), transgene copies/ug from the modelled "
        "nucleated cells, and a lupus kidney whose reversible share follows the chronicity "
        "index. Fludarabine PK (3 compartments, kidney function, dialysis sessions) and IL-15 "
        "as in version 2. Day 0 is the CAR-T infusion."
    ),
    states=STATES,
    parameters=PARAMETERS,
    observables=OBSERVABLES,
    rhs=rhs,
    jac=None,
    individualize=individualize,
    roles=ROLE_MAP,
    equations=EQUATIONS,
    derived=DERIVED,
    batch=True,
    observe_roles=observe_roles,
)
