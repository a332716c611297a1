"""Figures of simulation results: the only module that imports matplotlib.

Every function works on any model through its ``roles`` (which observable is CAR-T, B cells,
IL-6), returns the matplotlib ``Figure`` and leaves saving to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_comparison", "plot_result"]

#: Default display floors so that log axes show aplasia instead of dropping zeros.
_CART_FLOOR = 1e-3
_B_FLOOR = 1e-2


def _positive(values, floor):
    return np.maximum(np.asarray(values, dtype=float), floor)


def _mark_treatment(ax, result):
    """Shade the lymphodepletion window and mark each CAR-T infusion."""
    regimen = result.context.regimen
    ld = regimen.lymphodepletion
    days = list(ld.flu_days) + list(ld.cy_days)
    t0 = result.t_days[0]
    if days:
        start, end = min(days), max(days) + 1.0
        if end > t0:  # only visible when the axis reaches back before infusion
            ax.axvspan(max(start, t0), end, color="0.85", zorder=0, label="lymphodepletion")
    for k, (day, _cells) in enumerate(result.context.cart_doses):
        ax.axvline(day, color="tab:red", lw=0.8, ls=":", label="CAR-T infusion" if k == 0 else None)


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
    fig, axes = plt.subplots(
        2 if has_il6 else 1,
        1,
        figsize=(8, 6.5 if has_il6 else 4.2),
        sharex=True,
        gridspec_kw={"height_ratios": [2.2, 1]} if has_il6 else None,
        squeeze=False,
    )
    ax = axes[0, 0]
    t = result.t_days
    cart = result.observables[roles["cart"]]
    ax.semilogy(t, _positive(cart, _CART_FLOOR), color="tab:blue", lw=2, label="CAR-T (cells/uL)")
    ax.axhline(
        lloq_cells_per_ul,
        color="tab:blue",
        ls="--",
        lw=0.8,
        label=f"CAR-T LLOQ {lloq_cells_per_ul:g}",
    )
    if roles.get("b_cells") is not None:
        b = result.observables[roles["b_cells"]]
        ax.semilogy(
            t, _positive(b, _B_FLOOR), color="tab:green", lw=2, label="CD19+ B cells (cells/uL)"
        )
        ax.axhline(
            aplasia_cells_per_ul,
            color="tab:green",
            ls=":",
            lw=0.8,
            label=f"B-cell aplasia < {aplasia_cells_per_ul:g}",
        )
        ax.axhline(
            recovery_cells_per_ul,
            color="tab:green",
            ls="--",
            lw=0.8,
            label=f"B-cell recovery >= {recovery_cells_per_ul:g}",
        )
    _mark_treatment(ax, result)
    ax.set_ylabel("cells/uL blood")
    ax.set_ylim(bottom=_CART_FLOOR)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    ax.grid(True, which="major", alpha=0.3)
    label = getattr(result, "label", None)
    ax.set_title(title or (f"{model.name}: {label}" if label else model.name))
    if has_il6:
        ax2 = axes[1, 0]
        ax2.plot(t, result.observables[roles["il6"]], color="tab:orange", lw=1.5)
        ax2.set_ylabel("IL-6 (pg/mL)")
        ax2.grid(True, alpha=0.3)
        _mark_treatment(ax2, result)
    axes[-1, 0].set_xlabel("days after CAR-T infusion")
    fig.tight_layout()
    return fig


def plot_comparison(
    results: Sequence, labels: Sequence[str] | None = None, *, title: str | None = None
):
    """Overlay several results (doses, kidney function, models): CAR-T and B cells.

    Parameters
    ----------
    results : sequence of SimulationResult
    labels : sequence of str, optional
        One per result; default the results' ``label``.
    title : str, optional

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
    fig, axes = plt.subplots(1, 2 if any_b else 1, figsize=(11 if any_b else 6, 4.2), squeeze=False)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(results)))
    for r, label, c in zip(results, labels, colors, strict=True):
        roles = r.model.roles
        axes[0, 0].semilogy(
            r.t_days, _positive(r.observables[roles["cart"]], _CART_FLOOR), color=c, label=label
        )
        if any_b and roles.get("b_cells") is not None:
            axes[0, 1].semilogy(
                r.t_days, _positive(r.observables[roles["b_cells"]], _B_FLOOR), color=c, label=label
            )
    axes[0, 0].set_ylabel("CAR-T (cells/uL)")
    axes[0, 0].set_ylim(bottom=_CART_FLOOR)
    if any_b:
        axes[0, 1].set_ylabel("CD19+ B cells (cells/uL)")
    for ax in axes[0]:
        ax.set_xlabel("days after CAR-T infusion")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
