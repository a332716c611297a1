"""Kernel part: the in-kernel clinical metrics, the one place where they are computed.

:func:`cartkin.batch.metrics` runs the batch kernel ``_metrics_batch`` with these accumulators
instead of returning states. What a model offers here comes from its roles: its generated
``observe_roles(y, p, out)`` (:mod:`cartkin.kernel.codegen`) writes the value of each role in
``cartkin.batch.KERNEL_ROLES`` order (NaN for a role the model lacks), and ``cfg[C_HAS + role]``
says which roles it has and the request needs (the CAR-T role is always tracked). The
thresholds are not written here: ``cfg`` carries them
(``C_LLOQ``, ``C_APLASIA``, ``C_RECOVERY``, ``C_IL6_THR``, ``C_AUC_END``, ``C_ADS_DAY``), filled
by :func:`cartkin.batch.metrics` from the definitions in :mod:`cartkin.measures` (or the
caller's values). ``cartkin.batch.METRIC_NAMES`` maps the accumulators ``A_*`` below to metric
names and units; :func:`cartkin.metrics.compute` computes the same metrics from a trajectory on
a grid, with the same definitions.

The accumulators of every role are compiled into every kernel built with ``WITH_METRICS``; a
role the model lacks, or that no requested metric needs, is skipped at run time by its
``C_HAS`` flag. The dense output is evaluated only for the states ``observe_roles`` reads
(``ROLE_STATES`` of the header, from :mod:`cartkin.kernel.codegen`) where they are known.
"""

import math

import numpy as np
from numba import njit

# ================================================================================================
# in-kernel metrics from the dense output (cartkin.batch.metrics)
# ================================================================================================
# The model's ``observe_roles(y, p, out)`` writes out[k] for k in cartkin.batch.KERNEL_ROLES order
# (NaN where the model lacks the role). Every accepted step hands its dense-output polynomial
# y(t + th h) = y + th (c0 + th (c1 + th (c2 + th c3))) to ``_metrics_step``; stops (doses) hand
# the state after the jump to ``_metrics_point``. Extremes are refined on the interpolant (golden
# section where the slope changes sign inside a step), threshold crossings are roots of the
# interpolant (Illinois), AUC is 3-point Gauss-Legendre per step (exact for the degree-4
# interpolant of a linear observable). Only t in [0, horizon] counts, right-continuous at jumps,
# as in cartkin.metrics.compute on a fine grid.
N_ROLES = 10  # len(cartkin.models.ROLES); the metrics below read the first six
R_CART = 0
R_COPIES = 1
R_PCT = 2
R_B = 3
R_IL6 = 4
R_ADS = 5
# mcfg: settings (index names) then one presence flag per role
C_LLOQ = 0
C_APLASIA = 1
C_RECOVERY = 2
C_IL6_THR = 3
C_AUC_END = 4
C_HORIZON = 5
C_ADS_DAY = 6
C_HAS = 7  # C_HAS + role: 1.0 when the model has that role
N_CFG = C_HAS + N_ROLES
# macc: accumulators (NaN = not reached)
A_STARTED = 0
A_CMAX = 1
A_TMAX = 2
A_COPIES_MAX = 3
A_PCT_MAX = 4
A_AUC = 5
A_TLST = 6
A_CLST = 7
A_PERSIST = 8
A_B_MIN = 9
A_B_TMIN = 10
A_T_APLASIA = 11
A_T_APLASIA_END = 12
A_T_BELOW_RECOVERY = 13
A_T_RECOVERY = 14
A_IL6_MAX = 15
A_IL6_TMAX = 16
A_IL6_ABOVE = 17
A_ADS_0 = 18
A_ADS_DAY = 19
A_PREV = 20  # A_PREV + role: value at the last point processed
A_SLOPE = A_PREV + N_ROLES  # A_SLOPE + role: its slope (per day) there; NaN after a jump
N_ACC = A_SLOPE + N_ROLES
FLAT = 1e-9  # a slope below FLAT x |value| per step counts as flat: no extremum search
GOLDEN = 0.6180339887498949
SLOPE_EPS = 1e-6  # relative theta increment of the central difference of a role's slope
ROOT_TOL = 1e-13  # theta tolerance of root and extremum searches (times h in days)
GL3_X = np.array([0.5 - 0.5 * math.sqrt(0.6), 0.5, 0.5 + 0.5 * math.sqrt(0.6)])
GL3_W = np.array([5.0 / 18.0, 8.0 / 18.0, 5.0 / 18.0])


