"""Figures of simulation results: the only module that imports matplotlib.

Every function works on any model through its ``roles`` (which observable is CAR-T, B cells,
IL-6), returns a matplotlib ``Figure`` and leaves saving to the caller (``fig.savefig(path)``).
Figures are built without pyplot: no global state, nothing to close in loops, and a faster
import (in a notebook, display the returned figure or add it to your own layout).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_comparison", "plot_result"]

#: Lower end of the log axes, cells/uL. Values below it are not drawn (masked, not clipped), so
#: a curve leaves the axis instead of lying flat on a floor it never reached.
_DISPLAY_FLOOR = 1e-4

#: Unit as written in figures (the micro sign; code and CSV columns keep the ASCII "uL").
_CELLS = "cells/\u00b5L"

#: Okabe-Ito colour-blind-safe palette (Okabe M, Ito K, "Color Universal Design", 2008), in an
#: order where neighbouring arms (eGFR 15 and hemodialysis in the kidney comparison) differ in
#: hue and lightness. More arms than colours fall back to viridis.
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#000000",  # black
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
)

#: Figure margins in inches (converted to fractions per figure size so labels are never cut).
_BOTTOM_IN = 0.6
_TOP_IN = 0.35


def _masked(values):
    values = np.asarray(values, dtype=float)
    return np.where(values >= _DISPLAY_FLOOR, values, np.nan)


def arm_colors(n: int) -> list:
    """``n`` colours: Okabe-Ito while they last, else viridis."""
    if n <= len(OKABE_ITO):
        return list(OKABE_ITO[:n])
    return list(matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, n)))


def _days_text(days) -> str:
    days = sorted(days)
    if not days:
        return ""
    if len(days) > 1 and all(b - a == 1 for a, b in itertools.pairwise(days)):
        return f"d{days[0]:g}..{days[-1]:g}"
    return "d" + ",".join(f"{d:g}" for d in days)


def _ld_label(result) -> str:
    """'lymphodepletion (Flu d-5..-3, Cy d-3)': the days stay readable when off the x axis."""
    ld = result.context.regimen.lymphodepletion
    parts = []
    if ld.flu_mg_m2_per_day > 0:
        parts.append(f"Flu {_days_text(ld.flu_days)}")
    if ld.cy_mg_m2 > 0:
        parts.append(f"Cy {_days_text(ld.cy_days)}")
    return f"lymphodepletion ({', '.join(parts)})" if parts else "lymphodepletion"


def _mark_treatment(ax, result, legend=True):
    """Shade the lymphodepletion days, mark each CAR-T infusion and dialysis session."""
    ld = result.context.regimen.lymphodepletion
    for k, day in enumerate(sorted({*ld.flu_days, *ld.cy_days})):
        ax.axvspan(
            day,
            day + 1.0,
            color="0.88",
            zorder=0,
            label=_ld_label(result) if legend and k == 0 else None,
        )
    for k, (day, _cells) in enumerate(result.context.cart_doses):
        ax.axvline(
            day,
            color=OKABE_ITO[6],
            lw=1.0,
            ls="-",
            alpha=0.6,
            label="CAR-T infusion" if legend and k == 0 else None,
        )
    dialysis = result.context.patient.dialysis
    if dialysis is not None:
        t_end = result.t_days[-1]
        days = [d for d in dialysis.session_days if result.t_days[0] <= d <= t_end]
        ax.plot(
            days,
            np.full(len(days), 0.0),
            "|",
            color=OKABE_ITO[3],
            ms=8,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="dialysis session" if legend and days else None,
        )


def plot_result(
    result,
    *,
    lloq_cells_per_ul: float = 0.05,
    aplasia_cells_per_ul: float = 1.0,
    recovery_cells_per_ul: float = 10.0,
    title: str | None = None,
):
    """CAR-T and B cells on log axes, IL-6 below, treatment marked.

    Parameters
    ----------
    result : cartkin.simulate.SimulationResult
    lloq_cells_per_ul : float
        CAR-T lower limit of quantification drawn as a line (flow cytometry, about 0.05-0.1
        cells/uL per MODEL.md section 5).
    aplasia_cells_per_ul, recovery_cells_per_ul : float
        B-cell thresholds drawn as lines (the same defaults as :func:`cartkin.metrics.compute`).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    model = result.model
    roles = model.roles
    has_il6 = roles.get("il6") is not None
    fig = Figure(figsize=(10, 6.5 if has_il6 else 4.2))
    axes = fig.subplots(
        2 if has_il6 else 1,
        1,
        sharex=True,
        gridspec_kw={"height_ratios": [2.2, 1]} if has_il6 else None,
        squeeze=False,
    )
    ax = axes[0, 0]
    t = result.t_days
    cart = result.observables[roles["cart"]]
    cart_color, b_color = OKABE_ITO[0], OKABE_ITO[2]
    ax.semilogy(t, _masked(cart), color=cart_color, lw=2, label=f"CAR-T ({_CELLS})")
    ax.axhline(
        lloq_cells_per_ul,
        color=cart_color,
        ls="--",
        lw=0.8,
        label=f"CAR-T LLOQ {lloq_cells_per_ul:g} {_CELLS}",
    )
    if roles.get("b_cells") is not None:
        b = result.observables[roles["b_cells"]]
        ax.semilogy(t, _masked(b), color=b_color, lw=2, label=f"CD19+ B cells ({_CELLS})")
        ax.axhline(
            aplasia_cells_per_ul,
            color=b_color,
            ls=":",
            lw=0.8,
            label=f"B-cell aplasia < {aplasia_cells_per_ul:g} {_CELLS}",
        )
        ax.axhline(
            recovery_cells_per_ul,
            color=b_color,
            ls="--",
            lw=0.8,
            label=f"B-cell recovery \u2265 {recovery_cells_per_ul:g} {_CELLS}",
        )
    _mark_treatment(ax, result)
    ax.set_ylabel(f"{_CELLS} blood")
    ax.set_ylim(bottom=_DISPLAY_FLOOR)
    ax.set_xlim(t[0], t[-1])  # from where the curves start
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(True, which="major", alpha=0.3)
    label = getattr(result, "label", None)
    ax.set_title(
        title or (f"{model.name}: {label}" if label and label != model.name else model.name)
    )
    if has_il6:
        ax2 = axes[1, 0]
        ax2.plot(t, result.observables[roles["il6"]], color=OKABE_ITO[1], lw=1.5)
        ax2.set_ylabel("IL-6 (pg/mL)")
        ax2.grid(True, alpha=0.3)
        _mark_treatment(ax2, result, legend=False)
    axes[-1, 0].set_xlabel("days after CAR-T infusion")
    # fixed margins (tight_layout costs about half a second per figure), in inches so the
    # x label fits whatever the figure height
    height = fig.get_figheight()
    fig.subplots_adjust(
        left=0.08, right=0.72, top=1 - _TOP_IN / height, bottom=_BOTTOM_IN / height, hspace=0.08
    )
    return fig


