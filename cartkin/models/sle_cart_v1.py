"""sle_cart_v1: mechanistic CD19 CAR-T kinetics in SLE after fludarabine/cyclophosphamide.

The v1 model of the science brief (MODEL.md section 4), kept under the name ``sle_cart_v1`` for
comparison with ``sle_cart`` (v2, which simulates lymphodepletion in time; issue 7 lists the
flaws of v1 that v2 fixes: slow post-peak decline, lymphodepletion timing without effect, no
expansion without lymphodepletion, IL-6 peak on day 1). Time in days (day 0 = CAR-T infusion),
cells per uL of blood, IL-6 in pg/mL, anti-dsDNA in IU/mL. The structure combines published
pieces (Leon-Triana 2021 for CAR-T inhibition of B-cell production, Kimmel 2021 for homeostatic
T-cell recovery, Stein 2019 for the post-peak CAR-T decline); the combination and most values are
assumptions of ours, labelled as such in the parameter table.

States
------
``C_E`` effector CAR-T, ``C_M`` memory CAR-T, ``N`` endogenous T cells, ``B`` CD19+ B cells,
``H`` homeostatic drive (IL-15 proxy, dimensionless, 0..1), ``IL6``, ``A`` anti-dsDNA.

The equations, initial state and dosing are in :data:`DESCRIPTION` (``cartkin show
sle_cart_v1``).

``AUC`` is the cumulative fludarabine (F-ara-A) AUC from the patient's clearance model (mg.h/L;
this is where kidney function enters expansion) and ``Cy`` the total cyclophosphamide dose
(mg/m2). Every dose, including the one on day 0, is a jump at a solver stop.

Changes from MODEL.md section 4, and why
----------------------------------------
- IL-6 production is fixed at its normal-kidney steady state (``s_IL6 = k_IL6_ref * IL6_0``)
  and only elimination depends on eGFR, so baseline IL-6 rises as kidney function falls
  (``IL6(0) = s_IL6 / k_IL6``): IL-6 is raised in kidney failure (Herbelin A et al., Kidney Int
  1991). MODEL.md's ``k_IL6 * (IL6_0 - IL6)`` would hold the baseline at IL6_0 at any eGFR.
- ``H_max`` is dropped: only the product ``rho_H * H_max`` enters the equations, so H is
  scaled to 0..1 (``H(0) = LD``).
- ``N_pre`` is ``K_N``: the pre-lymphodepletion T-cell count is the homeostatic set point.
- anti-dsDNA production is written with its steady state ``A_0`` and the share ``f_LLPC`` made by
  CD19-negative long-lived plasma cells, which CD19 CAR-T cannot remove.
- ``K_B`` = 2000 cells/uL instead of 10 (see the table): with a small ``K_B`` the antigen drive at
  any detectable B-cell count exceeds the CAR-T loss rate and the model settles into permanent
  coexistence with B-cell aplasia, whereas B cells reappear after 110 +/- 32 days in SLE
  (Mackensen 2022). With a large ``K_B`` expansion is mainly driven by lymphodepletion (H),
  antigen adds a small term, and CAR-T contract once H fades.

``LD`` is the lymphodepletion fraction; ``C_E0`` (cells/uL) the first dose day's blood level
(for reports).
"""

import math

from cartkin.models.description import Bolus, Description
from cartkin.parameters import Parameter, ParameterTable

# ---------------------------------------------------------------------------------------------
# Parameter table (kernel order: p[0] .. p[len-1]; derived entries follow, see DERIVED)
# ---------------------------------------------------------------------------------------------
_TUNED = (
    "tuned (rho_H and K_B together) so the Erlangen scenario (adult, 1e6 cells/kg, Flu/Cy, "
    "normal kidney) gives Tmax 7-14 d and B-cell recovery 110 +/- 32 d (Mackensen 2022)"
)

