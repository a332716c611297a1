"""Kidney and lupus outcomes of a simulation: settings, derived trajectories, metric rows, case.

Everything here reads a result through its model's roles (``proteinuria``, ``kidney_function``,
``complement``, ``anti_dsdna``, ``ln_activity``); a model without them simply has no such
outputs.

Metric rows (added by :func:`cartkin.metrics.compute`; ``Dn`` for each named day n, ``END`` for
the last output time):

==================  ===============  ======================  ===========================================
name                unit             needs role              definition
==================  ===============  ======================  ===========================================
PROT_D0, _Dn, _END  g/24h            proteinuria             proteinuria at day 0, n, end
TPR_PROT            day              proteinuria             first KDIGO partial response (baseline d 0)
TCR_PROT            day              proteinuria             first KDIGO complete response
KF_D0, _Dn, _END    mL/min/1.73m2    kidney_function         residual kidney function
DIAL_SPW_D0 ...     sessions/week    kidney_function         dialysis need by the rule
DIAL_INT_END        day              kidney_function         interval between sessions at the end
TDIAL_LONGER        day              kidney_function         first lengthening of the interval
TDIAL_FREE          day              kidney_function         first time with no dialysis need
SLEDAI_D0 ... _END  points           any of proteinuria,     SLEDAI-2K total
                                     complement, anti_dsdna
LN_ACT_D0 ... _END  0-24             ln_activity             renal activity index
==================  ===============  ======================  ===========================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from cartkin.errors import ScenarioError
from cartkin.outcomes import response
from cartkin.outcomes.dialysis import KDOQI_STEPWISE, DialysisRule, follow_kidney_function
from cartkin.outcomes.sledai import SledaiScore, SledaiSettings, score

__all__ = [
    "CASE_QUANTITIES",
    "OUTCOME_ROLES",
    "CaseReport",
    "OutcomeSettings",
    "apply_dialysis_rule",
    "case_comparison",
    "case_model_values",
    "derived_columns",
    "derived_series",
    "describe",
    "has_outcomes",
    "outcome_metrics",
    "settings_from_tables",
    "sledai_of",
]

#: Roles this layer reads.
OUTCOME_ROLES = ("proteinuria", "kidney_function", "complement", "anti_dsdna", "ln_activity")

#: Reported quantities a [case] table may hold: name -> (unit, label).
CASE_QUANTITIES = {
    "sledai2k": ("points", "SLEDAI-2K"),
    "proteinuria_g_per_24h": ("g/24h", "proteinuria"),
    "kidney_function_ml_min_173m2": ("mL/min/1.73m2", "residual kidney function"),
    "dialysis_sessions_per_week": ("sessions/week", "dialysis sessions per week"),
    "dialysis_interval_days": ("day", "interval between dialysis sessions"),
    "ln_activity_index": ("0-24", "renal activity index (biopsy)"),
    "ln_chronicity_index": ("0-12", "renal chronicity index (biopsy)"),
    "anti_dsdna_iu_per_ml": ("IU/mL", "anti-dsDNA"),
    "complement_c3_g_per_l": ("g/L", "C3"),
}


@dataclass(frozen=True)
class CaseReport:
    """Outcomes a case report gives, to draw beside a simulation and compare with it.

    Parameters
    ----------
    source : str
        The publication.
    reported : mapping of str to tuple of (day, value)
        Per quantity of :data:`CASE_QUANTITIES`, the reported (day, value) pairs; days after
        CAR-T infusion.
    notes : str
        How days were read from the report (e.g. "9 months taken as day 270").
    """

    source: str
    reported: Mapping[str, tuple[tuple[float, float], ...]]
    notes: str = ""

    def __post_init__(self):
        clean = {}
        for name, pairs in self.reported.items():
            if name not in CASE_QUANTITIES:
                from cartkin.parameters import suggest

                raise ScenarioError(
                    f"[case] unknown quantity {name!r}.{suggest(name, CASE_QUANTITIES)} "
                    f"Expected one of: {', '.join(CASE_QUANTITIES)}"
                )
            out = []
            for pair in pairs:
                if (
                    not isinstance(pair, list | tuple)
                    or len(pair) != 2
                    or not all(
                        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                        for x in pair
                    )
                ):
                    raise ScenarioError(
                        f"[case] {name} entry {pair!r}: expected [day, value] (two numbers)"
                    )
                out.append((float(pair[0]), float(pair[1])))
            clean[name] = tuple(out)
        object.__setattr__(self, "reported", clean)


@dataclass(frozen=True)
class OutcomeSettings:
    """How kidney and lupus outcomes are derived and reported.

    Parameters
    ----------
    dialysis_rule : DialysisRule
        Sessions per week from residual function (default the stepwise KDOQI map).
    sledai : SledaiSettings
        Thresholds, window, anuric rule and non-modelled items.
    stable_fraction : float
        Kidney function kept >= this x baseline counts as stable (KDIGO 10-15%; assumption 0.85).
    days : tuple of float
        Named days for the metric rows (default 90, 180, 270: 3, 6 and 9 months; EULAR judges
        response at 3 and 6 months, the motivating case reports at 9).
    dialysis_schedule : {"given", "follow_kidney_function"}
        "follow_kidney_function": sessions after day 0 are generated from the simulated
        residual function (:func:`apply_dialysis_rule`).
    case : CaseReport or None
        Reported outcomes drawn as markers.
    """

    dialysis_rule: DialysisRule = KDOQI_STEPWISE
    sledai: SledaiSettings = field(default_factory=SledaiSettings)
    stable_fraction: float = response.STABLE_FRACTION
    days: tuple[float, ...] = (90.0, 180.0, 270.0)
    dialysis_schedule: str = "given"
    case: CaseReport | None = None

    def __post_init__(self):
        if not 0 < self.stable_fraction <= 1:
            raise ScenarioError(
                f"[outcomes] stable_fraction = {self.stable_fraction!r}: expected a number in (0, 1]"
            )
        days = tuple(float(d) for d in self.days)
        if any(not (math.isfinite(d) and d > 0) for d in days) or len(set(days)) != len(days):
            raise ScenarioError(f"[outcomes] days = {self.days!r}: expected distinct positive days")
        object.__setattr__(self, "days", tuple(sorted(days)))
        if self.dialysis_schedule not in ("given", "follow_kidney_function"):
            raise ScenarioError(
                f"[outcomes] dialysis_schedule = {self.dialysis_schedule!r}: expected 'given' or "
                "'follow_kidney_function'"
            )


def has_outcomes(model) -> bool:
    """True when the model plays any outcome role."""
    return any(model.roles.get(role) for role in OUTCOME_ROLES)


def _role(result, role):
    name = result.model.roles.get(role)
    return None if name is None else np.asarray(result.observables[name], dtype=float)


def sledai_of(result, settings: OutcomeSettings | None = None) -> SledaiScore | None:
    """SLEDAI-2K over the result's output times; None if the model scores no item."""
    s = settings or OutcomeSettings()
    prot, c3, dna = (_role(result, r) for r in ("proteinuria", "complement", "anti_dsdna"))
    if prot is None and c3 is None and dna is None:
        return None
    return score(
        result.t_days,
        proteinuria_g_per_24h=prot,
        complement_c3_g_per_l=c3,
        anti_dsdna_iu_per_ml=dna,
        kidney_function_ml_min_173m2=_role(result, "kidney_function"),
        settings=s.sledai,
    )


