"""Figures of a fit: individual fits, observed vs predicted, residuals, profiles, VPC.

Every function takes plain tables, not a ``FitResult``, so it draws any tool's output:

- the *predictions table*: a pandas DataFrame with one row per observation and the columns
  ``id``, ``time`` (days; ``time_days`` is accepted too), ``observable``, ``dv``, ``pred``
  (population prediction), ``ipred`` (individual prediction), ``cens`` (1 = below the limit),
  optionally ``limit`` and ``res`` (a residual, for example the log-scale IWRES). For a censored
  record the limit is drawn (``limit`` where given, else ``dv``, which then holds the limit);
- dense model curves for the individual fits (optional): ``id``, ``time``, ``observable``,
  ``ipred`` (and ``pred``);
- profiles: ``{parameter: table with value and objective}`` (objective = -2 log-likelihood);
- VPC: observations (``time``, ``dv``, ``cens``, ``limit``) and simulated replicates of the
  same design (``replicate``, ``time``, ``dv``).

Censored records are drawn as what they are: an open marker at the limit with an arrow pointing
down (the value lies somewhere below), never as a point at the limit or at half of it.
Figures are built without pyplot (no global state); each function returns a matplotlib
``Figure`` and leaves saving to the caller.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

__all__ = [
    "individual_fit_pages",
    "plot_individual_fits",
    "plot_observed_vs_predicted",
    "plot_profiles",
    "plot_residuals_vs_time",
    "plot_vpc",
    "write_figures",
]

_OBS_COLOR = "black"
_PRED_COLOR = "tab:blue"
_IPRED_COLOR = "tab:red"
_ARROW_DECADES = 0.35  # length of a censoring arrow on a log axis, in decades


def _table(frame, name="predictions") -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    frame = frame.copy()
    if "time" not in frame and "time_days" in frame:
        frame["time"] = frame["time_days"]
    if "dv" not in frame and "value" in frame:
        frame["dv"] = frame["value"]
    if "cens" not in frame:
        frame["cens"] = 0
    for col in ("time", "dv"):
        if col not in frame:
            raise ValueError(f"{name} table: no column {col!r}; columns are {list(frame.columns)}")
    frame["cens"] = frame["cens"].fillna(0).astype(int)
    if "limit" in frame:
        at = frame["limit"].where(frame["cens"] == 1)
        frame["shown"] = at.fillna(frame["dv"])
    else:
        frame["shown"] = frame["dv"]
    return frame


def _select(frame, observable):
    if "observable" not in frame:
        return frame, observable or ""
    names = list(dict.fromkeys(frame["observable"]))
    if observable is None:
        observable = names[0]
    elif observable not in names:
        raise ValueError(f"observable {observable!r} not in the table; it has {names}")
    return frame[frame["observable"] == observable], observable


def _censored(ax, x, y, *, color=_OBS_COLOR, label=None, log=True):
    """Open markers at the limit with a downward arrow: the value lies below."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0:
        return
    ax.scatter(x, y, s=28, facecolors="none", edgecolors=color, zorder=3, label=label)
    for xi, yi in zip(x, y, strict=True):
        if not (math.isfinite(yi) and (yi > 0 or not log)):
            continue
        end = yi / 10**_ARROW_DECADES if log else yi - 0.1 * abs(yi or 1.0)
        ax.annotate(
            "",
            xy=(xi, end),
            xytext=(xi, yi),
            arrowprops={"arrowstyle": "->", "color": color, "lw": 0.8},
            zorder=3,
        )


def _observed(ax, frame, xcol, *, log=True):
    kept = frame[frame["cens"] == 0]
    ax.scatter(kept[xcol], kept["shown"], s=18, color=_OBS_COLOR, zorder=3, label="observed")
    cens = frame[frame["cens"] == 1]
    _censored(ax, cens[xcol], cens["shown"], label="below limit" if len(cens) else None, log=log)