PARAMETERS = ParameterTable(
    [
        # --- CAR-T expansion and contraction -----------------------------------------------------
        Parameter("rho", 1.3, "1/day", 0.1, 5.0,
                  "maximal CAR-T proliferation rate (full stimulation, empty T-cell space)",
                  "assumption: MODEL.md v1 prototype value"),
        Parameter("rho_H", 3.0, "-", 0.0, 20.0,
                  "stimulation by the homeostatic drive H, relative to saturating antigen",
                  f"assumption: MODEL.md proposed 2; {_TUNED}"),
        Parameter("k_H", 0.3, "1/day", 0.05, 3.0,
                  "decay rate of the homeostatic drive (IL-15 normalising after lymphodepletion)",
                  "assumption: MODEL.md v1 (half-life about 2.3 d)"),
        Parameter("K_B", 2000.0, "cells/uL", 1.0, 1e5,
                  "B-cell count giving half-maximal antigen stimulation of CAR-T",
                  f"assumption: MODEL.md proposed 10; {_TUNED} (see module docstring)"),
        Parameter("K_T", 3000.0, "cells/uL", 100.0, 1e5,
                  "T-cell space (N + C) at which CAR-T proliferation stops",
                  "assumption: MODEL.md v1"),
        Parameter("delta_E", 0.12, "1/day", 0.0, 1.0,
                  "effector CAR-T death rate",
                  "assumption: split of delta_E + k_EM = alpha 0.16/d (Stein 2019, Table 1)"),
        Parameter("k_EM", 0.04, "1/day", 0.0, 0.5,
                  "effector-to-memory CAR-T differentiation rate",
                  "assumption: MODEL.md v1 (sum with delta_E from Stein 2019, Table 1)"),
        Parameter("delta_M", 0.05, "1/day", 0.0005, 0.5,
                  "memory CAR-T loss rate",
                  "assumption: MODEL.md v1 for SLE, where CAR-T persist shorter than in "
                  "leukemia (Stein 2019 beta 0.0032/d); sets the B-cell recovery time"),
        Parameter("theta_M", 1.0, "-", 0.0, 2.0,
                  "B-cell killing by memory CAR-T relative to effectors",
                  "assumption: equal cytotoxicity"),
        Parameter("k_kill", 0.5, "uL/(cell*day)", 0.0, 10.0,
                  "B-cell killing rate per CAR-T cell/uL",
                  "assumption: MODEL.md v1"),
        Parameter("C_50", 1.0, "cells/uL", 0.01, 100.0,
                  "CAR-T level halving B-cell production (I0/(1 + C/C_50) form)",
                  "assumption: value; form from Leon-Triana 2021"),
        # --- B cells -----------------------------------------------------------------------------
        Parameter("B_pre", 150.0, "cells/uL", 1.0, 2000.0,
                  "CD19+ B cells before lymphodepletion (homeostatic set point)",
                  "assumption: SLE patients on immunosuppression are often B-lymphopenic "
                  "(healthy adults about 100-500/uL)"),
        Parameter("delta_B", 1.0 / 60.0, "1/day", 1.0 / 365.0, 1.0,
                  "B-cell death rate (1 / mature B-cell lifetime of 60 d)",
                  "Leon-Triana 2021"),
        Parameter("phi_B", 1.0, "-", 0.0, 1.0,
                  "B-cell depletion by lymphodepletion relative to T cells",
                  "assumption: Flu/Cy depletes B and T cells alike"),
        # --- endogenous T cells ------------------------------------------------------------------
        Parameter("r_N", 0.17, "1/day", 0.01, 1.0,
                  "homeostatic T-cell recovery rate after lymphodepletion",
                  "Kimmel 2021"),
        Parameter("K_N", 500.0, "cells/uL", 50.0, 5000.0,
                  "T-cell carrying capacity (also the pre-lymphodepletion count)",
                  "Kimmel 2021"),
        # --- lymphodepletion (algebraic) ---------------------------------------------------------
        Parameter("E_max", 0.8, "-", 0.0, 1.0,
                  "maximal lymphodepletion by fludarabine",
                  "assumption: MODEL.md v1"),
        Parameter("AUC_50", 8.0, "mg.h/L", 0.1, 100.0,
                  "fludarabine AUC giving half of E_max",
                  "assumption: MODEL.md v1"),
        Parameter("E_cy", 0.2, "-", 0.0, 1.0,
                  "maximal lymphodepletion by cyclophosphamide",
                  "assumption: MODEL.md v1"),
        Parameter("Cy_50", 500.0, "mg/m2", 1.0, 5000.0,
                  "cyclophosphamide dose giving half of E_cy",
                  "assumption: MODEL.md v1"),
        # --- infusion ----------------------------------------------------------------------------
        Parameter("f_blood", 0.011, "-", 1e-4, 1.0,
                  "fraction of infused CAR-T found in circulating blood right after infusion",
                  "derived: Kimmel 2021 initial 0.36 cells/uL at about 2e6 cells/kg"),
        Parameter("blood_l_per_kg", 0.07, "L/kg", 0.05, 0.1,
                  "blood volume per kg body weight",
                  "assumption: standard adult blood volume 70 mL/kg"),
        # --- IL-6 --------------------------------------------------------------------------------
        Parameter("IL6_0", 5.0, "pg/mL", 0.1, 100.0,
                  "baseline IL-6 at normal kidney function (eGFR 100)",
                  "assumption: MODEL.md v1"),
        Parameter("k_IL6_ref", 3.96, "1/day", 0.5, 50.0,
                  "IL-6 elimination rate at eGFR 100 mL/min/1.73m2",
                  "Hardiansyah & Ng 2019, Table S1"),
        Parameter("f_IL6_renal", 0.4, "-", 0.0, 1.0,
                  "renal share of IL-6 elimination (scales with eGFR/100)",
                  "assumption: MODEL.md section 3 range 0.3-0.5"),
        Parameter("p_IL6", 2.0, "pg/mL/day per (cells/uL)^2", 0.0, 100.0,
                  "IL-6 release per CAR-T/B-cell encounter",
                  "assumption: gives an IL-6 peak of tens of pg/mL in the Erlangen scenario "
                  "(grade 1 CRS at most, Mackensen 2022)"),
        # --- anti-dsDNA --------------------------------------------------------------------------
        Parameter("A_0", 100.0, "IU/mL", 1.0, 1e4,
                  "anti-dsDNA before treatment (steady state)",
                  "assumption: active SLE"),
        Parameter("k_A", math.log(2.0) / 21.0, "1/day", 0.005, 0.5,
                  "anti-dsDNA elimination rate",
                  "assumption: IgG half-life about 21 d"),
        Parameter("f_LLPC", 0.2, "-", 0.0, 1.0,
                  "share of anti-dsDNA made by CD19-negative long-lived plasma cells",
                  "assumption: CD19 CAR-T spare long-lived plasma cells"),
        # --- assay -------------------------------------------------------------------------------
        Parameter("copies_per_cell", 2000.0, "(copies/ug)/(cells/uL)", 100.0, 1e5,
                  "transgene copies/ug genomic DNA per CAR-T cell/uL",
                  "derived: Singh 2021 (TransC)"),
    ]
)  # fmt: skip