def derived_columns(result, settings: OutcomeSettings | None = None) -> dict[str, np.ndarray]:
    """Trajectory columns derived from the outcome roles (for the CSV).

    Returns
    -------
    dict of str to numpy.ndarray, shape (n_t,)
        ``dialysis_sessions_per_week`` when the model has a kidney function (the interval
        between sessions is 7 / sessions, infinite once dialysis-free, so it is not a column: a
        CSV of finite numbers); ``sledai2k_total``, ``sledai2k_urine_scorable`` (0/1)
        and one ``sledai2k_<item>`` per modelled item when it scores any item.
    """
    s = settings or OutcomeSettings()
    out = {}
    kf = _role(result, "kidney_function")
    if kf is not None:
        out["dialysis_sessions_per_week"] = s.dialysis_rule.sessions(kf)
    sl = sledai_of(result, s)
    if sl is not None:
        out["sledai2k_total"] = sl.total
        out["sledai2k_urine_scorable"] = sl.urine_scorable.astype(float)
        for item in sl.modelled:
            out[f"sledai2k_{item}"] = sl.items[item]
    return out


def _day_rows(prefix, unit, value_at, days, horizon, note=""):
    """Rows PREFIX_D0, PREFIX_D<n> for each named day, PREFIX_END; ``value_at(day)``."""
    from cartkin.measures import Metric

    rows = [Metric(f"{prefix}_D0", value_at(0.0), unit, note)]
    for d in days:
        name = f"{prefix}_D{d:g}".replace(".", "P")
        if d > horizon:
            rows.append(Metric(name, math.nan, unit, f"day {d:g} is beyond the horizon"))
        else:
            rows.append(Metric(name, value_at(d), unit, note))
    rows.append(Metric(f"{prefix}_END", value_at(horizon), unit, f"day {horizon:g}"))
    return rows


