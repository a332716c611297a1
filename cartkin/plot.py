"""Figures of simulation results: the only module that imports matplotlib.

Every function works on any model through its ``roles`` (which observable is CAR-T, B cells,
IL-6), returns a matplotlib ``Figure`` and leaves saving to the caller (``fig.savefig(path)``).
Figures are built without pyplot: no global state, nothing to close in loops, and a faster
import (in a notebook, display the returned figure or add it to your own layout).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from cartkin.metrics import B_CELL_THRESHOLD_CELLS_PER_UL

__all__ = ["plot_comparison", "plot_kidney_response", "plot_result"]

#: Lower end of the log axes, cells/uL. Values below it are not drawn (masked, not clipped), so
#: a curve leaves the axis instead of lying flat on a floor it never reached.
_DISPLAY_FLOOR = 1e-4


def _masked(values):
    values = np.asarray(values, dtype=float)
    return np.where(values >= _DISPLAY_FLOOR, values, np.nan)


def _treatment_start(result) -> float:
    """First lymphodepletion day (or the first output time), for the left end of the x axis."""
    ld = result.context.regimen.lymphodepletion
    days = [*ld.flu_days, *ld.cy_days]
    return min([result.t_days[0], *days])


def _mark_treatment(ax, result, legend=True):
    """Shade the lymphodepletion days, mark each CAR-T infusion and dialysis session."""
    ld = result.context.regimen.lymphodepletion
    for k, day in enumerate(sorted({*ld.flu_days, *ld.cy_days})):
        ax.axvspan(
            day,
            day + 1.0,
            color="0.88",
            zorder=0,
            label="lymphodepletion (Flu/Cy days)" if legend and k == 0 else None,
        )
    for k, (day, _cells) in enumerate(result.context.cart_doses):
        ax.axvline(
            day,
            color="tab:red",
            lw=1.0,
            ls="-",
            alpha=0.6,
            label="CAR-T infusion" if legend and k == 0 else None,
        )
    dialysis = result.context.patient.dialysis
    if dialysis is not None:
        t_end = result.t_days[-1]
        days = [d for d in dialysis.session_days if d <= t_end]
        ax.plot(
            days,
            np.full(len(days), 0.0),
            "|",
            color="tab:purple",
            ms=8,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="dialysis session" if legend and days else None,
        )


def plot_result(
    result,
    *,
    lloq_cells_per_ul: float = 0.05,
    b_cell_threshold_cells_per_ul: float = B_CELL_THRESHOLD_CELLS_PER_UL,
    title: str | None = None,
    outcomes=None,
):
    """CAR-T and B cells on log axes, IL-6 below, treatment marked; for a model with lupus
    nephritis outcome roles, the kidney-response panel (:func:`plot_kidney_response`) beneath.

    Parameters
    ----------
    result : cartkin.simulate.SimulationResult
    lloq_cells_per_ul : float
        CAR-T lower limit of quantification drawn as a line (flow cytometry, about 0.05-0.1
        cells/uL per MODEL.md section 5).
    b_cell_threshold_cells_per_ul : float
        B-cell aplasia / recovery threshold drawn as a line (the default of
        :func:`cartkin.metrics.compute`: aplasia below it, recovery on return to it).
    title : str, optional
    outcomes : cartkin.outcomes.OutcomeSettings, optional
        Dialysis rule, SLEDAI-2K settings and the case's reported values for the kidney panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from cartkin.outcomes import has_outcomes

    model = result.model
    roles = model.roles
    has_il6 = roles.get("il6") is not None
    height = 6.5 if has_il6 else 4.2
    kidney = has_outcomes(model)
    fig = Figure(figsize=(10, height + (_KIDNEY_HEIGHT if kidney else 0.0)))
    top = fig
    if kidney:
        top, bottom = fig.subfigures(2, 1, height_ratios=[height, _KIDNEY_HEIGHT])
    axes = top.subplots(
        2 if has_il6 else 1,
        1,
        sharex=True,
        gridspec_kw={"height_ratios": [2.2, 1]} if has_il6 else None,
        squeeze=False,
    )
    ax = axes[0, 0]
    t = result.t_days
    cart = result.observables[roles["cart"]]
    ax.semilogy(t, _masked(cart), color="tab:blue", lw=2, label="CAR-T (cells/uL)")
    ax.axhline(
        lloq_cells_per_ul,
        color="tab:blue",
        ls="--",
        lw=0.8,
        label=f"CAR-T LLOQ {lloq_cells_per_ul:g}",
    )
    if roles.get("b_cells") is not None:
        b = result.observables[roles["b_cells"]]
        ax.semilogy(t, _masked(b), color="tab:green", lw=2, label="CD19+ B cells (cells/uL)")
        ax.axhline(
            b_cell_threshold_cells_per_ul,
            color="tab:green",
            ls="--",
            lw=0.8,
            label=f"B-cell aplasia < {b_cell_threshold_cells_per_ul:g} <= recovery",
        )
    _mark_treatment(ax, result)
    ax.set_ylabel("cells/uL blood")
    ax.set_ylim(bottom=_DISPLAY_FLOOR)
    ax.set_xlim(_treatment_start(result) - 1.0, t[-1])
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(True, which="major", alpha=0.3)
    label = getattr(result, "label", None)
    ax.set_title(
        title or (f"{model.name}: {label}" if label and label != model.name else model.name)
    )
    if has_il6:
        ax2 = axes[1, 0]
        ax2.plot(t, result.observables[roles["il6"]], color="tab:orange", lw=1.5)
        ax2.set_ylabel("IL-6 (pg/mL)")
        ax2.grid(True, alpha=0.3)
        _mark_treatment(ax2, result, legend=False)
    axes[-1, 0].set_xlabel("days after CAR-T infusion")
    # fixed margins: tight_layout costs about half a second per figure
    bottom_margin = 0.12 if kidney else 0.08  # room for the x label above the kidney panel
    top.subplots_adjust(left=0.08, right=0.78, top=0.94, bottom=bottom_margin, hspace=0.08)
    if kidney:
        plot_kidney_response(result, outcomes, fig=bottom)
    return fig


