"""Kernel part: Rosenbrock steps, Jacobian, dense output and segment loop (RODAS5).

``_segment_ros`` integrates from one stop time to the next with the predictive step-size
controller; the linear algebra is in the ``linalg`` part.
"""

import math

from numba import njit


@njit(cache=CACHE, error_model="numpy")
def _jacobian(t, y, p, f0, J, ft, ytmp, ftmp, rtol, atol, counters):
    """J = df/dy at (t, y) (user jac or forward differences) and ft = df/dt (differences; 0
    without a call when the header's ``AUTONOMOUS`` says the rhs does not read t).

    A generated model's jac here is its ``jac_nonzeros`` (header): it writes the pattern's
    entries only, and J's other entries stay at the zeros the drivers allocate it with.

    Difference increment for state j: sqrt(eps) * max(|y_j|, atol_j / rtol), i.e. relative to
    the size below which the state is controlled by atol (scipy's num_jac uses the same
    threshold). An increment that ignores the state's scale (e.g. sqrt(eps * max(1e-5, |y_j|)))
    gave Robertson's y2 ~ 1e-13 a Jacobian column 300x off and Rodas5 30x more steps.
    """
    n = y.size
    if HAS_JAC:
        jac(t, y, p, J)
    else:
        for j in range(n):
            ytmp[j] = y[j]
        for j in range(n):
            scale = max(abs(y[j]), atol[j] / rtol)
            ytmp[j] = y[j] + SQRT_EPS * scale
            delta = ytmp[j] - y[j]  # exactly representable increment
            rhs(t, ytmp, p, ftmp)
            ytmp[j] = y[j]
            inv = 1.0 / delta
            for i in range(n):
                J[i, j] = (ftmp[i] - f0[i]) * inv
        counters[I_RHS] += n
    if AUTONOMOUS:  # header: the generated rhs does not read t, so df/dt is exactly 0
        for i in range(n):
            ft[i] = 0.0
    else:
        t_plus = t + SQRT_EPS * max(abs(t), 1.0)
        delta_t = t_plus - t
        rhs(t_plus, y, p, ftmp)
        counters[I_RHS] += 1
        inv_t = 1.0 / delta_t
        for i in range(n):
            ft[i] = (ftmp[i] - f0[i]) * inv_t
    counters[I_JAC] += 1


@njit(cache=CACHE, error_model="numpy", inline="always")
def _add_row(x, c, K, m):
    """x += c * K[m] (two arrays in the loop, so the compiler vectorizes it)."""
    for j in range(x.size):
        x[j] += c * K[m, j]