@njit(cache=CACHE, error_model="numpy")
def _metrics_init(acc):
    for k in range(N_ACC):
        acc[k] = np.nan
    acc[A_STARTED] = 0.0
    acc[A_AUC] = 0.0
    acc[A_PERSIST] = 0.0
    acc[A_IL6_ABOVE] = 0.0


# Work arrays of the metrics (no array views in the per-step path: each view cost about 70 ns
# per call, more than the arithmetic): PC (4, n) the step's polynomial, MV (8, N_ROLES) role
# vectors by row (MV_*), ys and yp (n,) states, vt and vt2 (N_ROLES,) observe_roles outputs.
MV_FIRST = 0
MV_A = 1
MV_B = 2
MV_DA = 3
MV_DB = 4


@njit(cache=CACHE, error_model="numpy", inline="always")
def _poly_state(theta, y, PC, out):
    """The interpolant at theta into out: only the states observe_roles reads (ROLE_STATES,
    from the header) when they are known, else all (the other entries of out are not read)."""
    if ROLE_SUBSET:
        for j in ROLE_STATES:
            _poly_point(theta, j, y, PC, out)
    else:
        for j in range(y.size):
            _poly_point(theta, j, y, PC, out)


@njit(cache=CACHE, error_model="numpy", inline="always")
def _poly_point(theta, j, y, PC, out):
    """State j of the interpolant at theta into out[j]."""
    out[j] = y[j] + theta * (PC[0, j] + theta * (PC[1, j] + theta * (PC[2, j] + theta * PC[3, j])))


@njit(cache=CACHE, error_model="numpy", inline="always")
def _roles_at(theta, y, PC, p, ys, vt):
    """Role values of the interpolant at theta into vt."""
    _poly_state(theta, y, PC, ys)
    observe_roles(ys, p, vt)


@njit(cache=CACHE, error_model="numpy", inline="always")
def _roles_into(theta, y, PC, p, ys, vt, MV, row):
    _roles_at(theta, y, PC, p, ys, vt)
    for k in range(N_ROLES):
        MV[row, k] = vt[k]


@njit(cache=CACHE, error_model="numpy", inline="always")
def _roles_slope(theta, y, PC, p, ys, yp, vt, vt2, MV, row):
    """d(role)/d(theta) of the interpolant at theta into MV[row] (central difference along the
    interpolant's tangent)."""
    _poly_state(theta, y, PC, ys)
    if ROLE_SUBSET:
        for j in ROLE_STATES:
            _tangent_points(theta, j, PC, ys, yp)
    else:
        for j in range(y.size):
            _tangent_points(theta, j, PC, ys, yp)
    observe_roles(yp, p, vt)
    observe_roles(ys, p, vt2)
    for k in range(N_ROLES):
        MV[row, k] = (vt[k] - vt2[k]) / (2.0 * SLOPE_EPS)


@njit(cache=CACHE, error_model="numpy", inline="always")
def _tangent_points(theta, j, PC, ys, yp):
    """State j of the two points ys -/+ SLOPE_EPS x the interpolant's tangent at theta."""
    yd = PC[0, j] + theta * (2.0 * PC[1, j] + theta * (3.0 * PC[2, j] + theta * 4.0 * PC[3, j]))
    yp[j] = ys[j] + SLOPE_EPS * yd
    ys[j] = ys[j] - SLOPE_EPS * yd


