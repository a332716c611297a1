"""What modelers report from a simulated (or observed) CAR-T time course.

:func:`compute` returns a :class:`MetricTable`: an ordered list of :class:`Metric` (name, value,
unit, note) that the CLI prints as a table and dumps as JSON. Names follow CDISC PP test codes
where one exists (``CMAX``, ``TMAX``, ``CLST``, ``TLST``, ``LAMZHL``); the others are ours and
documented below. A metric that is not reached within the horizon is NaN with the reason in its
note. Metrics find the CAR-T, B-cell and IL-6 curves through ``model.roles``, so they work for any
registered model; a model without B cells or IL-6 simply has no such rows.

Methods
-------
*Model curves* are evaluated on a fine internal grid: the simulation is re-run at
``dense_step_days`` spacing (default 0.02 d) merged with the result's own output times and the
model's stop times (doses, discontinuities), and
extrema, crossing times and the model integral are taken on that grid (crossings by linear
interpolation between grid points; integrals by the trapezoidal rule, relative error about
``(step * rate)^2 / 12``, below 1e-4 for growth rates up to 1/day).

*Observation-time* metrics (``AUC0_28D_OBS``) use only the result's output times
(``result.t_days``), as a non-compartmental analysis of samples at those days would; samples
below the LLOQ count as 0 (the usual NCA convention for BLQ samples).

*LLOQ in the assay's own unit*: persistence (CLST, TLST, PERSIST, LAMZHL's end) is read on the
model's primary assay, its first observable: flow cytometry (cells/uL, LLOQ
``lloq_cells_per_ul``, default 0.05, MODEL.md section 5) for ``sle_cart``, qPCR (copies/ug,
``lloq_copies_per_ug``, default 50, MODEL.md section 5) for ``stein2019``. Passing one of the two
LLOQs explicitly selects that assay (when the model has it). CLST is reported in that unit.

*B-cell threshold set* (one threshold, ``b_cell_threshold_cells_per_ul``, default 10 cells/uL):
aplasia is CD19+ B cells below it; it starts at TAPLASIA and ends at TRECOV, the first return to
>= the threshold, so APLASIA_DUR = TRECOV - TAPLASIA. 10 cells/uL follows the flow definition of
B-cell reconstitution used in CD19 CAR-T follow-up (detectable CD19+ B cells above about 1% of a
lymphodepleted lymphocyte count); it is the "reappearance" compared with the 110 +/- 32 d of
Mackensen 2022 (assumption: the paper's exact cut-off was not found).

*THALF_INIT* is the least-squares slope of ln C over the post-peak phase
[TMAX, TMAX + initial_window_days] (default 21 d, the window over which Stein 2019's alpha phase
dominates at typical FB); for a curve with a pure effector decline it equals ln2/alpha.

=================  ==========  ====================================================================
name               unit        definition
=================  ==========  ====================================================================
CMAX               cells/uL    peak CAR-T level (model curve)
TMAX               day         time of CMAX
CMAX_COPIES        copies/ug   peak transgene level (if the model has a qPCR observable)
CMAX_PCT_T         %           peak CAR-T share of T cells (if the model has one)
AUC0_28D           cells/uL*d  model integral of CAR-T over days 0-28 (fine grid)
AUC0_28D_OBS       cells/uL*d  linear trapezoid on the output times (day 28 interpolated), BLQ = 0
CLST, TLST         assay, d    last level >= LLOQ (in the primary assay's unit) and its time
PERSIST            day         total time with CAR-T >= LLOQ after infusion
THALF_INIT         day         initial (contraction) half-life: least-squares slope of ln C over
                               [TMAX, TMAX + initial_window_days]
LAMZHL             day         terminal half-life: slope of ln C over the last
                               terminal_window_days before TLST, starting no earlier than
                               TMAX + initial_window_days
B_NADIR, B_TNADIR  cells/uL,d  lowest B-cell count and its time
TAPLASIA           day         first time B < b_cell_threshold_cells_per_ul
APLASIA_DUR        day         TRECOV - TAPLASIA
TRECOV             day         first return of B to >= b_cell_threshold_cells_per_ul after
                               TAPLASIA ("B-cell reappearance", end of aplasia)
FLU_AUC            mg.h/L      cumulative fludarabine AUC
FLU_AUC_GE13P8 ..  -           FLU_AUC >= 13.8 (Fabrizio 2022), >= 14 (Dekker 2022), >= 20 mg.h/L
                               (Langenhorst 2019): FLU_AUC_GE13P8, FLU_AUC_GE14, FLU_AUC_GE20
IL6_MAX, IL6_TMAX  pg/mL, d    IL-6 peak and its time
IL6_T_ABOVE        day         total time with IL-6 >= il6_threshold_pg_per_ml
ADSDNA_D90_PCT     %           anti-dsDNA at day 90 as % of its day-0 value
PROT_*, KF_*, ...  various     lupus nephritis outcomes: proteinuria, residual kidney function,
                               dialysis sessions per week, SLEDAI-2K, response times (only for
                               models with the outcome roles; :mod:`cartkin.outcomes.report`)
=================  ==========  ====================================================================

Thresholds (documented arguments of :func:`compute`; all are choices, stated as such):
``lloq_cells_per_ul`` 0.05 (flow cytometry LLOQ about 0.05-0.1 cells/uL, MODEL.md section 5);
``lloq_copies_per_ug`` 50 (qPCR LLOQ, MODEL.md section 5); ``b_cell_threshold_cells_per_ul`` 10
(see above); ``il6_threshold_pg_per_ml`` 20 (assumption: about three times the upper normal limit
of ~7 pg/mL).
"""

