"""Metric definitions in one place: names, units, thresholds and the primitives computing them.

:func:`cartkin.metrics.compute` (trajectories), :mod:`cartkin.outcomes` (lupus nephritis
outcomes) and the batch engine's in-kernel metrics (:func:`cartkin.batch.metrics`, whose
thresholds default to these constants and reach the compiled kernel as inputs) all use these
definitions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ADSDNA_DAY",
    "AUC_END_DAYS",
    "B_CELL_THRESHOLD_CELLS_PER_UL",
    "IL6_THRESHOLD_PG_PER_ML",
    "LLOQ_CELLS_PER_UL",
    "LLOQ_COPIES_PER_UG",
    "Metric",
    "MetricTable",
    "auc_trapezoid",
    "cmax_tmax",
    "crossing_time",
    "log_linear_half_life",
    "time_above",
]


#: Default CAR-T LLOQs per assay (MODEL.md section 5) and the B-cell threshold (module docstring).
LLOQ_CELLS_PER_UL = 0.05
LLOQ_COPIES_PER_UG = 50.0
B_CELL_THRESHOLD_CELLS_PER_UL = 10.0
#: IL-6 threshold of IL6_T_ABOVE, pg/mL (assumption: about three times the upper normal limit;
#: see cartkin.metrics).
IL6_THRESHOLD_PG_PER_ML = 20.0
#: Day of the anti-dsDNA change ADSDNA_D90_PCT, days after infusion (MODEL.md section 5).
ADSDNA_DAY = 90.0
#: End of the early CAR-T exposure window of AUC0_28D, days after infusion (MODEL.md section 5).
AUC_END_DAYS = 28.0


@dataclass(frozen=True)
class Metric:
    """One reported quantity.

    Attributes
    ----------
    name : str
        CDISC-style code ("CMAX").
    value : float or bool
        NaN when not reached (see ``note``).
    unit : str
    note : str
        Why the value is NaN, or how it was computed when that matters.
    """

    name: str
    value: float
    unit: str
    note: str = ""

    def as_dict(self) -> dict:
        """JSON-ready dict; NaN becomes None (JSON has no NaN)."""
        value = self.value
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif isinstance(value, np.floating | np.integer):
            value = value.item()
        return {"name": self.name, "value": value, "unit": self.unit, "note": self.note}


class MetricTable:
    """Ordered metrics; index by position or by name."""

    def __init__(self, metrics):
        self._metrics = list(metrics)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def __getitem__(self, key) -> Metric:
        if isinstance(key, str):
            for m in self._metrics:
                if m.name == key:
                    return m
            raise KeyError(f"no metric {key!r}; metrics: {', '.join(self.names)}")
        return self._metrics[key]

    def __contains__(self, name) -> bool:
        return any(m.name == name for m in self._metrics)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self._metrics]

    def value(self, name: str) -> float:
        """Value of the metric called ``name``."""
        return self[name].value

    def as_dicts(self) -> list[dict]:
        """List of JSON-ready dicts (see :meth:`Metric.as_dict`)."""
        return [m.as_dict() for m in self._metrics]

    def __repr__(self) -> str:
        rows = [f"{m.name:<14} {m.value!s:>12} {m.unit:<12} {m.note}" for m in self._metrics]
        return "MetricTable(\n  " + "\n  ".join(rows) + "\n)"


# ---------------------------------------------------------------------------------------------
# Building blocks on plain arrays (usable on observed data too)
# ---------------------------------------------------------------------------------------------
def cmax_tmax(t_days, values) -> tuple[float, float]:
    """Peak value and its (first) time. Arrays of shape (n,)."""
    t, y = np.asarray(t_days, float), np.asarray(values, float)
    k = int(np.argmax(y))
    return float(y[k]), float(t[k])


def auc_trapezoid(t_days, values, t_end: float, t_start: float = 0.0) -> float:
    """Linear-trapezoid integral of ``values`` over [t_start, t_end] (value units x days).

    The ends are interpolated linearly when they are not sample times; NaN if the samples do
    not cover the interval.
    """
    t, y = np.asarray(t_days, float), np.asarray(values, float)
    if t[0] > t_start or t[-1] < t_end:
        return math.nan
    inside = (t > t_start) & (t < t_end)
    tt = np.concatenate([[t_start], t[inside], [t_end]])
    yy = np.concatenate([[np.interp(t_start, t, y)], y[inside], [np.interp(t_end, t, y)]])
    return float(np.sum(0.5 * (yy[1:] + yy[:-1]) * np.diff(tt)))


def crossing_time(t_days, values, threshold: float, direction: str, after: float = -math.inf):
    """First time after ``after`` at which ``values`` crosses ``threshold``.

    Parameters
    ----------
    direction : {"below", "above"}
        "below": first time values < threshold; "above": first time values >= threshold.
    after : float
        Only crossings at t > after count.

    Returns
    -------
    float
        Linear interpolation between the two samples around the crossing (the sample time itself
        when the first sample already satisfies it); NaN if never.
    """
    t, y = np.asarray(t_days, float), np.asarray(values, float)
    if direction == "below":
        hit = y < threshold
    elif direction == "above":
        hit = y >= threshold
    else:
        raise ValueError(f"direction must be 'below' or 'above', got {direction!r}")
    idx = np.flatnonzero(hit & (t > after))
    if idx.size == 0:
        return math.nan
    k = int(idx[0])
    if k == 0 or t[k - 1] < after or hit[k - 1]:
        return float(t[k])
    y0, y1 = y[k - 1], y[k]
    frac = (threshold - y0) / (y1 - y0) if y1 != y0 else 1.0
    return float(t[k - 1] + frac * (t[k] - t[k - 1]))


def time_above(t_days, values, threshold: float) -> float:
    """Total time with values >= threshold, days (linear interpolation at crossings)."""
    t, y = np.asarray(t_days, float), np.asarray(values, float)
    total = 0.0
    for k in range(t.size - 1):
        a, b = y[k] - threshold, y[k + 1] - threshold
        dt = t[k + 1] - t[k]
        if a >= 0 and b >= 0:
            total += dt
        elif a >= 0 or b >= 0:
            total += dt * (a if a >= 0 else b) / abs(b - a)
    return float(total)


def log_linear_half_life(t_days, values, t_start: float, t_end: float, min_points: int = 3):
    """Half-life ln2/lambda from a least-squares line through ln(values) on [t_start, t_end].

    Returns ``(half_life_days, note)``; NaN with a reason when fewer than ``min_points`` positive
    samples lie in the window or the curve is not declining there.
    """
    t, y = np.asarray(t_days, float), np.asarray(values, float)
    sel = (t >= t_start) & (t <= t_end) & (y > 0)
    if np.count_nonzero(sel) < min_points:
        return (
            math.nan,
            f"fewer than {min_points} positive points in [{t_start:.4g}, {t_end:.4g}] d",
        )
    slope = np.polyfit(t[sel], np.log(y[sel]), 1)[0]
    if slope >= 0:
        return math.nan, f"not declining over [{t_start:.4g}, {t_end:.4g}] d"
    return float(math.log(2.0) / -slope), f"ln-linear fit over [{t_start:.4g}, {t_end:.4g}] d"


# ---------------------------------------------------------------------------------------------
# The metric table of a simulation
# ---------------------------------------------------------------------------------------------