def plot_individual_fits(
    predictions,
    *,
    curves=None,
    observable=None,
    observables=None,
    ids=None,
    ncols=4,
    log=True,
    unit="",
    title=None,
) -> Figure:
    """One panel per subject and observable: observations, censored records, PRED and IPRED.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The predictions table (module docstring).
    curves : pandas.DataFrame, optional
        Dense curves ``id, time, observable, ipred[, pred]`` over the whole time range (peaks
        between visits show); without it the predictions at the observation times are joined
        by lines.
    observable : str, optional
        Which observable to draw (default: the first in the table).
    observables : sequence of str, optional
        Draw these observables, one row of panels each under every subject (facets); overrides
        ``observable``.
    ids : sequence of str, optional
        Subjects to draw, in order (default: all, in table order).
    ncols : int
        Subjects per row.
    log : bool
        Log-scale y axes (the CAR-T habit).
    unit : str
        Unit for the y label (one observable only).
    title : str, optional
        Figure title (for example the page and the IDs it holds).

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = _table(predictions)
    if observables is None:
        _, first = _select(table, observable)
        observables = [first]
    else:
        observables = [_select(table, name)[1] for name in observables]
    ids = list(dict.fromkeys(table["id"])) if ids is None else list(ids)
    ids = [str(i) for i in ids]
    if not ids:
        raise ValueError("plot_individual_fits: no subjects to draw")
    dense = None
    if curves is not None:
        curves = curves if isinstance(curves, pd.DataFrame) else pd.DataFrame(curves)
        dense = _table(curves.assign(dv=np.nan), "curves")
    n_obs = len(observables)
    ncols = max(1, min(ncols, len(ids)))
    block_rows = math.ceil(len(ids) / ncols)
    nrows = block_rows * n_obs
    fig = Figure(figsize=(3.0 * ncols, 2.2 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for k, pid in enumerate(ids):
        for j, name in enumerate(observables):
            ax = axes[(k // ncols) * n_obs + j, k % ncols]
            ax.set_visible(True)
            sub = table[(table["id"].astype(str) == pid)]
            if "observable" in sub:
                sub = sub[sub["observable"] == name]
            sub = sub.sort_values("time")
            line = sub
            if dense is not None:
                line = dense[dense["id"].astype(str) == pid]
                if "observable" in line:
                    line = line[line["observable"] == name]
                line = line.sort_values("time")
            styles = (("pred", _PRED_COLOR, "PRED", "--"), ("ipred", _IPRED_COLOR, "IPRED", "-"))
            for col, color, label, ls in styles:
                if col in line:
                    y = line[col].to_numpy(float)
                    y = np.where(y > 0, y, np.nan) if log else y
                    ax.plot(line["time"], y, color=color, lw=1.2, ls=ls, label=label)
            _observed(ax, sub, "time", log=log)
            if log:
                ax.set_yscale("log")
            ax.set_title(f"ID {pid}" + (f": {name}" if n_obs > 1 else ""), fontsize=8)
            if k % ncols == 0:
                label = name if n_obs > 1 else f"{name} {f'[{unit}]' if unit else ''}".strip()
                ax.set_ylabel(label, fontsize=7)
            ax.tick_params(labelsize=7)
            if k >= len(ids) - ncols and j == n_obs - 1:  # the lowest panel of its column
                ax.set_xlabel("days after CAR-T infusion", fontsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(len(labels), 1), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def individual_fit_pages(predictions, *, curves=None, ids_per_page=16, ncols=4, log=True):
    """Individual fits of every subject over as many pages as needed, faceted by observable.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The predictions table (module docstring).
    curves : pandas.DataFrame, optional
        Dense curves (see :func:`plot_individual_fits`).
    ids_per_page : int
        Subjects per page.
    ncols : int
        Subjects per row.
    log : bool
        Log-scale y axes.

    Returns
    -------
    list of matplotlib.figure.Figure
        One page per ``ids_per_page`` subjects, titled with the IDs it holds.
    """
    if ids_per_page < 1:
        raise ValueError(f"ids_per_page = {ids_per_page!r}: expected an integer >= 1")
    table = _table(predictions)
    ids = list(dict.fromkeys(table["id"].astype(str)))
    names = list(dict.fromkeys(table["observable"])) if "observable" in table else None
    pages = math.ceil(len(ids) / ids_per_page)
    out = []
    for p in range(pages):
        chunk = ids[p * ids_per_page : (p + 1) * ids_per_page]
        title = (f"Individual fits, page {p + 1} of {pages}: IDs {chunk[0]}-{chunk[-1]} "
                 f"({len(chunk)} of {len(ids)} subjects)")  # fmt: skip
        out.append(plot_individual_fits(table, curves=curves, observables=names, ids=chunk,
                                        ncols=ncols, log=log, title=title))  # fmt: skip
    return out


def plot_observed_vs_predicted(predictions, *, observable=None, log=True) -> Figure:
    """Observed against PRED and IPRED with the line of identity.

    Censored records are drawn at (prediction, limit) as open markers with a downward arrow.
    """
    frame, observable = _select(_table(predictions), observable)
    cols = [c for c in ("pred", "ipred") if c in frame]
    if not cols:
        raise ValueError("plot_observed_vs_predicted: the table has neither 'pred' nor 'ipred'")
    fig = Figure(figsize=(4.2 * len(cols), 4.0), layout="constrained")
    axes = fig.subplots(1, len(cols), squeeze=False)[0]
    for ax, col in zip(axes, cols, strict=True):
        _observed(ax, frame, col, log=log)
        values = np.concatenate([frame[col].to_numpy(float), frame["shown"].to_numpy(float)])
        values = values[np.isfinite(values) & ((values > 0) if log else True)]
        if values.size:
            lo, hi = values.min(), values.max()
            ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="identity")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(col.upper())
        ax.set_ylabel(f"observed {observable}")
        ax.set_title(f"observed vs {col.upper()}", fontsize=10)
    axes[0].legend(fontsize=8)
    return fig


#: names of the scaled residuals (standard normal under the model), in the order figures use
SCALED_RESIDUALS = ("npde", "cwres", "wres", "iwres")
_RESIDUAL_LABELS = {
    "npde": "NPDE",
    "cwres": "CWRES",
    "wres": "WRES (= CWRES = IWRES without random effects)",
    "iwres": "IWRES",
    "res": "log(DV) - log(IPRED)",
}


def plot_residuals_vs_time(
    predictions, *, residual="res", observable=None, band=1.96, n_bins=8
) -> Figure:
    """Residuals against time with a zero line, +/- ``band`` and a binned median.

    The +/- 1.96 lines are the 95% range of a scaled residual (``npde``, ``cwres``, ``wres``,
    ``iwres``: standard normal under the model); for an unscaled one they are drawn only when
    ``band`` is given explicitly for it. Censored records (if they carry a residual) are
    drawn as open markers.
    """
    frame, observable = _select(_table(predictions), observable)
    if residual not in frame:
        raise ValueError(
            f"plot_residuals_vs_time: no column {residual!r}; columns are {list(frame.columns)}"
        )
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    kept = frame[(frame["cens"] == 0) & np.isfinite(frame[residual])]
    cens = frame[(frame["cens"] == 1) & np.isfinite(frame[residual])]
    ax.scatter(kept["time"], kept[residual], s=14, color=_OBS_COLOR, label="observed")
    if len(cens):
        ax.scatter(
            cens["time"],
            cens[residual],
            s=20,
            facecolors="none",
            edgecolors=_OBS_COLOR,
            label="below limit",
        )
    ax.axhline(0.0, color="grey", lw=1)
    if band and residual in SCALED_RESIDUALS:
        for sign in (-1, 1):
            ax.axhline(sign * band, color="grey", lw=0.8, ls="--")
    if len(kept) >= 2 * n_bins:
        edges = np.unique(np.quantile(kept["time"], np.linspace(0, 1, n_bins + 1)))
        which = np.clip(np.searchsorted(edges, kept["time"], side="right") - 1, 0, len(edges) - 2)
        med = kept.groupby(which).agg(t=("time", "median"), r=(residual, "median"))
        ax.plot(med["t"], med["r"], color=_IPRED_COLOR, lw=1.5, label="binned median")
    ax.set_xlabel("days after CAR-T infusion")
    name = _RESIDUAL_LABELS.get(residual, residual)
    ax.set_ylabel(f"{name} ({observable})" if observable else name)
    ax.legend(fontsize=8)
    return fig


def plot_profiles(profiles, *, estimates=None, intervals=None, level=0.95, ncols=3,
                  threshold=None) -> Figure:  # fmt: skip
    """Likelihood profiles: change in -2 log-likelihood against each parameter's value.

    Parameters
    ----------
    profiles : dict of str to table
        ``{name: DataFrame or dict with "value" and "objective"}`` (or with a ``"curve"`` entry
        holding them), objective = -2 log L (the minimum is subtracted here).
    estimates : dict of str to float, optional
        Point estimates (vertical solid line).
    intervals : dict of str to (float, float), optional
        Profile confidence limits (vertical dashed lines; NaN ends are not drawn).
    level : float
        Confidence level of the threshold line: the chi-square(1) quantile (3.84 at 0.95).
    threshold : float, optional
        The fit's own threshold (``FitResult.profile_threshold``: larger than the chi-square
        quantile when a residual SD was estimated), overriding ``level``'s.
    """
    if not profiles:
        raise ValueError("plot_profiles: no profiles to draw")
    chi2_line = threshold is None
    threshold = float(stats.chi2.ppf(level, 1)) if chi2_line else float(threshold)
    names = list(profiles)
    ncols = max(1, min(ncols, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.9 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_visible(False)
            continue
        name = names[k]
        entry = profiles[name]
        if isinstance(entry, dict) and "curve" in entry:  # {ci_low, ci_high, ..., curve}
            entry = entry["curve"]
        prof = pd.DataFrame({k: np.asarray(entry[k], float) for k in ("value", "objective")})
        prof = prof.sort_values("value")
        x = prof["value"].to_numpy(float)
        y = prof["objective"].to_numpy(float)
        y = y - np.nanmin(y)
        ax.plot(x, y, "o-", ms=3, color=_PRED_COLOR)
        ax.axhline(
            threshold,
            color="grey",
            ls="--",
            lw=1,
            label=f"{level:.0%} (chi2 1 df)" if chi2_line else f"{level:.0%} ({threshold:.2f})",
        )
        if estimates and name in estimates:
            ax.axvline(estimates[name], color=_IPRED_COLOR, lw=1.2, label="estimate")
        if intervals and name in intervals:
            for end in intervals[name]:
                if end is not None and math.isfinite(end):
                    ax.axvline(end, color=_IPRED_COLOR, ls=":", lw=1.2)
        if np.all(x > 0) and x.max() / x.min() > 10:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("change in -2 log L")
        ax.set_ylim(bottom=-0.05 * max(threshold, np.nanmax(y)))
    axes.flat[0].legend(fontsize=7)
    return fig


def plot_vpc(
    observations,
    simulations,
    *,
    observable=None,
    bins=None,
    quantiles=(0.05, 0.5, 0.95),
    ci=0.90,
    lloq=None,
    log=True,
    pred_corrected=False,
) -> Figure:
    """Visual predictive check with censoring: percentiles of data and of simulated replicates.

    Parameters
    ----------
    observations : pandas.DataFrame
        ``time``, ``dv``, ``cens`` (, ``limit``, ``observable``).
    simulations : pandas.DataFrame
        Replicates of the observation design: ``replicate``, ``time``, ``dv`` (uncensored model
        simulations with residual error), optionally ``observable``.
    bins : sequence of float, optional
        Bin edges in days. Default: one bin per nominal time when there are at most 15 distinct
        times, else 10 bins at quantiles of the observation times.
    quantiles : tuple of float
        Percentiles drawn (observed as lines, simulated as the ``ci`` band of each).
    ci : float
        Width of the simulated band of each percentile across replicates.
    lloq : float, optional
        Censoring limit applied to the simulations. Default: the smallest limit of the
        censored observations; None when none is censored.
    log : bool
        Log-scale y axis.
    pred_corrected : bool
        Prediction-corrected VPC (Bergstrand M et al., AAPS J 2011;13:143): each value is
        multiplied by the median PRED of its bin over its own PRED, removing the spread that
        doses and covariates put into a bin. Needs a ``pred`` column in both tables (the
        simulations' ``pred`` being that of the record they replicate).

    Notes
    -----
    Censored values count as lying below the limit (they sort lowest), in the data and in the
    simulations censored at the same limit (decided before any prediction correction); a
    percentile that falls below the limit is not drawn. A lower panel compares the fraction
    below the limit in each bin.
    """
    obs, observable = _select(_table(observations, "observations"), observable)
    sims = _table(simulations, "simulations")
    if "observable" in sims and observable:
        sims = sims[sims["observable"] == observable]
    if "replicate" not in sims:
        raise ValueError("plot_vpc: the simulations table needs a 'replicate' column")
    if lloq is None and (obs["cens"] == 1).any():
        lloq = float(obs.loc[obs["cens"] == 1, "shown"].min())
    if pred_corrected and not ("pred" in obs and "pred" in sims):
        raise ValueError("plot_vpc: pred_corrected=True needs a 'pred' column in both tables")
    edges = _bin_edges(obs["time"].to_numpy(float), bins)
    centers, obs_q, obs_frac = [], [], []
    sim_q, sim_frac = [], []
    for lo, hi in itertools.pairwise(edges):
        last = hi == edges[-1]
        in_obs = obs[(obs["time"] >= lo) & ((obs["time"] < hi) | last & (obs["time"] == hi))]
        in_sim = sims[(sims["time"] >= lo) & ((sims["time"] < hi) | last & (sims["time"] == hi))]
        if in_obs.empty or in_sim.empty:
            continue
        centers.append(float(in_obs["time"].median()))
        values = in_obs["dv"].to_numpy(float)
        ref = float(np.median(in_obs["pred"])) if pred_corrected else 1.0
        if pred_corrected:
            values = values * ref / in_obs["pred"].to_numpy(float)
        values = np.where(in_obs["cens"] == 1, -np.inf, values)
        obs_q.append(_quantiles(values, quantiles))
        obs_frac.append(float(np.mean(in_obs["cens"] == 1)))
        reps_q, reps_f = [], []
        for _, rep in in_sim.groupby("replicate"):
            sv = rep["dv"].to_numpy(float)
            below = sv < lloq if lloq is not None else np.zeros(sv.size, bool)
            if pred_corrected:
                sv = sv * ref / rep["pred"].to_numpy(float)
            reps_q.append(_quantiles(np.where(below, -np.inf, sv), quantiles))
            reps_f.append(float(np.mean(below)))
        sim_q.append(np.array(reps_q))
        sim_frac.append(np.array(reps_f))
    if not centers:
        raise ValueError("plot_vpc: no bin holds both observations and simulations")
    x = np.array(centers)
    obs_q = np.array(obs_q)
    lo_p, hi_p = (1 - ci) / 2, 1 - (1 - ci) / 2
    show_frac = lloq is not None
    fig = Figure(figsize=(6.5, 5.6 if show_frac else 4.2), layout="constrained")
    if show_frac:
        ax, axf = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    else:
        ax, axf = fig.subplots(), None
    for j, q in enumerate(quantiles):
        # inverted-CDF quantiles: never interpolate between a censored (-inf) and a number
        band = np.array([np.quantile(s[:, j], (lo_p, hi_p), method="inverted_cdf") for s in sim_q])
        mid = np.array([np.quantile(s[:, j], 0.5, method="inverted_cdf") for s in sim_q])
        finite = np.where(np.isfinite(band), band, np.nan)
        if lloq is not None and not pred_corrected:
            # a band whose lower end is censored reaches down to the limit
            finite[:, 0] = np.where(np.isfinite(band[:, 1]) & ~np.isfinite(band[:, 0]), lloq,
                                    finite[:, 0])  # fmt: skip
        color = _IPRED_COLOR if q == 0.5 else _PRED_COLOR
        ax.fill_between(x, finite[:, 0], finite[:, 1], color=color, alpha=0.2, lw=0)
        ax.plot(x, np.where(np.isfinite(mid), mid, np.nan), color=color, lw=1, ls="--")
        ax.plot(
            x,
            np.where(np.isfinite(obs_q[:, j]), obs_q[:, j], np.nan),
            color=color,
            lw=1.8,
            label=f"observed {q:.0%}",
        )
    if not pred_corrected:
        kept = obs[obs["cens"] == 0]
        ax.scatter(kept["time"], kept["dv"], s=6, color="grey", alpha=0.6, zorder=1)
    if lloq is not None and not pred_corrected:  # a corrected limit differs per record
        ax.axhline(lloq, color="grey", ls=":", lw=1, label=f"limit {lloq:g}")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(observable or "dv")
    kind = "pcVPC" if pred_corrected else "VPC"
    ax.set_title(f"{kind}: {len(sim_q[0])} replicates, {ci:.0%} bands of simulated percentiles")
    ax.legend(fontsize=7)
    if axf is not None:
        frac = np.array([[np.quantile(f, lo_p), np.quantile(f, hi_p)] for f in sim_frac])
        axf.fill_between(x, frac[:, 0], frac[:, 1], color="grey", alpha=0.3, lw=0)
        axf.plot(x, obs_frac, "o-", color=_OBS_COLOR, ms=3, lw=1.2)
        axf.set_ylabel("fraction\nbelow limit", fontsize=8)
        axf.set_ylim(-0.02, 1.02)
    (axf or ax).set_xlabel("days after CAR-T infusion")
    return fig


def _bin_edges(times, bins):
    if bins is not None:
        return np.asarray(bins, dtype=float)
    distinct = np.unique(times)
    if distinct.size <= 15:
        mids = (distinct[:-1] + distinct[1:]) / 2
        return np.concatenate([[distinct[0]], mids, [distinct[-1]]])
    return np.unique(np.quantile(times, np.linspace(0, 1, 11)))


def _quantiles(values, quantiles):
    """Quantiles with censored entries as -inf (lowest); a quantile among them is -inf."""
    ordered = np.sort(values)
    n = ordered.size
    # nearest-rank on the sorted values, so -inf entries are never interpolated into numbers
    ranks = np.clip(np.ceil(np.asarray(quantiles) * n).astype(int) - 1, 0, n - 1)
    return ordered[ranks]


def write_figures(result, directory, *, simulations=None, ids_per_page=16, dpi=100) -> list[Path]:
    """Write every figure a fit result supports as PNG files; return their paths.

    Parameters
    ----------
    result : object
        Anything with ``predictions`` (records or a DataFrame: the predictions table) and,
        optionally, ``curves`` (dense ``id, time, observable, pred, ipred``), ``profiles``
        (``{name: {value, objective}}``), ``estimates`` (a list of objects or a ``{name:
        {value, ci_low, ci_high}}`` dict) and ``profile_threshold``, as ``FitResult`` has.
    directory : str or Path
        Created if needed.
    simulations : pandas.DataFrame, optional
        VPC replicates (``replicate, time, dv[, observable]``); a VPC per observable when given.
    ids_per_page : int
        Subjects per page of the individual fits (every subject is drawn).
    dpi : int

    Returns
    -------
    list of Path
        ``individual_fits_page<k>.png`` (all subjects, faceted by observable),
        ``observed_vs_predicted_<observable>.png``, ``residuals_vs_time_<observable>.png``
        (the first scaled residual the table has: NPDE, CWRES, WRES, IWRES), ``profiles.png``,
        ``vpc_<observable>.png``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures = {}
    records = getattr(result, "predictions", None)
    table = pd.DataFrame(records) if records is not None else pd.DataFrame()
    curves = getattr(result, "curves", None)
    curves = pd.DataFrame(curves) if curves is not None and len(curves) else None
    if not table.empty:
        table = _table(table)
        if "id" in table:
            pages = individual_fit_pages(table, curves=curves, ids_per_page=ids_per_page)
            width = max(2, len(str(len(pages))))
            for k, fig in enumerate(pages):
                figures[f"individual_fits_page{k + 1:0{width}d}"] = fig
        residual = next((c for c in SCALED_RESIDUALS if c in table
                         and np.isfinite(table[c].to_numpy(float)).any()), None)  # fmt: skip
        for name in dict.fromkeys(table.get("observable", pd.Series([""]))):
            tag = re.sub(r"[^A-Za-z0-9_]+", "_", str(name)) or "dv"
            sub = table[table["observable"] == name] if "observable" in table else table
            if {"pred", "ipred"} & set(sub.columns):
                figures[f"observed_vs_predicted_{tag}"] = plot_observed_vs_predicted(sub)
            if residual is not None and np.isfinite(sub[residual].to_numpy(float)).any():
                figures[f"residuals_vs_time_{tag}"] = plot_residuals_vs_time(sub, residual=residual)
            if simulations is not None:
                figures[f"vpc_{tag}"] = plot_vpc(sub, simulations, observable=name or None)
    profiles = getattr(result, "profiles", None)
    if profiles:
        estimates, intervals = _estimates(getattr(result, "estimates", None))
        figures["profiles"] = plot_profiles(profiles, estimates=estimates, intervals=intervals,
                                            threshold=getattr(result, "profile_threshold",
                                                              None))  # fmt: skip
    paths = []
    for name, fig in figures.items():
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def _estimates(estimates):
    """(values, profile intervals) by name from a list of Estimate-like objects or a dict."""
    if not estimates:
        return None, None
    if isinstance(estimates, dict):
        items = [
            (k, v.get("value"), v.get("ci_low"), v.get("ci_high")) for k, v in estimates.items()
        ]
    else:
        items = [(e.name, e.value, e.ci_low, e.ci_high) for e in estimates]
    values = {k: v for k, v, _, _ in items if v is not None}
    intervals = {k: tuple(math.nan if x is None else x for x in (lo, hi)) for k, _, lo, hi in items}
    return values, intervals
