"""Template of cartkin's compiled integrators (not imported as a module).

`cartkin.kernel.build` reads this file as text and instantiates it once per right-hand side:

- for a built-in model (``rhs`` defined in a module under ``cartkin.models``) it writes a
  generated file = a header that imports that ``rhs`` + this text, and imports it with
  ``CACHE = True``: numba caches the compiled kernel on disk, keyed by that file;
- for any other ``rhs`` it executes this text in a fresh namespace with ``CACHE = False``.

The header defines the free names used below: ``rhs(t, y, p, dydt)``, ``jac(t, y, p, J)``,
``HAS_JAC`` (bool: call ``jac`` instead of finite differences), ``observe_roles(y, p, out)``
(the model's role values for in-kernel metrics, or a placeholder writing NaN), ``HAS_ROLES``
(bool), ``CACHE`` (bool), ``WITH_ERK`` / ``WITH_ROS`` (bool: compile the explicit /
Rosenbrock methods), ``WITH_METRICS`` (bool: compile the in-kernel metrics) and the sparse LU
plan of the model's ``JAC_PATTERN`` (``SPARSE_LU`` and the ``SP_*`` index arrays of
``cartkin.kernel.build.lu_plan``; ``SPARSE_LU = False`` without a pattern). Because the
right-hand side is a module global (never a function argument) the kernel can be cached.

Everything here returns integer status codes; nothing raises. The same text runs as plain
Python under ``NUMBA_DISABLE_JIT=1``.

Methods
-------
- ``TSIT5``: Tsitouras 5(4), 7 stages, FSAL, 4th-order continuous extension.
  Ch. Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying
  assumption", Comput. Math. Appl. 62 (2011) 770-775 (coefficients as tabulated in
  OrdinaryDiffEq.jl ``tsit_tableaus.jl``).
- ``DOPRI5``: Dormand-Prince 5(4), J. Comput. Appl. Math. 6 (1980) 19-26, with Shampine's
  (1986) 4th-order dense output as in Hairer, Norsett, Wanner, "Solving ODEs I", II.6.
- ``RODAS5``: L-stable Rosenbrock 5(4) of G. Di Marzo (1993), 8 stages, stiffly accurate, in the
  transformed ("u") form of Hairer & Wanner "Solving ODEs II", IV.7, with the 4th-order dense
  output tabulated in OrdinaryDiffEq.jl ``rosenbrock_tableaus.jl`` (Steinebach).
- ``AUTO``: TSIT5 that switches to RODAS5 for the rest of the current segment (until the next
  stop time) once Hairer's stiffness test fires ``STIFF_SWITCH_COUNT`` times.

Stiffness test (Hairer & Wanner, "Solving ODEs I", IV.2 / ``dopri5.f``): after each accepted
step, ``h*|lambda| ~ h*||k7 - k6|| / ||y1 - y6||`` (both stages are evaluated at ``t + h``). It
counts as stiff when above ``0.98 x`` the method's stability boundary on the negative real axis;
6 non-stiff steps in a row reset the count.

Step size: explicit methods use the PI controller of Hairer's ``dopri5`` (beta = 0.04, factors in
[0.2, 10]); RODAS5 uses Gustafsson's predictive controller as in Hairer's ``rodas`` (factors in
[0.2, 6]). Safety factor 0.9; no increase right after a rejection. Error norm: root mean
square of ``err_i / (atol_i + rtol * max(|y_i|, |y1_i|))``. The first step of every segment is
Hairer's starting-step algorithm unless ``first_step`` is given.
"""

import math

import numpy as np
from numba import njit, prange

# ---- status codes: keep equal to cartkin.ode.Status -------------------------------------------
SUCCESS = 0
MAX_STEPS = -1
STEP_UNDERFLOW = -2
NON_FINITE = -3
STIFF = -4
SINGULAR = -5
NOT_BUILT = -6  # the kernel was built without this method family (cartkin.kernel.build picks it)

# ---- method codes: keep equal to cartkin.ode._METHOD_CODES ------------------------------------
TSIT5 = 0
DOPRI5 = 1
RODAS5 = 2
AUTO = 3

