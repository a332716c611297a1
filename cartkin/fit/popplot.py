"""Figures of a population fit: convergence, goodness of fit, NPDE, visual predictive check.

Each function takes a :class:`cartkin.fit.population.PopulationFitResult`, returns a matplotlib
``Figure`` (built without pyplot, as :mod:`cartkin.plot`) and leaves saving to the caller;
:func:`write_figures` saves them all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import norm

__all__ = ["plot_convergence", "plot_gof", "plot_npde", "write_figures"]


def plot_convergence(result) -> Figure:
    """Every population parameter against the SAEM iteration, phases marked."""
    traj, names = result.trajectory, result.trajectory_names
    n = len(names)
    cols = min(4, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(3.0 * cols, 2.2 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    o = result.options
    k_avg = o["n_burn"] + o["n_explore"]
    for ax, k in zip(axes, range(n), strict=False):
        ax.plot(np.arange(1, traj.shape[0] + 1), traj[:, k], lw=0.9)
        ax.axvline(k_avg, color="0.5", ls="--", lw=0.8)
        ax.set_title(names[k], fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(
        f"SAEM trajectory ({result.model}); dashed: start of the averaging phase", fontsize=10
    )
    return fig


def plot_gof(result) -> Figure:
    """Goodness of fit, one row per observable (each on its own axes and scale): observed vs
    PRED and vs IPRED (log axes, line of identity; censored records as open triangles at the
    limit), and IWRES against time with its 95% reference lines (+/- 1.96)."""
    c = result.columns
    names = list(dict.fromkeys(np.asarray(c["observable"]).tolist()))
    fig = Figure(figsize=(11.0, 3.3 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), 3, squeeze=False)
    for row, name in zip(axes, names, strict=True):
        sel = np.asarray(c["observable"]) == name
        cens = (c["cens"] != 0) & sel
        kept = (c["cens"] == 0) & sel
        for ax, key in zip(row[:2], ("pred", "ipred"), strict=True):
            ax.loglog(c[key][kept], c["dv"][kept], "o", ms=3, alpha=0.6, label="observed")
            ax.loglog(c[key][cens], c["dv"][cens], "v", ms=4, mfc="none", label="censored (limit)")
            x = c[key][sel]
            finite = x[np.isfinite(x) & (x > 0)]
            dv = c["dv"][sel]
            if finite.size:
                lim = [min(finite.min(), dv.min()), max(finite.max(), dv.max())]
                ax.plot(lim, lim, "k-", lw=0.8)
            ax.set_xlabel(key.upper())
            ax.set_ylabel(f"DV: {name}")
        row[0].legend(frameon=False, fontsize=8)
        row[2].plot(c["time"][sel], c["iwres"][sel], "o", ms=3, alpha=0.6)
        row[2].axhline(0, color="k", lw=0.8)
        for v in (-1.96, 1.96):
            row[2].axhline(v, color="0.5", ls="--", lw=0.8)
        row[2].set_xlabel("time (days)")
        row[2].set_ylabel(f"IWRES: {name}")
    fig.suptitle(f"Goodness of fit ({result.model})", fontsize=10)
    return fig


def plot_npde(result) -> Figure:
    """NPDE, one row per observable: histogram against N(0, 1), against time with the 95%
    reference lines, and a normal QQ plot."""
    c = result.columns
    npde_all = np.asarray(c["npde"], dtype=float)
    names = list(dict.fromkeys(np.asarray(c["observable"]).tolist()))
    fig = Figure(figsize=(11.0, 3.2 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), 3, squeeze=False)
    x = np.linspace(-4, 4, 200)
    for row, name in zip(axes, names, strict=True):
        sel = np.asarray(c["observable"]) == name
        npde = np.where(sel, npde_all, np.nan)
        ok = np.isfinite(npde)
        row[0].hist(npde[ok], bins=25, density=True, alpha=0.6)
        row[0].plot(x, norm.pdf(x), "k-", lw=1)
        row[0].set_xlabel(f"NPDE: {name}")
        cens = c["cens"] != 0
        row[1].plot(c["time"][ok & ~cens], npde[ok & ~cens], "o", ms=3, alpha=0.6,
                    label="observed")  # fmt: skip
        row[1].plot(c["time"][ok & cens], npde[ok & cens], "v", ms=4, mfc="none",
                    label="censored (imputed)")  # fmt: skip
        for v in (-1.96, 0.0, 1.96):
            row[1].axhline(v, color="0.5", ls="--" if v else "-", lw=0.8)
        row[1].set_xlabel("time (days)")
        row[1].set_ylabel(f"NPDE: {name}")
        row[1].legend(frameon=False, fontsize=8)
        q = np.sort(npde[ok])
        theo = norm.ppf((np.arange(1, q.size + 1) - 0.5) / max(q.size, 1))
        row[2].plot(theo, q, "o", ms=3)
        row[2].plot([-4, 4], [-4, 4], "k-", lw=0.8)
        row[2].set_xlabel("N(0,1) quantile")
        row[2].set_ylabel(f"NPDE quantile: {name}")
    return fig


def write_figures(result, directory) -> list[Path]:
    """Save ``convergence.png``, ``gof.png`` and (when computed) ``npde.png`` in ``directory``.

    Returns
    -------
    list of Path
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures = {"convergence": plot_convergence(result), "gof": plot_gof(result)}
    if np.any(np.isfinite(np.asarray(result.columns["npde"], dtype=float))):
        figures["npde"] = plot_npde(result)
    paths = []
    for name, fig in figures.items():
        paths.append(directory / f"{name}.png")
        fig.savefig(paths[-1], dpi=100)
    return paths