@njit(cache=CACHE, error_model="numpy")
def _ros_step(t, h, y, p, f0, ft, J, M, piv, K, u, fu, ynew, counters):
    """One Rodas5 step from (t, y) with f0 = f(t, y), J and ft given.

    Returns 0 ok, 1 singular matrix, 2 non-finite matrix. Writes the stage vectors K[0..7]
    (``K`` shape (8, n)) and ynew; the error estimate is K[7]. 7 rhs evaluations, 1 LU
    factorization, 8 solves. Each stage sum is one loop over the state index reading the stage
    rows of the one array ``K`` (three or four arrays per loop: few enough for the compiler's
    alias checks, so the loops vectorize; separate stage vectors did not).
    """
    n = y.size
    code, sparse = _ros_matrix(h, J, M, piv)
    counters[I_LU] += 1
    if code != 0:
        return code
    A = ROS_A
    C = ROS_C
    ih = 1.0 / h
    hd1, hd2, hd3, hd4, hd5 = h * ROS_D[0], h * ROS_D[1], h * ROS_D[2], h * ROS_D[3], h * ROS_D[4]
    a21 = A[1, 0]
    a31, a32 = A[2, 0], A[2, 1]
    a41, a42, a43 = A[3, 0], A[3, 1], A[3, 2]
    a51, a52, a53, a54 = A[4, 0], A[4, 1], A[4, 2], A[4, 3]
    a61, a62, a63, a64, a65 = A[5, 0], A[5, 1], A[5, 2], A[5, 3], A[5, 4]
    c21 = C[1, 0] * ih
    c31, c32 = C[2, 0] * ih, C[2, 1] * ih
    c41, c42, c43 = C[3, 0] * ih, C[3, 1] * ih, C[3, 2] * ih
    c51, c52, c53, c54 = C[4, 0] * ih, C[4, 1] * ih, C[4, 2] * ih, C[4, 3] * ih
    c61, c62, c63, c64, c65 = C[5, 0] * ih, C[5, 1] * ih, C[5, 2] * ih, C[5, 3] * ih, C[5, 4] * ih
    c71, c72, c73, c74 = C[6, 0] * ih, C[6, 1] * ih, C[6, 2] * ih, C[6, 3] * ih
    c75, c76 = C[6, 4] * ih, C[6, 5] * ih
    c81, c82, c83, c84 = C[7, 0] * ih, C[7, 1] * ih, C[7, 2] * ih, C[7, 3] * ih
    c85, c86, c87 = C[7, 4] * ih, C[7, 5] * ih, C[7, 6] * ih
    ct = ROS_CT
    for j in range(n):
        K[0, j] = f0[j] + hd1 * ft[j]
    _ros_solve(M, piv, K[0], sparse)
    for j in range(n):
        u[j] = y[j] + a21 * K[0, j]
    rhs(t + ct[1] * h, u, p, fu)
    for j in range(n):
        K[1, j] = fu[j] + hd2 * ft[j] + c21 * K[0, j]
    _ros_solve(M, piv, K[1], sparse)
    for j in range(n):
        u[j] = y[j] + a31 * K[0, j] + a32 * K[1, j]
    rhs(t + ct[2] * h, u, p, fu)
    for j in range(n):
        K[2, j] = fu[j] + hd3 * ft[j] + c31 * K[0, j] + c32 * K[1, j]
    _ros_solve(M, piv, K[2], sparse)
    for j in range(n):
        u[j] = y[j] + a41 * K[0, j] + a42 * K[1, j] + a43 * K[2, j]
    rhs(t + ct[3] * h, u, p, fu)
    for j in range(n):
        K[3, j] = fu[j] + hd4 * ft[j] + c41 * K[0, j] + c42 * K[1, j] + c43 * K[2, j]
    _ros_solve(M, piv, K[3], sparse)
    for j in range(n):
        u[j] = y[j] + a51 * K[0, j] + a52 * K[1, j] + a53 * K[2, j] + a54 * K[3, j]
    rhs(t + ct[4] * h, u, p, fu)
    for j in range(n):
        K[4, j] = (
            fu[j] + hd5 * ft[j] + c51 * K[0, j] + c52 * K[1, j] + c53 * K[2, j] + c54 * K[3, j]
        )
    _ros_solve(M, piv, K[4], sparse)
    # stages 6-8 sit at t + h with d = 0; rows 7 and 8 of A are row 6 plus ones (stiffly accurate)
    for j in range(n):
        u[j] = y[j] + a61 * K[0, j] + a62 * K[1, j] + a63 * K[2, j] + a64 * K[3, j] + a65 * K[4, j]
    rhs(t + h, u, p, fu)
    for j in range(n):
        K[5, j] = (
            fu[j] + c61 * K[0, j] + c62 * K[1, j] + c63 * K[2, j] + c64 * K[3, j] + c65 * K[4, j]
        )
    _ros_solve(M, piv, K[5], sparse)
    for j in range(n):
        u[j] += K[5, j]
    rhs(t + h, u, p, fu)
    for j in range(n):
        K[6, j] = fu[j] + (
            c71 * K[0, j] + c72 * K[1, j] + c73 * K[2, j] + c74 * K[3, j] + c75 * K[4, j]
            + c76 * K[5, j]
        )  # fmt: skip
    _ros_solve(M, piv, K[6], sparse)
    for j in range(n):
        u[j] += K[6, j]
    rhs(t + h, u, p, fu)
    for j in range(n):
        K[7, j] = fu[j] + (
            c81 * K[0, j] + c82 * K[1, j] + c83 * K[2, j] + c84 * K[3, j] + c85 * K[4, j]
            + c86 * K[5, j] + c87 * K[6, j]
        )  # fmt: skip
    _ros_solve(M, piv, K[7], sparse)
    for j in range(n):
        ynew[j] = u[j] + K[7, j]
    counters[I_RHS] += 7
    return 0


@njit(cache=CACHE, error_model="numpy")
def _ros_dense_coefficients(K, D):
    """D[r] = sum_m H[r, m] k_m, the three vectors of the dense output of the last step."""
    n = K.shape[1]
    for r in range(3):
        for j in range(n):
            D[r, j] = ROS_H[r, 0] * K[0, j]
        for m in range(1, 8):
            _add_row(D[r], ROS_H[r, m], K, m)


@njit(cache=CACHE, error_model="numpy", inline="always")
def _ros_metric_poly(j, y, ynew, K, D, PC, have_dense):
    """State j of the step's dense output written as y + th (c0 + th (c1 + th (c2 + th c3)))
    into PC[:, j] (the form the metrics evaluate); D[:, j] is computed unless have_dense."""
    if not have_dense:
        for r in range(3):
            d = ROS_H[r, 0] * K[0, j]
            for m in range(1, 8):
                d += ROS_H[r, m] * K[m, j]
            D[r, j] = d
    # (1-th) y + th (y1 + (1-th)(D0 + th (D1 + th D2))) as y + th (c0 + th (c1 + ...))
    PC[0, j] = (ynew[j] - y[j]) + D[0, j]
    PC[1, j] = D[1, j] - D[0, j]
    PC[2, j] = D[2, j] - D[1, j]
    PC[3, j] = -D[2, j]