# ---- counters (int64 array returned by _solve) -----------------------------------------------
I_STEPS = 0  # accepted steps
I_REJECTED = 1  # rejected steps (error too large, non-finite values, singular matrix)
I_RHS = 2  # right-hand side evaluations
I_JAC = 3  # Jacobian evaluations (user jac or finite differences)
I_LU = 4  # LU factorizations
I_SWITCHES = 5  # segments where AUTO switched to RODAS5
N_COUNTERS = 6

EPS = 2.220446049250313e-16
SQRT_EPS = 1.4901161193847656e-08
SAFETY = 0.9
FAC_MIN = 0.2  # smallest step-size factor
FAC_MAX = 10.0  # largest step-size factor, explicit methods (Hairer's dopri5)
FAC_MAX_ROS = 6.0  # largest step-size factor, Rosenbrock (Hairer's rodas)
PI_BETA_RK = 0.04  # Hairer's dopri5 default
NONFINITE_SHRINK = 0.25  # step factor after a step that produced NaN/inf
STIFF_SWITCH_COUNT = 15  # AUTO: stiff steps before switching (Hairer's dopri5 uses 15)
STIFF_FAIL_COUNT = 500  # TSIT5/DOPRI5 alone: stiff steps before giving up with STIFF
NONSTIFF_RESET = 6  # non-stiff steps in a row that reset the stiffness count (Hairer)
MAX_SINGULAR = 5  # consecutive singular Rosenbrock matrices before SINGULAR

# ---- explicit tableaus, index 0 = TSIT5, 1 = DOPRI5 -------------------------------------------
# A[m, i, j], C[m, i], B[m, j] (= A[m, 6, j], FSAL), E[m, j] = b - bhat (error weights),
# R[m, i, k]: dense output weight of stage i is theta*(R0 + theta*(R1 + theta*(R2 + theta*R3))).
ERK_A = np.zeros((2, 7, 7))
ERK_C = np.zeros((2, 7))
ERK_E = np.zeros((2, 7))
ERK_R = np.zeros((2, 7, 4))
ERK_STIFF_BOUND = np.array([3.45, 3.25])  # 0.98 x real stability boundary (3.507, 3.307)

ERK_C[0] = [0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0]
ERK_A[0, 1, :1] = [0.161]
ERK_A[0, 2, :2] = [-0.008480655492356989, 0.335480655492357]
ERK_A[0, 3, :3] = [2.8971530571054935, -6.359448489975075, 4.3622954328695815]
ERK_A[0, 4, :4] = [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525]
ERK_A[0, 5, :5] = [
    5.86145544294642,
    -12.92096931784711,
    8.159367898576159,
    -0.071584973281401,
    -0.028269050394068383,
]
ERK_A[0, 6, :6] = [
    0.09646076681806523,
    0.01,
    0.4798896504144996,
    1.379008574103742,
    -3.290069515436081,
    2.324710524099774,
]
ERK_E[0] = [
    -0.00178001105222577714,
    -0.0008164344596567469,
    0.007880878010261995,
    -0.1447110071732629,
    0.5823571654525552,
    -0.45808210592918697,
    1.0 / 66.0,
]
ERK_R[0] = [
    [1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216],
    [0.0, 0.13169999999999998, -0.2234, 0.1017],
    [0.0, 3.9302962368947516, -5.941033872131505, 2.490627285651253],
    [0.0, -12.411077166933676, 30.33818863028232, -16.548102889244902],
    [0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928],
    [0.0, -27.896526289197286, 65.09189467479366, -34.87065786149661],
    [0.0, 1.5, -4.0, 2.5],
]

ERK_C[1] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0]
ERK_A[1, 1, :1] = [1.0 / 5.0]
ERK_A[1, 2, :2] = [3.0 / 40.0, 9.0 / 40.0]
ERK_A[1, 3, :3] = [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0]
ERK_A[1, 4, :4] = [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0]
ERK_A[1, 5, :5] = [
    9017.0 / 3168.0,
    -355.0 / 33.0,
    46732.0 / 5247.0,
    49.0 / 176.0,
    -5103.0 / 18656.0,
]
ERK_A[1, 6, :6] = [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0]
ERK_E[1] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
]


