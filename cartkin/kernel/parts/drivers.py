"""Kernel part: the drivers: one patient (``_integrate``, ``_solve``) and many patients.

``_integrate`` walks the stop times (doses, jumps) and calls the segment loop of the chosen
method, handing each accepted step to the in-kernel metrics when they are on; ``_solve`` is
the entry point of :func:`cartkin.ode.solve_ode`. The batch kernels ``_solve_batch`` and
``_metrics_batch`` (:mod:`cartkin.batch`) run patients in parallel (``prange`` over chunks),
one patient's integration at a time per thread, no Python per patient.
"""

import numpy as np
from numba import njit, prange


# ================================================================================================
# driver
# ================================================================================================
@njit(cache=CACHE, error_model="numpy")
def _integrate(
    method, t_start, t_final, t_eval, y_out, io, y, p, t_stops, jumps, n_stops, rtol, atol,
    first_step, max_step, max_steps, fixed_step, counters, W, JM, piv, macc, mcfg, PC, MV, ys,
    yp, vt, vt2,
):  # fmt: skip
    """Integrate ``y`` in place from ``t_start`` to ``t_final``; the one loop every entry uses.

    Outputs go to ``y_out[io:]`` at ``t_eval[io:]`` (all >= t_start); the first ``n_stops``
    rows of ``t_stops``/``jumps`` are used (all in [t_start, t_final]). ``W`` (16, n), ``JM``
    (2, n, n) and ``piv`` (n,) are work arrays, ``counters`` is added to. ``macc`` non-empty:
    in-kernel metrics (see ``_metrics_step``). Returns (status, t reached).
    """
    n = y.size
    m_out = t_eval.size
    k1, k2, k3, k4, k5, k6, k7 = W[0], W[1], W[2], W[3], W[4], W[5], W[6]  # explicit stages
    ytmp, ynew, yerr, f0, ft = W[8], W[9], W[10], W[11], W[12]
    D = W[13:16]
    J = JM[0]
    M = JM[1]
    t = t_start
    ks = 0
    status = SUCCESS
    h_prev = 0.0  # rodas5: the step the last segment proposed (0: none yet)
    while True:
        while ks < n_stops and t_stops[ks] <= t:
            for j in range(n):
                y[j] += jumps[ks, j]
            ks += 1
        while io < m_out and t_eval[io] <= t:
            for j in range(n):
                y_out[io, j] = y[j]
            io += 1
        if WITH_METRICS and macc.size > 0 and t >= 0.0:
            _metrics_point(t, y, p, macc, mcfg, MV, vt)
        if t >= t_final:
            break
        seg_end = t_stops[ks] if ks < n_stops else t_final
        h = first_step
        # WITH_ERK / WITH_ROS are header constants: numba prunes the branch of a method family
        # the kernel was not built for, so a rodas5-only kernel never compiles the explicit code
        if not (WITH_ROS if method == RODAS5 else WITH_ERK and (method != AUTO or WITH_ROS)):
            status = NOT_BUILT
        elif method == RODAS5:
            status, io, t, h = _segment_ros(
                t, seg_end, y, p, rtol, atol, h, h_prev, max_step, max_steps, fixed_step,
                t_eval, io, y_out, counters,
                W[0:8], ytmp, yerr, ynew, f0, ft, J, M, piv, D,
                macc, mcfg, PC, MV, ys, yp, vt, vt2,
            )  # fmt: skip
        elif WITH_ERK:
            tab = DOPRI5 if method == DOPRI5 else TSIT5
            limit = STIFF_SWITCH_COUNT if method == AUTO else STIFF_FAIL_COUNT
            if fixed_step > 0.0:
                limit = 0
            status, io, t, h = _segment_erk(
                tab, t, seg_end, y, p, rtol, atol, h, max_step, max_steps, fixed_step, limit,
                t_eval, io, y_out, counters, k1, k2, k3, k4, k5, k6, k7, ytmp, ynew, yerr, D,
                macc, mcfg, PC, MV, ys, yp, vt, vt2,
            )  # fmt: skip
            if status == STIFF and method == AUTO and WITH_ROS:
                counters[I_SWITCHES] += 1
                status, io, t, h = _segment_ros(
                    t, seg_end, y, p, rtol, atol, h, 0.0, max_step, max_steps, fixed_step,
                    t_eval, io, y_out, counters,
                    W[0:8], ytmp, yerr, ynew, f0, ft, J, M, piv, D,
                    macc, mcfg, PC, MV, ys, yp, vt, vt2,
                )  # fmt: skip
        if status != SUCCESS:
            break
        t = seg_end
        if method == RODAS5:
            h_prev = h
    return status, t