def _interp(t, y):
    return lambda day: float(np.interp(day, t, y))


def outcome_metrics(result, dense, settings: OutcomeSettings | None = None) -> list:
    """Outcome metric rows (module docstring) of ``result``; ``dense`` is the same patient on a
    fine grid (response and crossing times are taken on it)."""
    from cartkin.measures import Metric

    s = settings or OutcomeSettings()
    roles = result.model.roles
    horizon = float(result.t_days[-1])
    t = dense.t_days
    out: list = []
    prot = _role(dense, "proteinuria")
    kf = _role(dense, "kidney_function")

    if prot is not None:
        out += _day_rows("PROT", "g/24h", _interp(t, prot), s.days, horizon)
        kw = {"stable_fraction": s.stable_fraction}
        for name, fn, what in (
            ("TPR_PROT", response.partial_response_time, "partial (>= 50% fall to < 3 g/24h)"),
            ("TCR_PROT", response.complete_response_time, "complete (< 0.5 g/24h)"),
        ):
            value = fn(t, prot, kf, **kw)
            stable = "" if kf is None else f", kidney function >= {s.stable_fraction:g} x day 0"
            note = (
                f"KDIGO 2024 {what}{stable}"
                if not math.isnan(value)
                else f"no KDIGO {what.split(' ')[0]} response within {horizon:g} d"
            )
            out.append(Metric(name, value, "day", note))

    if kf is not None:
        rule = s.dialysis_rule
        out += _day_rows("KF", "mL/min/1.73m2", _interp(t, kf), s.days, horizon)
        # a step function of kidney function: the rule at the interpolated function, never an
        # interpolation between two steps
        spw_at = lambda day: float(rule.sessions(np.interp(day, t, kf)))  # noqa: E731
        out += _day_rows("DIAL_SPW", "sessions/week", spw_at, s.days, horizon, f"rule {rule.name}")
        interval = float(rule.interval_days(kf[-1]))
        out.append(
            Metric("DIAL_INT_END", interval if math.isfinite(interval) else math.nan, "day",
                   "no dialysis need at the end" if not math.isfinite(interval)
                   else f"7 / sessions per week at day {horizon:g}")
        )  # fmt: skip
        t_longer, note = response.first_sessions_drop_time(t, kf, rule)
        out.append(Metric("TDIAL_LONGER", t_longer, "day", note))
        free = rule.dialysis_free_ml_min_173m2
        if not float(rule.sessions(kf[0])) > 0:
            out.append(Metric("TDIAL_FREE", math.nan, "day", "no dialysis need at day 0"))
        else:
            t_free = _crossing(t, kf, free)
            out.append(
                Metric("TDIAL_FREE", t_free, "day",
                       f"kidney function first >= {free:g} (dialysis-free threshold, assumption)"
                       if not math.isnan(t_free)
                       else f"kidney function stays below {free:g} within {horizon:g} d")
            )  # fmt: skip

    sl = sledai_of(dense, s)
    if sl is not None:
        anuric = not bool(np.all(sl.urine_scorable))
        given = sorted(
            k if v is True else f"{k} (days {v[0]:g}-{v[1]:g})"
            for k, v in s.sledai.items.items()
            if v is not False
        )
        note = "items from the model: " + ", ".join(sl.modelled)
        note += "; set as inputs: " + (", ".join(given) if given else "none") + " (others absent)"
        if anuric:
            first = float(t[np.flatnonzero(~sl.urine_scorable)[0]])
            note += f"; urine items unscorable (anuric) from day {first:g}: total understated"
        out += _day_rows("SLEDAI", "points", sl.at, s.days, horizon, note)

    if roles.get("ln_activity"):
        act = _role(dense, "ln_activity")
        out += _day_rows("LN_ACT", "0-24", _interp(t, act), s.days, horizon)
    return out


