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

Equations (exactly as in :func:`rhs`)
-------------------------------------
::

    C = C_E + C_M
    drive = rho * (B / (B + K_B) + rho_H * H) * (1.0 - (N + C) / K_T)
    k_in = delta_B * B_pre
    s_IL6 = k_IL6_ref * IL6_0
    p_A = (1.0 - f_LLPC) * k_A * A_0
    p_LLPC = f_LLPC * k_A * A_0
    dC_E = drive * C_E - (delta_E + k_EM) * C_E
    dC_M = k_EM * C_E - delta_M * C_M
    dN = r_N * N * (1.0 - (N + C) / K_N)
    dB = k_in / (1.0 + C / C_50) - delta_B * B - k_kill * (C_E + theta_M * C_M) * B
    dH = -k_H * H
    dIL6 = s_IL6 - k_IL6 * IL6 + p_IL6 * C_E * B
    dA = p_A * B / B_pre + p_LLPC - k_A * A

Initial state and dosing (algebraic, :func:`individualize`)
-----------------------------------------------------------
::

    LD    = min(1, E_max * AUC / (AUC_50 + AUC) + E_cy * Cy / (Cy_50 + Cy))
    H(0)  = LD,  N(0) = K_N * (1 - LD),  B(0) = B_pre * (1 - phi_B * LD)
    IL6(0) = s_IL6 / k_IL6,  A(0) = A_0,  C_E(0) = C_M(0) = 0
    dose of n cells on day d:  C_E(d+) = C_E(d-) + n / (blood_l_per_kg * WT * 1e6 uL/L) * f_blood
    k_IL6 = kidney.il6_elimination_rate_per_day(patient, k_IL6_ref, f_IL6_renal)

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