def _dopri5_dense_weights():
    # Shampine's dense output y(th) = y0 + th*(r2 + (1-th)*(r3 + th*(r4 + (1-th)*r5))) with
    # r2 = y1 - y0, r3 = h*k1 - r2, r4 = r2 - h*k7 - r3, r5 = h*sum(d_i k_i), rewritten as
    # per-stage polynomials in theta (same form as Tsitouras's b_i(theta)).
    b = ERK_A[1, 6].copy()
    d = np.array(
        [
            -12715105075.0 / 11282082432.0,
            0.0,
            87487479700.0 / 32700410799.0,
            -10690763975.0 / 1880347072.0,
            701980252875.0 / 199316789632.0,
            -1453857185.0 / 822651844.0,
            69997945.0 / 29380423.0,
        ]
    )
    e1 = np.zeros(7)
    e1[0] = 1.0
    e7 = np.zeros(7)
    e7[6] = 1.0
    r = np.zeros((7, 4))
    r[:, 0] = e1
    r[:, 1] = 3.0 * b - 2.0 * e1 - e7 + d
    r[:, 2] = -(2.0 * b - e1 - e7) - 2.0 * d
    r[:, 3] = d
    return r


ERK_R[1] = _dopri5_dense_weights()

# ---- Rodas5 (Di Marzo 1993), transformed form ---------------------------------------------------
# Stage i solves (I/(h*gamma) - J) u_i = f(t + c_i h, y + sum_j A_ij u_j) + sum_j (C_ij/h) u_j
#                                         + h d_i f_t,
# the solution is y1 = y + sum_j A_8j u_j + u_8 and the error estimate is u_8.
# Dense output: y(th) = (1-th) y0 + th (y1 + (1-th) (D0 + th (D1 + th D2))), D_r = sum_j H_rj u_j.
ROS_GAMMA = 0.19
ROS_A = np.zeros((8, 8))
ROS_C = np.zeros((8, 8))
ROS_A[1, :1] = [2.0]
ROS_A[2, :2] = [3.040894194418781, 1.041747909077569]
ROS_A[3, :3] = [2.576417536461461, 1.622083060776640, -0.9089668560264532]
ROS_A[4, :4] = [2.760842080225597, 1.446624659844071, -0.3036980084553738, 0.2877498600325443]
ROS_A[5, :5] = [
    -14.09640773051259,
    6.925207756232704,
    -41.47510893210728,
    2.343771018586405,
    24.13215229196062,
]
ROS_A[6, :6] = [*ROS_A[5, :5], 1.0]
ROS_A[7, :7] = [*ROS_A[5, :5], 1.0, 1.0]
ROS_C[1, :1] = [-10.31323885133993]
ROS_C[2, :2] = [-21.04823117650003, -7.234992135176716]
ROS_C[3, :3] = [32.22751541853323, -4.943732386540191, 19.44922031041879]
ROS_C[4, :4] = [-20.69865579590063, -8.816374604402768, 1.260436877740897, -0.7495647613787146]
ROS_C[5, :5] = [
    -46.22004352711257,
    -17.49534862857472,
    -289.6389582892057,
    93.60855400400906,
    318.3822534212147,
]
ROS_C[6, :6] = [
    34.20013733472935,
    -14.15535402717690,
    57.82335640988400,
    25.83362985412365,
    1.408950972071624,
    -6.551835421242162,
]
ROS_C[7, :7] = [
    42.57076742291101,
    -13.80770672017997,
    93.98938432427124,
    18.77919633714503,
    -31.58359187223370,
    -6.685968952921985,
    -5.810979938412932,
]
ROS_CT = np.array(
    [0.0, 0.38, 0.3878509998321533, 0.4839718937873840, 0.4570477008819580, 1.0, 1.0, 1.0]
)
ROS_D = np.array(
    [
        ROS_GAMMA,
        -0.1823079225333714636,
        -0.319231832186874912,
        0.3449828624725343,
        -0.377417564392089818,
        0.0,
        0.0,
        0.0,
    ]
)
ROS_H = np.array(
    [
        [
            27.354592673333357,
            -6.925207756232857,
            26.40037733258859,
            0.5635230501052979,
            -4.699151156849391,
            -1.6008677469422725,
            -1.5306074446748028,
            -1.3929872940716344,
        ],
        [
            44.19024239501722,
            1.3677947663381929e-13,
            202.93261852171622,
            -35.5669339789154,
            -181.91095152160645,
            3.4116351403665033,
            2.5793540257308067,
            2.2435122582734066,
        ],
        [
            -44.0988150021747,
            -5.755396159656812e-13,
            -181.26175034586677,
            56.99302194811676,
            183.21182741427398,
            -7.480257918273637,
            -5.792426076169686,
            -5.32503859794143,
        ],
    ]
)