from __future__ import annotations

import math

import numpy as np

from cartkin.measures import (
    ADSDNA_DAY,
    AUC_END_DAYS,
    B_CELL_THRESHOLD_CELLS_PER_UL,
    IL6_THRESHOLD_PG_PER_ML,
    LLOQ_CELLS_PER_UL,
    LLOQ_COPIES_PER_UG,
    Metric,
    MetricTable,
    auc_trapezoid,
    cmax_tmax,
    crossing_time,
    log_linear_half_life,
    time_above,
)

__all__ = [
    "AUC_END_DAYS",
    "B_CELL_THRESHOLD_CELLS_PER_UL",
    "IL6_THRESHOLD_PG_PER_ML",
    "LLOQ_CELLS_PER_UL",
    "LLOQ_COPIES_PER_UG",
    "Metric",
    "MetricTable",
    "auc_trapezoid",
    "cmax_tmax",
    "compute",
    "crossing_time",
    "log_linear_half_life",
    "time_above",
]


def compute(
    result,
    *,
    lloq_cells_per_ul: float | None = None,
    lloq_copies_per_ug: float | None = None,
    b_cell_threshold_cells_per_ul: float = B_CELL_THRESHOLD_CELLS_PER_UL,
    il6_threshold_pg_per_ml: float = IL6_THRESHOLD_PG_PER_ML,
    auc_end_days: float = AUC_END_DAYS,
    initial_window_days: float = 21.0,
    aplasia_cells_per_ul: float | None = None,
    recovery_cells_per_ul: float | None = None,
    terminal_window_days: float = 56.0,
    dense_step_days: float | None = 0.02,
    outcomes=None,
) -> MetricTable:
    """Metrics of a :class:`cartkin.simulate.SimulationResult` (see the module docstring).

    Parameters
    ----------
    result : SimulationResult
    lloq_cells_per_ul : float, optional
        Flow-cytometry LLOQ of CAR-T, cells/uL (default 0.05 when flow is the assay used).
    lloq_copies_per_ug : float, optional
        qPCR LLOQ of the CAR transgene, copies/ug (default 50 when qPCR is the assay used).
        Giving one LLOQ selects its assay; giving none uses the model's primary assay (its
        first observable). CLST, TLST, PERSIST and the end of LAMZHL use it.
    b_cell_threshold_cells_per_ul : float
        B-cell aplasia / reappearance threshold, cells/uL (module docstring).
    aplasia_cells_per_ul, recovery_cells_per_ul : float, optional
        Separate thresholds for the end of aplasia and for TRECOV, overriding
        ``b_cell_threshold_cells_per_ul`` (to compare with other definitions; with two
        different thresholds APLASIA_DUR no longer ends at TRECOV).
    il6_threshold_pg_per_ml : float
        IL-6 threshold for IL6_T_ABOVE, pg/mL.
    auc_end_days : float
        End of the AUC window (AUC0_28D is named for the default 28).
    initial_window_days, terminal_window_days : float
        Half-life windows (see the module docstring).
    dense_step_days : float or None
        Spacing of the internal grid for model curves; None uses the result's output times.
    outcomes : cartkin.outcomes.OutcomeSettings, optional
        Dialysis rule, SLEDAI-2K settings and named days for the lupus nephritis outcome rows
        (rows exist only for the model's outcome roles; see :mod:`cartkin.outcomes.report`).

    Returns
    -------
    MetricTable
    """
    if lloq_cells_per_ul is not None and lloq_copies_per_ug is not None:
        raise ValueError(
            f"lloq_cells_per_ul = {lloq_cells_per_ul!r} and lloq_copies_per_ug = "
            f"{lloq_copies_per_ug!r}: give the LLOQ of one assay only"
        )
    for name, value in (
        ("lloq_cells_per_ul", 1.0 if lloq_cells_per_ul is None else lloq_cells_per_ul),
        ("lloq_copies_per_ug", 1.0 if lloq_copies_per_ug is None else lloq_copies_per_ug),
        ("b_cell_threshold_cells_per_ul", b_cell_threshold_cells_per_ul),
        ("aplasia_cells_per_ul", 1.0 if aplasia_cells_per_ul is None else aplasia_cells_per_ul),
        ("recovery_cells_per_ul", 1.0 if recovery_cells_per_ul is None else recovery_cells_per_ul),
        ("il6_threshold_pg_per_ml", il6_threshold_pg_per_ml),
        ("auc_end_days", auc_end_days),
        ("initial_window_days", initial_window_days),
        ("terminal_window_days", terminal_window_days),
    ):
        if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} = {value!r}: expected a positive number")

    model = result.model
    roles = model.roles
    t_obs = result.t_days
    horizon = float(t_obs[-1])
    dense = _dense(result, dense_step_days)
    t = dense.t_days
    out: list[Metric] = []

    # -- CAR-T -------------------------------------------------------------------------------------
    cart = dense.observables[roles["cart"]]
    cmax, tmax = cmax_tmax(t, cart)
    no_cart = not cmax > 0
    out.append(Metric("CMAX", cmax, "cells/uL", "no CAR-T" if no_cart else ""))
    out.append(Metric("TMAX", math.nan if no_cart else tmax, "day", "no CAR-T" if no_cart else ""))
    if roles.get("cart_copies"):
        out.append(
            Metric(
                "CMAX_COPIES", float(np.max(dense.observables[roles["cart_copies"]])), "copies/ug"
            )
        )
    if roles.get("cart_percent_t"):
        out.append(
            Metric("CMAX_PCT_T", float(np.max(dense.observables[roles["cart_percent_t"]])), "%")
        )
    tag = f"{auc_end_days:g}D"
    beyond = horizon < auc_end_days
    why = f"horizon {horizon:g} d is shorter than {auc_end_days:g} d" if beyond else ""
    auc_model = math.nan if beyond else auc_trapezoid(t, cart, auc_end_days)
    out.append(
        Metric(f"AUC0_{tag}", auc_model, "cells/uL*day",
               why or f"model integral, trapezoid on a {_step_text(dense_step_days)} grid")
    )  # fmt: skip
    assay, lloq, lloq_unit = _assay(model, lloq_cells_per_ul, lloq_copies_per_ug)
    assay_curve = dense.observables[assay]
    obs_cart = result.observables[roles["cart"]]
    obs_assay = result.observables[assay]
    blq = obs_assay < lloq  # BLQ samples count as 0 in the observed AUC
    auc_obs = (
        math.nan if beyond else auc_trapezoid(t_obs, np.where(blq, 0.0, obs_cart), auc_end_days)
    )
    out.append(
        Metric(f"AUC0_{tag}_OBS", auc_obs, "cells/uL*day",
               why or f"linear trapezoid on the {t_obs.size} output times, "
                      f"{int(np.count_nonzero(blq))} BLQ (< {lloq:g} {lloq_unit}) as 0")
    )  # fmt: skip

    above = assay_curve >= lloq
    if np.any(above):
        k_last = int(np.flatnonzero(above)[-1])
        tlst, clst = float(t[k_last]), float(assay_curve[k_last])
        persist = time_above(t, assay_curve, lloq)
        censored = k_last == t.size - 1
        note = f"still >= LLOQ {lloq:g} {lloq_unit} at the horizon" if censored else ""
        note = note or f"LLOQ {lloq:g} {lloq_unit}"
        out.append(Metric("CLST", clst, lloq_unit, note))
        out.append(Metric("TLST", tlst, "day", note))
        out.append(Metric("PERSIST", persist, "day", note))
    else:
        note = f"CAR-T never >= LLOQ {lloq:g} {lloq_unit}"
        out += [Metric(n, math.nan, u, note) for n, u in (("CLST", lloq_unit), ("TLST", "day"))]
        out.append(Metric("PERSIST", 0.0, "day", note))

    if no_cart:
        out.append(Metric("THALF_INIT", math.nan, "day", "no CAR-T"))
        out.append(Metric("LAMZHL", math.nan, "day", "no CAR-T"))
    else:
        hl, note = log_linear_half_life(t, cart, tmax, tmax + initial_window_days)
        if not math.isnan(hl):
            note = f"ln-linear fit over [TMAX, TMAX + {initial_window_days:g} d]"
        out.append(Metric("THALF_INIT", hl, "day", note))
        t_end = float(t[np.flatnonzero(above)[-1]]) if np.any(above) else tmax
        t_start = max(tmax + initial_window_days, t_end - terminal_window_days)
        sel = t <= t_end
        if t_start >= t_end:  # TLST before the terminal window opens: say so in time order
            hl = math.nan
            note = (
                f"no terminal phase to fit: TLST {t_end:.4g} d is before TMAX + "
                f"{initial_window_days:g} d = {t_start:.4g} d"
            )
        else:
            hl, note = log_linear_half_life(t[sel], cart[sel], t_start, t_end)
        if not math.isnan(hl):
            note = (
                f"ln-linear fit over the last {terminal_window_days:g} d to TLST "
                f"(not before TMAX + {initial_window_days:g} d)"
            )
        out.append(Metric("LAMZHL", hl, "day", note))

    # -- B cells -----------------------------------------------------------------------------------
    if roles.get("b_cells"):
        aplasia = (
            b_cell_threshold_cells_per_ul if aplasia_cells_per_ul is None else aplasia_cells_per_ul
        )
        recovery = (
            b_cell_threshold_cells_per_ul
            if recovery_cells_per_ul is None
            else recovery_cells_per_ul
        )
        out += _b_cell_metrics(t, dense.observables[roles["b_cells"]], aplasia, recovery, horizon)

    # -- fludarabine -------------------------------------------------------------------------------
    exposure = result.exposure
    if exposure is not None:
        auc = float(exposure.auc_mg_h_per_l)
        out.append(Metric("FLU_AUC", auc, "mg.h/L", "cumulative fludarabine AUC"))
        for mark, name, source in _FLU_MARKS:
            out.append(Metric(name, auc >= mark, "-", f"FLU_AUC >= {mark:g} mg.h/L ({source})"))

    # -- IL-6 --------------------------------------------------------------------------------------
    if roles.get("il6"):
        il6 = dense.observables[roles["il6"]]
        peak, t_peak = cmax_tmax(t, il6)
        out.append(Metric("IL6_MAX", peak, "pg/mL"))
        out.append(Metric("IL6_TMAX", t_peak, "day"))
        out.append(
            Metric("IL6_T_ABOVE", time_above(t, il6, il6_threshold_pg_per_ml), "day",
                   f"IL-6 >= {il6_threshold_pg_per_ml:g} pg/mL")
        )  # fmt: skip

    # -- anti-dsDNA --------------------------------------------------------------------------------
    if roles.get("anti_dsdna"):
        a = dense.observables[roles["anti_dsdna"]]
        if horizon >= ADSDNA_DAY and a[0] > 0:
            d90 = float(100.0 * np.interp(ADSDNA_DAY, t, a) / a[0])
            out.append(Metric("ADSDNA_D90_PCT", d90, "%"))
        else:
            out.append(Metric("ADSDNA_D90_PCT", math.nan, "%", "horizon shorter than 90 d"))

    # -- lupus nephritis outcomes (proteinuria, kidney function, dialysis need, SLEDAI-2K) ---------
    from cartkin.outcomes import report

    if report.has_outcomes(model):
        out += report.outcome_metrics(result, dense, outcomes)

    return MetricTable(out)


