"""Lupus nephritis response times on plain arrays (usable on observed data too).

KDIGO 2024 lupus nephritis guideline (Kidney Int 2024;105(1S):S1) [P]:

- complete response: proteinuria < 0.5 g/g (uPCR) with stable kidney function (within
  10-15% of baseline, or better);
- partial response: proteinuria reduced by >= 50% *and* to < 3 g/g, with stable kidney function.

Proteinuria here is in g/24h, which equals uPCR in g/g for a daily creatinine excretion of about
1 g [A: the usual approximation; KDIGO accepts either measure]. "Stable kidney function" is
taken as kidney function >= ``stable_fraction`` x baseline with ``stable_fraction = 0.85``
(the wider end of KDIGO's 10-15%; improvement counts as stable) [A].

Times are first times after the baseline day at which every condition holds, with each
curve linear between output times (exact for piecewise-linear curves; use a fine grid for
smooth ones, as :func:`cartkin.metrics.compute` does). Ties at a threshold count as met.
"""

from __future__ import annotations

import math

import numpy as np

from cartkin.measures import crossing_time

__all__ = [
    "COMPLETE_PROTEINURIA_G_PER_24H",
    "PARTIAL_CEILING_G_PER_24H",
    "PARTIAL_FALL_FRACTION",
    "STABLE_FRACTION",
    "complete_response_time",
    "first_sessions_drop_time",
    "partial_response_time",
]

#: KDIGO 2024: complete response below 0.5 g/g.
COMPLETE_PROTEINURIA_G_PER_24H = 0.5
#: KDIGO 2024: partial response needs proteinuria below 3 g/g ...
PARTIAL_CEILING_G_PER_24H = 3.0
#: ... and a fall of at least 50% from baseline.
PARTIAL_FALL_FRACTION = 0.5
#: Assumption: "stable" kidney function = at least 85% of baseline (KDIGO: within 10-15%).
STABLE_FRACTION = 0.85