# ================================================================================================
# small helpers
# ================================================================================================
@njit(cache=CACHE, error_model="numpy")
def _error_norm(err, y, ynew, rtol, atol):
    """RMS of err_i / (atol_i + rtol*max(|y_i|, |ynew_i|)); NaN/inf propagate."""
    n = err.size
    acc = 0.0
    for j in range(n):
        sc = atol[j] + rtol * max(abs(y[j]), abs(ynew[j]))
        r = err[j] / sc
        acc += r * r
    return math.sqrt(acc / n)


@njit(cache=CACHE, error_model="numpy")
def _initial_step(t, t_end, y, f0, p, rtol, atol, order, max_step, y1, f1):
    """Hairer's starting step size (Solving ODEs I, II.4). Uses one rhs evaluation."""
    n = y.size
    d0 = 0.0
    d1 = 0.0
    for j in range(n):
        sc = atol[j] + rtol * abs(y[j])
        d0 += (y[j] / sc) ** 2
        d1 += (f0[j] / sc) ** 2
    d0 = math.sqrt(d0 / n)
    d1 = math.sqrt(d1 / n)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    span = t_end - t
    h0 = min(h0, span, max_step)
    for j in range(n):
        y1[j] = y[j] + h0 * f0[j]
    rhs(t + h0, y1, p, f1)
    d2 = 0.0
    for j in range(n):
        sc = atol[j] + rtol * abs(y[j])
        d2 += ((f1[j] - f0[j]) / sc) ** 2
    d2 = math.sqrt(d2 / n) / h0
    dmax = max(d1, d2)
    if dmax <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / dmax) ** (1.0 / (order + 1))
    h = min(100.0 * h0, h1, span, max_step)
    if not (h > 0.0):  # NaN from a non-finite rhs: let the step loop report it
        h = h0
    return h


@njit(cache=CACHE, error_model="numpy")
def _step_factor(log_err, log_err_old, beta, rejected):
    """PI step-size factor, Hairer's dopri5 form: err^-(1/5 - 0.75 beta) * err_old^beta / 0.9.

    Takes logarithms (one log + one exp per step instead of two powers). The error
    estimators of TSIT5, DOPRI5 and RODAS5 are all O(h^5).
    """
    fac = SAFETY * math.exp(-(0.2 - 0.75 * beta) * log_err + beta * log_err_old)
    fac = max(FAC_MIN, min(FAC_MAX, fac))
    if rejected:
        fac = min(fac, 1.0)
    return fac


@njit(cache=CACHE, error_model="numpy")
def _too_small(h, t):
    """Step too small to advance t in floating point (or below 1e-280 near t = 0)."""
    return h <= 16.0 * EPS * abs(t) or h < 1e-280


@njit(cache=CACHE, error_model="numpy")
def _all_finite(x):
    for j in range(x.size):
        if not math.isfinite(x[j]):
            return False
    return True


@njit(cache=CACHE, error_model="numpy")
def _lu_factor(M, piv):
    """In-place LU with partial pivoting (rows swapped whole). 0 ok, 1 singular, 2 non-finite.

    The diagonal of U is stored as its reciprocal, so solves multiply instead of divide.
    """
    n = M.shape[0]
    for k in range(n):
        ip = k
        amax = abs(M[k, k])
        for i in range(k + 1, n):
            v = abs(M[i, k])
            if v > amax:
                amax = v
                ip = i
        piv[k] = ip
        if amax != amax or amax == math.inf:
            return 2
        if amax == 0.0:
            return 1
        if ip != k:
            for j in range(n):
                tmp = M[k, j]
                M[k, j] = M[ip, j]
                M[ip, j] = tmp
        inv = 1.0 / M[k, k]
        for i in range(k + 1, n):
            f = M[i, k] * inv
            M[i, k] = f
            if f != 0.0:
                for j in range(k + 1, n):
                    M[i, j] -= f * M[k, j]
        M[k, k] = inv
    return 0


