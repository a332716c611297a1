"""An analytic Jacobian of sle_cart_v1 (version 1 of sle_cart) for the sweep benchmark's v1 mode.

``jac`` is d(dy/dt)/dy of ``the generated rhs of sle_cart_v1`` (MODEL.md v1 equations); the
model's own ``observe_roles`` is reused. It could move beside the v1 ``rhs`` (then the kernel is
file-backed and cached instead of compiled in memory every run). sle_cart (v2) ships its own
``jac``. ``tests/test_batch.py`` checks this one against finite differences.
"""

from __future__ import annotations

import numba
import numpy as np

from cartkin.batch import BatchContext  # noqa: F401  (documentation: where contexts come from)
from cartkin.models import Model, get


@numba.njit(cache=True)
def jac(t, y, p, J):
    """d(dy/dt)/dy of sle_cart's rhs (same kernel order), written out by hand."""
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
    C = C_E + C_M
    for i in range(7):
        for j in range(7):
            J[i, j] = 0.0
    stim = B / (B + K_B) + rho_H * H
    crowd = 1.0 - (N + C) / K_T
    drive = rho * stim * crowd
    d_drive_dC = -rho * stim / K_T  # same for C_E, C_M and N
    d_drive_dB = rho * crowd * K_B / ((B + K_B) * (B + K_B))
    d_drive_dH = rho * crowd * rho_H
    # dC_E = drive*C_E - (delta_E + k_EM)*C_E
    J[0, 0] = drive + C_E * d_drive_dC - (delta_E + k_EM)
    J[0, 1] = C_E * d_drive_dC
    J[0, 2] = C_E * d_drive_dC
    J[0, 3] = C_E * d_drive_dB
    J[0, 4] = C_E * d_drive_dH
    # dC_M = k_EM*C_E - delta_M*C_M
    J[1, 0] = k_EM
    J[1, 1] = -delta_M
    # dN = r_N*N*(1 - (N + C)/K_N)
    J[2, 0] = -r_N * N / K_N
    J[2, 1] = -r_N * N / K_N
    J[2, 2] = r_N * (1.0 - (N + C) / K_N) - r_N * N / K_N
    # dB = k_in/(1 + C/C_50) - delta_B*B - k_kill*(C_E + theta_M*C_M)*B
    k_in = delta_B * B_pre
    inhib = -k_in / (C_50 * (1.0 + C / C_50) ** 2)
    J[3, 0] = inhib - k_kill * B
    J[3, 1] = inhib - k_kill * theta_M * B
    J[3, 3] = -delta_B - k_kill * (C_E + theta_M * C_M)
    # dH = -k_H*H
    J[4, 4] = -k_H
    # dIL6 = s_IL6 - k_IL6*IL6 + p_IL6*C_E*B
    J[5, 0] = p_IL6 * B
    J[5, 3] = p_IL6 * C_E
    J[5, 5] = -k_IL6
    # dA = p_A*B/B_pre + p_LLPC - k_A*A
    J[6, 3] = (1.0 - f_LLPC) * k_A * A_0 / B_pre
    J[6, 6] = -k_A


def sle_cart_with_extras(with_jac: bool = True) -> Model:
    """sle_cart_v1 with this jac attached (its own observe_roles; array-valued individualize)."""
    m = get("sle_cart_v1")
    return Model(
        "sle_cart_v1", m.description, m.states, m.parameters, m.observables, m.rhs,
        m._individualize, m.roles, m.equations, m.derived, jac=jac if with_jac else None,
        batch=m.batch, observe_roles=m.observe_roles,
    )  # fmt: skip


_ = np  # numpy used by numba-compiled code paths