def _crossing(t, y, threshold):
    from cartkin.measures import crossing_time

    return crossing_time(t, y, threshold, "above", after=0.0)


def case_comparison(result, settings: OutcomeSettings | None = None) -> list[dict]:
    """Reported case values beside the model's values at the same days.

    Returns
    -------
    list of dict
        ``quantity``, ``unit``, ``day``, ``reported``, ``model`` (None when the model cannot
        give that quantity), one per reported pair.
    """
    s = settings or OutcomeSettings()
    if s.case is None:
        return []
    series = _case_series(result, s)
    rows = []
    for name, pairs in s.case.reported.items():
        unit = CASE_QUANTITIES[name][0]
        y = series.get(name)
        for day, value in pairs:
            inside = result.t_days[0] <= day <= result.t_days[-1]
            model = float(np.interp(day, result.t_days, y)) if y is not None and inside else None
            if model is not None and not math.isfinite(model):
                model = None
            rows.append(
                {"quantity": name, "unit": unit, "day": day, "reported": value, "model": model}
            )
    return rows


def _case_series(result, s) -> dict[str, np.ndarray]:
    """Model trajectories for the reportable quantities the model can give."""
    by_role = {role: _role(result, role) for role in OUTCOME_ROLES}
    return derived_series(result.t_days, by_role, s)


#: Case quantity -> the role that gives it directly.
_DIRECT = {
    "proteinuria_g_per_24h": "proteinuria",
    "kidney_function_ml_min_173m2": "kidney_function",
    "ln_activity_index": "ln_activity",
    "anti_dsdna_iu_per_ml": "anti_dsdna",
    "complement_c3_g_per_l": "complement",
}


def derived_series(t_days, by_role, settings: OutcomeSettings | None = None) -> dict:
    """Every reportable quantity (:data:`CASE_QUANTITIES`) the given role curves allow.

    Vectorized: curves may carry a leading patient axis, so fits and sweeps derive the outcomes
    of all patients in one call (no per-patient Python).

    Parameters
    ----------
    t_days : array, shape (n_t,)
    by_role : mapping of role -> array, shape (..., n_t) or None
        Curves of the outcome roles (``proteinuria``, ``kidney_function``, ``complement``,
        ``anti_dsdna``, ``ln_activity``); missing or None roles are skipped.
    settings : OutcomeSettings, optional

    Returns
    -------
    dict of str to numpy.ndarray, shape (..., n_t)
        Keys among :data:`CASE_QUANTITIES` (the biopsy chronicity index is never a model output).
    """
    s = settings or OutcomeSettings()
    get = {role: None if by_role.get(role) is None else np.asarray(by_role[role], dtype=float)
           for role in OUTCOME_ROLES}  # fmt: skip
    series = {name: get[role] for name, role in _DIRECT.items() if get[role] is not None}
    kf = get["kidney_function"]
    if kf is not None:
        series["dialysis_sessions_per_week"] = s.dialysis_rule.sessions(kf)
        series["dialysis_interval_days"] = s.dialysis_rule.interval_days(kf)
    if any(get[r] is not None for r in ("proteinuria", "complement", "anti_dsdna")):
        series["sledai2k"] = score(
            t_days,
            proteinuria_g_per_24h=get["proteinuria"],
            complement_c3_g_per_l=get["complement"],
            anti_dsdna_iu_per_ml=get["anti_dsdna"],
            kidney_function_ml_min_173m2=kf,
            settings=s.sledai,
        ).total
    return series


