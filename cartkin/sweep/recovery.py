"""B-cell recovery as a censored time to event: Kaplan-Meier quantiles and paired arm differences.

``TRECOV`` (the first return of B cells to the B-cell threshold after aplasia) is defined only
for patients who reached aplasia and recovered within the horizon. Summarising it over the
patients where it is defined conditions on an outcome that the arm itself changes: at eGFR 120
fewer patients reach aplasia than on dialysis, so the two arms' medians are taken over different
patients, and an arm in which every patient recovers later can show the earlier median (issue
15: 49 of 100 patients counted at eGFR 120, 86 on dialysis, the dialysis median earlier although
all 43 counted pairs recovered later on dialysis).

Here every solved patient counts, with the time from CAR-T infusion (day 0) to B-cell recovery
defined as:

- a patient who reached aplasia and recovered: ``TRECOV`` (an event);
- a patient who reached aplasia and had not recovered by the horizon: right-censored at the
  horizon (``horizon_days`` of the grid point: the recovery happens later, or never);
- a patient whose B cells never fell below the threshold: recovered at day 0 (an event at 0).
  The B-cell count of such a patient is at or above the threshold throughout; "time until B
  cells are back at the threshold" is 0 for them. Excluding them instead would make the
  population depend on the arm again (the bias above); the share of such patients is
  ``1 - P(aplasia)``, reported beside every recovery quantile, so a KM median of 0 reads as
  "most patients never reached aplasia".

With this definition the same virtual patients (common random numbers) are compared in every
arm, so a patient-by-patient ordering between two arms carries over to every quantile.
Patients whose solve failed (status != 0) are left out (their share is ``p_failed``).

The estimator is the product-limit (Kaplan-Meier) estimator; the q-quantile is the smallest
time at which the estimated survival (not yet recovered) is at or below ``1 - q``, and is
undefined (NaN: "not reached") when it stays above. With censoring only at the horizon this
equals the empirical quantile of the times below the horizon.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kaplan_meier", "km_quantiles", "paired_recovery", "recovery_times"]

#: Slack when comparing the product-limit estimate with 1 - q (the estimate is a product of
#: floating-point factors; without it an exact 0.5 can read as 0.5000000000000001).
_S_TOL = 1e-12


def recovery_times(aplasia, trecov, horizon_days) -> tuple[np.ndarray, np.ndarray]:
    """Time from infusion to B-cell recovery and whether it was observed (module docstring).

    Parameters
    ----------
    aplasia : array of bool, shape (n,)
        Aplasia reached within the horizon (the store's ``APLASIA``).
    trecov : array of float, shape (n,)
        ``TRECOV``, day; NaN when not recovered by the horizon (or never aplastic).
    horizon_days : float or array, shape (n,)
        The horizon, day (censoring time).

    Returns
    -------
    time : numpy.ndarray, shape (n,), day
    event : numpy.ndarray of bool, shape (n,)
        True for an observed recovery (at day 0 for never-aplastic patients), False when
        right-censored at the horizon.
    """
    aplasia = np.asarray(aplasia, dtype=bool)
    trecov = np.asarray(trecov, dtype=np.float64)
    horizon = np.broadcast_to(np.asarray(horizon_days, dtype=np.float64), aplasia.shape)
    recovered = aplasia & ~np.isnan(trecov)
    time = np.where(aplasia, np.where(recovered, trecov, horizon), 0.0)
    event = ~aplasia | recovered
    return time, event


def kaplan_meier(time, event) -> tuple[np.ndarray, np.ndarray]:
    """Product-limit estimate of the survival function (probability of no event yet).

    Parameters
    ----------
    time : array of float, shape (n,)
        Event or censoring times.
    event : array of bool, shape (n,)
        True for an event, False for right-censoring at ``time``. A patient censored at an
        event time is at risk at that time (the usual convention).

    Returns
    -------
    t : numpy.ndarray, shape (m,)
        Distinct event times, ascending.
    survival : numpy.ndarray, shape (m,)
        ``S(t)`` just after each of them (a right-continuous step function, 1 before ``t[0]``).
    """
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    if time.shape != event.shape or time.ndim != 1:
        raise ValueError(f"time {time.shape} and event {event.shape}: expected two (n,) arrays")
    if np.isnan(time).any():
        raise ValueError("time: NaN; every patient needs an event or a censoring time")
    t, deaths = np.unique(time[event], return_counts=True)
    at_risk = time.size - np.searchsorted(np.sort(time), t, side="left")
    return t, np.cumprod(1.0 - deaths / at_risk)


def km_quantiles(time, event, q) -> np.ndarray:
    """Kaplan-Meier quantiles of the event time: smallest ``t`` with ``S(t) <= 1 - q``.

    Parameters
    ----------
    time, event : see :func:`kaplan_meier`
    q : sequence of float in (0, 1)

    Returns
    -------
    numpy.ndarray, shape (len(q),)
        NaN where ``S`` stays above ``1 - q`` (not reached, e.g. too many censored) or when
        there are no patients.
    """
    q = np.asarray(q, dtype=np.float64)
    out = np.full(q.shape, np.nan)
    if np.size(time) == 0:
        return out
    t, s = kaplan_meier(time, event)
    reached = s[None, :] <= (1.0 - q)[:, None] + _S_TOL
    found = reached.any(axis=1)
    out[found] = t[np.argmax(reached[found], axis=1)]
    return out


def paired_recovery(time_a, event_a, time_b, event_b, horizon_days) -> dict:
    """Patient-by-patient comparison of recovery times in arms a and b (same patients).

    Each time is first restricted to the horizon (``min(T, H)``; a censored time is ``H``);
    with different horizons the smaller one is used for both arms.

    Parameters
    ----------
    time_a, event_a, time_b, event_b : arrays, shape (n,)
        From :func:`recovery_times`, patient k of arm a paired with patient k of arm b
        (solved in both).
    horizon_days : float or array, shape (n,)

    Returns
    -------
    dict
        ``n_pairs``; ``share_b_later`` / ``share_b_earlier``: share of pairs in which b's
        recovery is known to come later / earlier; ``share_tied``: equal times (e.g. both
        never aplastic); ``share_undetermined``: both not recovered by the horizon;
        ``median_diff_days``: median of ``min(T_b, H) - min(T_a, H)`` (day; NaN without pairs).
    """
    horizon = np.broadcast_to(np.asarray(horizon_days, dtype=np.float64), np.shape(time_a))
    ra = np.minimum(np.where(event_a, time_a, np.inf), horizon)
    rb = np.minimum(np.where(event_b, time_b, np.inf), horizon)
    both_open = (ra >= horizon) & (rb >= horizon)
    n = int(np.size(ra))
    share = (lambda mask: float(np.count_nonzero(mask)) / n) if n else (lambda mask: np.nan)
    return {
        "n_pairs": n,
        "share_b_later": share((rb > ra) & ~both_open),
        "share_b_earlier": share((rb < ra) & ~both_open),
        "share_tied": share((rb == ra) & ~both_open),
        "share_undetermined": share(both_open),
        "median_diff_days": float(np.median(rb - ra)) if n else np.nan,
    }
