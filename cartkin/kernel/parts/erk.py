"""Kernel part: explicit Runge-Kutta steps, dense output and segment loop (TSIT5, DOPRI5).

``_segment_erk`` integrates from one stop time to the next, with Hairer's stiffness test
(AUTO switches to Rodas5 when it fires).
"""

import math

from numba import njit


@njit(cache=CACHE, error_model="numpy")
def _erk_step(tab, t, h, y, p, k1, k2, k3, k4, k5, k6, k7, ytmp, ynew, yerr):
    """One step of the 7-stage FSAL pair `tab` from (t, y); k1 must hold f(t, y).

    Writes k2..k7, ynew (5th order) and yerr (local error estimate); ytmp ends holding the
    stage-6 value (for the stiffness test). 6 rhs evaluations. Stages are written out, as in
    Hairer's dopri5: about 1.6x faster than loops over the tableau for small systems.
    """
    n = y.size
    A = ERK_A[tab]
    C = ERK_C[tab]
    E = ERK_E[tab]
    a21 = A[1, 0]
    a31, a32 = A[2, 0], A[2, 1]
    a41, a42, a43 = A[3, 0], A[3, 1], A[3, 2]
    a51, a52, a53, a54 = A[4, 0], A[4, 1], A[4, 2], A[4, 3]
    a61, a62, a63, a64, a65 = A[5, 0], A[5, 1], A[5, 2], A[5, 3], A[5, 4]
    a71, a72, a73, a74, a75, a76 = A[6, 0], A[6, 1], A[6, 2], A[6, 3], A[6, 4], A[6, 5]
    e1, e2, e3, e4, e5, e6, e7 = E[0], E[1], E[2], E[3], E[4], E[5], E[6]
    for j in range(n):
        ytmp[j] = y[j] + h * a21 * k1[j]
    rhs(t + C[1] * h, ytmp, p, k2)
    for j in range(n):
        ytmp[j] = (y[j] + h * a31 * k1[j]) + h * a32 * k2[j]
    rhs(t + C[2] * h, ytmp, p, k3)
    for j in range(n):
        ytmp[j] = (y[j] + h * (a41 * k1[j] + a42 * k2[j])) + h * a43 * k3[j]
    rhs(t + C[3] * h, ytmp, p, k4)
    for j in range(n):
        ytmp[j] = (y[j] + h * (a51 * k1[j] + a52 * k2[j] + a53 * k3[j])) + h * a54 * k4[j]
    rhs(t + C[4] * h, ytmp, p, k5)
    for j in range(n):
        ytmp[j] = (
            y[j] + h * (a61 * k1[j] + a62 * k2[j] + a63 * k3[j] + a64 * k4[j])
        ) + h * a65 * k5[j]
    rhs(t + h, ytmp, p, k6)
    for j in range(n):
        ynew[j] = (
            y[j] + h * (a71 * k1[j] + a72 * k2[j] + a73 * k3[j] + a74 * k4[j] + a75 * k5[j])
        ) + h * a76 * k6[j]
    rhs(t + h, ynew, p, k7)
    for j in range(n):
        yerr[j] = h * (
            e1 * k1[j] + e2 * k2[j] + e3 * k3[j] + e4 * k4[j] + e5 * k5[j] + e6 * k6[j]
            + e7 * k7[j]
        )  # fmt: skip


@njit(cache=CACHE, error_model="numpy")
def _erk_dense_coefficients(tab, h, k1, k2, k3, k4, k5, k6, k7, D):
    """D[r - 1] = h * sum_i R[i, r] k_i (r = 1, 2, 3): the last step's dense-output polynomial.

    With them y(t + theta*h) = y + theta*(h*k1 + theta*(D0 + theta*(D1 + theta*D2))): every
    stage weight is theta*(R0 + ...) and only k1 has R0 != 0 (R0 = 1) in both tableaus. Computed
    once per step that has outputs inside it, so each output costs 4 multiply-adds per state
    instead of 7 weight polynomials and a 7-term sum (measured on cart4: see the commit).
    """
    n = k1.size
    R = ERK_R[tab]
    for r in range(3):
        r1, r2, r3, r4 = h * R[0, r + 1], h * R[1, r + 1], h * R[2, r + 1], h * R[3, r + 1]
        r5, r6, r7 = h * R[4, r + 1], h * R[5, r + 1], h * R[6, r + 1]
        for j in range(n):
            D[r, j] = (
                ((r1 * k1[j] + r2 * k2[j]) + (r3 * k3[j] + r4 * k4[j]))
                + ((r5 * k5[j] + r6 * k6[j]) + r7 * k7[j])
            )  # fmt: skip


@njit(cache=CACHE, error_model="numpy")
def _erk_dense(theta, h, y, k1, D, y_out, row):
    """Continuous extension of the last step at t + theta*h, written into y_out[row]."""
    n = y.size
    for j in range(n):
        y_out[row, j] = y[j] + theta * (
            h * k1[j] + theta * (D[0, j] + theta * (D[1, j] + theta * D[2, j]))
        )


