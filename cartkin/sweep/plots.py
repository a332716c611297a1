"""Figures of a sweep summary: metric heatmaps with fludarabine AUC iso-lines, probability maps,
quantile bands along an axis.

Every figure has units on its colour bar or y axis, labelled axes (the dotted scenario key with
its unit suffix), a log scale for log-spaced or wide positive axes (the CAR-T dose), and names
the values at which any further axes are held in its title.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

from cartkin.covariates.kidney import AUC_MARKS_MG_H_PER_L

__all__ = ["bands", "heatmap", "plot_all", "probability_map", "trajectories"]

#: What each metric is, for figure titles (definitions in cartkin.metrics).
METRIC_TITLES = {
    "CMAX": "peak CAR-T",
    "TMAX": "time of the CAR-T peak",
    "CMAX_COPIES": "peak transgene copies",
    "CMAX_PCT_T": "peak CAR-T share of T cells",
    "AUC0_28D": "CAR-T AUC days 0-28",
    "CLST": "last CAR-T level >= LLOQ",
    "TLST": "time of the last CAR-T level >= LLOQ",
    "PERSIST": "CAR-T persistence >= LLOQ",
    "B_NADIR": "B-cell nadir",
    "B_TNADIR": "time of the B-cell nadir",
    "TAPLASIA": "time to B-cell aplasia",
    "APLASIA_DUR": "B-cell aplasia duration",
    "TRECOV": "time to B-cell recovery",
    "IL6_MAX": "IL-6 peak",
    "IL6_TMAX": "time of the IL-6 peak",
    "IL6_T_ABOVE": "time with IL-6 above threshold",
    "ADSDNA_D90_PCT": "anti-dsDNA at day 90, % of day 0",
    "FLU_AUC": "cumulative fludarabine AUC",
}

_PROBABILITIES = {
    "p_flu_auc_in_window": "P(FLU_AUC in {lo:g}-{hi:g} mg.h/L)",
    "p_recovery_by_day": "P(B-cell recovery by day {day:g} | aplasia)",
    "p_aplasia": "P(B-cell aplasia)",
    "p_failed": "P(failed solve)",
}


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _numeric(values) -> bool:
    return np.asarray(values).dtype.kind == "f"


def _edges(values, log):
    v = np.log10(values) if log else np.asarray(values, dtype=float)
    if v.size == 1:
        e = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        mid = (v[1:] + v[:-1]) / 2
        e = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return 10**e if log else e


def _axis_positions(summary, k):
    """(centres, edges, is_log, tick labels or None) of axis k."""
    _, values, log = summary.axes[k]
    monotonic = _numeric(values) and (
        values.size == 1 or np.all(np.diff(values) > 0) or np.all(np.diff(values) < 0)
    )
    if monotonic:
        return values.astype(float), _edges(values, log), log, None
    idx = np.arange(values.size, dtype=float)
    labels = [f"{x:g}" if _numeric(values) else str(x) for x in values]
    return idx, _edges(idx, False), False, labels


_AXIS_LABELS = {
    "cart.cells_per_kg": "CAR-T dose (cells/kg)",
    "cart.flat_cells": "CAR-T dose (cells)",
    "patient.egfr_ml_min_173m2": "eGFR (mL/min/1.73 m2)",
    "patient.crcl_ml_min": "CrCL (mL/min)",
    "patient.serum_creatinine_mg_dl": "serum creatinine (mg/dL)",
    "patient.weight_kg": "body weight (kg)",
    "patient.age_years": "age (years)",
    "lymphodepletion.flu_mg_m2_per_day": "fludarabine (mg/m2/day)",
    "lymphodepletion.flu_rule": "fludarabine dose rule",
    "lymphodepletion.flu_target_auc_mg_h_per_l": "fludarabine AUC target (mg.h/L)",
    "lymphodepletion.cy_mg_m2": "cyclophosphamide (mg/m2)",
    "clearance_model": "fludarabine clearance model",
    "scenario.clearance_model": "fludarabine clearance model",
}


def _label(name: str) -> str:
    """Axis label with unit; the dotted key itself where no friendlier label is known."""
    return _AXIS_LABELS.get(name, name)


def _slice(summary, x, y, fixed):
    """Index tuple selecting axes x (and y) with the others held at ``fixed`` (default index 0)."""
    fixed = dict(fixed or {})
    index, held = [], []
    for k, (name, values, _) in enumerate(summary.axes):
        if k in (x, y):
            index.append(slice(None))
            continue
        i = fixed.get(name, 0)
        index.append(i)
        value = f"{values[i]:g}" if _numeric(values) else str(values[i])
        held.append(f"{_label(name).split(' (')[0]} = {value}")
    return tuple(index), held


def _axis_index(summary, name, default):
    names = [n for n, _, _ in summary.axes]
    if name is None:
        return default
    if name not in names:
        raise ValueError(f"axis {name!r}: expected one of {names}")
    return names.index(name)


def _grid(summary, field, x, y, fixed):
    index, held = _slice(summary, x, y, fixed)
    z = summary.fields[field][index]
    return (z if x < y else z.T), held  # rows follow x, columns follow y


def _mesh(ax, summary, z, x, y, **kwargs):
    cx, ex, logx, lx = _axis_positions(summary, x)
    cy, ey, logy, ly = _axis_positions(summary, y)
    mesh = ax.pcolormesh(ex, ey, z.T, shading="flat", **kwargs)
    for setter, log in ((ax.set_xscale, logx), (ax.set_yscale, logy)):
        if log:
            setter("log")
    if lx:
        ax.set_xticks(cx, lx)
    if ly:
        ax.set_yticks(cy, ly)
    ax.set_xlabel(_label(summary.axes[x][0]))
    ax.set_ylabel(_label(summary.axes[y][0]))
    return mesh, cx, cy


def _iso_auc(ax, summary, x, y, fixed, cx, cy):
    """Contours of the median FLU_AUC at the 13.8/14/20 mg.h/L marks."""
    if "FLU_AUC" not in summary.metrics or len(cx) < 2 or len(cy) < 2:
        return
    auc, _ = _grid(summary, "FLU_AUC_median", x, y, fixed)
    if not np.isfinite(auc).all():
        return
    levels = [m for m in AUC_MARKS_MG_H_PER_L if auc.min() < m < auc.max()]
    if not levels:
        return
    cs = ax.contour(cx, cy, auc.T, levels=levels, colors="white", linewidths=1.2,
                    linestyles=["--", ":", "-"][: len(levels)])  # fmt: skip
    ax.clabel(cs, fmt=lambda v: f"FLU AUC {v:g}", fontsize=7)


def heatmap(summary, metric, x=None, y=None, stat="median", fixed=None, ax=None):
    """Heatmap of a metric's ``stat`` over two axes, with fludarabine AUC iso-lines.

    Parameters
    ----------
    summary : cartkin.sweep.report.Summary
    metric : str
        A stored metric (``"TRECOV"``).
    x, y : str, optional
        Axis names (default: the first two axes).
    stat : {"median", "q05", "q95"}
    fixed : dict, optional
        ``{axis name: index}`` for further axes (default index 0).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    xi, yi = _axis_index(summary, x, 0), _axis_index(summary, y, 1)
    z, held = _grid(summary, f"{metric}_{stat}", xi, yi, fixed)
    fig = ax.figure if ax is not None else plt.figure(figsize=(6.4, 4.8))
    ax = ax or fig.add_subplot()
    mesh, cx, cy = _mesh(ax, summary, z, xi, yi, cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=f"{metric} {stat} ({summary.metrics[metric]})")
    _iso_auc(ax, summary, xi, yi, fixed, cx, cy)
    title = (
        f"{metric} ({METRIC_TITLES.get(metric, metric)}): {stat} over "
        f"{int(summary.attrs['n_patients'])} virtual patients per point"
    )
    ax.set_title(title + (f"\n{', '.join(held)}" if held else ""), fontsize=9)
    fig.tight_layout()
    return fig