Kernel parameter vector ``p``: the table entries in table order, then the derived entries
``LD`` (-), ``k_IL6`` (1/day), ``C_E0`` (cells/uL: the first dose's blood level, for reports).
"""

from __future__ import annotations

import math
import textwrap

import numba
import numpy as np

from cartkin.models.base import Model, Observable, State
from cartkin.parameters import Parameter, ParameterTable

UL_PER_L = 1e6

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

DERIVED = ("LD", "k_IL6", "C_E0")

STATES = (
    State("effector", "C_E", "cells/uL", "effector CAR-T cells in blood"),
    State("memory", "C_M", "cells/uL", "memory CAR-T cells in blood"),
    State("t_cells", "N", "cells/uL", "endogenous (non-CAR) T cells in blood"),
    State("b_cells", "B", "cells/uL", "CD19+ B cells in blood"),
    State("homeostatic_drive", "H", "-", "homeostatic cytokine drive (IL-15 proxy), 0..1"),
    State("il6", "IL6", "pg/mL", "serum IL-6"),
    State("anti_dsdna", "A", "IU/mL", "serum anti-dsDNA antibodies"),
)


# ---------------------------------------------------------------------------------------------
# Right-hand side: the only compiled code of this model (keep it in this file)
# ---------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def rhs(t, y, p, dydt):
    """sle_cart_v1 dy/dt (per day); ``p`` in kernel order (module docstring)."""
    rho = p[0]
    rho_H = p[1]
    k_H = p[2]
    K_B = p[3]
    K_T = p[4]
    delta_E = p[5]
    k_EM = p[6]
    delta_M = p[7]
    theta_M = p[8]
    k_kill = p[9]
    C_50 = p[10]
    B_pre = p[11]
    delta_B = p[12]
    r_N = p[14]
    K_N = p[15]
    IL6_0 = p[22]
    k_IL6_ref = p[23]
    p_IL6 = p[25]
    A_0 = p[26]
    k_A = p[27]
    f_LLPC = p[28]
    k_IL6 = p[31]

    C_E = y[0]
    C_M = y[1]
    N = y[2]
    B = y[3]
    H = y[4]
    IL6 = y[5]
    A = y[6]

    C = C_E + C_M
    drive = rho * (B / (B + K_B) + rho_H * H) * (1.0 - (N + C) / K_T)
    k_in = delta_B * B_pre
    s_IL6 = k_IL6_ref * IL6_0
    p_A = (1.0 - f_LLPC) * k_A * A_0
    p_LLPC = f_LLPC * k_A * A_0
    dC_E = drive * C_E - (delta_E + k_EM) * C_E
    dC_M = k_EM * C_E - delta_M * C_M
    dN = r_N * N * (1.0 - (N + C) / K_N)
    dB = k_in / (1.0 + C / C_50) - delta_B * B - k_kill * (C_E + theta_M * C_M) * B
    dH = -k_H * H
    dIL6 = s_IL6 - k_IL6 * IL6 + p_IL6 * C_E * B
    dA = p_A * B / B_pre + p_LLPC - k_A * A

    dydt[0] = dC_E
    dydt[1] = dC_M
    dydt[2] = dN
    dydt[3] = dB
    dydt[4] = dH
    dydt[5] = dIL6
    dydt[6] = dA


@numba.njit(cache=True)
def observe_roles(y, p, out):
    """Role observables at one time, in ``cartkin.models.ROLES`` order (NaN if absent).

    ``y`` shape (7,), ``p`` the kernel vector, ``out`` shape (len(ROLES),).
    """
    c = y[0] + y[1]
    out[0] = c
    out[1] = p[29] * c
    out[2] = 100.0 * c / max(c + y[2], 1e-300)
    out[3] = y[3]
    out[4] = y[5]
    out[5] = y[6]
    for k in range(6, out.shape[0]):
        out[k] = np.nan


# ---------------------------------------------------------------------------------------------
# Python side: dosing, initial state, observables
# ---------------------------------------------------------------------------------------------
def lymphodepletion_fraction(values, flu_auc_mg_h_per_l, cy_mg_m2):
    """LD in [0, 1] from the fludarabine AUC (mg.h/L) and total cyclophosphamide (mg/m2).

    Scalars or arrays of one shape (values entries broadcast against them).
    """
    auc = np.asarray(flu_auc_mg_h_per_l, dtype=np.float64)
    cy = np.asarray(cy_mg_m2, dtype=np.float64)
    ld = values["E_max"] * auc / (values["AUC_50"] + auc) + values["E_cy"] * cy / (
        values["Cy_50"] + cy
    )
    return np.minimum(ld, 1.0)


def cart_blood_level_cells_per_ul(values, cells: float, weight_kg: float) -> float:
    """Blood CAR-T level (cells/uL) right after infusing ``cells`` into a ``weight_kg`` patient."""
    blood_ul = values["blood_l_per_kg"] * weight_kg * UL_PER_L
    return cells / blood_ul * values["f_blood"]


def individualize(values, bctx):
    """Kernel inputs for ``n`` patients at once (array-valued; see the module docstring).

    Parameters
    ----------
    values : dict of str to numpy.ndarray, shape (n,)
        Table values per patient, in table order.
    bctx : cartkin.batch.BatchContext
        Uses ``weight_kg``, ``egfr_ml_min_173m2``, ``flu_auc_mg_h_per_l``, ``cy_mg_m2_total``
        (n,) and ``cart_dose_days``, ``cart_dose_cells`` (n, m_d; NaN/0 pads) as in
        docs/design.md section 5.

    Returns
    -------
    cartkin.batch.BatchIndividuals
        ``p`` (n, n_kernel), ``y0`` (n, 7), ``t0`` (n,) zeros (the state at day 0 already
        reflects lymphodepletion), ``t_stops`` (n, m) padded with +inf, ``jumps`` (n, m, 7),
        ``n_stops`` (n,).
    """
    from cartkin.batch import BatchIndividuals

    n = int(np.asarray(bctx.weight_kg).shape[0])
    v = {k: np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)) for k, x in values.items()}
    weight = np.asarray(bctx.weight_kg, dtype=np.float64).reshape(n)
    egfr = np.asarray(bctx.egfr_ml_min_173m2, dtype=np.float64).reshape(n)
    auc = np.asarray(bctx.flu_auc_mg_h_per_l, dtype=np.float64).reshape(n)
    cy = np.asarray(bctx.cy_mg_m2_total, dtype=np.float64).reshape(n)
    ld = lymphodepletion_fraction(v, auc, cy)
    # kidney.il6_elimination_rate_per_day, same arithmetic, over patients (eGFR_ref 100)
    k_renal = v["f_IL6_renal"] * v["k_IL6_ref"]
    k_il6 = (v["k_IL6_ref"] - k_renal) + k_renal * egfr / 100.0
    s_il6 = v["k_IL6_ref"] * v["IL6_0"]

    days = np.asarray(bctx.cart_dose_days, dtype=np.float64).reshape(n, -1)
    cells = np.nan_to_num(np.asarray(bctx.cart_dose_cells, dtype=np.float64).reshape(n, -1))
    merged = [_merge_doses(zip(days[i], cells[i], strict=True)) for i in range(n)]
    m = max((len(d) for d in merged), default=0)
    t_stops = np.full((n, m), np.inf)
    jumps = np.zeros((n, m, len(STATES)))
    first = np.zeros(n)
    for i, doses in enumerate(merged):
        for k, (day, total) in enumerate(doses):
            level = cart_blood_level_cells_per_ul(
                {key: v[key][i] for key in ("blood_l_per_kg", "f_blood")}, total, weight[i]
            )
            t_stops[i, k] = day
            jumps[i, k, 0] = level
            if k == 0:
                first[i] = level

    y0 = np.zeros((n, len(STATES)))
    y0[:, 2] = v["K_N"] * (1.0 - ld)
    y0[:, 3] = v["B_pre"] * (1.0 - v["phi_B"] * ld)
    y0[:, 4] = ld
    y0[:, 5] = s_il6 / k_il6
    y0[:, 6] = v["A_0"]
    p = np.column_stack([*(v[name] for name in PARAMETERS.names), ld, k_il6, first])
    n_stops = np.array([len(d) for d in merged], dtype=np.int64)
    return BatchIndividuals(p=p, y0=y0, t0=np.zeros(n), t_stops=t_stops, jumps=jumps,
                            n_stops=n_stops)  # fmt: skip


def _merge_doses(cart_doses):
    """Sorted (day, cells) with doses on the same day added; zero doses dropped."""
    merged: dict[float, float] = {}
    for day, cells in cart_doses:
        if cells > 0 and math.isfinite(day):
            merged[float(day)] = merged.get(float(day), 0.0) + float(cells)
    return sorted(merged.items())


_I = {name: k for k, name in enumerate((*PARAMETERS.names, *DERIVED))}


def _cart(states, p):
    return states[:, 0] + states[:, 1]


OBSERVABLES = (
    Observable("cart_cells_per_ul", "cells/uL", "CAR-T cells in blood (flow): C_E + C_M", _cart),
    Observable(
        "cart_percent_of_t_cells",
        "%",
        "CAR-T share of all T cells (flow): 100 * C / (C + N)",
        lambda s, p: 100.0 * _cart(s, p) / np.maximum(_cart(s, p) + s[:, 2], 1e-300),
    ),
    Observable(
        "transgene_copies_per_ug",
        "copies/ug",
        "CAR transgene by qPCR: copies_per_cell * (C_E + C_M)",
        lambda s, p: p[_I["copies_per_cell"]] * _cart(s, p),
    ),
    Observable("t_cells_per_ul", "cells/uL", "endogenous T cells: N", lambda s, p: s[:, 2]),
    Observable("b_cells_per_ul", "cells/uL", "CD19+ B cells (flow): B", lambda s, p: s[:, 3]),
    Observable("il6_pg_per_ml", "pg/mL", "serum IL-6: IL6", lambda s, p: s[:, 5]),
    Observable("anti_dsdna_iu_per_ml", "IU/mL", "serum anti-dsDNA: A", lambda s, p: s[:, 6]),
)

EQUATIONS = textwrap.dedent(__doc__.split("::", 1)[1].split("Initial state", 1)[0]).strip()

MODEL = Model(
    name="sle_cart_v1",
    description=(
        "Version 1 of sle_cart, kept for comparison (MODEL.md section 4). Mechanistic CD19 "
        "CAR-T kinetics in SLE: effector and memory CAR-T, "
        "endogenous T cells, CD19+ B cells whose production CAR-T inhibit, a homeostatic drive "
        "set by lymphodepletion (fludarabine AUC, hence kidney function), IL-6 with partly "
        "renal elimination, and anti-dsDNA. Day 0 is the CAR-T infusion."
    ),
    states=STATES,
    parameters=PARAMETERS,
    observables=OBSERVABLES,
    rhs=rhs,
    individualize=individualize,
    roles={
        "cart": "cart_cells_per_ul",
        "cart_copies": "transgene_copies_per_ug",
        "cart_percent_t": "cart_percent_of_t_cells",
        "b_cells": "b_cells_per_ul",
        "il6": "il6_pg_per_ml",
        "anti_dsdna": "anti_dsdna_iu_per_ml",
    },
    equations=EQUATIONS,
    derived=DERIVED,
    batch=True,
    observe_roles=observe_roles,
)