def case_model_values(t_days, by_role, settings: OutcomeSettings) -> dict:
    """The model's values at each reported day of ``settings.case``, for many patients at once.

    For fits to the case's summaries: curves with a leading patient axis in, one array per
    reported quantity out.

    Parameters
    ----------
    t_days : array, shape (n_t,)
    by_role : mapping of role -> array, shape (..., n_t)
    settings : OutcomeSettings
        With a ``case``.

    Returns
    -------
    dict of str to (days, values)
        ``days`` shape (n_reported,), ``values`` shape (..., n_reported) (linear interpolation
        in time; NaN outside ``t_days``); only quantities the roles can give.
    """
    if settings.case is None:
        raise ScenarioError("case_model_values: the settings have no [case] table")
    t = np.asarray(t_days, dtype=float)
    series = derived_series(t, by_role, settings)
    out = {}
    for name, pairs in settings.case.reported.items():
        if name not in series:
            continue
        days = np.array([d for d, _ in pairs])
        y = series[name]
        k = np.clip(np.searchsorted(t, days, side="right") - 1, 0, max(t.size - 2, 0))
        t0, t1 = t[k], t[np.minimum(k + 1, t.size - 1)]
        w = np.where(t1 > t0, (days - t0) / np.where(t1 > t0, t1 - t0, 1.0), 0.0)
        y0, y1 = y[..., k], y[..., np.minimum(k + 1, t.size - 1)]
        with np.errstate(invalid="ignore"):  # inf intervals (no dialysis need) stay inf
            values = np.where(w == 0.0, y0, y0 + w * (y1 - y0))
        inside = (days >= t[0]) & (days <= t[-1])
        out[name] = (days, np.where(inside, values, np.nan))
    return out


def apply_dialysis_rule(result, settings: OutcomeSettings | None = None, *, max_rounds: int = 5):
    """Re-simulate with dialysis sessions after day 0 that follow the residual function.

    The patient's sessions before day 0 are kept (they set the fludarabine exposure); later ones
    are generated by :func:`cartkin.outcomes.dialysis.follow_kidney_function` from the result's
    kidney function. If the model's kidney function depends on the sessions, the schedule is
    regenerated from the new result until it no longer changes (at most ``max_rounds``).

    Returns
    -------
    SimulationResult
        ``result`` itself when the model has no kidney function or nothing changes.
    """
    import dataclasses

    from cartkin.simulate import simulate

    s = settings or OutcomeSettings()
    if result.model.roles.get("kidney_function") is None:
        return result
    if result.context.patient.dialysis is None:
        return result  # not on dialysis: the kidney function given for the patient stays
    current = result
    for _ in range(max_rounds):
        patient = current.context.patient
        new = follow_kidney_function(
            patient.dialysis, current.t_days, _role(current, "kidney_function"),
            from_day=0.0, rule=s.dialysis_rule,
        )  # fmt: skip
        if new is None or new.session_days == patient.dialysis.session_days:
            return current
        current = simulate(
            current.model, dataclasses.replace(patient, dialysis=new), current.context.regimen,
            current.t_days, theta=current.theta, clearance_model=current.context.clearance_model,
            label=current.label, **current.options,
        )  # fmt: skip
    return current


# ---------------------------------------------------------------------------------------------
# Scenario file tables: [outcomes], [outcomes.sledai], [case], [case.reported]
# ---------------------------------------------------------------------------------------------
_OUTCOME_KEYS = ("days", "dialysis_schedule", "dialysis_free_ml_min_173m2", "stable_fraction",
                 "sledai")  # fmt: skip
_SLEDAI_KEYS = ("items", "proteinuria_g_per_24h", "low_c3_g_per_l", "dsdna_iu_per_ml",
                "window_days", "anuria_below_ml_min_173m2")  # fmt: skip
_CASE_KEYS = ("source", "notes", "reported")


def _check_table(where, section, table, allowed):
    from cartkin.config import check_keys

    check_keys(where, section, table, allowed)


