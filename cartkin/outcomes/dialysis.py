"""Dialysis need from residual kidney function: sessions per week, interval, session days.

A :class:`DialysisRule` maps residual kidney function (mL/min/1.73m2) to haemodialysis sessions
per week through contiguous bands. The default, :data:`KDOQI_STEPWISE`, is the stepwise map of
MODEL.md section 7, each band with its source:

======================  ==============  =============================================================
residual function        sessions/week   source
======================  ==============  =============================================================
Kr < 2                   3               KDOQI 2006 Hemodialysis Adequacy, CPG 4.1-4.2: thrice-weekly
                                         HD with the full dose when Kr < 2 mL/min/1.73m2 [P]
2 <= Kr < 3              2.5             KDOQI 2006 CPG 4.3: the dose may be reduced when Kr >= 2 [P];
                                         "2-3 per week" taken as its mean, i.e. alternating 2 and 3
                                         sessions a week (interval 2.8 d) [A]
3 <= Kr < 5              2               twice-weekly (incremental) HD considered with Kr above about
                                         3 mL/min (Kalantar-Zadeh K et al., incremental-dialysis
                                         literature) [P]; band edges [A]
5 <= Kr < 10             1               once-weekly HD with a low-protein diet at GFR 5-10
                                         (Caria S et al., BMC Nephrol 2014;15:172; Nakao T et al.,
                                         BMC Nephrol 2018;19:151) [P]
Kr >= 10                 0               dialysis-free threshold [A]: the top of the once-weekly range
                                         above; starting dialysis at eGFR 10-14 gave no benefit over
                                         5-7 in the IDEAL trial (Cooper BA et al., NEJM
                                         2010;363:609), so no dialysis need is assumed at >= 10
======================  ==============  =============================================================

A value exactly on a boundary falls in the upper band (KDOQI: "Kr >= 2" may be reduced).

Caveats (assumptions, stated): KDOQI's Kr is the residual *urea* clearance, which is lower than
the GFR (urea is partly reabsorbed); the rule is applied to the model's kidney function as if it
were Kr, so it errs toward fewer sessions. The rule is a dialysis *need*: it is applied whether or
not the patient is on dialysis at baseline. Symptoms, fluid overload, potassium and acidosis,
which decide dialysis in practice, are not modelled.

The time-varying schedule (:func:`schedule_sessions`, :func:`follow_kidney_function`) places each
next session one interval (7 / sessions per week, evaluated at the session) after the last, so
later sessions follow the recovering (or declining) function; while the rule gives 0 sessions no
session is placed, and dialysis restarts when the function falls back below the threshold.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cartkin.errors import ScenarioError

__all__ = [
    "KDOQI_STEPWISE",
    "DialysisRule",
    "follow_kidney_function",
    "schedule_sessions",
]


@dataclass(frozen=True)
class DialysisRule:
    """Stepwise map from residual kidney function to haemodialysis sessions per week.

    Parameters
    ----------
    thresholds_ml_min_173m2 : tuple of float, shape (n_bands - 1,)
        Strictly increasing band edges, mL/min/1.73m2. A value equal to an edge belongs to the
        band above it.
    sessions_per_week : tuple of float, shape (n_bands,)
        Sessions per week in each band, lowest function first; non-increasing, >= 0, the last
        one 0 (the dialysis-free band).
    name : str
        Label for reports.
    sources : tuple of str, shape (n_bands,)
        Where each band comes from (published or "assumption: why").
    """

    thresholds_ml_min_173m2: tuple[float, ...]
    sessions_per_week: tuple[float, ...]
    name: str = "custom"
    sources: tuple[str, ...] = ()

    def __post_init__(self):
        edges = tuple(float(x) for x in self.thresholds_ml_min_173m2)
        spw = tuple(float(x) for x in self.sessions_per_week)
        owner = f"DialysisRule {self.name!r}"
        if len(spw) != len(edges) + 1:
            raise ScenarioError(
                f"{owner}: {len(edges)} thresholds need {len(edges) + 1} sessions_per_week "
                f"values, got {len(spw)}"
            )
        if any(not math.isfinite(e) or e <= 0 for e in edges) or any(
            b <= a for a, b in itertools.pairwise(edges)
        ):
            raise ScenarioError(
                f"{owner}: thresholds_ml_min_173m2 = {edges}: expected strictly increasing "
                "positive numbers (mL/min/1.73m2)"
            )
        if any(not 0 <= s <= 7 for s in spw) or any(b > a for a, b in itertools.pairwise(spw)):
            raise ScenarioError(
                f"{owner}: sessions_per_week = {spw}: expected numbers in [0, 7] that do not "
                "increase with kidney function"
            )
        if spw[-1] != 0.0:
            raise ScenarioError(
                f"{owner}: sessions_per_week = {spw}: the last band (highest function) must be "
                "0, the dialysis-free band"
            )
        if self.sources and len(self.sources) != len(spw):
            raise ScenarioError(f"{owner}: give one source per band ({len(spw)}) or none")
        object.__setattr__(self, "thresholds_ml_min_173m2", edges)
        object.__setattr__(self, "sessions_per_week", spw)

    @property
    def dialysis_free_ml_min_173m2(self) -> float:
        """Lowest kidney function with no dialysis need, mL/min/1.73m2."""
        k = self.sessions_per_week.index(0.0)
        return self.thresholds_ml_min_173m2[k - 1] if k > 0 else 0.0

    def sessions(self, kidney_function_ml_min_173m2) -> np.ndarray:
        """Sessions per week at each kidney function value.

        Parameters
        ----------
        kidney_function_ml_min_173m2 : float or array, shape (n,)

        Returns
        -------
        numpy.ndarray, shape (n,) (0-d for a scalar)
            NaN where the kidney function is NaN.
        """
        kf = np.asarray(kidney_function_ml_min_173m2, dtype=float)
        band = np.searchsorted(self.thresholds_ml_min_173m2, kf, side="right")
        out = np.asarray(self.sessions_per_week)[band]
        return np.where(np.isnan(kf), np.nan, out)

    def interval_days(self, kidney_function_ml_min_173m2) -> np.ndarray:
        """Days between sessions (7 / sessions per week); inf where there is no dialysis need."""
        spw = self.sessions(kidney_function_ml_min_173m2)
        with np.errstate(divide="ignore"):
            return np.where(spw > 0, 7.0 / np.where(spw > 0, spw, 1.0), np.inf)

    def next_threshold(self, kidney_function_ml_min_173m2: float) -> float:
        """Lowest band edge above ``kidney_function`` (where the sessions drop); inf if none."""
        edges = np.asarray(self.thresholds_ml_min_173m2)
        above = edges[edges > kidney_function_ml_min_173m2]
        return float(above[0]) if above.size else math.inf

    def with_dialysis_free(self, threshold_ml_min_173m2: float) -> DialysisRule:
        """The same rule with another dialysis-free threshold (the last band edge)."""
        edges = list(self.thresholds_ml_min_173m2)
        if not threshold_ml_min_173m2 > (edges[-2] if len(edges) > 1 else 0.0):
            raise ScenarioError(
                f"dialysis_free_ml_min_173m2 = {threshold_ml_min_173m2!r}: expected a number "
                f"above the previous band edge {edges[-2] if len(edges) > 1 else 0.0:g} "
                "mL/min/1.73m2"
            )
        edges[-1] = float(threshold_ml_min_173m2)
        sources = list(self.sources)
        if sources:
            sources[-1] = f"assumption: dialysis-free at >= {threshold_ml_min_173m2:g} (user set)"
        return dataclasses.replace(
            self, thresholds_ml_min_173m2=tuple(edges), sources=tuple(sources)
        )

    def describe(self) -> list[str]:
        """One line per band: range, sessions per week, source."""
        edges = (0.0, *self.thresholds_ml_min_173m2, math.inf)
        lines = []
        for k, spw in enumerate(self.sessions_per_week):
            src = self.sources[k] if self.sources else ""
            lines.append(f"{edges[k]:g} <= Kr < {edges[k + 1]:g}: {spw:g}/week  {src}".rstrip())
        return lines


#: The stepwise map of MODEL.md section 7 (see the module docstring for each band's source).
KDOQI_STEPWISE = DialysisRule(
    thresholds_ml_min_173m2=(2.0, 3.0, 5.0, 10.0),
    sessions_per_week=(3.0, 2.5, 2.0, 1.0, 0.0),
    name="kdoqi_stepwise",
    sources=(
        "KDOQI 2006 HD adequacy CPG 4.1-4.2 (Kr < 2: thrice weekly)",
        "KDOQI 2006 CPG 4.3 (Kr >= 2: dose may be reduced); 2.5 = mean of 2-3/week (assumption)",
        "incremental twice-weekly HD with Kr > ~3 (Kalantar-Zadeh); edges assumption",
        "once-weekly HD at GFR 5-10 (Caria 2014, Nakao 2018)",
        "assumption: dialysis-free at >= 10 (top of the once-weekly range; IDEAL trial 2010)",
    ),
)


def schedule_sessions(
    t_days,
    kidney_function_ml_min_173m2,
    start_day: float,
    end_day: float,
    rule: DialysisRule = KDOQI_STEPWISE,
) -> np.ndarray:
    """Session days that follow a residual-function trajectory.

    The first session is at ``start_day`` if the rule gives a need there; each next session is
    one interval (7 / sessions per week at the session just given) later. While the rule gives
    no need, no session is placed; the next session is at the first output time where the need
    returns.

    Parameters
    ----------
    t_days : array, shape (n,)
        Increasing times of the trajectory, days after CAR-T infusion.
    kidney_function_ml_min_173m2 : array, shape (n,)
        Residual kidney function at ``t_days`` (linear interpolation between them; held constant
        outside them).
    start_day, end_day : float
        Window for the sessions, days (inclusive).
    rule : DialysisRule

    Returns
    -------
    numpy.ndarray, shape (n_sessions,)
        Increasing session days in ``[start_day, end_day]``.
    """
    t = np.asarray(t_days, dtype=float)
    kf = np.asarray(kidney_function_ml_min_173m2, dtype=float)
    if t.ndim != 1 or t.shape != kf.shape or t.size == 0:
        raise ScenarioError(
            f"schedule_sessions: t_days {t.shape} and kidney function {kf.shape}: expected two "
            "1-d arrays of the same, non-zero length"
        )
    if np.any(np.diff(t) <= 0) or not np.all(np.isfinite(kf)):
        raise ScenarioError(
            "schedule_sessions: expected strictly increasing t_days and a finite kidney function"
        )
    if not end_day >= start_day:
        raise ScenarioError(
            f"schedule_sessions: end_day {end_day!r} < start_day {start_day!r}: expected "
            "end_day >= start_day (days)"
        )
    need = rule.sessions(kf) > 0
    sessions = []
    day = float(start_day)
    while day <= end_day + 1e-9:  # tolerance: summed intervals (7/3 d) carry rounding error
        spw = float(rule.sessions(np.interp(day, t, kf)))
        if spw > 0:
            sessions.append(round(day, 6))  # to the 0.1 s: no 14.000000000000002
            day += 7.0 / spw
            continue
        later = np.flatnonzero(need & (t > day))
        if later.size == 0:
            break
        day = float(t[later[0]])
    return np.asarray(sessions, dtype=float)


def follow_kidney_function(
    schedule,
    t_days,
    kidney_function_ml_min_173m2,
    *,
    from_day: float = 0.0,
    end_day: float | None = None,
    rule: DialysisRule = KDOQI_STEPWISE,
):
    """A :class:`cartkin.covariates.patient.DialysisSchedule` whose sessions after ``from_day`` follow the
    residual kidney function.

    Sessions before ``from_day`` are kept as given (they set the fludarabine exposure); the
    first generated session is one interval after the last kept one (or at ``from_day`` when
    there is none), and later ones follow :func:`schedule_sessions`.

    Parameters
    ----------
    schedule : DialysisSchedule or None
        The given schedule (its duration and fludarabine removal are kept). None: a new
        schedule with the default duration.
    t_days, kidney_function_ml_min_173m2 : array, shape (n,)
        The trajectory (e.g. ``result.t_days`` and ``result.role("kidney_function")``).
    from_day : float
        First day whose sessions are generated, days after CAR-T infusion.
    end_day : float, optional
        Last day for sessions; default the last time of the trajectory.
    rule : DialysisRule

    Returns
    -------
    DialysisSchedule or None
        None when no session remains (no need and no kept session).
    """
    from cartkin.covariates.patient import DialysisSchedule

    t = np.asarray(t_days, dtype=float)
    end = float(t[-1]) if end_day is None else float(end_day)
    kept: Sequence[float] = ()
    if schedule is not None:
        kept = tuple(d for d in schedule.session_days if d < from_day)
    start = float(from_day)
    if kept:
        kf_last = float(np.interp(kept[-1], t, np.asarray(kidney_function_ml_min_173m2, float)))
        interval = float(rule.interval_days(kf_last))
        start = max(start, kept[-1] + interval) if math.isfinite(interval) else start
    new = (
        schedule_sessions(t, kidney_function_ml_min_173m2, start, end, rule) if start <= end else ()
    )
    days = (*kept, *(float(d) for d in new))
    if not days:
        return None
    if schedule is None:
        return DialysisSchedule(session_days=days)
    return dataclasses.replace(schedule, session_days=days)