@njit(cache=CACHE, error_model="numpy")
def _root(k, thr, lo, hi, vlo, y, PC, p, ys, vt):
    """Theta in [lo, hi] where role k crosses thr (a sign change is bracketed): Illinois."""
    flo = vlo - thr
    _roles_at(hi, y, PC, p, ys, vt)
    fhi = vt[k] - thr
    side = 0
    for _ in range(100):
        if hi - lo <= ROOT_TOL:
            break
        if fhi == flo:
            mid = 0.5 * (lo + hi)
        else:
            mid = hi - fhi * (hi - lo) / (fhi - flo)
            if not (lo < mid < hi):
                mid = 0.5 * (lo + hi)
        _roles_at(mid, y, PC, p, ys, vt)
        fm = vt[k] - thr
        if fm == 0.0:
            return mid
        if (fm > 0.0) == (fhi > 0.0):
            hi = mid
            fhi = fm
            if side == 1:
                flo *= 0.5
            side = 1
        else:
            lo = mid
            flo = fm
            if side == -1:
                fhi *= 0.5
            side = -1
    # the side where the condition ("below" or ">= thr") first holds
    return hi


@njit(cache=CACHE, error_model="numpy")
def _extremum(k, sign, lo, hi, y, PC, p, ys, vt):
    """(theta, value) of the maximum of sign*role_k on [lo, hi] (golden section)."""
    a = lo
    b = hi
    c = b - GOLDEN * (b - a)
    d = a + GOLDEN * (b - a)
    _roles_at(c, y, PC, p, ys, vt)
    fc = sign * vt[k]
    _roles_at(d, y, PC, p, ys, vt)
    fd = sign * vt[k]
    while b - a > 1e-9:
        if fc >= fd:
            b = d
            d = c
            fd = fc
            c = b - GOLDEN * (b - a)
            _roles_at(c, y, PC, p, ys, vt)
            fc = sign * vt[k]
        else:
            a = c
            c = d
            fc = fd
            d = a + GOLDEN * (b - a)
            _roles_at(d, y, PC, p, ys, vt)
            fd = sign * vt[k]
    th = 0.5 * (a + b)
    _roles_at(th, y, PC, p, ys, vt)
    return th, vt[k]


@njit(cache=CACHE, error_model="numpy")
def _metrics_point(t, y, p, acc, cfg, MV, vt):
    """A point of the curve at t >= 0 that starts a piece: day 0, or a stop after its jump."""
    observe_roles(y, p, vt)
    for k in range(N_ROLES):
        MV[MV_FIRST, k] = vt[k]
    _metrics_at(t, MV, acc, cfg)


@njit(cache=CACHE, error_model="numpy")
def _metrics_at(t, MV, acc, cfg):
    """Record the (right-continuous) values MV[MV_FIRST] at time t: first point or a jump."""
    if t > cfg[C_HORIZON]:
        return
    first = acc[A_STARTED] == 0.0
    acc[A_STARTED] = 1.0
    c = MV[MV_FIRST, R_CART]
    if first or c > acc[A_CMAX]:
        acc[A_CMAX] = c
        acc[A_TMAX] = t
    v = MV[MV_FIRST, R_COPIES]
    if cfg[C_HAS + R_COPIES] > 0.0 and (first or v > acc[A_COPIES_MAX]):
        acc[A_COPIES_MAX] = v
    v = MV[MV_FIRST, R_PCT]
    if cfg[C_HAS + R_PCT] > 0.0 and (first or v > acc[A_PCT_MAX]):
        acc[A_PCT_MAX] = v
    if c >= cfg[C_LLOQ]:
        acc[A_TLST] = t
        acc[A_CLST] = c
    if cfg[C_HAS + R_B] > 0.0:
        b = MV[MV_FIRST, R_B]
        if first or b < acc[A_B_MIN]:
            acc[A_B_MIN] = b
            acc[A_B_TMIN] = t
        _b_events_at(t, b, acc, cfg)
    v = MV[MV_FIRST, R_IL6]
    if cfg[C_HAS + R_IL6] > 0.0 and (first or v > acc[A_IL6_MAX]):
        acc[A_IL6_MAX] = v
        acc[A_IL6_TMAX] = t
    if cfg[C_HAS + R_ADS] > 0.0:
        v = MV[MV_FIRST, R_ADS]
        if first:
            acc[A_ADS_0] = v
        if t == cfg[C_ADS_DAY]:
            acc[A_ADS_DAY] = v
    for k in range(N_ROLES):
        acc[A_PREV + k] = MV[MV_FIRST, k]
        acc[A_SLOPE + k] = np.nan