@njit(cache=CACHE, error_model="numpy")
def _lu_solve(M, piv, x):
    """Solve M x = b in place (x holds b on entry) with the factors from _lu_factor."""
    n = M.shape[0]
    for k in range(n):
        ip = piv[k]
        if ip != k:
            tmp = x[k]
            x[k] = x[ip]
            x[ip] = tmp
    for i in range(n):
        s = x[i]
        for j in range(i):
            s -= M[i, j] * x[j]
        x[i] = s
    for i in range(n - 1, -1, -1):
        s = x[i]
        for j in range(i + 1, n):
            s -= M[i, j] * x[j]
        x[i] = s * M[i, i]


SP_MAX_MULTIPLIER = 1e3  # sparse LU: a larger multiplier (small diagonal pivot) -> dense LU


@njit(cache=CACHE, error_model="numpy")
def _sp_fits(J):
    """True when J is zero (and finite) outside the model's declared pattern."""
    flat = J.reshape(J.size)
    mask = SP_OUTMASK.reshape(SP_OUTMASK.size)
    bad = 0
    for e in range(flat.size):
        bad += flat[e] * mask[e] != 0.0
    return bad == 0


@njit(cache=CACHE, error_model="numpy")
def _sp_lu_factor(M):
    """In-place LU of M on the planned pattern (diagonal pivots in ``SP_ORDER``).

    Reads and writes only the entries of the filled pattern (``SP_MI``/``SP_MJ``). Returns 0 ok,
    1 when a pivot is zero or a multiplier exceeds ``SP_MAX_MULTIPLIER`` (the caller then uses
    the dense partially pivoted LU), 2 non-finite. The diagonal of U is stored as its reciprocal.
    """
    for s in range(SP_ORDER.size):
        k = SP_ORDER[s]
        d = M[k, k]
        if d != d or abs(d) == math.inf:
            return 2
        if d == 0.0:
            return 1
        inv = 1.0 / d
        for e in range(SP_LPTR[s], SP_LPTR[s + 1]):
            i = SP_LROW[e]
            f = M[i, k] * inv
            if abs(f) > SP_MAX_MULTIPLIER:
                return 1
            M[i, k] = f
            if f != 0.0:
                for u in range(SP_UPTR[s], SP_UPTR[s + 1]):
                    j = SP_UCOL[u]
                    M[i, j] -= f * M[k, j]
        M[k, k] = inv
    return 0


@njit(cache=CACHE, error_model="numpy")
def _sp_lu_solve(M, x):
    """Solve M x = b in place with the factors from _sp_lu_factor."""
    n = SP_ORDER.size
    for s in range(n):
        k = SP_ORDER[s]
        xk = x[k]
        if xk != 0.0:
            for e in range(SP_LPTR[s], SP_LPTR[s + 1]):
                i = SP_LROW[e]
                x[i] -= M[i, k] * xk
    for s in range(n - 1, -1, -1):
        k = SP_ORDER[s]
        v = x[k]
        for u in range(SP_UPTR[s], SP_UPTR[s + 1]):
            j = SP_UCOL[u]
            v -= M[k, j] * x[j]
        x[k] = v * M[k, k]


@njit(cache=CACHE, error_model="numpy")
def _ros_matrix(h, J, M, piv):
    """Factor M = I/(h gamma) - J: sparse when the model declares a pattern that J obeys and
    the diagonal pivots are safe, else dense with partial pivoting.

    Returns (code, sparse): code 0 ok, 1 singular, 2 non-finite (of the dense LU).
    """
    inv_hg = 1.0 / (h * ROS_GAMMA)
    if SPARSE_LU and J.shape[0] == SP_ORDER.size and _sp_fits(J):
        for e in range(SP_MI.size):
            i = SP_MI[e]
            j = SP_MJ[e]
            M[i, j] = -J[i, j]
        for i in range(M.shape[0]):
            M[i, i] += inv_hg
        if _sp_lu_factor(M) == 0:
            return 0, True
    n = M.shape[0]
    for i in range(n):
        for j in range(n):
            M[i, j] = -J[i, j]
        M[i, i] += inv_hg
    return _lu_factor(M, piv), False