DESCRIPTION = Description(
    name="sle_cart_v1",
    description=(
        "Version 1 of sle_cart, kept for comparison (MODEL.md section 4). Mechanistic CD19 "
        "CAR-T kinetics in SLE: effector and memory CAR-T, "
        "endogenous T cells, CD19+ B cells whose production CAR-T inhibit, a homeostatic drive "
        "set by lymphodepletion (fludarabine AUC, hence kidney function), IL-6 with partly "
        "renal elimination, and anti-dsDNA. Day 0 is the CAR-T infusion."
    ),
    parameters=PARAMETERS,
    states="""
        C_E  effector           [cells/uL]  effector CAR-T cells in blood
        C_M  memory             [cells/uL]  memory CAR-T cells in blood
        N    t_cells            [cells/uL]  endogenous (non-CAR) T cells in blood
        B    b_cells            [cells/uL]  CD19+ B cells in blood
        H    homeostatic_drive  [-]         homeostatic cytokine drive (IL-15 proxy), 0..1
        IL6  il6                [pg/mL]     serum IL-6
        A    anti_dsdna         [IU/mL]     serum anti-dsDNA antibodies
    """,
    derived="""
        # lymphodepletion fraction from the fludarabine AUC (mg.h/L) and cyclophosphamide (mg/m2)
        LD = min(E_max * flu_auc_mg_h_per_l / (AUC_50 + flu_auc_mg_h_per_l) + E_cy * cy_mg_m2_total / (Cy_50 + cy_mg_m2_total), 1.0)
        # IL-6 elimination (1/day): a renal share scaled by eGFR (reference 100 mL/min/1.73m2)
        k_IL6 = (k_IL6_ref - f_IL6_renal * k_IL6_ref) + f_IL6_renal * k_IL6_ref * egfr_ml_min_173m2 / 100.0
        C_E0 = first_cart_dose / (blood_l_per_kg * weight_kg * 1e6) * f_blood
    """,
    equations="""
        C = C_E + C_M
        drive = rho * (B / (B + K_B) + rho_H * H) * (1.0 - (N + C) / K_T)
        k_in = delta_B * B_pre
        s_IL6 = k_IL6_ref * IL6_0
        p_A = (1.0 - f_LLPC) * k_A * A_0
        p_LLPC = f_LLPC * k_A * A_0
        d/dt(C_E) = drive * C_E - (delta_E + k_EM) * C_E
        d/dt(C_M) = k_EM * C_E - delta_M * C_M
        d/dt(N) = r_N * N * (1.0 - (N + C) / K_N)
        d/dt(B) = k_in / (1.0 + C / C_50) - delta_B * B - k_kill * (C_E + theta_M * C_M) * B
        d/dt(H) = -k_H * H
        d/dt(IL6) = s_IL6 - k_IL6 * IL6 + p_IL6 * C_E * B
        d/dt(A) = p_A * B / B_pre + p_LLPC - k_A * A
    """,
    initial="""
        N = K_N * (1.0 - LD)
        B = B_pre * (1.0 - phi_B * LD)
        H = LD
        IL6 = k_IL6_ref * IL6_0 / k_IL6
        A = A_0
    """,
    observables="""
        cart_cells_per_ul [cells/uL] = C                            # CAR-T cells in blood (flow): C_E + C_M
        cart_percent_of_t_cells [%] = 100.0 * C / max(C + N, 1e-300)  # CAR-T share of all T cells (flow)
        transgene_copies_per_ug [copies/ug] = copies_per_cell * C   # CAR transgene by qPCR
        t_cells_per_ul [cells/uL] = N                               # endogenous T cells: N
        b_cells_per_ul [cells/uL] = B                               # CD19+ B cells (flow): B
        il6_pg_per_ml [pg/mL] = IL6                                 # serum IL-6: IL6
        anti_dsdna_iu_per_ml [IU/mL] = A                            # serum anti-dsDNA: A
    """,
    roles={
        "cart": "cart_cells_per_ul",
        "cart_copies": "transgene_copies_per_ug",
        "cart_percent_t": "cart_percent_of_t_cells",
        "b_cells": "b_cells_per_ul",
        "il6": "il6_pg_per_ml",
        "anti_dsdna": "anti_dsdna_iu_per_ml",
    },
    inputs=[Bolus("cart", into="C_E", amount="dose / (blood_l_per_kg * weight_kg * 1e6) * f_blood")],
)  # fmt: skip
