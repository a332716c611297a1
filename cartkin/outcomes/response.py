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

from cartkin.metrics import crossing_time

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
    """
    t = np.asarray(t, dtype=float)
    m = np.vstack(margins)  # (n_margins, n_t)
    ok = np.all(m >= 0.0, axis=0)
    hits = np.flatnonzero(ok & (t > after))
    first_sample = float(t[hits[0]]) if hits.size else math.inf
    a, b = m[:, :-1], m[:, 1:]
    t0, t1 = t[:-1], t[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        root = t0 + (t1 - t0) * (-a) / (b - a)  # where each margin crosses 0
    rising, falling = b > a, b < a
    lo = np.where(rising, np.maximum(root, t0), np.where(a >= 0, t0, np.inf))
    hi = np.where(falling, np.minimum(root, t1), np.where(rising | (a >= 0), t1, -np.inf))
    start, end = lo.max(axis=0), hi.min(axis=0)
    start = np.maximum(start, np.nextafter(after, np.inf))
    valid = (start <= end) & (t1 > after)
    first_inside = float(start[valid][0]) if np.any(valid) else math.inf
    first = min(first_sample, first_inside)
    return first if math.isfinite(first) else math.nan


def _stable_margin(kf, baseline_kf, stable_fraction):
    if kf is None:
        return None
    kf = np.asarray(kf, dtype=float)
    if not baseline_kf > 0:
        return None  # no kidney function at baseline: nothing can fall
    return (kf - stable_fraction * baseline_kf) / baseline_kf


def partial_response_time(
    t_days,
    proteinuria_g_per_24h,
    kidney_function_ml_min_173m2=None,
    *,
    baseline_day: float = 0.0,
    stable_fraction: float = STABLE_FRACTION,
) -> float:
    """First day of a KDIGO partial response (>= 50% fall to < 3 g/24h, stable function).

    Parameters
    ----------
    t_days : array, shape (n,)
        Increasing days after CAR-T infusion.
    proteinuria_g_per_24h : array, shape (n,)
    kidney_function_ml_min_173m2 : array, shape (n,), optional
        Without it the kidney-function condition is not checked.
    baseline_day : float
        Day of the baseline values (interpolated), default the infusion day.
    stable_fraction : float
        Kidney function must stay >= this x baseline.

    Returns
    -------
    float
        Days; NaN if not reached. Only times after ``baseline_day`` count.
    """
    t = np.asarray(t_days, dtype=float)
    p = np.asarray(proteinuria_g_per_24h, dtype=float)
    p0 = float(np.interp(baseline_day, t, p))
    if not p0 > 0:
        return math.nan
    margins = [
        (PARTIAL_FALL_FRACTION * p0 - p) / p0,
        (PARTIAL_CEILING_G_PER_24H - p) / PARTIAL_CEILING_G_PER_24H,
    ]
    if kidney_function_ml_min_173m2 is not None:
        kf0 = float(np.interp(baseline_day, t, np.asarray(kidney_function_ml_min_173m2, float)))
        m = _stable_margin(kidney_function_ml_min_173m2, kf0, stable_fraction)
        if m is not None:
            margins.append(m)
    return _first_all(t, margins, baseline_day)


def complete_response_time(
    t_days,
    proteinuria_g_per_24h,
    kidney_function_ml_min_173m2=None,
    *,
    baseline_day: float = 0.0,
    stable_fraction: float = STABLE_FRACTION,
) -> float:
    """First day of a KDIGO complete response (< 0.5 g/24h with stable kidney function).

    Parameters and returns as :func:`partial_response_time`.
    """
    t = np.asarray(t_days, dtype=float)
    p = np.asarray(proteinuria_g_per_24h, dtype=float)
    margins = [(COMPLETE_PROTEINURIA_G_PER_24H - p) / COMPLETE_PROTEINURIA_G_PER_24H]
    if kidney_function_ml_min_173m2 is not None:
        kf0 = float(np.interp(baseline_day, t, np.asarray(kidney_function_ml_min_173m2, float)))
        m = _stable_margin(kidney_function_ml_min_173m2, kf0, stable_fraction)
        if m is not None:
            margins.append(m)
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