@njit(cache=CACHE, error_model="numpy", inline="always")
def _ros_solve(M, piv, x, sparse):
    if SPARSE_LU and sparse:
        _sp_lu_solve(M, x)
    else:
        _lu_solve(M, piv, x)


# ================================================================================================
# explicit Runge-Kutta (TSIT5, DOPRI5)
# ================================================================================================
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
                if err != err or err == math.inf:  # NaN/inf in the stages
                    h *= NONFINITE_SHRINK
                    if _too_small(h, t):
                        return NON_FINITE, io, t, h
                else:
                    h *= max(FAC_MIN, SAFETY * math.exp(-0.2 * math.log(err)))
                    if _too_small(h, t):
                        return STEP_UNDERFLOW, io, t, h
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


# ================================================================================================
# Rosenbrock (RODAS5)
# ================================================================================================
@njit(cache=CACHE, error_model="numpy")
def _jacobian(t, y, p, f0, J, ft, ytmp, ftmp, rtol, atol, counters):
    """J = df/dy at (t, y) (user jac or forward differences) and ft = df/dt (differences).

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
    """Integrate y in place from t to t_end (no stop inside) with Rodas5; see _segment_erk."""
    n = y.size
    m_out = t_eval.size
    rhs(t, y, p, f0)
    counters[I_RHS] += 1
    fixed = fixed_step > 0.0
    if fixed:
        h = fixed_step
    elif h <= 0.0:
        h = _initial_step(t, t_end, y, f0, p, rtol, atol, 5, max_step, u, fu)
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
                if err != err or err == math.inf:
                    h *= NONFINITE_SHRINK
                    if _too_small(h, t):
                        return NON_FINITE, io, t, h
                else:
                    h *= max(FAC_MIN, SAFETY * math.exp(-0.2 * math.log(err)))
                    if _too_small(h, t):
                        return STEP_UNDERFLOW, io, t, h
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
            if not have_dense:
                _ros_dense_coefficients(K, D)
            # (1-th) y + th (y1 + (1-th)(D0 + th (D1 + th D2))) as y + th (c0 + th (c1 + ...))
            for j in range(n):
                PC[0, j] = (ynew[j] - y[j]) + D[0, j]
                PC[1, j] = D[1, j] - D[0, j]
                PC[2, j] = D[2, j] - D[1, j]
                PC[3, j] = -D[2, j]
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
                t, seg_end, y, p, rtol, atol, h, max_step, max_steps, fixed_step,
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
                    t, seg_end, y, p, rtol, atol, h, max_step, max_steps, fixed_step,
                    t_eval, io, y_out, counters,
                    W[0:8], ytmp, yerr, ynew, f0, ft, J, M, piv, D,
                    macc, mcfg, PC, MV, ys, yp, vt, vt2,
                )  # fmt: skip
        if status != SUCCESS:
            break
        t = seg_end
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
    JM = np.empty((2, n, n))
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
    for j in range(y.size):
        out[j] = y[j] + theta * (
            PC[0, j] + theta * (PC[1, j] + theta * (PC[2, j] + theta * PC[3, j]))
        )


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
    n = y.size
    _poly_state(theta, y, PC, ys)
    for j in range(n):
        yd = PC[0, j] + theta * (2.0 * PC[1, j] + theta * (3.0 * PC[2, j] + theta * 4.0 * PC[3, j]))
        yp[j] = ys[j] + SLOPE_EPS * yd
        ys[j] = ys[j] - SLOPE_EPS * yd
    observe_roles(yp, p, vt)
    observe_roles(ys, p, vt2)
    for k in range(N_ROLES):
        MV[row, k] = (vt[k] - vt2[k]) / (2.0 * SLOPE_EPS)


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
        JM = np.empty((2, n, n))
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
        JM = np.empty((2, n, n))
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
