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

The equations, per-patient entries, initial state and dosing are in :data:`DESCRIPTION`
(``cartkin show sle_cart``). Integration starts at the first lymphodepletion day (``t0``).
The fludarabine infusion rate ``R_F`` and the dialysis flag ``D`` are states set by the
regimen's events (``Infusion`` and ``Switch`` inputs); ``k_D = -ln(1 - f_removal) / session
duration`` removes the fraction f_removal of the body amount over a session.
Defaults of the CAR-T parameters marked "calibrated" come from
``cartkin/models/calibration/sle_cart_v2.json`` (``scripts/calibrate_sle_cart_v2.py``).
"""

import json
import math
from pathlib import Path

from cartkin.models.description import Bolus, Description, Infusion, Switch
from cartkin.parameters import Parameter, ParameterTable

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


DESCRIPTION = Description(
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
    parameters=PARAMETERS,
    states="""
        F_1    flu_central        [mg]        F-ara-A amount, central compartment
        F_2    flu_peripheral_2   [mg]        F-ara-A amount, first peripheral compartment
        F_3    flu_peripheral_3   [mg]        F-ara-A amount, second peripheral compartment
        R_F    flu_infusion_rate  [mg/day]    running fludarabine infusion rate (flag)
        D      on_dialysis        [-]         1 during a dialysis session, else 0 (flag)
        AUC_F  flu_auc            [mg.h/L]    cumulative F-ara-A AUC since the first dose
        X_C    cy_activity        [mg/m2]     cyclophosphamide (active metabolite) activity
        N      t_cells            [cells/uL]  endogenous (non-CAR) T cells in blood
        B      b_cells            [cells/uL]  CD19+ B cells in blood
        S      autoreactive_b     [-]         autoreactive B-cell activity, 1 before treatment
        I      il15               [pg/mL]     serum IL-15 (homeostatic drive)
        G      program            [-]         proliferative program of the infused CAR-T, 1 at infusion
        C_E    effector           [cells/uL]  effector CAR-T cells in blood
        C_M    memory             [cells/uL]  memory CAR-T cells in blood
        IL6    il6                [pg/mL]     serum IL-6
        A      anti_dsdna         [IU/mL]     serum anti-dsDNA antibodies
        Q      complement_c3      [g/L]       serum complement C3
        L      ln_activity        [0-24]      renal inflammation activity (activity index scale)
        J      kidney_injury      [-]         reversible share of kidney function lost
        U      proteinuria        [g/24h]     proteinuria
        G_1    program_early      [-]         first stage of the proliferative program, 1 at infusion
        K_1    kill_transit_1     [1/day]     lymphodepletion kill rate, first transit stage
        K_2    kill_transit_2     [1/day]     lymphodepletion kill rate acting on lymphocytes
    """,
    derived="""
        # F-ara-A 3-compartment PK (per day) at the eGFR of lymphodepletion (cartkin.covariates.kidney)
        V_1 = flu_v1_l
        k_10 = 24.0 * flu_cl_l_h / V_1
        k_12 = 24.0 * flu_q2_l_h / V_1
        k_21 = 24.0 * flu_q2_l_h / flu_v2_l
        k_13 = 24.0 * flu_q3_l_h / V_1
        k_31 = 24.0 * flu_q3_l_h / flu_v3_l
        # dialysis removes the fraction f_removal of the body amount over a session
        k_D = -log1p(-clip(flu_removal_fraction, 0.0, 1.0 - 1e-12)) / (where(dialysis_duration_h > 0, dialysis_duration_h, 4.0) / 24.0)
        s_I = k_I * I_0
        k_I_el = (1.0 - f_I_cons) * k_I
        k_cons = f_I_cons * k_I / K_N
        s_IL6 = k_IL6_ref * IL6_0
        k_IC = k_Q * max(Q_norm / Q_0 - 1.0, 0.0)
        GFR_cap = max(egfr_ml_min_173m2, GFR_norm * (1.0 - f_irr_max * CI / 12.0))
        J_0 = clip(1.0 - egfr_ml_min_173m2 / GFR_cap, 0.0, 0.999)
        k_inj = k_heal * J_0 / ((1.0 - J_0) * L_0 / 24.0)
        f_Uc = CI / 12.0
        egfr_0 = egfr_ml_min_173m2
        t0 = t_start
        C_E0 = first_cart_dose / (blood_l_per_kg * weight_kg * 1e6) * f_blood
    """,
    equations="""
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
        d/dt(F_1) = R_F - (k_10 + k_12 + k_13 + k_D * D) * F_1 + k_21 * F_2 + k_31 * F_3
        d/dt(F_2) = k_12 * F_1 - (k_21 + k_D * D) * F_2
        d/dt(F_3) = k_13 * F_1 - (k_31 + k_D * D) * F_3
        d/dt(R_F) = 0.0
        d/dt(D) = 0.0
        d/dt(AUC_F) = 24.0 * C_F
        d/dt(X_C) = -k_C * X_C
        d/dt(N) = r_N * N * (1.0 - (N + C) / K_N) - k_LD * N
        d/dt(B) = delta_B * B_pre / (1.0 + C_func / C_50) - delta_B * B - kill_B * B - phi_B * k_LD * B
        d/dt(S) = r_S * S * (1.0 - S) - kill_B * S - phi_B * k_LD * S
        d/dt(I) = s_I - (k_I_el + k_cons * (N + C)) * I
        d/dt(G) = k_G * (G_1 - G)
        d/dt(G_1) = -k_G * G_1
        d/dt(K_1) = k_tr * (kill_in - K_1)
        d/dt(K_2) = k_tr * (K_1 - K_2)
        d/dt(C_E) = drive * C_E - (delta_E + k_EM) * C_E
        d/dt(C_M) = k_EM * C_E - delta_M * C_M
        d/dt(IL6) = s_IL6 - k_IL6 * IL6 + p_IL6 * drive * C_E
        d/dt(A) = k_A * (A_0 * ((1.0 - f_LLPC) * S + f_LLPC) - A)
        d/dt(Q) = k_Q * (Q_norm - Q) - k_IC * (A / A_0) * Q
        d/dt(L) = k_L * (L_0 * A / A_0 - L)
        d/dt(J) = k_inj * (L / 24.0) * (1.0 - J) - k_heal * J
        d/dt(U) = k_U * (U_0 * (f_Uc + (1.0 - f_Uc) * L / L_0) - U)
    """,
    initial="""
        N = K_N
        B = B_pre
        S = 1.0
        I = I_0
        IL6 = s_IL6 / (k_IL6_ref * (1.0 - f_IL6_renal + f_IL6_renal * egfr_ml_min_173m2 / 100.0))
        A = A_0
        Q = Q_0
        L = L_0
        J = J_0
        U = U_0
    """,
    observables="""
        cart_cells_per_ul [cells/uL] = C                             # CAR-T cells in blood (flow): C_E + C_M
        cart_percent_of_t_cells [%] = 100.0 * C / max(C + N, 1e-300)  # CAR-T share of all T cells (flow): 100 * C / (C + N)
        transgene_copies_per_ug [copies/ug] = copies_per_cell * C    # CAR transgene by qPCR: copies_per_cell * (C_E + C_M)
        t_cells_per_ul [cells/uL] = N                                # endogenous T cells: N
        b_cells_per_ul [cells/uL] = B                                # CD19+ B cells (flow): B
        il15_pg_per_ml [pg/mL] = I                                   # serum IL-15: I
        il6_pg_per_ml [pg/mL] = IL6                                  # serum IL-6: IL6
        fludarabine_mg_per_l [mg/L] = F_1 / V_1                      # plasma F-ara-A (on the clearance model's dose basis): F_1 / V_1
        fludarabine_auc_mg_h_per_l [mg.h/L] = AUC_F                  # cumulative F-ara-A AUC: AUC_F
        anti_dsdna_iu_per_ml [IU/mL] = A                             # serum anti-dsDNA: A
        complement_c3_g_per_l [g/L] = Q                              # serum complement C3: Q
        ln_activity_index [0-24] = L                                 # renal activity (activity index scale): L
        proteinuria_g_per_24h [g/24h] = U                            # proteinuria: U
        kidney_function_ml_min_173m2 [mL/min/1.73m2] = GFR_cap * (1.0 - J)  # residual kidney function: GFR_cap * (1 - J)
    """,
    roles={
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
    },
    inputs=[
        # fludarabine phosphate (mg x dose basis factor) as a zero-order infusion into F_1
        Infusion("fludarabine", rate="R_F", amount="dose * flu_dose_factor"),
        Bolus("cyclophosphamide", into="X_C"),
        Bolus("cart", into="C_E", amount="dose / (blood_l_per_kg * weight_kg * 1e6) * f_blood"),
        # the proliferative program starts at the first infusion: G(t) = (1 + k_G t) exp(-k_G t)
        Bolus("cart", into="G", amount="1.0", first_only=True),
        Bolus("cart", into="G_1", amount="1.0", first_only=True),
        # dialysis sessions from t0 up to 28 days after the last fludarabine dose
        Switch("dialysis", flag="D",
               when="(k_D > 0) & (day >= t_start) & (day <= last_fludarabine_day + 28.0)"),
    ],
    start="first_dose",
)  # fmt: skip