def probability_map(summary, field="p_flu_auc_in_window", x=None, y=None, fixed=None, ax=None):
    """Map of a probability (``p_flu_auc_in_window``, ``p_recovery_by_day``, ``p_failed``)
    over two axes, each cell annotated with its value. Arguments as in :func:`heatmap`."""
    plt = _plt()
    xi, yi = _axis_index(summary, x, 0), _axis_index(summary, y, 1)
    z, held = _grid(summary, field, xi, yi, fixed)
    fig = ax.figure if ax is not None else plt.figure(figsize=(6.4, 4.8))
    ax = ax or fig.add_subplot()
    mesh, cx, cy = _mesh(ax, summary, z, xi, yi, cmap="RdYlGn" if field != "p_failed" else "Reds",
                         vmin=0.0, vmax=1.0)  # fmt: skip
    a = summary.attrs
    label = _PROBABILITIES[field].format(
        lo=a["flu_auc_window_mg_h_per_l"][0], hi=a["flu_auc_window_mg_h_per_l"][1],
        day=float(a["recovery_by_day"]),
    )  # fmt: skip
    fig.colorbar(mesh, ax=ax, label=label)
    if z.size <= 150:
        for i, xv in enumerate(cx):
            for j, yv in enumerate(cy):
                if np.isfinite(z[i, j]):
                    ax.text(xv, yv, f"{z[i, j]:.2f}", ha="center", va="center", fontsize=7)
    _iso_auc(ax, summary, xi, yi, fixed, cx, cy)
    ax.set_title(label + (f"\n{', '.join(held)}" if held else ""), fontsize=9)
    fig.tight_layout()
    return fig


