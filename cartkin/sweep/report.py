"""Summaries of a sweep store, per grid point: quantiles, probabilities, failures.

For each grid point, over the patients computed so far:

- ``n_computed``, ``n_failed`` and ``p_failed`` (status != 0: the integrator stopped early or
  the engine raised; such patients are left out of every other summary);
- per metric: median, 5th and 95th percentiles and ``n_defined``, over solved patients whose
  metric is defined (a metric not reached within the horizon, e.g. TRECOV without recovery, is
  NaN and not counted: read the quantiles together with ``n_defined``);
- ``p_flu_auc_in_window``: share of solved patients with FLU_AUC in the target window (both ends
  included);
- ``p_aplasia``: share of solved patients whose B cells fell below the B-cell threshold
  (TAPLASIA defined; needs TAPLASIA among the stored metrics);
- ``p_recovery_by_day``: among those patients (all solved patients when TAPLASIA is not
  stored), the share with TRECOV <= ``recovery_by_day``; a patient whose B cells have not
  recovered by the horizon counts as not recovered.

Memory is one grid point's patients at a time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from cartkin.errors import ScenarioError
from cartkin.sweep.store import NOT_RUN, STORE_VERSION

__all__ = ["QUANTILES", "Summary", "summarize"]

#: Reported quantiles: median and the 5-95% band.
QUANTILES = {"q05": 0.05, "median": 0.5, "q95": 0.95}


class Summary:
    """Per-grid-point summaries of a sweep store (see the module docstring).

    Attributes
    ----------
    attrs : dict
        The store's attributes (scenario text and hash, seed, ...).
    axes : list of (str, numpy.ndarray, bool)
        Axis name, coordinate values and whether it is log-spaced (or a positive axis
        spanning more than a factor 10, which plots also draw on a log scale).
    metrics : dict of str to str
        Metric name -> unit.
    shape : tuple of int
    fields : dict of str to numpy.ndarray, each of shape ``shape``
        ``n_computed``, ``n_failed``, ``p_failed``, ``p_flu_auc_in_window``, ``p_aplasia``,
        ``p_recovery_by_day`` and ``<METRIC>_<stat>`` for stat in q05, median, q95, n_defined.
    """

    def __init__(self, attrs, axes, metrics, fields, store):
        self.attrs = attrs
        self.axes = axes
        self.metrics = metrics
        self.fields = fields
        self.store = store

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for _, v, _ in self.axes)

    @property
    def complete(self) -> bool:
        total = int(self.attrs["n_patients"]) * math.prod(self.shape)
        return int(self.fields["n_computed"].sum()) == total

    def to_dict(self) -> dict:
        """The report as plain JSON types (NaN -> None); schema in the README ('Sweeps')."""
        f = self.fields
        points = []
        for index in np.ndindex(*self.shape):
            coords = {name: _plain(v[i]) for (name, v, _), i in zip(self.axes, index, strict=True)}
            point = {
                "coords": coords,
                "n_computed": int(f["n_computed"][index]),
                "n_failed": int(f["n_failed"][index]),
                "p_failed": _plain(f["p_failed"][index]),
                "p_flu_auc_in_window": _plain(f["p_flu_auc_in_window"][index]),
                "p_aplasia": _plain(f["p_aplasia"][index]),
                "p_recovery_by_day": _plain(f["p_recovery_by_day"][index]),
                "metrics": {
                    m: {s: _plain(f[f"{m}_{s}"][index]) for s in (*QUANTILES, "n_defined")}
                    for m in self.metrics
                },
            }
            points.append(point)
        a = self.attrs
        return {
            "store": str(self.store),
            "title": a.get("title"),
            "scenario_file": a.get("scenario_file"),
            "scenario_hash": a.get("scenario_hash"),
            "model": a.get("model"),
            "seed": int(a["seed"]),
            "cartkin_version": a.get("cartkin_version"),
            "n_patients_per_point": int(a["n_patients"]),
            "variability_omega2": json.loads(a.get("variability_omega2", "{}")),
            "flu_auc_window_mg_h_per_l": list(a["flu_auc_window_mg_h_per_l"]),
            "recovery_by_day": float(a["recovery_by_day"]),
            "solver": json.loads(a["solver"]) if "solver" in a else None,
            "axes": [
                {"name": n, "values": [_plain(x) for x in v], "log": log} for n, v, log in self.axes
            ],
            "metrics": dict(self.metrics),
            "n_computed": int(f["n_computed"].sum()),
            "n_failed": int(f["n_failed"].sum()),
            "complete": self.complete,
            "points": points,
        }

    def to_csv(self) -> str:
        """One row per grid point: axis values, counts, probabilities, then ``<METRIC>_<stat>``
        columns (q05, median, q95, n_defined); empty cells for undefined values."""
        import csv
        import io

        f = self.fields
        stats = (*QUANTILES, "n_defined")
        columns = ["n_computed", "n_failed", "p_failed", "p_flu_auc_in_window", "p_aplasia",
                   "p_recovery_by_day"]  # fmt: skip
        columns += [f"{m}_{st}" for m in self.metrics for st in stats]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([name for name, _, _ in self.axes] + columns)
        for index in np.ndindex(*self.shape):
            row = [_plain(v[i]) for (_, v, _), i in zip(self.axes, index, strict=True)]
            for c in columns:
                value = _plain(f[c][index])
                row.append("" if value is None else repr(value) if isinstance(value, float)
                           else value)  # fmt: skip
            writer.writerow(row)
        return buffer.getvalue()

    def to_table(self, metrics=None) -> str:
        """A text table: one row per grid point, ``median [q05, q95]`` per metric."""
        metrics = list(metrics or self.metrics)
        f = self.fields
        names = [n for n, _, _ in self.axes]
        headers = [*names, "n", "failed", *(f"{m} ({self.metrics[m]})" for m in metrics)]
        headers += ["P(FLU_AUC in window)", "P(aplasia)",
                    f"P(TRECOV <= {self.attrs['recovery_by_day']:g} d | aplasia)"]  # fmt: skip
        rows = []
        for index in np.ndindex(*self.shape):
            row = [_fmt(v[i]) for (_, v, _), i in zip(self.axes, index, strict=True)]
            row += [str(int(f["n_computed"][index])), str(int(f["n_failed"][index]))]
            for m in metrics:
                row.append(
                    f"{_fmt(f[f'{m}_median'][index])} [{_fmt(f[f'{m}_q05'][index])}, "
                    f"{_fmt(f[f'{m}_q95'][index])}]"
                )
            row += [_fmt(f["p_flu_auc_in_window"][index]), _fmt(f["p_aplasia"][index]),
                    _fmt(f["p_recovery_by_day"][index])]  # fmt: skip
            rows.append(row)
        widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        a = self.attrs
        head = (
            f"{a.get('title')}  (store {self.store}, model {a.get('model')}, seed {a['seed']}, "
            f"{int(f['n_computed'].sum())} patients computed, {int(f['n_failed'].sum())} failed"
            f"{'' if self.complete else ', INCOMPLETE: rerun the sweep to finish'})\n"
            f"metrics: median [5th, 95th percentile] over solved patients; FLU_AUC window "
            f"{list(a['flu_auc_window_mg_h_per_l'])} mg.h/L\n"
            + (_solver_line(json.loads(a["solver"])) + "\n" if "solver" in a else "")
        )
        return head + "\n".join(line.rstrip() for line in lines)


def summarize(path) -> Summary:
    """Summarize a sweep store.

    Parameters
    ----------
    path : str or Path
        The ``.zarr`` store written by ``cartkin sweep``.

    Returns
    -------
    Summary

    Raises
    ------
    ScenarioError
        When ``path`` is missing or not a sweep store.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise ScenarioError(f"{path}: no such sweep store")
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
    except Exception as exc:
        raise ScenarioError(f"{path}: not a cartkin sweep store ({exc})") from None
    if attrs.get("cartkin_sweep_store") != STORE_VERSION:
        raise ScenarioError(f"{path}: not a cartkin sweep store (no cartkin_sweep_store attribute)")
    log_axes = set(attrs.get("log_axes", []))
    axes = []
    for name in attrs["axes"]:
        values = np.asarray(group[name][...])
        if values.dtype.kind not in "fiu":
            values = np.array([str(v) for v in values.tolist()], dtype=object)
        log = name in log_axes or bool(
            values.dtype.kind == "f" and np.all(values > 0) and values.max() > 10 * values.min()
        )
        axes.append((name, values, log))
    metrics = {m: group[m].attrs.get("units", "") for m in attrs["metrics"]}
    shape = tuple(len(v) for _, v, _ in axes)
    fields = {k: np.full(shape, np.nan) for k in ("n_computed", "n_failed", "p_failed",
                                                  "p_flu_auc_in_window", "p_aplasia",
                                                  "p_recovery_by_day")}  # fmt: skip
    for m in metrics:
        for s in (*QUANTILES, "n_defined"):
            fields[f"{m}_{s}"] = np.full(shape, np.nan)
    lo, hi = attrs["flu_auc_window_mg_h_per_l"]
    day = float(attrs["recovery_by_day"])
    for index in np.ndindex(*shape):
        status = np.asarray(group["status"][index])
        computed = status != NOT_RUN
        ok = status == 0
        n_ok = int(ok.sum())
        fields["n_computed"][index] = computed.sum()
        fields["n_failed"][index] = (computed & ~ok).sum()
        if computed.any():
            fields["p_failed"][index] = (computed & ~ok).sum() / computed.sum()
        for m in metrics:
            x = np.asarray(group[m][index])[ok]
            x = x[~np.isnan(x)]
            fields[f"{m}_n_defined"][index] = x.size
            if x.size:
                q = np.quantile(x, list(QUANTILES.values()))
                for s, v in zip(QUANTILES, q, strict=True):
                    fields[f"{m}_{s}"][index] = v
            if n_ok and m == "FLU_AUC":
                auc = np.asarray(group[m][index])[ok]
                fields["p_flu_auc_in_window"][index] = np.mean((auc >= lo) & (auc <= hi))
        if n_ok and "TRECOV" in metrics:
            t = np.asarray(group["TRECOV"][index])[ok]
            if "TAPLASIA" in metrics:
                aplastic = ~np.isnan(np.asarray(group["TAPLASIA"][index])[ok])
                fields["p_aplasia"][index] = aplastic.mean()
                t = t[aplastic]
            if t.size:
                fields["p_recovery_by_day"][index] = np.mean(t <= day)
    return Summary(attrs, axes, metrics, fields, path)


def _plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _fmt(value) -> str:
    if isinstance(value, str | np.str_):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "-"
    return f"{value:.3g}"


def _solver_line(solver: dict) -> str:
    """The store's solver setting in one line (method, tolerances, verified metric error)."""
    err = solver.get("worst_metric_error")
    verified = (f"verified worst metric error {err:.1e}" if err is not None
                else "metric error not verified")  # fmt: skip
    per_state = "".join(f", {k} {v:g}" for k, v in solver.get("atol_states", {}).items())
    return (
        f"solver: {solver['method']}, rtol {solver['rtol']:g}, atol {solver['atol']:g}"
        f"{per_state} ({solver.get('origin', '?')} setting; {verified})"
    )