def _first_all(t, margins, after):
    """First time after ``after`` at which every margin is >= 0 (NaN if never).

    Each margin is taken as linear between output times (exact for piecewise-linear inputs),
    so within each interval the set where all hold is an interval found in closed form.
    Margins have shape (..., n_t); the result has shape (...) (a float for one curve).
    """
    t = np.asarray(t, dtype=float)
    m = np.stack(np.broadcast_arrays(*margins))  # (n_margins, ..., n_t)
    ok = np.all(m >= 0.0, axis=0)
    first_sample = np.where(ok & (t > after), t, np.inf).min(axis=-1)
    a, b = m[..., :-1], m[..., 1:]
    t0, t1 = t[:-1], t[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        root = t0 + (t1 - t0) * (-a) / (b - a)  # where each margin crosses 0
    rising, falling = b > a, b < a
    lo = np.where(rising, np.maximum(root, t0), np.where(a >= 0, t0, np.inf))
    hi = np.where(falling, np.minimum(root, t1), np.where(rising | (a >= 0), t1, -np.inf))
    start, end = lo.max(axis=0), hi.min(axis=0)
    start = np.maximum(start, np.nextafter(after, np.inf))
    valid = (start <= end) & (t1 > after)
    first_inside = np.where(valid, start, np.inf).min(axis=-1)
    first = np.minimum(first_sample, first_inside)
    first = np.where(np.isfinite(first), first, np.nan)
    return float(first) if first.ndim == 0 else first


def _at_day(t, y, day):
    """``y`` (..., n_t) linearly interpolated at ``day`` along the last axis, shape (...)."""
    k = int(np.clip(np.searchsorted(t, day, side="right") - 1, 0, max(t.size - 2, 0)))
    if t.size == 1:
        return y[..., 0]
    w = min(max((day - t[k]) / (t[k + 1] - t[k]), 0.0), 1.0)
    return y[..., k] + w * (y[..., k + 1] - y[..., k])


def _margins_stable(t, kidney_function, baseline_day, stable_fraction):
    """Kidney-function margin (kf - f x kf0) / kf0; none where kf0 <= 0 (nothing can fall)."""
    if kidney_function is None:
        return []
    kf = np.asarray(kidney_function, dtype=float)
    kf0 = _at_day(t, kf, baseline_day)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.where(kf0 > 0, (kf - stable_fraction * kf0) / kf0, np.inf)
    return [margin]


def partial_response_time(
    t_days,
    proteinuria_g_per_24h,
    kidney_function_ml_min_173m2=None,
    *,
    baseline_day: float = 0.0,
    stable_fraction: float = STABLE_FRACTION,
):
    """First day of a KDIGO partial response (>= 50% fall to < 3 g/24h, stable function).

    Parameters
    ----------
    t_days : array, shape (n_t,)
        Increasing days after CAR-T infusion.
    proteinuria_g_per_24h : array, shape (..., n_t)
        A leading patient axis is allowed (all patients in one call).
    kidney_function_ml_min_173m2 : array, shape (..., n_t), optional
        Without it the kidney-function condition is not checked.
    baseline_day : float
        Day of the baseline values (interpolated), default the infusion day.
    stable_fraction : float
        Kidney function must stay >= this x baseline.

    Returns
    -------
    float or numpy.ndarray, shape (...)
        Days; NaN if not reached (or no proteinuria at baseline). Only times after
        ``baseline_day`` count.
    """
    t = np.asarray(t_days, dtype=float)
    p = np.asarray(proteinuria_g_per_24h, dtype=float)
    p0 = _at_day(t, p, baseline_day)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        fall = np.where(p0 > 0, (PARTIAL_FALL_FRACTION * p0 - p) / p0, -np.inf)
    margins = [
        fall,
        (PARTIAL_CEILING_G_PER_24H - p) / PARTIAL_CEILING_G_PER_24H,
        *_margins_stable(t, kidney_function_ml_min_173m2, baseline_day, stable_fraction),
    ]
    return _first_all(t, margins, baseline_day)


def complete_response_time(
    t_days,
    proteinuria_g_per_24h,
    kidney_function_ml_min_173m2=None,
    *,
    baseline_day: float = 0.0,
    stable_fraction: float = STABLE_FRACTION,
):
    """First day of a KDIGO complete response (< 0.5 g/24h with stable kidney function).

    Parameters and returns as :func:`partial_response_time`.
    """
    t = np.asarray(t_days, dtype=float)
    p = np.asarray(proteinuria_g_per_24h, dtype=float)
    margins = [
        (COMPLETE_PROTEINURIA_G_PER_24H - p) / COMPLETE_PROTEINURIA_G_PER_24H,
        *_margins_stable(t, kidney_function_ml_min_173m2, baseline_day, stable_fraction),
    ]
    return _first_all(t, margins, baseline_day)


def first_sessions_drop_time(t_days, kidney_function_ml_min_173m2, rule, *, after: float = 0.0):
    """First day after ``after`` at which the rule's sessions per week fall below their value at
    ``after`` (the first lengthening of the dialysis interval).

    The sessions are a step function of kidney function, so this is the first crossing of the
    kidney function up through the band edge above its value at ``after`` (interpolated).

    Returns
    -------
    (float, str)
        Days (NaN if never) and a note.
    """
    t = np.asarray(t_days, dtype=float)
    kf = np.asarray(kidney_function_ml_min_173m2, dtype=float)
    kf0 = float(np.interp(after, t, kf))
    spw0 = float(rule.sessions(kf0))
    if not spw0 > 0:
        return math.nan, f"no dialysis need at day {after:g} (kidney function {kf0:.3g})"
    edge = rule.next_threshold(kf0)
    t_up = crossing_time(t, kf, edge, "above", after=after)
    if math.isnan(t_up):
        return math.nan, f"kidney function never reaches {edge:g} mL/min/1.73m2"
    return t_up, f"kidney function reaches {edge:g}: {spw0:g} -> fewer sessions/week"