def plot_comparison(
    results: Sequence,
    labels: Sequence[str] | None = None,
    *,
    title: str | None = None,
    lloq_cells_per_ul: float = 0.05,
    b_cell_threshold_cells_per_ul: float = B_CELL_THRESHOLD_CELLS_PER_UL,
):
    """Overlay several results (doses, kidney function, models): CAR-T and B cells.

    The treatment marks (lymphodepletion days, infusions, dialysis) are those of the first
    result; thresholds are drawn as grey dashed lines (CAR-T LLOQ, B-cell threshold).

    Parameters
    ----------
    results : sequence of SimulationResult
    labels : sequence of str, optional
        One per result; default the results' ``label``.
    title : str, optional
    lloq_cells_per_ul, b_cell_threshold_cells_per_ul : float
        Thresholds drawn as lines, as in :func:`plot_result`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    results = list(results)
    if not results:
        raise ValueError("plot_comparison: results is empty; expected at least one result")
    if labels is None:
        labels = [getattr(r, "label", None) or f"#{i + 1}" for i, r in enumerate(results)]
    if len(labels) != len(results):
        raise ValueError(f"plot_comparison: {len(labels)} labels for {len(results)} results")
    any_b = any(r.model.roles.get("b_cells") is not None for r in results)
    fig = Figure(figsize=(11 if any_b else 6, 4.2))
    axes = fig.subplots(1, 2 if any_b else 1, squeeze=False)
    colors = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(results)))
    for r, label, c in zip(results, labels, colors, strict=True):
        roles = r.model.roles
        axes[0, 0].semilogy(r.t_days, _masked(r.observables[roles["cart"]]), color=c, label=label)
        if any_b and roles.get("b_cells") is not None:
            axes[0, 1].semilogy(
                r.t_days, _masked(r.observables[roles["b_cells"]]), color=c, label=label
            )
    axes[0, 0].set_ylabel("CAR-T (cells/uL)")
    axes[0, 0].axhline(lloq_cells_per_ul, color="0.4", ls="--", lw=0.8)
    if any_b:
        axes[0, 1].set_ylabel("CD19+ B cells (cells/uL)")
        axes[0, 1].axhline(b_cell_threshold_cells_per_ul, color="0.4", ls="--", lw=0.8)
    t_start = min(_treatment_start(r) for r in results) - 1.0
    t_end = max(r.t_days[-1] for r in results)
    for ax in axes[0]:
        _mark_treatment(ax, results[0], legend=False)
        ax.set_ylim(bottom=_DISPLAY_FLOOR)
        ax.set_xlim(t_start, t_end)
        ax.set_xlabel("days after CAR-T infusion")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(
        left=0.07, right=0.98, top=0.88 if title else 0.95, bottom=0.13, wspace=0.25
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Lupus nephritis outcomes (cartkin.outcomes): proteinuria, kidney function, dialysis, SLEDAI-2K
# ---------------------------------------------------------------------------------------------
_KIDNEY_HEIGHT = 5.6
_CASE_STYLE = {"marker": "D", "color": "black", "ms": 6, "ls": "none", "zorder": 5}


def _case_points(outcomes, quantity):
    if outcomes is None or outcomes.case is None:
        return ()
    return outcomes.case.reported.get(quantity, ())


def plot_kidney_response(results, outcomes=None, *, fig=None, title: str | None = None):
    """Kidney response over the follow-up, with a case's reported values as markers.

    Panels, each present when a model plays the role it needs: proteinuria with the KDIGO
    complete (0.5) and partial (3) g/24h lines; residual kidney function with the dialysis
    rule's band edges; dialysis sessions per week by the rule (and, for one result, the
    patient's scheduled sessions); SLEDAI-2K total; the renal activity index (a biopsy's
    chronicity index is written beside its marker); anti-dsDNA and C3 with the SLEDAI-2K
    thresholds.

    Parameters
    ----------
    results : SimulationResult or sequence of SimulationResult
        One result, or several overlaid (arms of a scenario, labelled by ``label``).
    outcomes : cartkin.outcomes.OutcomeSettings, optional
        Rule, SLEDAI-2K settings and the case (``outcomes.case``) whose values are drawn as
        black diamonds at their reported days.
    fig : matplotlib Figure or SubFigure, optional
        Where to draw; default a new Figure.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
    """
    from cartkin.outcomes import OutcomeSettings, sledai_of

    results = [results] if not isinstance(results, list | tuple) else list(results)
    if not results:
        raise ValueError("plot_kidney_response: results is empty; expected at least one result")
    s = outcomes or OutcomeSettings()
    rule = s.dialysis_rule
    single = len(results) == 1
    colors = (
        [None]
        if single
        else [
            tuple(c) for c in matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(results)))
        ]
    )
    scores = [sledai_of(r, s) for r in results]

    def has(role):
        return any(r.model.roles.get(role) for r in results)

    panels = []
    if has("proteinuria"):
        panels.append("proteinuria")
    if has("kidney_function"):
        panels += ["kidney_function", "dialysis"]
    if any(sl is not None for sl in scores):
        panels.append("sledai")
    if has("ln_activity"):
        panels.append("activity")
    if has("anti_dsdna") or has("complement"):
        panels.append("serology")
    if fig is None:
        fig = Figure(figsize=(10, _KIDNEY_HEIGHT))
    ncols = 3 if len(panels) > 4 else 2
    nrows = max(1, -(-len(panels) // ncols))
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)

    def curve(ax, r, role, color, default, **kw):
        name = r.model.roles.get(role)
        if name is None:
            return
        draw = ax.semilogy if kw.pop("log", False) else ax.plot
        values = r.observables[name]
        draw(r.t_days, _masked(values) if draw is ax.semilogy else values,
             color=default if color is None else color, lw=1.8, **kw)  # fmt: skip

    for ax, panel in zip(axes, panels, strict=False):
        bottom = None  # lower y limit, set after the case markers so they stay in view
        for r, sl, c in zip(results, scores, colors, strict=True):
            arm = None if single else r.label
            if panel == "proteinuria":
                curve(ax, r, "proteinuria", c, "tab:brown", label=arm)
            elif panel == "kidney_function":
                curve(ax, r, "kidney_function", c, "tab:cyan", label=arm)
            elif panel == "dialysis" and r.model.roles.get("kidney_function"):
                spw = rule.sessions(r.observables[r.model.roles["kidney_function"]])
                ax.step(r.t_days, spw, where="post", color=c or "tab:purple", lw=1.8,
                        label=arm or f"rule {rule.name}")  # fmt: skip
                dialysis = r.context.patient.dialysis
                if single and dialysis is not None:
                    t = r.t_days
                    days = [d for d in dialysis.session_days if t[0] <= d <= t[-1]]
                    ax.plot(days, [0.0] * len(days), "|", color="tab:purple", ms=8,
                            label="scheduled sessions" if days else None)  # fmt: skip
            elif panel == "sledai" and sl is not None:
                ax.step(r.t_days, sl.total, where="post", color=c or "tab:red", lw=1.8,
                        label=arm)  # fmt: skip
            elif panel == "activity":
                curve(ax, r, "ln_activity", c, "tab:olive", label=arm)
            elif panel == "serology":
                curve(ax, r, "anti_dsdna", c, "tab:pink", log=True,
                      label="anti-dsDNA (IU/mL)" if single else arm)  # fmt: skip
                curve(ax, r, "complement", c, "tab:gray", log=True, ls="--",
                      label="C3 (g/L)" if single else None)  # fmt: skip
        if panel == "proteinuria":
            ax.axhline(0.5, color="0.4", ls=":", lw=0.8, label="complete < 0.5 (KDIGO)")
            ax.axhline(3.0, color="0.4", ls="--", lw=0.8, label="partial < 3 (KDIGO)")
            points = _case_points(s, "proteinuria_g_per_24h")
            ax.set_ylabel("proteinuria (g/24h)")
        elif panel == "kidney_function":
            for edge in rule.thresholds_ml_min_173m2:
                ax.axhline(edge, color="0.6", ls=":", lw=0.7)
            points = _case_points(s, "kidney_function_ml_min_173m2")
            ax.set_ylabel("residual function\n(mL/min/1.73m2)")
        elif panel == "dialysis":
            points = list(_case_points(s, "dialysis_sessions_per_week"))
            points += [(d, 7.0 / v) for d, v in _case_points(s, "dialysis_interval_days") if v > 0]
            ax.set_ylabel("dialysis\n(sessions/week)")
            ax.set_ylim(-0.2, max(rule.sessions_per_week) + 0.4)
        elif panel == "sledai":
            points = _case_points(s, "sledai2k")
            ax.set_ylabel("SLEDAI-2K")
            bottom = -0.5
        elif panel == "activity":
            points = _case_points(s, "ln_activity_index")
            for day, value in _case_points(s, "ln_chronicity_index"):
                ax.annotate(f"chronicity {value:g}/12 (day {day:g})", (day, 0.0),
                            xytext=(4, 6), textcoords="offset points", fontsize=7)  # fmt: skip
            ax.set_ylabel("activity index (0-24)")
            bottom = -0.5
        else:  # serology
            if has("anti_dsdna"):
                ax.axhline(s.sledai.dsdna_iu_per_ml, color="tab:pink", ls=":", lw=0.8)
            if has("complement"):
                ax.axhline(s.sledai.low_c3_g_per_l, color="tab:gray", ls=":", lw=0.8)
            points = [
                *_case_points(s, "anti_dsdna_iu_per_ml"),
                *_case_points(s, "complement_c3_g_per_l"),
            ]
            ax.set_ylabel("anti-dsDNA (IU/mL), C3 (g/L)" if single else "anti-dsDNA (IU/mL)")
        if points:
            days, values = zip(*points, strict=True)
            ax.plot(days, values, **_CASE_STYLE, label="reported (case)")
        if bottom is not None:
            ax.set_ylim(bottom=bottom, top=max(ax.get_ylim()[1], bottom + 1.0))
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="best")
    t_start = min(min(0.0, float(r.t_days[0])) for r in results)
    t_end = max(float(r.t_days[-1]) for r in results)
    for ax in axes[: len(panels)]:
        ax.set_xlim(t_start, t_end)
    for ax in axes[max(0, len(panels) - ncols) : len(panels)]:
        ax.set_xlabel("days after CAR-T infusion")
        ax.xaxis.set_tick_params(labelbottom=True)
    heading = title or "kidney response"
    if s.case is not None and s.case.source:
        heading += f" (markers: {s.case.source})"
    fig.suptitle(heading, fontsize=9)
    fig.subplots_adjust(left=0.08, right=0.97, top=0.9, bottom=0.1, hspace=0.25, wspace=0.35)
    return fig
