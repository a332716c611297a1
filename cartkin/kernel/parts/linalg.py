"""Kernel part: dense LU with partial pivoting and the sparse LU of a model's ``JAC_PATTERN``.

The sparse factorization loops over the static plan ``SP_*`` of
:func:`cartkin.kernel.build.lu_plan` (defined by the generated header); a step whose Jacobian
leaves the pattern or whose diagonal pivot is too small falls back to the dense LU. Also the
Rosenbrock matrix ``I/(h gamma) - J`` and its solve, which pick one of the two.
"""

import math

from numba import njit


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
    The header's straight-line ``_sp_lu_factor_gen`` of the same plan does it where it has one
    (``SP_UNROLLED``).
    """
    if SP_UNROLLED:
        return _sp_lu_factor_gen(M)
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
            if not (abs(f) <= SP_MAX_MULTIPLIER):  # too large or NaN: the dense LU decides
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
    """Solve M x = b in place with the factors from _sp_lu_factor (the header's straight-line
    ``_sp_lu_solve_gen`` of the same plan where it has one, ``SP_UNROLLED``)."""
    if SP_UNROLLED:
        _sp_lu_solve_gen(M, x)
        return
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
    the diagonal pivots are safe, else dense with partial pivoting. Whether J obeys the pattern
    is checked unless the header's ``SP_CHECK`` is False (a generated Jacobian).

    Returns (code, sparse): code 0 ok, 1 singular, 2 non-finite (of the dense LU).
    """
    inv_hg = 1.0 / (h * ROS_GAMMA)
    # SP_CHECK False: the generated jac is zero outside the pattern by construction (header)
    if SPARSE_LU and J.shape[0] == SP_ORDER.size and (not SP_CHECK or _sp_fits(J)):
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