@njit(cache=CACHE, error_model="numpy")
def _b_events_at(t, b, acc, cfg):
    """B-cell threshold events holding at a single point t (first point, or after a jump)."""
    if acc[A_T_APLASIA] != acc[A_T_APLASIA]:
        if b < cfg[C_APLASIA]:
            acc[A_T_APLASIA] = t
    elif acc[A_T_APLASIA_END] != acc[A_T_APLASIA_END] and t > acc[A_T_APLASIA]:
        if b >= cfg[C_APLASIA]:
            acc[A_T_APLASIA_END] = t
    if acc[A_T_BELOW_RECOVERY] != acc[A_T_BELOW_RECOVERY]:
        if b < cfg[C_RECOVERY]:
            acc[A_T_BELOW_RECOVERY] = t
    elif acc[A_T_RECOVERY] != acc[A_T_RECOVERY] and t > acc[A_T_BELOW_RECOVERY]:
        if b >= cfg[C_RECOVERY]:
            acc[A_T_RECOVERY] = t


@njit(cache=CACHE, error_model="numpy")
def _metrics_step(t, t_new, h, y, p, acc, cfg, PC, MV, ys, yp, vt, vt2):
    """Update the metrics with one accepted step [t, t_new] and its interpolant (see above)."""
    if t_new <= 0.0:
        return
    lo = 0.0
    if acc[A_STARTED] == 0.0:  # the model started before day 0: day 0 lies inside this step
        lo = -t / h
        _roles_into(lo, y, PC, p, ys, vt, MV, MV_FIRST)
        _metrics_at(0.0, MV, acc, cfg)
    ta = t + lo * h
    for k in range(N_ROLES):
        MV[MV_A, k] = acc[A_PREV + k]
    _roles_into(1.0, y, PC, p, ys, vt, MV, MV_B)
    # slopes in theta units (per step); the start slope is the last step's end slope when the
    # curve is continuous there (one central difference per step instead of two)
    if lo == 0.0 and acc[A_SLOPE] == acc[A_SLOPE]:
        for k in range(N_ROLES):
            MV[MV_DA, k] = acc[A_SLOPE + k] * h
    else:
        _roles_slope(lo, y, PC, p, ys, yp, vt, vt2, MV, MV_DA)
    _roles_slope(1.0, y, PC, p, ys, yp, vt, vt2, MV, MV_DB)

    # -- CAR-T peak, AUC, LLOQ
    k = R_CART
    _track_extremum(k, A_CMAX, A_TMAX, 1.0, t, t_new, h, lo, y, PC, p, acc, MV, ys, vt)
    if cfg[C_HAS + R_COPIES] > 0.0:
        _track_extremum(R_COPIES, A_COPIES_MAX, -1, 1.0, t, t_new, h, lo, y, PC, p, acc, MV, ys, vt)
    if cfg[C_HAS + R_PCT] > 0.0:
        _track_extremum(R_PCT, A_PCT_MAX, -1, 1.0, t, t_new, h, lo, y, PC, p, acc, MV, ys, vt)
    t_auc = cfg[C_AUC_END]
    if ta < t_auc:
        a = ta
        b = min(t_new, t_auc)
        s = 0.0
        for q in range(3):
            tq = a + GL3_X[q] * (b - a)
            _roles_at((tq - t) / h, y, PC, p, ys, vt)
            s += GL3_W[q] * vt[k]
        acc[A_AUC] += s * (b - a)
    lloq = cfg[C_LLOQ]
    va = MV[MV_A, k]
    vb = MV[MV_B, k]
    if va >= lloq and vb >= lloq:
        acc[A_PERSIST] += t_new - ta
        acc[A_TLST] = t_new
        acc[A_CLST] = vb
    elif va >= lloq or vb >= lloq:
        tr = t + _root(k, lloq, lo, 1.0, va, y, PC, p, ys, vt) * h
        if va >= lloq:  # falls below LLOQ at tr
            acc[A_PERSIST] += tr - ta
            acc[A_TLST] = tr
            acc[A_CLST] = lloq
        else:
            acc[A_PERSIST] += t_new - tr
            acc[A_TLST] = t_new
            acc[A_CLST] = vb

    # -- B cells
    if cfg[C_HAS + R_B] > 0.0:
        _track_extremum(R_B, A_B_MIN, A_B_TMIN, -1.0, t, t_new, h, lo, y, PC, p, acc, MV, ys, vt)
        _b_events_step(t, h, lo, MV[MV_A, R_B], MV[MV_B, R_B], y, PC, p, acc, cfg, ys, vt)

    # -- IL-6
    if cfg[C_HAS + R_IL6] > 0.0:
        k = R_IL6
        _track_extremum(k, A_IL6_MAX, A_IL6_TMAX, 1.0, t, t_new, h, lo, y, PC, p, acc, MV, ys, vt)
        thr = cfg[C_IL6_THR]
        va = MV[MV_A, k]
        vb = MV[MV_B, k]
        if va >= thr and vb >= thr:
            acc[A_IL6_ABOVE] += t_new - ta
        elif va >= thr or vb >= thr:
            tr = t + _root(k, thr, lo, 1.0, va, y, PC, p, ys, vt) * h
            acc[A_IL6_ABOVE] += (tr - ta) if va >= thr else (t_new - tr)

    # -- anti-dsDNA at its day
    if cfg[C_HAS + R_ADS] > 0.0:
        td = cfg[C_ADS_DAY]
        if ta < td < t_new:
            _roles_at((td - t) / h, y, PC, p, ys, vt)
            acc[A_ADS_DAY] = vt[R_ADS]
        elif td == t_new:
            acc[A_ADS_DAY] = MV[MV_B, R_ADS]

    for k in range(N_ROLES):
        acc[A_PREV + k] = MV[MV_B, k]
        acc[A_SLOPE + k] = MV[MV_DB, k] / h