_FLU_MARKS = (
    (13.8, "FLU_AUC_GE13P8", "Fabrizio 2022"),
    (14.0, "FLU_AUC_GE14", "Dekker 2022"),
    (20.0, "FLU_AUC_GE20", "Langenhorst 2019, transplant conditioning"),
)


def _assay(model, lloq_cells_per_ul, lloq_copies_per_ug):
    """(observable name, LLOQ, unit) of the CAR-T assay persistence is read on."""
    roles = model.roles
    copies = roles.get("cart_copies")
    if lloq_copies_per_ug is not None:
        if copies is None:
            raise ValueError(
                f"lloq_copies_per_ug = {lloq_copies_per_ug!r}: model {model.name!r} has no qPCR "
                "(copies/ug) observable; give lloq_cells_per_ul"
            )
        return copies, float(lloq_copies_per_ug), "copies/ug"
    if lloq_cells_per_ul is not None:
        return roles["cart"], float(lloq_cells_per_ul), "cells/uL"
    if copies is not None and model.observables[0].name == copies:
        return copies, LLOQ_COPIES_PER_UG, "copies/ug"
    return roles["cart"], LLOQ_CELLS_PER_UL, "cells/uL"


def _b_cell_metrics(t, b, aplasia, recovery, horizon) -> list[Metric]:
    out = []
    nadir, t_nadir = float(np.min(b)), float(t[int(np.argmin(b))])
    out.append(Metric("B_NADIR", nadir, "cells/uL"))
    out.append(Metric("B_TNADIR", t_nadir, "day"))

    t_apl = crossing_time(t, b, aplasia, "below")
    if math.isnan(t_apl):
        reason = f"B cells never below {aplasia:g} cells/uL"
        out += [Metric(n, math.nan, "day", reason) for n in ("TAPLASIA", "APLASIA_DUR")]
    else:
        out.append(Metric("TAPLASIA", t_apl, "day", f"first B < {aplasia:g} cells/uL"))
        t_end = crossing_time(t, b, aplasia, "above", after=t_apl)
        if math.isnan(t_end):
            note = (
                f"still < {aplasia:g} cells/uL at the horizon ({horizon:g} d): "
                f">= {horizon - t_apl:.4g} d"
            )
            out.append(Metric("APLASIA_DUR", math.nan, "day", note))
        else:
            note = "TRECOV - TAPLASIA" if aplasia == recovery else ""
            out.append(Metric("APLASIA_DUR", t_end - t_apl, "day", note))
    t_below = crossing_time(t, b, recovery, "below")
    if math.isnan(t_below):
        out.append(Metric("TRECOV", math.nan, "day", f"B cells never below {recovery:g} cells/uL"))
        return out
    t_rec = crossing_time(t, b, recovery, "above", after=t_below)
    note = (
        f"no return to >= {recovery:g} cells/uL within the horizon ({horizon:g} d)"
        if math.isnan(t_rec)
        else f"first return to >= {recovery:g} cells/uL"
    )
    out.append(Metric("TRECOV", t_rec, "day", note))
    return out


def _dense(result, step):
    if step is None:
        return result
    if not (isinstance(step, int | float) and step > 0):
        raise ValueError(f"dense_step_days = {step!r}: expected a positive number or None")
    t_end = float(result.t_days[-1])
    stops = result.individual.t_stops
    grid = np.union1d(np.arange(0.0, t_end, step), result.t_days)
    # stop times (doses, Stein's tmax) are where peaks and kinks sit: keep them exactly
    grid = np.union1d(grid, stops[(stops >= 0.0) & (stops <= t_end)])
    return result.evaluate(grid)


def _step_text(step) -> str:
    return "output-time" if step is None else f"{step:g}-day"