def settings_from_tables(outcomes=None, case=None, where: str = "<scenario>") -> OutcomeSettings:
    """:class:`OutcomeSettings` from a scenario's ``[outcomes]`` and ``[case]`` tables.

    ``[outcomes]``: ``days`` (list of days), ``dialysis_schedule`` ("given" or
    "follow_kidney_function"), ``dialysis_free_ml_min_173m2``, ``stable_fraction`` and a
    ``[outcomes.sledai]`` table (``items`` = {item = true}, thresholds, ``window_days``,
    ``anuria_below_ml_min_173m2``; 0 disables the anuric rule). ``[case]``: ``source``,
    ``notes`` and ``[case.reported]`` with ``quantity = [[day, value], ...]``.
    Errors name the file and the key.
    """
    outcomes = {} if outcomes is None else outcomes
    _check_table(where, "outcomes", outcomes, _OUTCOME_KEYS)
    kwargs = {}
    try:
        sledai = outcomes.get("sledai", {})
        _check_table(where, "outcomes.sledai", sledai, _SLEDAI_KEYS)
        kwargs["sledai"] = SledaiSettings(**sledai)
        if "days" in outcomes:
            days = outcomes["days"]
            if not isinstance(days, list) or not all(
                isinstance(d, int | float) and not isinstance(d, bool) for d in days
            ):
                raise ScenarioError(f"days = {days!r}: expected a list of days, e.g. [90, 180]")
            kwargs["days"] = tuple(days)
        for key in ("dialysis_schedule", "stable_fraction"):
            if key in outcomes:
                kwargs[key] = outcomes[key]
        if "dialysis_free_ml_min_173m2" in outcomes:
            value = outcomes["dialysis_free_ml_min_173m2"]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ScenarioError(
                    f"dialysis_free_ml_min_173m2 = {value!r}: expected a number (mL/min/1.73m2)"
                )
            kwargs["dialysis_rule"] = KDOQI_STEPWISE.with_dialysis_free(float(value))
        if case is not None:
            _check_table(where, "case", case, _CASE_KEYS)
            reported = case.get("reported", {})
            if not isinstance(reported, dict):
                raise ScenarioError(f"[case] reported = {reported!r}: expected a table")
            kwargs["case"] = CaseReport(
                source=str(case.get("source", "")), reported=reported,
                notes=str(case.get("notes", "")),
            )  # fmt: skip
        return OutcomeSettings(**kwargs)
    except ScenarioError as exc:
        text = str(exc)
        text = text if text.startswith("[") else f"[outcomes] {text}"
        raise ScenarioError(f"{where}: {text}") from None


def describe(settings: OutcomeSettings | None = None) -> str:
    """Markdown: the dialysis rule, SLEDAI-2K thresholds and response definitions, with sources
    (printed by ``cartkin show MODEL`` for a model with outcome roles)."""
    s = settings or OutcomeSettings()
    sl = s.sledai
    lines = [
        f"Dialysis need ({s.dialysis_rule.name}; residual kidney function taken as KDOQI's Kr):",
        "",
        *(f"- {line}" for line in s.dialysis_rule.describe()),
        "",
        f"SLEDAI-2K (Gladman 2002, {sl.window_days:g}-day window):",
        "",
        f"- proteinuria > {sl.proteinuria_g_per_24h:g} g/24h: 4 (Gladman 2002)",
        f"- low complement, C3 < {sl.low_c3_g_per_l:g} g/L: 2 (assumption: common lower limit "
        "of normal)",
        f"- increased DNA binding, anti-dsDNA > {sl.dsdna_iu_per_ml:g} IU/mL: 2 (assumption: "
        "EliA dsDNA positive cut-off)",
        "- other items: scenario inputs [outcomes.sledai] items = {item = true}",
        f"- urine items unscorable below kidney function {sl.anuria_below_ml_min_173m2} "
        "mL/min/1.73m2 (assumption: anuric)",
        "",
        "Response (KDIGO 2024; proteinuria g/24h taken as uPCR g/g):",
        "",
        f"- complete: < {response.COMPLETE_PROTEINURIA_G_PER_24H:g} g/24h, kidney function >= "
        f"{s.stable_fraction:g} x day 0 (assumption for 'stable', KDIGO 10-15%)",
        f"- partial: >= {100 * response.PARTIAL_FALL_FRACTION:g}% fall and < "
        f"{response.PARTIAL_CEILING_G_PER_24H:g} g/24h, kidney function stable",
    ]
    return "\n".join(lines)