@njit(cache=CACHE, error_model="numpy")
def _track_extremum(k, slot, tslot, sign, t, t_new, h, lo, y, PC, p, acc, MV, ys, vt):
    """Running maximum (sign 1) or minimum (sign -1) of role k in acc[slot], its time in
    acc[tslot] (tslot < 0: not kept).

    The step end is a candidate; an interior extremum is searched (golden section on the
    interpolant) only where the slope changes sign by more than FLAT and where it could beat
    the running value: sign*v can exceed sign*max(va, vb) by at most about the larger end slope
    (in theta units) for the low-degree interpolant.
    """
    va = MV[MV_A, k]
    vb = MV[MV_B, k]
    best = sign * acc[slot]
    if sign * vb > best:
        acc[slot] = vb
        best = sign * vb
        if tslot >= 0:
            acc[tslot] = t_new
    sa = sign * MV[MV_DA, k]
    sb = sign * MV[MV_DB, k]
    flat = FLAT * (abs(va) + abs(vb))
    if sa > flat and sb < -flat and max(sign * va, sign * vb) + max(sa, -sb) > best:
        th, vm = _extremum(k, sign, lo, 1.0, y, PC, p, ys, vt)
        if sign * vm > best:
            acc[slot] = vm
            if tslot >= 0:
                acc[tslot] = t + th * h


@njit(cache=CACHE, error_model="numpy")
def _b_events_step(t, h, lo, va, vb, y, PC, p, acc, cfg, ys, vt):
    """First fall below / return above the aplasia and recovery thresholds within one step."""
    for which in range(2):
        if which == 0:
            thr = cfg[C_APLASIA]
            s_down = A_T_APLASIA
            s_up = A_T_APLASIA_END
        else:
            thr = cfg[C_RECOVERY]
            s_down = A_T_BELOW_RECOVERY
            s_up = A_T_RECOVERY
        if acc[s_down] != acc[s_down]:
            if va >= thr and vb < thr:
                acc[s_down] = t + _root(R_B, thr, lo, 1.0, va, y, PC, p, ys, vt) * h
        elif acc[s_up] != acc[s_up]:
            if va < thr and vb >= thr:
                acc[s_up] = t + _root(R_B, thr, lo, 1.0, va, y, PC, p, ys, vt) * h