@njit(cache=CACHE, error_model="numpy")
def _solve(
    method,
    t_eval,
    y0,
    p,
    t_stops,
    jumps,
    rtol,
    atol,
    first_step,
    max_step,
    max_steps,
    fixed_step,
):
    """Integrate from t_eval[0] to t_eval[-1] (the entry point of ``cartkin.ode.solve_ode``).

    Parameters (all validated by cartkin.ode): method code; t_eval (m,) strictly increasing;
    y0 (n,); p (n_p,); t_stops (k,) non-decreasing in [t_eval[0], t_eval[-1]]; jumps (k, n)
    added at the stops (equal stop times: jumps add up); rtol > 0; atol (n,) > 0; first_step
    (0: automatic); max_step (inf: none); max_steps (attempted steps, all segments);
    fixed_step (0: adaptive).

    Returns
    -------
    y_out : (m, n) float64, NaN rows past a failure
    status : int (SUCCESS or a negative failure code)
    counters : (N_COUNTERS,) int64, see I_* names
    t_reached : float, time reached (where a failure happened)
    """
    n = y0.size
    m_out = t_eval.size
    y_out = np.full((m_out, n), np.nan)
    counters = np.zeros(N_COUNTERS, np.int64)
    y = y0.copy()
    # one buffer for all work vectors (fewer allocations: this matters for small systems)
    W = np.empty((16, n))
    JM = np.zeros((2, n, n))  # zeroed: a generated jac writes only its pattern's entries
    piv = np.empty(n, np.int64)
    no_metrics = np.empty(0)
    status, t = _integrate(
        method, t_eval[0], t_eval[m_out - 1], t_eval, y_out, m_out - m_out, y, p, t_stops, jumps,
        t_stops.size, rtol, atol, first_step, max_step, max_steps, fixed_step, counters,
        W, JM, piv, no_metrics, no_metrics, np.empty((0, 0)), np.empty((0, 0)), no_metrics,
        no_metrics, no_metrics, no_metrics,
    )  # fmt: skip
    return y_out, status, counters, t


# ================================================================================================
# batch kernels: many patients per call (cartkin.batch), threads over chunks of patients
# ================================================================================================
@njit(cache=CACHE, error_model="numpy")
def _stops_in_horizon(TS, i, n_stops, t_final):
    k = n_stops
    while k > 0 and TS[i, k - 1] > t_final:
        k -= 1
    return k


@njit(cache=CACHE, parallel=True, error_model="numpy")
def _solve_batch(
    method, t_eval, first_out, Y0, P, T0, TS, JU, NS, rtol, atol, max_step, max_steps,
    n_chunks, Y_out, status, counters,
):  # fmt: skip
    """Solve every patient i (rows of Y0, P, T0, TS, JU, NS) into Y_out[i] (NaN-filled).

    Patient i starts at T0[i] with Y0[i]; its outputs are t_eval[first_out[i]:] (>= T0[i]).
    Chunks of patients run in parallel, each with its own work arrays; a patient's numbers do
    not depend on the chunking or the thread count (the same ``_integrate`` as ``_solve``).
    """
    n_pat = Y0.shape[0]
    n = Y0.shape[1]
    t_final = t_eval[t_eval.size - 1]
    for c in prange(n_chunks):
        lo = c * n_pat // n_chunks
        hi = (c + 1) * n_pat // n_chunks
        W = np.empty((16, n))
        JM = np.zeros((2, n, n))  # zeroed: a generated jac writes only its pattern's entries
        piv = np.empty(n, np.int64)
        y = np.empty(n)
        cnt = np.zeros(N_COUNTERS, np.int64)
        no_metrics = np.empty(0)
        no_work = np.empty((0, 0))
        for i in range(lo, hi):
            for j in range(n):
                y[j] = Y0[i, j]
            for j in range(N_COUNTERS):
                cnt[j] = 0
            ns = _stops_in_horizon(TS, i, NS[i], t_final)
            st, _ = _integrate(
                method, T0[i], t_final, t_eval, Y_out[i], first_out[i], y, P[i], TS[i], JU[i],
                ns, rtol, atol, 0.0, max_step, max_steps, 0.0, cnt, W, JM, piv,
                no_metrics, no_metrics, no_work, no_work, no_metrics, no_metrics, no_metrics,
                no_metrics,
            )  # fmt: skip
            status[i] = st
            for j in range(N_COUNTERS):
                counters[i, j] = cnt[j]


@njit(cache=CACHE, parallel=True, error_model="numpy")
def _metrics_batch(
    method, t_final, Y0, P, T0, TS, JU, NS, rtol, atol, max_step, max_steps, n_chunks, cfg,
    ACC, status, counters,
):  # fmt: skip
    """In-kernel metrics of every patient into ACC[i] (N_ACC accumulators); no trajectories."""
    n_pat = Y0.shape[0]
    n = Y0.shape[1]
    no_out = np.empty(0)
    for c in prange(n_chunks):
        lo = c * n_pat // n_chunks
        hi = (c + 1) * n_pat // n_chunks
        W = np.empty((16, n))
        JM = np.zeros((2, n, n))  # zeroed: a generated jac writes only its pattern's entries
        piv = np.empty(n, np.int64)
        y = np.empty(n)
        cnt = np.zeros(N_COUNTERS, np.int64)
        PC = np.empty((4, n))
        MV = np.empty((8, N_ROLES))
        ys = np.empty(n)
        yp = np.empty(n)
        vt = np.empty(N_ROLES)
        vt2 = np.empty(N_ROLES)
        y_out = np.empty((0, n))
        for i in range(lo, hi):
            for j in range(n):
                y[j] = Y0[i, j]
            for j in range(N_COUNTERS):
                cnt[j] = 0
            acc = ACC[i]
            _metrics_init(acc)
            ns = _stops_in_horizon(TS, i, NS[i], t_final)
            st, _ = _integrate(
                method, T0[i], t_final, no_out, y_out, 0, y, P[i], TS[i], JU[i], ns, rtol, atol,
                0.0, max_step, max_steps, 0.0, cnt, W, JM, piv, acc, cfg, PC, MV, ys, yp, vt, vt2,
            )  # fmt: skip
            status[i] = st
            for j in range(N_COUNTERS):
                counters[i, j] = cnt[j]
