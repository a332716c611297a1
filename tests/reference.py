"""Independent oracle for the built-in models.

The equations of each model are typed here a second time, from docs and MODEL.md, and solved by
scipy's ``solve_ivp`` at rtol 1e-10. Nothing is imported from cartkin: if the package's
right-hand side, initial state, derived parameters or dosing drift from the documented model,
the comparison in tests/test_models.py fails.

Every function takes plain numbers (named parameters in a dict, the scenario as floats) so a
reader can check each line against the model docstring.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

UL_PER_L = 1e6


# ---------------------------------------------------------------------------------------------
# sle_cart
# ---------------------------------------------------------------------------------------------
def sle_cart_derivatives(t, y, q):
    """dy/dt of the sle_cart model; ``q`` a dict of named (table and derived) values."""
    ce, cm, n, b, h, il6, a = y
    c = ce + cm
    growth = q["rho"] * (b / (b + q["K_B"]) + q["rho_H"] * h) * (1.0 - (n + c) / q["K_T"])
    return [
        growth * ce - (q["delta_E"] + q["k_EM"]) * ce,
        q["k_EM"] * ce - q["delta_M"] * cm,
        q["r_N"] * n * (1.0 - (n + c) / q["K_N"]),
        q["delta_B"] * q["B_pre"] / (1.0 + c / q["C_50"])
        - q["delta_B"] * b
        - q["k_kill"] * (ce + q["theta_M"] * cm) * b,
        -q["k_H"] * h,
        q["k_IL6_ref"] * q["IL6_0"] - q["k_IL6"] * il6 + q["p_IL6"] * ce * b,
        q["k_A"] * q["A_0"] * ((1.0 - q["f_LLPC"]) * b / q["B_pre"] + q["f_LLPC"]) - q["k_A"] * a,
    ]


def sle_cart_lymphodepletion(q, flu_auc_mg_h_per_l, cy_mg_m2):
    """LD fraction in [0, 1] from fludarabine AUC (mg.h/L) and cyclophosphamide (mg/m2)."""
    ld = q["E_max"] * flu_auc_mg_h_per_l / (q["AUC_50"] + flu_auc_mg_h_per_l) + q[
        "E_cy"
    ] * cy_mg_m2 / (q["Cy_50"] + cy_mg_m2)
    return min(ld, 1.0)


def sle_cart_solve(
    q,
    t_eval,
    *,
    weight_kg,
    doses,
    flu_auc_mg_h_per_l,
    cy_mg_m2,
    k_il6_per_day,
    rtol=1e-10,
    atol=1e-12,
):
    """Solve sle_cart from day 0 with Radau; returns states, shape (len(t_eval), 7).

    ``q`` holds the table values by name; ``doses`` is a list of (day, total cells);
    ``k_il6_per_day`` the individual IL-6 elimination rate. IL-6 production is fixed at its
    normal-kidney steady state, ``k_IL6_ref * IL6_0``.
    """
    q = dict(q)
    ld = sle_cart_lymphodepletion(q, flu_auc_mg_h_per_l, cy_mg_m2)
    q["k_IL6"] = k_il6_per_day
    blood_ul = q["blood_l_per_kg"] * weight_kg * UL_PER_L
    y0 = np.array(
        [
            0.0,
            0.0,
            q["K_N"] * (1.0 - ld),
            q["B_pre"] * (1.0 - q["phi_B"] * ld),
            ld,
            q["k_IL6_ref"] * q["IL6_0"] / k_il6_per_day,
            q["A_0"],
        ]
    )
    jumps = {}
    for day, cells in doses:
        jumps[float(day)] = jumps.get(float(day), 0.0) + cells / blood_ul * q["f_blood"]
    return _solve_piecewise(
        lambda t, y: sle_cart_derivatives(t, y, q),
        y0,
        t_eval,
        jumps,
        state_index=0,
        rtol=rtol,
        atol=atol,
    )


# ---------------------------------------------------------------------------------------------
# stein2019
# ---------------------------------------------------------------------------------------------
def stein_closed_form(t_days, cmax, foldx, tmax, alpha, fb, beta, t_infusion=0.0):
    """Stein 2019 typical curve, transgene copies/ug, from the published analytical solution."""
    t = np.asarray(t_days, dtype=float) - t_infusion
    c0 = cmax / foldx
    rho = math.log(foldx) / tmax
    rising = c0 * np.exp(rho * np.clip(t, 0.0, None))
    falling = cmax * ((1.0 - fb) * np.exp(-alpha * (t - tmax)) + fb * np.exp(-beta * (t - tmax)))
    return np.where(t < 0, 0.0, np.where(t < tmax, rising, falling))


def stein_solve(q, t_eval, *, t_infusion=0.0, rtol=1e-10, atol=1e-12):
    """Solve the two-pool ODE form of Stein's model with DOP853; states (E, M) copies/ug.

    A third, constant state holds the phase (0 expanding, 1 after tmax) so that the right-hand
    side never branches on t at a segment end.
    """
    rho = math.log(q["foldx"]) / q["tmax"]

    def f(t, y):
        if y[2] < 0.5:
            return [rho * y[0], rho * y[1], 0.0]
        return [-q["alpha"] * y[0], -q["beta"] * y[1], 0.0]

    c0 = q["cmax"] / q["foldx"]
    jumps = {
        t_infusion: np.array([(1.0 - q["fb"]) * c0, q["fb"] * c0, 0.0]),
        t_infusion + q["tmax"]: np.array([0.0, 0.0, 1.0]),
    }
    y = _solve_piecewise(
        f, np.zeros(3), t_eval, jumps, state_index=None, rtol=rtol, atol=atol, method="DOP853"
    )
    return y[:, :2]


# ---------------------------------------------------------------------------------------------
def _solve_piecewise(f, y0, t_eval, jumps, *, state_index, rtol, atol, method="Radau"):
    """Integrate from t=0 through ``t_eval``, stopping at each jump time.

    ``jumps`` maps a time to an amount added to ``y[state_index]`` (a float), to a full
    state increment (an array, ``state_index=None``), or to None (a stop with no jump).
    Outputs at a jump time are taken after the jump.
    """
    t_eval = np.asarray(t_eval, dtype=float)
    t_end = float(t_eval[-1])
    stops = sorted(t for t in jumps if 0.0 <= t <= t_end)
    y = np.array(y0, dtype=float)
    out = np.full((t_eval.size, y.size), np.nan)
    t_now = 0.0
    for edge in [*stops, None]:
        t_next = t_end if edge is None else edge
        if t_next > t_now:
            mask = (t_eval >= t_now) & (t_eval < t_next)
            times = np.append(t_eval[mask], t_next)
            sol = solve_ivp(
                f, (t_now, t_next), y, method=method, rtol=rtol, atol=atol, t_eval=times
            )
            assert sol.success, sol.message
            out[mask] = sol.y.T[:-1]
            y = sol.y[:, -1].copy()
            t_now = t_next
        if edge is not None and jumps[edge] is not None:
            if state_index is None:
                y = y + jumps[edge]
            else:
                y[state_index] += jumps[edge]
    out[t_eval == t_end] = y
    return out


# ---------------------------------------------------------------------------------------------
# sle_cart (v2)
# ---------------------------------------------------------------------------------------------
SLE_CART_V2_STATES = ("F_1", "F_2", "F_3", "R_F", "D", "AUC_F", "X_C", "N", "B", "S", "I", "G",
                      "C_E", "C_M", "IL6", "A", "Q", "L", "J", "U", "G_1", "K_1", "K_2")  # fmt: skip


def sle_cart_v2_derivatives(t, y, q):
    """dy/dt of sle_cart v2, typed from its docstring; ``q`` named table and derived values."""
    s = dict(zip(SLE_CART_V2_STATES, y, strict=True))
    car = s["C_E"] + s["C_M"]
    conc = s["F_1"] / q["V_1"]
    kill_signal = q["gamma_F"] * conc + q["gamma_C"] * s["X_C"]
    kill_ld = s["K_2"]
    stim = s["B"] / q["K_B"] + s["I"] / q["I_50"]
    prolif = q["rho"] * s["G"] * stim / (1.0 + stim)
    functional = s["C_E"] + q["theta_M"] * s["C_M"]
    gfr = q["GFR_cap"] * (1.0 - s["J"])
    k_il6 = q["k_IL6_ref"] * ((1.0 - q["f_IL6_renal"]) + q["f_IL6_renal"] * gfr / 100.0)
    k_dial = q["k_D"] * s["D"]
    out = {
        "F_1": s["R_F"] - (q["k_10"] + q["k_12"] + q["k_13"] + k_dial) * s["F_1"]
        + q["k_21"] * s["F_2"] + q["k_31"] * s["F_3"],
        "F_2": q["k_12"] * s["F_1"] - (q["k_21"] + k_dial) * s["F_2"],
        "F_3": q["k_13"] * s["F_1"] - (q["k_31"] + k_dial) * s["F_3"],
        "R_F": 0.0,
        "D": 0.0,
        "AUC_F": 24.0 * conc,
        "X_C": -q["k_C"] * s["X_C"],
        "N": q["r_N"] * s["N"] * (1.0 - (s["N"] + car) / q["K_N"]) - kill_ld * s["N"],
        "B": q["delta_B"] * q["B_pre"] / (1.0 + functional / q["C_50"]) - q["delta_B"] * s["B"]
        - q["k_kill"] * functional * s["B"] - q["phi_B"] * kill_ld * s["B"],
        "S": q["r_S"] * s["S"] * (1.0 - s["S"]) - q["k_kill"] * functional * s["S"]
        - q["phi_B"] * kill_ld * s["S"],
        "I": q["k_I"] * q["I_0"]
        - ((1.0 - q["f_I_cons"]) * q["k_I"] + q["f_I_cons"] * q["k_I"] / q["K_N"]
           * (s["N"] + car)) * s["I"],
        "G": q["k_G"] * (s["G_1"] - s["G"]),
        "C_E": (prolif - q["delta_E"] - q["k_EM"]) * s["C_E"],
        "C_M": q["k_EM"] * s["C_E"] - q["delta_M"] * s["C_M"],
        "IL6": q["k_IL6_ref"] * q["IL6_0"] - k_il6 * s["IL6"] + q["p_IL6"] * prolif * s["C_E"],
        "A": q["k_A"] * (q["A_0"] * ((1.0 - q["f_LLPC"]) * s["S"] + q["f_LLPC"]) - s["A"]),
        "Q": q["k_Q"] * (q["Q_norm"] - s["Q"])
        - q["k_Q"] * (q["Q_norm"] / q["Q_0"] - 1.0) * s["A"] / q["A_0"] * s["Q"],
        "L": q["k_L"] * (q["L_0"] * s["A"] / q["A_0"] - s["L"]),
        "J": q["k_inj"] * s["L"] / 24.0 * (1.0 - s["J"]) - q["k_heal"] * s["J"],
        "U": q["k_U"] * (q["U_0"] * (q["CI"] / 12.0 + (1.0 - q["CI"] / 12.0) * s["L"] / q["L_0"])
                         - s["U"]),
        "G_1": -q["k_G"] * s["G_1"],
        "K_1": q["k_tr"] * (kill_signal - s["K_1"]),
        "K_2": q["k_tr"] * (s["K_1"] - s["K_2"]),
    }  # fmt: skip
    return [out[name] for name in SLE_CART_V2_STATES]


# ---------------------------------------------------------------------------------------------
# sle_cart (v3)
# ---------------------------------------------------------------------------------------------
SLE_CART_V3_STATES = ("F_1", "F_2", "F_3", "R_F", "D", "AUC_F", "X_C", "N", "B", "S", "I", "G",
                      "C_E", "C_M", "IL6", "A", "Q", "L", "J_k", "U", "G_1", "K_1", "K_2",
                      "P_1", "P_2", "Kc_1", "Kc_2", "H", "M", "G_2")  # fmt: skip


def sle_cart_v3_derivatives(t, y, q):
    """dy/dt of sle_cart v3, typed from docs/models/sle_cart_v3_science.md and the module
    docstring (not from the description's text); ``q`` named table and derived values."""
    s = dict(zip(SLE_CART_V3_STATES, y, strict=True))
    car = s["C_E"] + s["C_M"]
    conc = s["F_1"] / q["V_1"]
    exposure_kill = q["gamma_F"] * conc + q["gamma_C"] * s["X_C"]
    ld = s["K_2"]
    stim = s["B"] / q["K_B"] + s["I"] / q["I_50"]
    prolif = q["rho"] * s["G"] * stim / (1.0 + stim) * (1.0 - car / q["K_C"])
    functional = s["C_E"] + q["theta_M"] * s["C_M"]
    b_kill = q["k_kill"] * functional
    product_kill = q["phi_C"] * s["Kc_2"]
    gfr = q["GFR_cap"] * (1.0 - s["J_k"])
    k_il6 = q["k_IL6_ref"] * ((1.0 - q["f_IL6_renal"]) + q["f_IL6_renal"] * gfr / 100.0)
    k_dial = q["k_D"] * s["D"]
    protein_target = (q["u_L"] * s["L"] + q["u_C"] * q["CI"]) * gfr / (gfr + q["K_U"])
    b_production = q["delta_B"] * q["B_pre"]  # = k_P * P_ss
    out = {
        "F_1": s["R_F"] - (q["k_10"] + q["k_12"] + q["k_13"] + k_dial) * s["F_1"]
        + q["k_21"] * s["F_2"] + q["k_31"] * s["F_3"],
        "F_2": q["k_12"] * s["F_1"] - (q["k_21"] + k_dial) * s["F_2"],
        "F_3": q["k_13"] * s["F_1"] - (q["k_31"] + k_dial) * s["F_3"],
        "R_F": 0.0,
        "D": 0.0,
        "AUC_F": 24.0 * conc,
        "X_C": -(q["k_C"] + q["k_DC"] * s["D"]) * s["X_C"],
        "N": q["r_N"] * s["N"] * (1.0 - (s["N"] + car) / q["K_N"]) - ld * s["N"],
        "P_1": b_production - (q["k_P"] + b_kill + q["phi_B"] * ld) * s["P_1"],
        "P_2": q["k_P"] * s["P_1"] - (q["k_P"] + b_kill + q["phi_B"] * ld) * s["P_2"],
        "B": q["k_P"] * s["P_2"] - (q["delta_B"] + b_kill + q["phi_B"] * ld) * s["B"],
        "S": q["r_S"] * s["S"] * (1.0 - s["S"]) - (b_kill + q["phi_B"] * ld) * s["S"],
        "I": q["k_I"] * q["I_0"]
        - ((1.0 - q["f_I_cons"]) * q["k_I"] + q["f_I_cons"] * q["k_I"] / q["K_N"]
           * (s["N"] + car)) * s["I"],
        "G": q["k_G"] * (s["G_2"] - s["G"]),
        "G_2": q["k_G"] * (s["G_1"] - s["G_2"]),
        "G_1": -q["k_G"] * s["G_1"],
        "K_1": q["k_tr"] * (exposure_kill - s["K_1"]),
        "K_2": q["k_tr"] * (s["K_1"] - s["K_2"]),
        "Kc_1": q["k_tr"] * (s["H"] * exposure_kill - s["Kc_1"]),
        "Kc_2": q["k_tr"] * (s["Kc_1"] - s["Kc_2"]),
        "H": 0.0,
        "C_E": (prolif - q["delta_E"] - q["k_EM"] - product_kill) * s["C_E"],
        "C_M": q["k_EM"] * s["C_E"] - (q["delta_M"] + product_kill) * s["C_M"],
        "M": q["r_M"] * (q["M_0"] - s["M"]) - q["phi_M"] * ld * s["M"],
        "IL6": q["k_IL6_ref"] * q["IL6_0"] - k_il6 * s["IL6"] + q["p_IL6"] * prolif * s["C_E"],
        "A": q["k_A"] * (q["A_0"] * ((1.0 - q["f_LLPC"]) * s["S"] + q["f_LLPC"]) - s["A"]),
        "Q": q["k_Q"] * (q["Q_norm"] - s["Q"])
        - q["k_Q"] * max(q["Q_norm"] / q["Q_0"] - 1.0, 0.0) * s["A"] / q["A_0"] * s["Q"],
        "L": q["k_L"] * (q["L_0"] * s["A"] / q["A_0"] - s["L"]),
        "J_k": q["k_inj"] * s["L"] / 24.0 * (1.0 - s["J_k"]) - q["k_heal"] * s["J_k"],
        "U": q["k_U"] * (protein_target - s["U"]),
    }  # fmt: skip
    return [out[name] for name in SLE_CART_V3_STATES]


def sle_cart_v3_kidney(q, egfr0):
    """Irreversible share, recoverable function, initial injury and activity coefficient of
    proteinuria (sle_cart v3's derived entries), from the documented formulas."""
    s_irr = 1.0 / (1.0 + math.exp(-(q["CI"] - q["CI_50"]) / q["w_CI"]))
    cap = egfr0 + (1.0 - s_irr) * max(q["GFR_norm"] - egfr0, 0.0)
    j0 = min(max(1.0 - egfr0 / cap, 0.0), 0.999)
    u_l = max(q["U_0"] * (egfr0 + q["K_U"]) / egfr0 - q["u_C"] * q["CI"], 0.0) / q["L_0"]
    return s_irr, cap, j0, u_l
