"""Closed-form 3-compartment fludarabine PK, vectorized over patients (no BLAS/LAPACK).

The linear model ``A' = K A + R(t) e1`` (amounts in mg, ``R`` the infusion rate into the central
compartment, mg/h) is solved exactly in its eigen-coordinates. ``-K`` of a mammillary
3-compartment model has three real positive eigenvalues ``lambda_i``, the roots of

    lambda^3 - a lambda^2 + b lambda - c = 0,
    a = k10 + k12 + k13 + k21 + k31,  b = k10 k21 + k10 k31 + k12 k31 + k13 k21 + k21 k31,
    c = k10 k21 k31,

found with the trigonometric cubic formula and polished by Newton steps. With right and left
eigenvectors ``v_i = (1, k12/(k21 - l_i), k13/(k31 - l_i))`` and ``w_i = (1, k21/(k21 - l_i),
k31/(k31 - l_i))`` the modal amounts ``z_i = w_i.A / (w_i.v_i)`` obey ``z_i' = -l_i z_i + R /
(w_i.v_i)``, the central amount is ``A1 = sum_i z_i`` (``v_i[0] = 1``), and over a step ``dt``

    z_i(t + dt) = z_i e^{-l_i dt} + r_i R dt phi1(l_i dt)
    int A1 dt   = sum_i [z_i dt phi1(l_i dt) + r_i R dt^2 phi2(l_i dt)]
    phi1(x) = (1 - e^{-x}) / x,  phi2(x) = (x - 1 + e^{-x}) / x^2    (series for small x)

After the last event the remaining AUC is ``sum_i z_i / l_i / V1``. A dialysis session that
removes a fraction f of the body amount scales every ``z_i`` by (1 - f). This replaces
``scipy.linalg.expm`` of the 5x5 augmented matrix (30 ms per patient on a busy machine through
threaded BLAS); ``tests/test_kidney_batch.py`` checks it against the matrix exponential.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["eigenvalues", "eigenvalues_one", "pk_course", "pk_course_one"]

_SMALL_X = 1e-3  # below it phi1/phi2 use their Taylor series (4 terms: error < 1e-16)


def eigenvalues(k10, k12, k21, k13, k31) -> np.ndarray:
    """The three decay rates of the 3-compartment model, shape (n, 3), descending, 1/h.

    Micro-constants as arrays of shape (n,), 1/h.
    """
    k10, k12, k21, k13, k31 = (
        np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (k10, k12, k21, k13, k31)
    )
    a = k10 + k12 + k13 + k21 + k31
    b = k10 * k21 + k10 * k31 + k12 * k31 + k13 * k21 + k21 * k31
    c = k10 * k21 * k31
    # depressed cubic t^3 + p t + q = 0 with lambda = t + a/3; three real roots
    p = b - a * a / 3.0
    q = -2.0 * a**3 / 27.0 + a * b / 3.0 - c
    r = np.sqrt(np.maximum(-p / 3.0, 0.0))
    safe = np.where(r > 0, r, 1.0)
    arg = np.where(r > 0, -q / (2.0 * safe**3), 0.0)
    phi = np.arccos(np.clip(arg, -1.0, 1.0)) / 3.0
    lam = 2.0 * r[:, None] * np.cos(phi[:, None] - 2.0 * np.pi * np.arange(3) / 3.0)
    lam += a[:, None] / 3.0
    # Newton polish on the cubic (the trigonometric form loses digits on well-separated roots)
    a, b, c = a[:, None], b[:, None], c[:, None]
    for _ in range(3):
        f = ((lam - a) * lam + b) * lam - c
        df = (3.0 * lam - 2.0 * a) * lam + b
        lam = lam - np.where(df != 0, f / np.where(df != 0, df, 1.0), 0.0)
    return -np.sort(-lam, axis=1)


def _phi12(x):
    """phi1(x) = (1 - e^-x)/x and phi2(x) = (x - 1 + e^-x)/x^2, elementwise, accurate at 0."""
    small = np.abs(x) < _SMALL_X
    xs = np.where(small, 1.0, x)
    em = -np.expm1(-xs)
    phi1 = np.where(small, 1.0 - x / 2.0 + x * x / 6.0 - x**3 / 24.0, em / xs)
    phi2 = np.where(small, 0.5 - x / 6.0 + x * x / 24.0 - x**3 / 120.0, (xs - em) / (xs * xs))
    return phi1, phi2


def pk_course(
    cl_l_h, v1_l, v2_l, v3_l, q2_l_h, q3_l_h, dose_times_h, doses_mg, infusion_h,
    session_times_h, removal_fraction, t_eval_h=None,
):  # fmt: skip
    """Cumulative AUC (and concentrations) of ``n`` patients through their events, exactly.

    Parameters
    ----------
    cl_l_h, v1_l, v2_l, v3_l, q2_l_h, q3_l_h : array_like, shape (n,)
        Individual PK parameters.
    dose_times_h : array_like, shape (n, m)
        Infusion start times, h (NaN or +inf: no dose in that slot).
    doses_mg : array_like, shape (n, m)
        Amount entering the model per infusion, mg (0 in empty slots).
    infusion_h : float
        Infusion duration, h (> 0).
    session_times_h : array_like, shape (n, s)
        Dialysis session starts, h (NaN or +inf padded; s may be 0).
    removal_fraction : array_like, shape (n,)
        Fraction of the body amount removed at each session start.
    t_eval_h : array_like, shape (n_t,), optional
        Output times for concentrations (right-continuous at sessions).

    Returns
    -------
    auc : numpy.ndarray, shape (n,)
        AUC of the central concentration from the first event to infinity, mg.h/L.
    conc : numpy.ndarray, shape (n, n_t)
        Central concentration at ``t_eval_h``, mg/L (only if ``t_eval_h`` is given).

    Notes
    -----
    Events at equal times are applied in the order infusion stop, dialysis, infusion start,
    output (as in ``kidney._pk_course``).
    """
    cl, v1, v2, v3, q2, q3 = (
        np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (cl_l_h, v1_l, v2_l, v3_l, q2_l_h, q3_l_h)
    )  # fmt: skip
    n = cl.shape[0]
    k10, k12, k21, k13, k31 = cl / v1, q2 / v1, q2 / v2, q3 / v1, q3 / v3
    lam = eigenvalues(k10, k12, k21, k13, k31)  # (n, 3)
    wv = 1.0 + k12[:, None] * k21[:, None] / (k21[:, None] - lam) ** 2
    wv += k13[:, None] * k31[:, None] / (k31[:, None] - lam) ** 2
    r = 1.0 / wv  # modal share of an input into the central compartment

    dose_t = np.asarray(dose_times_h, dtype=np.float64).reshape(n, -1)
    dose = np.asarray(doses_mg, dtype=np.float64).reshape(n, -1)
    rate = np.where(np.isfinite(dose_t), dose / infusion_h, 0.0)
    sess_t = np.asarray(session_times_h, dtype=np.float64).reshape(n, -1)
    keep = np.broadcast_to(np.asarray(removal_fraction, dtype=np.float64).reshape(-1), (n,))
    keep = 1.0 - keep
    t_out = np.zeros(0) if t_eval_h is None else np.asarray(t_eval_h, dtype=np.float64).ravel()
    n_t = t_out.size

    # event table (n, E): time, kind (0 stop, 1 dialysis, 2 start, 3 output), value
    times = np.concatenate(
        [dose_t + infusion_h, sess_t, dose_t, np.broadcast_to(t_out, (n, n_t))], axis=1
    )
    kinds = np.concatenate(
        [np.zeros_like(dose_t), np.ones_like(sess_t), np.full_like(dose_t, 2.0), np.full((n, n_t), 3.0)],
        axis=1,
    )  # fmt: skip
    values = np.concatenate(
        [-rate, np.zeros_like(sess_t), rate, np.broadcast_to(np.arange(n_t, dtype=np.float64), (n, n_t))],
        axis=1,
    )  # fmt: skip
    times = np.where(np.isnan(times), np.inf, times)
    order = np.lexsort((kinds, times), axis=-1)
    times = np.take_along_axis(times, order, axis=1)
    kinds = np.take_along_axis(kinds, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)

    z = np.zeros((n, 3))
    infusing = np.zeros(n)
    auc = np.zeros(n)
    conc = np.zeros((n, n_t))
    rows = np.arange(n)
    t_now = times[:, 0].copy()
    for e in range(times.shape[1]):
        t_e = times[:, e]
        live = np.isfinite(t_e)
        if not live.any():
            break
        dt = np.where(live, t_e - np.where(np.isfinite(t_now), t_now, t_e), 0.0)
        x = lam * dt[:, None]
        phi1, phi2 = _phi12(x)
        ri = r * infusing[:, None]
        auc += np.sum(z * phi1 * dt[:, None] + ri * phi2 * (dt * dt)[:, None], axis=1) / v1
        z = z * np.exp(-x) + ri * phi1 * dt[:, None]
        t_now = np.where(live, t_e, t_now)
        kind = kinds[:, e]
        infusing = np.where(live & ((kind == 0) | (kind == 2)), infusing + values[:, e], infusing)
        z = np.where((live & (kind == 1))[:, None], z * keep[:, None], z)
        out = live & (kind == 3)
        if out.any():
            conc[rows[out], values[out, e].astype(np.int64)] = z[out].sum(axis=1) / v1[out]
    auc += np.sum(z / lam, axis=1) / v1
    if t_eval_h is None:
        return auc
    return auc, conc


_SHIFTS = 2.0 * np.pi * np.arange(3) / 3.0  # the three branches of the trigonometric formula


def eigenvalues_one(k10, k12, k21, k13, k31) -> list[float]:
    """:func:`eigenvalues` of one patient as Python floats, descending, 1/h (bit for bit equal).

    The same operations in the same order; the cube, arccos and cos go through numpy's ufuncs
    because their SIMD loops can round differently from ``math`` in the last bit (measured on
    an AVX-512 machine for ``x ** 3`` and ``math.acos``). About 4 us instead of 50 us for
    :func:`eigenvalues` on one-element arrays.
    """
    a = k10 + k12 + k13 + k21 + k31
    b = k10 * k21 + k10 * k31 + k12 * k31 + k13 * k21 + k21 * k31
    c = k10 * k21 * k31
    p = b - a * a / 3.0
    q = -2.0 * float(np.power(a, 3.0)) / 27.0 + a * b / 3.0 - c
    r = math.sqrt(max(-p / 3.0, 0.0))
    arg = -q / (2.0 * float(np.power(r, 3.0))) if r > 0 else 0.0
    phi = float(np.arccos(min(max(arg, -1.0), 1.0))) / 3.0
    lam = [2.0 * r * cos + a / 3.0 for cos in np.cos(phi - _SHIFTS).tolist()]
    for _ in range(3):
        for m, x in enumerate(lam):
            f = ((x - a) * x + b) * x - c
            df = (3.0 * x - 2.0 * a) * x + b
            lam[m] = x - (f / df if df != 0 else 0.0)
    return sorted(lam, reverse=True)


def _phi12_scalar(x):
    if abs(x) < _SMALL_X:
        return (
            1.0 - x / 2.0 + x * x / 6.0 - x**3 / 24.0,
            0.5 - x / 6.0 + x * x / 24.0 - x**3 / 120.0,
        )
    em = -math.expm1(-x)
    return em / x, (x - em) / (x * x)


def pk_course_one(cl_l_h, v1_l, v2_l, v3_l, q2_l_h, q3_l_h, dose_times_h, doses_mg, infusion_h,
                  session_times_h, removal_fraction, t_eval_h=()):  # fmt: skip
    """:func:`pk_course` for one patient in plain Python floats (no numpy call overhead: about
    10x faster for a single patient). Same formulas; sequences instead of arrays.

    Returns
    -------
    (auc, conc)
        AUC to infinity (mg.h/L) and a list of concentrations at ``t_eval_h`` (mg/L).
    """
    k10, k12, k21 = cl_l_h / v1_l, q2_l_h / v1_l, q2_l_h / v2_l
    k13, k31 = q3_l_h / v1_l, q3_l_h / v3_l
    lam = eigenvalues_one(k10, k12, k21, k13, k31)
    r = [1.0 / (1.0 + k12 * k21 / (k21 - lk) ** 2 + k13 * k31 / (k31 - lk) ** 2) for lk in lam]
    events = []
    for t, d in zip(dose_times_h, doses_mg, strict=True):
        if math.isfinite(t):
            events.append((t + infusion_h, 0, -d / infusion_h))
            events.append((t, 2, d / infusion_h))
    for t in session_times_h:
        if math.isfinite(t):
            events.append((t, 1, 0.0))
    for i, t in enumerate(t_eval_h):
        events.append((float(t), 3, float(i)))
    events.sort(key=lambda e: (e[0], e[1]))
    z = [0.0, 0.0, 0.0]
    conc = [0.0] * len(t_eval_h)
    infusing = 0.0
    auc = 0.0
    t_now = events[0][0] if events else 0.0
    keep = 1.0 - removal_fraction
    for t, kind, value in events:
        dt = t - t_now
        if dt != 0.0:
            for m in range(3):
                x = lam[m] * dt
                phi1, phi2 = _phi12_scalar(x)
                ri = r[m] * infusing
                auc += (z[m] * phi1 * dt + ri * phi2 * dt * dt) / v1_l
                z[m] = z[m] * math.exp(-x) + ri * phi1 * dt
            t_now = t
        if kind == 0 or kind == 2:
            infusing += value
        elif kind == 1:
            z = [zm * keep for zm in z]
        else:
            conc[int(value)] = (z[0] + z[1] + z[2]) / v1_l
    auc += (z[0] / lam[0] + z[1] / lam[1] + z[2] / lam[2]) / v1_l
    return auc, conc
