"""sle_cart_v2: CD19 CAR-T in SLE with lymphodepletion in time and a lupus nephritis layer.

Time in days (day 0 = CAR-T infusion; the solve starts at ``t0``, the first lymphodepletion
day), cells per uL of blood, fludarabine in mg (amounts) and mg/L, IL-15 and IL-6 in pg/mL,
anti-dsDNA in IU/mL, C3 in g/L, proteinuria in g/24h, kidney function in mL/min/1.73m2.
Version 2 of ``sle_cart``, kept under the name ``sle_cart_v2`` for comparison with version 3
(now ``sle_cart``; issue 15 lists what v2's structure, not data, decided). Version 1 (MODEL.md
section 4) stays available as ``sle_cart_v1``.

One continuous chain: kidney function at lymphodepletion -> fludarabine clearance -> F-ara-A
concentration over time (3-compartment PK as states; infusions as rates switched by the flag
``R_F``, dialysis sessions as a removal rate switched by the flag ``D``) -> lymphocyte kill
(with cyclophosphamide acting over the hours after each dose) -> fewer T cells consuming IL-15
(the "cytokine sink", Gattinoni 2005) -> IL-15 rises -> CAR-T expansion. Timing matters: T cells
recover (Kimmel 2021) between lymphodepletion and infusion and IL-15 falls back as they do.

CAR-T phases
------------
- *Expansion*, bounded by biology: proliferation ``rho * G * x / (1 + x)`` never exceeds
  ``rho`` (upper bound 3/day, a doubling time of 5.5 h, faster than the 6-8 h cell cycle of
  in-vivo CD8 T-cell clonal expansion, Yoon H et al., PLoS One 2010;5:e15423). ``G`` is the
  proliferative program of the infused, ex-vivo activated cells (set to 1 at the first infusion,
  fading at ``k_G``): antigen-primed CD8 T cells run a program of divisions that, once started,
  continues without further antigen and then stops (Kaech SM, Ahmed R, Nat Immunol 2001;2:415);
  it runs through two stages (``G_1 -> G``), so it holds for a few days and then ends.
  The stimulation ``x = B / K_B + I / I_50`` adds antigen (B cells) and IL-15; at baseline IL-15
  and B-cell counts (no lymphodepletion) ``x`` is smaller but not zero, so CAR-T still expand.
- *Post-peak decline*: once ``G`` has faded, effectors die at ``delta_E + k_EM`` (Stein's alpha).
- *Memory/persistence*: a share ``k_EM`` of effectors becomes memory cells lost at ``delta_M``;
  memory cells kill B cells only with the relative weight ``theta_M``, so long low-level
  persistence (small ``delta_M``) and B-cell return can coexist.
- B cells are killed and their production inhibited by *functional* CAR-T
  ``C_func = C_E + theta_M * C_M`` (production inhibition form from Leon-Triana 2021).

Lupus nephritis layer
---------------------
``S``: autoreactive B-cell activity (1 before treatment): self-renewing (logistic, ``r_S``), killed
with the B cells. B cells that return after CD19 CAR-T are naive (Mackensen 2022), so new B cells
do not restore ``S``. anti-dsDNA ``A`` is made by short-lived plasma cells in proportion to ``S``
and by CD19-negative long-lived plasma cells (share ``f_LLPC``) that CAR-T cannot remove, so
its floor is ``f_LLPC * A_0``. Complement C3 ``Q`` is consumed by immune complexes (in
proportion to ``A``). Renal inflammation activity ``L`` (activity index scale 0-24) follows the
immune-complex load; proteinuria ``U`` follows activity over a chronic share set by the
chronicity index ``CI`` (0-12). Kidney function is ``GFR = GFR_cap * (1 - J)``: ``GFR_cap`` the
function of the nephrons left after the irreversible loss ``f_irr_max * CI / 12``, ``J`` the
reversible injury, raised by activity and healing at ``k_heal``. IL-6 elimination follows the
modelled ``GFR`` over time; fludarabine clearance keeps the eGFR at lymphodepletion.

States
------
``F_1, F_2, F_3`` F-ara-A amounts (mg, central and peripheral), ``R_F`` infusion rate (mg/day),
``D`` dialysis flag, ``AUC_F`` cumulative F-ara-A AUC (mg.h/L), ``X_C`` cyclophosphamide activity
(mg/m2), ``N`` endogenous T cells, ``B`` CD19+ B cells, ``S`` autoreactive B-cell activity,
``I`` IL-15, ``G`` proliferative program, ``C_E``, ``C_M`` effector and memory CAR-T, ``IL6``,
``A`` anti-dsDNA, ``Q`` complement C3, ``L`` LN activity, ``J`` reversible kidney injury,
``U`` proteinuria, ``G_1`` first stage of the program (two stages make the program end in a
shoulder rather than fade from the first hour), ``K_1, K_2`` the lymphodepletion kill rate
passing two transit stages (drug exposure kills lymphocytes with a delay, as in the transit
compartments of McCune JS et al., Cancer Chemother Pharmacol 2015;75:67).

Equations (exactly as in :func:`rhs`)
-------------------------------------
::

    C = C_E + C_M
    C_F = F_1 / V_1
    kill_in = gamma_F * C_F + gamma_C * X_C
    k_LD = K_2
    x = B / K_B + I / I_50
    drive = rho * G * x / (1.0 + x)
    C_func = C_E + theta_M * C_M
    kill_B = k_kill * C_func
    GFR = GFR_cap * (1.0 - J)
    k_IL6 = k_IL6_ref * (1.0 - f_IL6_renal + f_IL6_renal * GFR / 100.0)
    dF_1 = R_F - (k_10 + k_12 + k_13 + k_D * D) * F_1 + k_21 * F_2 + k_31 * F_3
    dF_2 = k_12 * F_1 - (k_21 + k_D * D) * F_2
    dF_3 = k_13 * F_1 - (k_31 + k_D * D) * F_3
    dR_F = 0.0
    dD = 0.0
    dAUC_F = 24.0 * C_F
    dX_C = -k_C * X_C
    dN = r_N * N * (1.0 - (N + C) / K_N) - k_LD * N
    dB = delta_B * B_pre / (1.0 + C_func / C_50) - delta_B * B - kill_B * B - phi_B * k_LD * B
    dS = r_S * S * (1.0 - S) - kill_B * S - phi_B * k_LD * S
    dI = s_I - (k_I_el + k_cons * (N + C)) * I
    dG = k_G * (G_1 - G)
    dG_1 = -k_G * G_1
    dK_1 = k_tr * (kill_in - K_1)
    dK_2 = k_tr * (K_1 - K_2)
    dC_E = drive * C_E - (delta_E + k_EM) * C_E
    dC_M = k_EM * C_E - delta_M * C_M
    dIL6 = s_IL6 - k_IL6 * IL6 + p_IL6 * drive * C_E
    dA = k_A * (A_0 * ((1.0 - f_LLPC) * S + f_LLPC) - A)
    dQ = k_Q * (Q_norm - Q) - k_IC * (A / A_0) * Q
    dL = k_L * (L_0 * A / A_0 - L)
    dJ = k_inj * (L / 24.0) * (1.0 - J) - k_heal * J
    dU = k_U * (U_0 * (f_Uc + (1.0 - f_Uc) * L / L_0) - U)

Initial state, dosing and derived entries (:func:`individualize`)
-----------------------------------------------------------------
::

    t0 = min(0, first fludarabine day, first cyclophosphamide day, first CAR-T day)
    y(t0): F = R_F = D = AUC_F = X_C = G = C_E = C_M = 0; N = K_N; B = B_pre; S = 1; I = I_0;
           IL6 = s_IL6 / k_IL6(eGFR_0); A = A_0; Q = Q_0; L = L_0; J = J_0; U = U_0
    fludarabine dose d (mg phosphate x dose basis factor) on day t: R_F += d / T_inf at t,
        R_F -= d / T_inf at t + T_inf (T_inf = 0.5 h)
    cyclophosphamide c mg/m2 on day t: X_C += c;  dialysis session: D += 1 at its start, -= 1
        at its end (sessions up to 28 days after the last fludarabine dose)
    CAR-T n cells on day t: C_E += n / (blood_l_per_kg * WT * 1e6) * f_blood; G += 1 and
        G_1 += 1 at the first (so G(t) = (1 + k_G t) exp(-k_G t) after it)
    k_10 = 24 CL / V_1, k_12 = 24 Q_2 / V_1, k_21 = 24 Q_2 / V_2, k_13 = 24 Q_3 / V_1,
        k_31 = 24 Q_3 / V_3 (per day; CL, V, Q from kidney.fludarabine_pk_parameters at the
        eGFR of lymphodepletion)
    k_D = -ln(1 - f_removal) / session duration (per day; removes the fraction f_removal of the
        body amount over a session, cf. kidney.py's instantaneous removal)
    s_I = k_I * I_0,  k_I_el = (1 - f_I_cons) * k_I,  k_cons = f_I_cons * k_I / K_N
    s_IL6 = k_IL6_ref * IL6_0,  k_IC = k_Q * (Q_norm / Q_0 - 1)
    f_irr = f_irr_max * CI / 12,  GFR_cap = max(eGFR_0, GFR_norm * (1 - f_irr)),
    J_0 = 1 - eGFR_0 / GFR_cap,  k_inj = k_heal * J_0 / ((1 - J_0) * L_0 / 24),  f_Uc = CI / 12

Kernel parameter vector ``p``: the table entries in table order, then ``DERIVED``.
Defaults of the CAR-T parameters marked "calibrated" come from
``cartkin/models/calibration/sle_cart_v2.json`` (``scripts/calibrate_sle_cart_v2.py``).
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

CALIBRATION_FILE = Path(__file__).parent / "calibration" / "sle_cart_v2.json"


def _calibrated() -> dict:
    """Fitted defaults from the calibration JSON (empty if the file is missing)."""
    try:
        return json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))["estimates"]
    except FileNotFoundError:
        return {}


_CAL = _calibrated()
_CAL_SRC = (
    "calibrated: scripts/calibrate_sle_cart_v2.py to Stein 2019 Table 1 (Tmax 9.3 d, fold "
    "expansion 3900, alpha 0.16/d, Cmax) and Mackensen 2022 (B-cell return 110 d); assumption: "
    "the fit is to typical values, not patient data"
)


def _cal(name, fallback):
    return float(_CAL.get(name, fallback))


# ---------------------------------------------------------------------------------------------
# Parameter table (kernel order: p[0] .. p[len-1]; derived entries follow, see DERIVED)
# ---------------------------------------------------------------------------------------------
PARAMETERS = ParameterTable(
    [
        # --- CAR-T expansion and contraction -----------------------------------------------------
        Parameter("rho", _cal("rho", 1.5), "1/day", 0.1, 3.0,
                  "maximal CAR-T proliferation rate (program on, saturating stimulation); upper "
                  "bound 3/day = doubling in 5.5 h, faster than the 6-8 h in-vivo CD8 T-cell "
                  "cycle (Yoon 2010)", _CAL_SRC),
        Parameter("k_G", _cal("k_G", 0.25), "1/day", 0.01, 5.0,
                  "fading rate of the infused cells' proliferative program (Kaech & Ahmed 2001)",
                  _CAL_SRC),
        Parameter("K_B", 150.0, "cells/uL", 1.0, 1e5,
                  "B-cell count giving stimulation x = 1 (antigen)",
                  "assumption: equal to B_pre, so antigen alone gives half-maximal stimulation "
                  "before lymphodepletion"),
        Parameter("I_50", 3.0, "pg/mL", 0.1, 1000.0,
                  "IL-15 concentration giving stimulation x = 1",
                  "assumption: just above baseline IL-15 (2.4 pg/mL, De Bock 2013), so the "
                  "4-5 fold rise after lymphodepletion moves stimulation from about 0.6 to 0.8 "
                  "of its maximum; not identified by the calibration targets"),
        Parameter("delta_E", 0.16, "1/day", 0.0, 2.0,
                  "effector CAR-T loss rate (death)",
                  "Stein 2019, Table 1: alpha 0.16/d (delta_E + k_EM = alpha, k_EM small)"),
        Parameter("k_EM", 0.002, "1/day", 0.0, 0.5,
                  "effector-to-memory CAR-T differentiation rate",
                  "assumption: k_EM x (integral of C_E) / Cmax about Stein's FB 0.0079 "
                  "(Stein 2019, Table 1)"),
        Parameter("delta_M", 0.02, "1/day", 0.0005, 0.5,
                  "memory CAR-T loss rate (terminal phase)",
                  "assumption: half-life 35 d; SLE CAR-T persist shorter than in leukemia "
                  "(Mueller, Blood 2025), whose Stein 2019 beta is 0.0032/d"),
        Parameter("theta_M", 0.2, "-", 0.0, 2.0,
                  "B-cell killing by memory CAR-T relative to effectors",
                  "assumption: resting memory cells are less cytotoxic than effectors; sets, "
                  "with delta_M, whether B cells return while CAR-T persist"),
        Parameter("k_kill", 0.5, "uL/(cell*day)", 0.0, 10.0,
                  "B-cell killing rate per functional CAR-T cell/uL",
                  "assumption: MODEL.md v1"),
        Parameter("C_50", _cal("C_50", 1.0), "cells/uL", 1e-5, 100.0,
                  "functional CAR-T level halving B-cell production (I0/(1 + C/C_50) form)",
                  _CAL_SRC + "; form from Leon-Triana 2021"),
        # --- B cells and autoreactive B-cell activity --------------------------------------------
        Parameter("B_pre", 150.0, "cells/uL", 1.0, 2000.0,
                  "CD19+ B cells before lymphodepletion (homeostatic set point)",
                  "assumption: SLE patients on immunosuppression are often B-lymphopenic "
                  "(healthy adults about 100-500/uL)"),
        Parameter("delta_B", 1.0 / 60.0, "1/day", 1.0 / 365.0, 1.0,
                  "B-cell death rate (1 / mature B-cell lifetime of 60 d)",
                  "Leon-Triana 2021"),
        Parameter("phi_B", 1.0, "-", 0.0, 3.0,
                  "lymphodepletion kill of B cells relative to T cells",
                  "assumption: Flu/Cy depletes B and T cells alike"),
        Parameter("r_S", 0.01, "1/day", 0.0, 1.0,
                  "self-renewal rate of autoreactive B-cell activity (logistic regrowth)",
                  "assumption: slow, so that after deep depletion the autoreactive repertoire "
                  "takes years to return (drug-free remission through months, Mackensen 2022)"),
        # --- endogenous T cells ------------------------------------------------------------------
        Parameter("r_N", 0.17, "1/day", 0.01, 1.0,
                  "homeostatic T-cell recovery rate after lymphodepletion",
                  "Kimmel 2021"),
        Parameter("K_N", 500.0, "cells/uL", 50.0, 5000.0,
                  "T-cell carrying capacity (also the pre-lymphodepletion count)",
                  "Kimmel 2021"),
        # --- IL-15 -------------------------------------------------------------------------------
        Parameter("I_0", 2.4, "pg/mL", 0.1, 100.0,
                  "serum IL-15 before lymphodepletion",
                  "De Bock 2013 (2.4 pg/mL before conditioning)"),
        Parameter("k_I", 5.0, "1/day", 0.1, 100.0,
                  "IL-15 clearance rate at baseline lymphocyte counts",
                  "assumption: serum half-life of a few hours (3.3 h)"),
        Parameter("f_I_cons", 0.9, "-", 0.0, 0.999,
                  "share of baseline IL-15 clearance that is consumption by lymphocytes",
                  "assumption: receptor-mediated consumption dominates (Hangasky 2020); gives "
                  "a 4-5 fold rise after an 80% lymphocyte fall, as De Bock 2013 (2.4 -> 12.5)"),
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
        # --- infusion ----------------------------------------------------------------------------
        Parameter("f_blood", _cal("f_blood", 0.011), "-", 1e-6, 1.0,
                  "fraction of infused CAR-T found in circulating blood right after infusion "
                  "(the start of the expansion curve)",
                  _CAL_SRC + " and Cmax 24,000 copies/ug; Kimmel 2021's 0.36 cells/uL at 2e6 "
                  "cells/kg (0.011) contradicts Stein's fold expansion with its Cmax"),
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
        Parameter("p_IL6", 50.0, "pg/mL per (cells/uL)", 0.0, 1e4,
                  "IL-6 released per CAR-T cell/uL produced by proliferation (activation)",
                  "assumption: gives an IL-6 peak of a few tens of pg/mL at 1e6 cells/kg "
                  "(grade 1 CRS at most in SLE, Mackensen 2022)"),
        # --- anti-dsDNA and complement -----------------------------------------------------------
        Parameter("A_0", 100.0, "IU/mL", 1.0, 1e4,
                  "anti-dsDNA before treatment (steady state)",
                  "assumption: active SLE"),
        Parameter("k_A", math.log(2.0) / 21.0, "1/day", 0.005, 0.5,
                  "anti-dsDNA elimination rate",
                  "assumption: IgG half-life about 21 d"),
        Parameter("f_LLPC", 0.1, "-", 0.0, 1.0,
                  "share of anti-dsDNA made by CD19-negative long-lived plasma cells",
                  "assumption: CD19 CAR-T spare long-lived plasma cells; below 0.15 so that "
                  "anti-dsDNA (A_0 100 IU/mL) seroconverts below 15 IU/mL, as in all 5 "
                  "patients of Mackensen 2022"),
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
                  "assumption: half-time 3 weeks; activity index 1/24 at 4 months in the "
                  "motivating case"),
        Parameter("CI", 2.0, "0-12", 0.0, 12.0,
                  "chronicity index of the kidney biopsy (covariate)",
                  "assumption: default for a patient without a biopsy (Bajema 2018 scale 0-12)"),
        Parameter("f_irr_max", 0.7, "-", 0.0, 1.0,
                  "irreversible nephron loss at chronicity index 12",
                  "assumption: gives 0.41 at CI 7, in MODEL.md's 0.35-0.5 for chronicity 7/12"),
        Parameter("GFR_norm", 110.0, "mL/min/1.73m2", 30.0, 200.0,
                  "kidney function without any nephron loss or injury",
                  "assumption: normal young adult"),
        Parameter("k_heal", math.log(2.0) / 60.0, "1/day", 0.0005, 1.0,
                  "healing rate of reversible kidney injury",
                  "assumption: half-time 2 months (dialysis-free by 6-12 months in about half "
                  "of patients, Marquez-Macedo 2023)"),
        Parameter("U_0", 5.0, "g/24h", 0.0, 30.0,
                  "proteinuria before treatment",
                  "assumption: nephrotic-range proteinuria of active lupus nephritis"),
        Parameter("k_U", math.log(2.0) / 30.0, "1/day", 0.001, 1.0,
                  "rate at which proteinuria follows activity",
                  "assumption: half-time 1 month (EULAR targets: 25% fall by 3 months, 50% by "
                  "6 months, Kostopoulou 2020)"),
        # --- assay -------------------------------------------------------------------------------
        Parameter("copies_per_cell", 2000.0, "(copies/ug)/(cells/uL)", 100.0, 1e5,
                  "transgene copies/ug genomic DNA per CAR-T cell/uL",
                  "derived: Singh 2021 (TransC)"),
        # --- lymphodepletion delay ---------------------------------------------------------------
        Parameter("k_tr", 1.0, "1/day", 0.1, 50.0,
                  "transit rate of the delayed lymphocyte kill (two stages, mean delay 2/k_tr)",
                  "assumption: value (2-day mean delay puts the lymphocyte nadir and the IL-15 "
                  "peak after infusion, IL-15 peak median day +2 in Kochenderfer 2017); transit "
                  "structure as McCune 2015 (3 compartments, values not found)"),
    ]
)  # fmt: skip

DERIVED = (
    "V_1", "k_10", "k_12", "k_21", "k_13", "k_31", "k_D",
    "s_I", "k_I_el", "k_cons", "s_IL6", "k_IC",
    "GFR_cap", "J_0", "k_inj", "f_Uc", "egfr_0", "t0", "C_E0",
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
)


# ---------------------------------------------------------------------------------------------
# Compiled code of this model (keep all of it in this file)
# ---------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def rhs(t, y, p, dydt):
    """sle_cart dy/dt (per day); ``p`` in kernel order (module docstring)."""
    rho = p[0]
    k_G = p[1]
    K_B = p[2]
    I_50 = p[3]
    delta_E = p[4]
    k_EM = p[5]
    delta_M = p[6]
    theta_M = p[7]
    k_kill = p[8]
    C_50 = p[9]
    B_pre = p[10]
    delta_B = p[11]
    phi_B = p[12]
    r_S = p[13]
    r_N = p[14]
    K_N = p[15]
    gamma_F = p[19]
    gamma_C = p[20]
    k_C = p[21]
    k_IL6_ref = p[25]
    f_IL6_renal = p[26]
    p_IL6 = p[27]
    A_0 = p[28]
    k_A = p[29]
    f_LLPC = p[30]
    Q_norm = p[32]
    k_Q = p[33]
    L_0 = p[34]
    k_L = p[35]
    k_heal = p[39]
    U_0 = p[40]
    k_U = p[41]
    k_tr = p[43]
    V_1 = p[44]
    k_10 = p[45]
    k_12 = p[46]
    k_21 = p[47]
    k_13 = p[48]
    k_31 = p[49]
    k_D = p[50]
    s_I = p[51]
    k_I_el = p[52]
    k_cons = p[53]
    s_IL6 = p[54]
    k_IC = p[55]
    GFR_cap = p[56]
    k_inj = p[58]
    f_Uc = p[59]

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

    C = C_E + C_M
    C_F = F_1 / V_1
    kill_in = gamma_F * C_F + gamma_C * X_C
    k_LD = K_2
    x = B / K_B + I / I_50
    drive = rho * G * x / (1.0 + x)
    C_func = C_E + theta_M * C_M
    kill_B = k_kill * C_func
    GFR = GFR_cap * (1.0 - J)
    k_IL6 = k_IL6_ref * (1.0 - f_IL6_renal + f_IL6_renal * GFR / 100.0)
    dF_1 = R_F - (k_10 + k_12 + k_13 + k_D * D) * F_1 + k_21 * F_2 + k_31 * F_3
    dF_2 = k_12 * F_1 - (k_21 + k_D * D) * F_2
    dF_3 = k_13 * F_1 - (k_31 + k_D * D) * F_3
    dR_F = 0.0
    dD = 0.0
    dAUC_F = 24.0 * C_F
    dX_C = -k_C * X_C
    dN = r_N * N * (1.0 - (N + C) / K_N) - k_LD * N
    dB = delta_B * B_pre / (1.0 + C_func / C_50) - delta_B * B - kill_B * B - phi_B * k_LD * B
    dS = r_S * S * (1.0 - S) - kill_B * S - phi_B * k_LD * S
    dI = s_I - (k_I_el + k_cons * (N + C)) * I
    dG = k_G * (G_1 - G)
    dG_1 = -k_G * G_1
    dK_1 = k_tr * (kill_in - K_1)
    dK_2 = k_tr * (K_1 - K_2)
    dC_E = drive * C_E - (delta_E + k_EM) * C_E
    dC_M = k_EM * C_E - delta_M * C_M
    dIL6 = s_IL6 - k_IL6 * IL6 + p_IL6 * drive * C_E
    dA = k_A * (A_0 * ((1.0 - f_LLPC) * S + f_LLPC) - A)
    dQ = k_Q * (Q_norm - Q) - k_IC * (A / A_0) * Q
    dL = k_L * (L_0 * A / A_0 - L)
    dJ = k_inj * (L / 24.0) * (1.0 - J) - k_heal * J
    dU = k_U * (U_0 * (f_Uc + (1.0 - f_Uc) * L / L_0) - U)

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


#: Sparsity of :func:`jac` (one string per row of d(dy/dt)/dy in state order; "x" where an entry
#: can be nonzero, "." where it is zero for every state and parameter value): the entries
#: :func:`jac` assigns, checked against it and against differences of :func:`rhs` in
#: ``tests/test_sparse_lu.py``. The kernel's Rosenbrock method factors ``I/(h gamma) - J`` on
#: this pattern (``cartkin._compile.lu_plan``) instead of as a dense 23 x 23 matrix.
JAC_PATTERN = (
    "xxxxx..................",
    "xx..x..................",
    "x.x.x..................",
    ".......................",
    ".......................",
    "x......................",
    "......x................",
    ".......x....xx........x",
    "........x...xx........x",
    ".........x..xx........x",
    ".......x..x.xx.........",
    "...........x........x..",
    "........x.xxx..........",
    "............xx.........",
    "........x.xxx.x...x....",
    ".........x.....x.......",
    "...............xx......",
    "...............x.x.....",
    ".................xx....",
    ".................x.x...",
    "....................x..",
    "x.....x..............x.",
    ".....................xx",
)


@numba.njit(cache=True)
def jac(t, y, p, J):
    """d(dy/dt)/dy of :func:`rhs` (per day), derived by hand; ``J`` shape (23, 23), filled.

    Row ``i``, column ``j`` is d(dy_i/dt)/dy_j in state order; ``p`` in kernel order.
    """
    rho = p[0]
    k_G = p[1]
    K_B = p[2]
    I_50 = p[3]
    delta_E = p[4]
    k_EM = p[5]
    delta_M = p[6]
    theta_M = p[7]
    k_kill = p[8]
    C_50 = p[9]
    B_pre = p[10]
    delta_B = p[11]
    phi_B = p[12]
    r_S = p[13]
    r_N = p[14]
    K_N = p[15]
    gamma_F = p[19]
    gamma_C = p[20]
    k_C = p[21]
    k_IL6_ref = p[25]
    f_IL6_renal = p[26]
    p_IL6 = p[27]
    A_0 = p[28]
    k_A = p[29]
    f_LLPC = p[30]
    k_Q = p[33]
    L_0 = p[34]
    k_L = p[35]
    k_heal = p[39]
    U_0 = p[40]
    k_U = p[41]
    k_tr = p[43]
    V_1 = p[44]
    k_10 = p[45]
    k_12 = p[46]
    k_21 = p[47]
    k_13 = p[48]
    k_31 = p[49]
    k_D = p[50]
    k_I_el = p[52]
    k_cons = p[53]
    k_IC = p[55]
    GFR_cap = p[56]
    k_inj = p[58]
    f_Uc = p[59]

    F_1 = y[0]
    F_2 = y[1]
    F_3 = y[2]
    D = y[4]
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
    J_kid = y[18]
    K_2 = y[22]

    n = y.shape[0]
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0

    C = C_E + C_M
    x = B / K_B + I / I_50
    sat = x / (1.0 + x)
    drive = rho * G * sat
    d_drive_dx = rho * G / ((1.0 + x) * (1.0 + x))
    d_drive_dB = d_drive_dx / K_B
    d_drive_dI = d_drive_dx / I_50
    d_drive_dG = rho * sat
    C_func = C_E + theta_M * C_M
    kill_B = k_kill * C_func
    GFR = GFR_cap * (1.0 - J_kid)
    k_IL6 = k_IL6_ref * (1.0 - f_IL6_renal + f_IL6_renal * GFR / 100.0)

    # fludarabine PK: dF_1, dF_2, dF_3, dAUC_F
    J[0, 0] = -(k_10 + k_12 + k_13 + k_D * D)
    J[0, 1] = k_21
    J[0, 2] = k_31
    J[0, 3] = 1.0
    J[0, 4] = -k_D * F_1
    J[1, 0] = k_12
    J[1, 1] = -(k_21 + k_D * D)
    J[1, 4] = -k_D * F_2
    J[2, 0] = k_13
    J[2, 2] = -(k_31 + k_D * D)
    J[2, 4] = -k_D * F_3
    J[5, 0] = 24.0 / V_1
    # dX_C
    J[6, 6] = -k_C
    # dN = r_N N (1 - (N + C) / K_N) - K_2 N
    J[7, 7] = r_N * (1.0 - (N + C) / K_N) - r_N * N / K_N - K_2
    J[7, 12] = -r_N * N / K_N
    J[7, 13] = -r_N * N / K_N
    J[7, 22] = -N
    # dB: production inhibited by C_func, death, killing, lymphodepletion
    d_prod = -delta_B * B_pre / (C_50 * (1.0 + C_func / C_50) * (1.0 + C_func / C_50))
    J[8, 8] = -delta_B - kill_B - phi_B * K_2
    J[8, 12] = d_prod - k_kill * B
    J[8, 13] = theta_M * (d_prod - k_kill * B)
    J[8, 22] = -phi_B * B
    # dS
    J[9, 9] = r_S * (1.0 - 2.0 * S) - kill_B - phi_B * K_2
    J[9, 12] = -k_kill * S
    J[9, 13] = -theta_M * k_kill * S
    J[9, 22] = -phi_B * S
    # dI = s_I - (k_I_el + k_cons (N + C)) I
    J[10, 10] = -(k_I_el + k_cons * (N + C))
    J[10, 7] = -k_cons * I
    J[10, 12] = -k_cons * I
    J[10, 13] = -k_cons * I
    # program stages
    J[11, 11] = -k_G
    J[11, 20] = k_G
    J[20, 20] = -k_G
    # lymphodepletion kill transit
    J[21, 0] = k_tr * gamma_F / V_1
    J[21, 6] = k_tr * gamma_C
    J[21, 21] = -k_tr
    J[22, 21] = k_tr
    J[22, 22] = -k_tr
    # dC_E = drive C_E - (delta_E + k_EM) C_E
    J[12, 8] = C_E * d_drive_dB
    J[12, 10] = C_E * d_drive_dI
    J[12, 11] = C_E * d_drive_dG
    J[12, 12] = drive - (delta_E + k_EM)
    # dC_M
    J[13, 12] = k_EM
    J[13, 13] = -delta_M
    # dIL6 = s_IL6 - k_IL6(J) IL6 + p_IL6 drive C_E
    J[14, 8] = p_IL6 * C_E * d_drive_dB
    J[14, 10] = p_IL6 * C_E * d_drive_dI
    J[14, 11] = p_IL6 * C_E * d_drive_dG
    J[14, 12] = p_IL6 * drive
    J[14, 14] = -k_IL6
    J[14, 18] = k_IL6_ref * f_IL6_renal * GFR_cap / 100.0 * IL6
    # lupus nephritis layer
    J[15, 9] = k_A * A_0 * (1.0 - f_LLPC)
    J[15, 15] = -k_A
    J[16, 15] = -k_IC * Q / A_0
    J[16, 16] = -k_Q - k_IC * A / A_0
    J[17, 15] = k_L * L_0 / A_0
    J[17, 17] = -k_L
    J[18, 17] = k_inj * (1.0 - J_kid) / 24.0
    J[18, 18] = -k_inj * L / 24.0 - k_heal
    J[19, 17] = k_U * U_0 * (1.0 - f_Uc) / L_0
    J[19, 19] = -k_U


@numba.njit(cache=True)
def observe_roles(y, p, out):
    """Role observables at one time, in ``cartkin.models.ROLES`` order (NaN if absent).

    ``y`` shape (n_states,), ``p`` the kernel vector, ``out`` shape (len(ROLES),): cart
    (cells/uL), cart_copies (copies/ug), cart_percent_t (%), b_cells (cells/uL), il6 (pg/mL),
    anti_dsdna (IU/mL), complement (g/L), ln_activity (0-24), proteinuria (g/24h),
    kidney_function (mL/min/1.73m2).
    """
    c = y[12] + y[13]
    out[0] = c
    out[1] = p[42] * c
    out[2] = 100.0 * c / max(c + y[7], 1e-300)
    out[3] = y[8]
    out[4] = y[14]
    out[5] = y[15]
    out[6] = y[16]
    out[7] = y[17]
    out[8] = y[19]
    out[9] = p[56] * (1.0 - y[18])


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
    s_il6 = v["k_IL6_ref"] * v["IL6_0"]
    k_ic = v["k_Q"] * np.maximum(v["Q_norm"] / v["Q_0"] - 1.0, 0.0)
    egfr0 = f["egfr_ml_min_173m2"]
    f_irr = v["f_irr_max"] * v["CI"] / 12.0
    gfr_cap = np.maximum(egfr0, v["GFR_norm"] * (1.0 - f_irr))
    j0 = np.clip(1.0 - egfr0 / gfr_cap, 0.0, 0.999)
    k_inj = v["k_heal"] * j0 / ((1.0 - j0) * v["L_0"] / 24.0)
    f_uc = v["CI"] / 12.0
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
         (cart_days, S["G_1"], cart_1, first)),
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

    derived = [v1, k10, k12, k21, k13, k31, k_d, s_i, k_i_el, k_cons, s_il6, k_ic, gfr_cap, j0,
               k_inj, f_uc, egfr0, t0, c_e0]  # fmt: skip
    # (n_kernel, n) stacked then transposed: 3x faster than column_stack for a single patient
    p = np.array([*(v[name] for name in PARAMETERS.names), *derived], dtype=np.float64)
    p = np.ascontiguousarray(p.T)
    return BatchIndividuals(p=p, y0=y0, t0=t0, t_stops=t_stops, jumps=jumps, n_stops=n_stops)


_I = {name: k for k, name in enumerate((*PARAMETERS.names, *DERIVED))}


def _cart(states, p):
    return states[:, _S["C_E"]] + states[:, _S["C_M"]]


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
        "CAR transgene by qPCR: copies_per_cell * (C_E + C_M)",
        lambda s, p: p[_I["copies_per_cell"]] * _cart(s, p),
    ),
    Observable("t_cells_per_ul", "cells/uL", "endogenous T cells: N", _state("N")),
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
    name="sle_cart_v2",
    description=(
        "Mechanistic CD19 CAR-T kinetics in SLE, version 2 (kept for comparison; sle_cart is v3): fludarabine PK (3 compartments, "
        "kidney function, dialysis sessions) and cyclophosphamide kill lymphocytes in time from "
        "the first lymphodepletion day; IL-15 rises as the lymphocytes that consume it fall and "
        "drives CAR-T expansion together with antigen (B cells) under a fading proliferative "
        "program; effector decline near Stein's alpha, long-lived memory CAR-T with weak "
        "cytotoxicity, IL-6 from CAR-T activation, and a lupus nephritis layer (anti-dsDNA with "
        "a long-lived plasma-cell share, C3, renal activity, proteinuria, reversible and "
        "irreversible kidney injury, residual kidney function). Day 0 is the CAR-T infusion."
    ),
    states=STATES,
    parameters=PARAMETERS,
    observables=OBSERVABLES,
    rhs=rhs,
    jac=jac,
    individualize=individualize,
    roles=ROLE_MAP,
    equations=EQUATIONS,
    derived=DERIVED,
    batch=True,
    observe_roles=observe_roles,
)