def bands(summary, metric, x=None, hue=None, fixed=None, ax=None):
    """Median and 5-95% band of a metric along one axis, one line per value of ``hue``.

    Parameters as in :func:`heatmap`; ``hue`` defaults to the second axis (if any).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    xi = _axis_index(summary, x, 0)
    hi = _axis_index(summary, hue, 1 if len(summary.axes) > 1 else None)
    fig = ax.figure if ax is not None else plt.figure(figsize=(6.4, 4.2))
    ax = ax or fig.add_subplot()
    cx, _, logx, lx = _axis_positions(summary, xi)
    hue_values = summary.axes[hi][1] if hi is not None else [None]
    _, held = _slice(summary, xi, hi, fixed)
    for h, hv in enumerate(hue_values):
        fix = dict(fixed or {})
        if hi is not None:
            fix[summary.axes[hi][0]] = h
        index, _ = _slice(summary, xi, None, fix)
        med = summary.fields[f"{metric}_median"][index]
        q05 = summary.fields[f"{metric}_q05"][index]
        q95 = summary.fields[f"{metric}_q95"][index]
        name = None if hv is None else f"{hv:g}" if _numeric(hue_values) else str(hv)
        (line,) = ax.plot(cx, med, marker="o", ms=3, label=name)
        if len(hue_values) <= 3:
            ax.fill_between(cx, q05, q95, color=line.get_color(), alpha=0.2, lw=0)
        else:  # many overlapping bands are unreadable: draw their edges
            for q in (q05, q95):
                ax.plot(cx, q, color=line.get_color(), lw=0.8, ls="--", alpha=0.7)
    if logx:
        ax.set_xscale("log")
    if lx:
        ax.set_xticks(cx, lx)
    ax.set_xlabel(_label(summary.axes[xi][0]))
    ax.set_ylabel(f"{metric} ({summary.metrics[metric]})")
    if hi is not None:
        ax.legend(title=_label(summary.axes[hi][0]), fontsize=7, title_fontsize=7)
    ax.set_title(f"{metric} ({METRIC_TITLES.get(metric, metric)}): median and 5-95% band"
                 + (f"\n{', '.join(held)}" if held else ""),
                 fontsize=9)  # fmt: skip
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


_TRAJECTORY_ROLES = (("cart", "CAR-T"), ("b_cells", "B cells"), ("il6", "IL-6"))


def trajectories(summary, fixed=None):
    """The stored virtual-patient trajectories (``[sweep] trajectories``): one panel per role
    (CAR-T, B cells, IL-6), thin lines per patient and a thick median, one colour per value of
    the first axis; further axes held at ``fixed`` (default index 0).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import zarr

    from cartkin import models

    plt = _plt()
    group = zarr.open_group(str(summary.store), mode="r")
    model = models.get(summary.attrs["model"])
    t = np.asarray(group["t_days"][...])
    roles = [(model.roles[r], label) for r, label in _TRAJECTORY_ROLES if model.roles.get(r)]
    fig, axes = plt.subplots(1, len(roles), figsize=(4.2 * len(roles), 3.8), squeeze=False)
    name0, values0, _ = summary.axes[0] if summary.axes else ("", [None], False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    held, top = [], {}
    for i, v in enumerate(values0):
        index, held = _slice(summary, 0, None, fixed) if summary.axes else ((), [])
        index = (i, *index[1:]) if summary.axes else ()
        ok = np.asarray(group["traj_status"][index]) == 0
        for ax, (obs, _) in zip(axes[0], roles, strict=True):
            y = np.asarray(group[f"traj_{obs}"][index])[ok]
            color = colors[i % len(colors)]
            if y.size:
                ax.plot(t, y.T, color=color, lw=0.4, alpha=0.25)
                name = None if v is None else f"{v:.3g}" if _numeric(values0) else str(v)
                ax.plot(t, np.median(y, axis=0), color=color, lw=2, label=name)
                top[obs] = max(top.get(obs, 0.0), float(np.nanmax(y)))
    for ax, (obs, label) in zip(axes[0], roles, strict=True):
        unit = next(o.unit for o in model.observables if o.name == obs)
        ax.set_yscale("log")
        if top.get(obs, 0) > 0:  # six decades below the highest value: deeper is not readable
            ax.set_ylim(bottom=max(ax.get_ylim()[0], top[obs] * 1e-6))
        ax.set_xlabel("days after CAR-T infusion")
        ax.set_ylabel(f"{label} ({unit})")
        ax.grid(alpha=0.3)
    if summary.axes:
        axes[0][0].legend(title=_label(name0), fontsize=7, title_fontsize=7)
    m = int(summary.attrs.get("trajectories", 0))
    fig.suptitle(f"{m} virtual patients per grid point (thin) and their median (thick)"
                 + (f"; {', '.join(held)}" if held else ""), fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


def plot_all(summary, directory, max_panels: int = 4) -> list[Path]:
    """Write the standard figures of a sweep (PNG) into ``directory``; returns their paths.

    With two or more axes: one heatmap per metric over the first two axes and the probability
    maps, for each combination of the further axes' values (the first ``max_panels``
    combinations; file names end in ``__<axis>=<value>``). With one or more axes: one band plot
    per metric along the first axis (one line per value of the second, further axes at their
    first value).
    """
    plt = _plt()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name):
        path = directory / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    if len(summary.axes) >= 2:
        extra = summary.axes[2:]
        combos = list(itertools.product(*(range(len(v)) for _, v, _ in extra)))[:max_panels]
        for combo in combos:
            fixed = {name: i for (name, _, _), i in zip(extra, combo, strict=True)}
            tag = "".join(f"__{_slug(name)}={_slug(str(v[i]) if not _numeric(v) else f'{v[i]:g}')}"
                          for (name, v, _), i in zip(extra, combo, strict=True))  # fmt: skip
            for m in summary.metrics:
                save(heatmap(summary, m, fixed=fixed), f"heatmap_{m}{tag}.png")
            maps = ["p_failed"]
            maps += ["p_flu_auc_in_window"] if "FLU_AUC" in summary.metrics else []
            maps += ["p_aplasia"] if "TAPLASIA" in summary.metrics else []
            maps += ["p_recovery_by_day"] if "TRECOV" in summary.metrics else []
            for field in maps:
                save(probability_map(summary, field, fixed=fixed), f"{field}{tag}.png")
    if summary.axes:
        for m in summary.metrics:
            save(bands(summary, m), f"bands_{m}.png")
    if int(summary.attrs.get("trajectories", 0)) > 0:
        save(trajectories(summary), "trajectories.png")
    return written


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")