def plot_comparison(
    results: Sequence,
    labels: Sequence[str] | None = None,
    *,
    title: str | None = None,
    lloq_cells_per_ul: float = 0.05,
    aplasia_cells_per_ul: float = 1.0,
    recovery_cells_per_ul: float = 10.0,
):
    """Overlay several results (doses, kidney function, models): CAR-T and B cells.

    The treatment marks (lymphodepletion days, infusions, dialysis) are those of the first
    result; thresholds are grey lines named in a legend below the panels (dashed: LLOQ and
    recovery, dotted: aplasia). Arms take the Okabe-Ito colour-blind-safe palette.

    Parameters
    ----------
    results : sequence of SimulationResult
    labels : sequence of str, optional
        One per result; default the results' ``label``.
    title : str, optional
    lloq_cells_per_ul, aplasia_cells_per_ul, recovery_cells_per_ul : float
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
    fig = Figure(figsize=(11 if any_b else 6, 4.8))
    axes = fig.subplots(1, 2 if any_b else 1, squeeze=False)
    colors = arm_colors(len(results))
    for r, label, c in zip(results, labels, colors, strict=True):
        roles = r.model.roles
        axes[0, 0].semilogy(r.t_days, _masked(r.observables[roles["cart"]]), color=c, label=label)
        if any_b and roles.get("b_cells") is not None:
            axes[0, 1].semilogy(
                r.t_days, _masked(r.observables[roles["b_cells"]]), color=c, label=label
            )
    axes[0, 0].set_ylabel(f"CAR-T ({_CELLS})")
    thresholds = [
        axes[0, 0].axhline(
            lloq_cells_per_ul, color="0.4", ls="--", lw=0.8,
            label=f"CAR-T LLOQ {lloq_cells_per_ul:g} {_CELLS}",
        )
    ]  # fmt: skip
    if any_b:
        axes[0, 1].set_ylabel(f"CD19+ B cells ({_CELLS})")
        thresholds.append(
            axes[0, 1].axhline(
                aplasia_cells_per_ul, color="0.4", ls=":", lw=0.8,
                label=f"B-cell aplasia < {aplasia_cells_per_ul:g} {_CELLS}",
            )
        )  # fmt: skip
        thresholds.append(
            axes[0, 1].axhline(
                recovery_cells_per_ul, color="0.4", ls="--", lw=0.8,
                label=f"B-cell recovery \u2265 {recovery_cells_per_ul:g} {_CELLS}",
            )
        )  # fmt: skip
    t_start = min(r.t_days[0] for r in results)  # from where the curves start
    t_end = max(r.t_days[-1] for r in results)
    for ax in axes[0]:
        _mark_treatment(ax, results[0], legend=False)
        ax.set_ylim(bottom=_DISPLAY_FLOOR)
        ax.set_xlim(t_start, t_end)
        ax.set_xlabel("days after CAR-T infusion")
        ax.grid(True, alpha=0.3)
    arm_handles = axes[0, 0].get_lines()[: len(results)]
    axes[0, 0].legend(handles=arm_handles, fontsize=7)
    fig.legend(
        handles=thresholds,
        loc="lower center",
        ncol=len(thresholds),
        fontsize=7,
        frameon=False,
        title=f"grey lines (treatment marks: {_ld_label(results[0])}, first arm)",
        title_fontsize=7,
    )
    if title:
        fig.suptitle(title)
    height = fig.get_figheight()
    fig.subplots_adjust(
        left=0.07,
        right=0.98,
        top=1 - (0.55 if title else 0.25) / height,
        bottom=1.05 / height,
        wspace=0.25,
    )
    return fig