@njit(cache=CACHE, error_model="numpy")
def _ros_dense(theta, y, ynew, D, y_out, row):
    n = y.size
    th1 = 1.0 - theta
    for j in range(n):
        y_out[row, j] = th1 * y[j] + theta * (
            ynew[j] + th1 * (D[0, j] + theta * (D[1, j] + theta * D[2, j]))
        )


@njit(cache=CACHE, error_model="numpy")
def _segment_ros(
    t,
    t_end,
    y,
    p,
    rtol,
    atol,
    h,
    h_prev,
    max_step,
    max_steps,
    fixed_step,
    t_eval,
    io,
    y_out,
    counters,
    K,
    u,
    fu,
    ynew,
    f0,
    ft,
    J,
    M,
    piv,
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
    """Integrate y in place from t to t_end (no stop inside) with Rodas5; see _segment_erk.

    ``h`` <= 0: the first step is the larger of Hairer's starting step and ``h_prev`` (the step
    the previous segment proposed at its end; 0 for none).
    """
    n = y.size
    m_out = t_eval.size
    rhs(t, y, p, f0)
    counters[I_RHS] += 1
    fixed = fixed_step > 0.0
    if fixed:
        h = fixed_step
    elif h <= 0.0:
        # the larger of Hairer's starting step and the step the previous segment proposed
        # (h_prev): the starting step ignores the step-size history, the proposal ignores the
        # jump; a too large step is rejected as any other
        h = max(h_prev, _initial_step(t, t_end, y, f0, p, rtol, atol, 5, max_step, u, fu))
        counters[I_RHS] += 1
    h_acc = 0.0  # last accepted step (0: none yet in this segment)
    log_err_acc = 0.0
    rejected = False
    need_jac = True
    n_singular = 0
    while True:
        if counters[I_STEPS] + counters[I_REJECTED] >= max_steps:
            return MAX_STEPS, io, t, h
        if need_jac:
            _jacobian(t, y, p, f0, J, ft, u, fu, rtol, atol, counters)
            need_jac = False
        h = min(h, max_step)
        last = t + 1.01 * h >= t_end
        if last:
            h = t_end - t
        t_new = t_end if last else t + h
        code = _ros_step(t, h, y, p, f0, ft, J, M, piv, K, u, fu, ynew, counters)
        if code != 0:
            counters[I_REJECTED] += 1
            if fixed:
                return SINGULAR if code == 1 else NON_FINITE, io, t, h
            n_singular += 1
            h *= NONFINITE_SHRINK
            if code == 2 and _too_small(h, t):
                return NON_FINITE, io, t, h
            if code == 1 and (n_singular >= MAX_SINGULAR or _too_small(h, t)):
                return SINGULAR, io, t, h
            rejected = True
            continue
        n_singular = 0
        if fixed:
            if not _all_finite(ynew):
                return NON_FINITE, io, t, h
            err = 0.0
        else:
            err = _error_norm(K[7], y, ynew, rtol, atol)
            if not (err <= 1.0):
                counters[I_REJECTED] += 1
                h, code = _after_rejection(err, h, t)
                if code != SUCCESS:
                    return code, io, t, h
                rejected = True
                continue
        # ---- accepted
        counters[I_STEPS] += 1
        have_dense = False
        while io < m_out and t_eval[io] <= t_new and t_eval[io] < t_end:
            if t_eval[io] == t_new:
                for j in range(n):
                    y_out[io, j] = ynew[j]
            else:
                if not have_dense:
                    _ros_dense_coefficients(K, D)
                    have_dense = True
                _ros_dense((t_eval[io] - t) / h, y, ynew, D, y_out, io)
            io += 1
        if WITH_METRICS and macc.size > 0 and t_new > 0.0:  # metrics start at day 0
            if ROLE_SUBSET:  # the metrics read only these states (header)
                for j in ROLE_STATES:
                    _ros_metric_poly(j, y, ynew, K, D, PC, have_dense)
            else:
                for j in range(n):
                    _ros_metric_poly(j, y, ynew, K, D, PC, have_dense)
            _metrics_step(t, t_new, h, y, p, macc, mcfg, PC, MV, ys, yp, vt, vt2)
        for j in range(n):
            y[j] = ynew[j]
        t = t_new
        if fixed:
            h_next = fixed_step
        else:
            # Gustafsson's predictive controller, as in Hairer's RODAS: the smaller of the
            # standard factor and one extrapolated from the last two accepted steps.
            log_err = math.log(max(err, 1e-10))
            log_fac = -0.2 * log_err
            if h_acc > 0.0:
                log_fac = min(log_fac, math.log(h / h_acc) + 0.2 * (log_err_acc - 2.0 * log_err))
            fac = max(FAC_MIN, min(FAC_MAX_ROS, SAFETY * math.exp(log_fac)))
            if rejected:
                fac = min(fac, 1.0)
            h_acc = h
            log_err_acc = max(log_err, math.log(1e-2))
            rejected = False
            h_next = h * fac
        if last:
            return SUCCESS, io, t, h_next
        rhs(t, y, p, f0)
        counters[I_RHS] += 1
        need_jac = True
        h = h_next