@njit(cache=CACHE, error_model="numpy")
def _segment_erk(
    tab,
    t,
    t_end,
    y,
    p,
    rtol,
    atol,
    h,
    max_step,
    max_steps,
    fixed_step,
    stiff_limit,
    t_eval,
    io,
    y_out,
    counters,
    k1,
    k2,
    k3,
    k4,
    k5,
    k6,
    k7,
    ytmp,
    ynew,
    yerr,
    D,
    macc,
    mcfg,
    PC,
    MV,
    ys,
    yp,
    vt,
    vt2,
):
    """Integrate y in place from t to t_end (no stop inside) with explicit pair `tab`.

    Writes outputs t_eval[io] < t_end. h <= 0 means: choose the first step.
    stiff_limit > 0: return STIFF after that many stiff steps (0: no test).
    Returns (status, io, t, h): on failure t is where integration stopped and y the state there.
    ``macc`` non-empty: in-kernel metrics (``_metrics_step``) on every accepted step's dense
    output, ``mcfg`` their settings, ``MW``/``MV`` work arrays; empty: no per-step extra work.
    """
    n = y.size
    m_out = t_eval.size
    rhs(t, y, p, k1)
    counters[I_RHS] += 1
    fixed = fixed_step > 0.0
    if fixed:
        h = fixed_step
    elif h <= 0.0:
        h = _initial_step(t, t_end, y, k1, p, rtol, atol, 5, max_step, ytmp, k2)
        counters[I_RHS] += 1
    log_err_old = math.log(1e-4)
    rejected = False
    n_stiff = 0
    n_nonstiff = 0
    bound = ERK_STIFF_BOUND[tab]
    while True:
        if counters[I_STEPS] + counters[I_REJECTED] >= max_steps:
            return MAX_STEPS, io, t, h
        h = min(h, max_step)
        last = t + 1.01 * h >= t_end
        if last:
            h = t_end - t
        t_new = t_end if last else t + h
        _erk_step(tab, t, h, y, p, k1, k2, k3, k4, k5, k6, k7, ytmp, ynew, yerr)
        counters[I_RHS] += 6
        if fixed:
            if not _all_finite(ynew):
                return NON_FINITE, io, t, h
            err = 0.0
        else:
            err = _error_norm(yerr, y, ynew, rtol, atol)
            if not (err <= 1.0):
                counters[I_REJECTED] += 1
                h, code = _after_rejection(err, h, t)
                if code != SUCCESS:
                    return code, io, t, h
                rejected = True
                continue
        # ---- accepted
        counters[I_STEPS] += 1
        if stiff_limit > 0:
            num = 0.0
            den = 0.0
            for j in range(n):
                num += (k7[j] - k6[j]) ** 2
                den += (ynew[j] - ytmp[j]) ** 2
            if den > 0.0 and h * h * num > bound * bound * den:
                n_nonstiff = 0
                n_stiff += 1
            else:
                n_nonstiff += 1
                if n_nonstiff == NONSTIFF_RESET:
                    n_stiff = 0
        have_dense = False
        while io < m_out and t_eval[io] <= t_new and t_eval[io] < t_end:
            if t_eval[io] == t_new:
                for j in range(n):
                    y_out[io, j] = ynew[j]
            else:
                if not have_dense:
                    _erk_dense_coefficients(tab, h, k1, k2, k3, k4, k5, k6, k7, D)
                    have_dense = True
                _erk_dense((t_eval[io] - t) / h, h, y, k1, D, y_out, io)
            io += 1
        if WITH_METRICS and macc.size > 0 and t_new > 0.0:  # metrics start at day 0
            if not have_dense:
                _erk_dense_coefficients(tab, h, k1, k2, k3, k4, k5, k6, k7, D)
            for j in range(n):
                PC[0, j] = h * k1[j]
                PC[1, j] = D[0, j]
                PC[2, j] = D[1, j]
                PC[3, j] = D[2, j]
            _metrics_step(t, t_new, h, y, p, macc, mcfg, PC, MV, ys, yp, vt, vt2)
        for j in range(n):
            y[j] = ynew[j]
        k1, k7 = k7, k1  # FSAL: f(t_new, y_new) is the next step's first stage
        t = t_new
        if fixed:
            h_next = fixed_step
        else:
            log_err = math.log(max(err, 1e-10))
            h_next = h * _step_factor(log_err, log_err_old, PI_BETA_RK, rejected)
            log_err_old = max(log_err, math.log(1e-4))
            rejected = False
        if last:
            return SUCCESS, io, t, h_next
        if stiff_limit > 0 and n_stiff >= stiff_limit:
            return STIFF, io, t, h_next
        h = h_next
