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
  (the store's per-patient ``APLASIA``);
- ``TRECOV_KM_q25``, ``TRECOV_KM_median``, ``TRECOV_KM_q75`` (day) and ``TRECOV_n_censored``:
  B-cell recovery as a censored time to event over *all* solved patients, Kaplan-Meier
  quantiles (:mod:`cartkin.sweep.recovery`: never-aplastic patients recovered at day 0,
  patients not recovered by the horizon right-censored there; NaN quantile: not reached);
  needs TRECOV among the stored metrics. Unlike the TRECOV quantiles above (recovered patients
  only), these compare the same patients in every arm;
- ``p_recovery_by_day``: among the aplastic patients (all solved patients when the store has no
  APLASIA), the share with TRECOV <= ``recovery_by_day``; a patient whose B cells have not
  recovered by the horizon counts as not recovered (conditional on aplasia, so it is not
  comparable across arms with different P(aplasia); the KM quantiles are).

:meth:`Summary.paired` compares each grid point's patients with the same patients at a
reference value of one axis (common random numbers): the share of pairs in which recovery comes
later, earlier, at the same time, and the median paired difference.

Memory is one grid point's patients at a time.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np

from cartkin.errors import ScenarioError
from cartkin.sweep.axes import DIALYSIS, DIALYSIS_COORD
from cartkin.sweep.recovery import km_quantiles, paired_recovery, recovery_times
from cartkin.sweep.store import APLASIA, NOT_RUN, check_layout

__all__ = ["KM_QUANTILES", "QUANTILES", "Summary", "summarize"]

#: Reported quantiles: median and the 5-95% band.
QUANTILES = {"q05": 0.05, "median": 0.5, "q95": 0.95}
#: Kaplan-Meier quantiles of the time to B-cell recovery: median and quartiles.
KM_QUANTILES = {"q25": 0.25, "median": 0.5, "q75": 0.75}
KM_FIELDS = (*(f"TRECOV_KM_{s}" for s in KM_QUANTILES), "TRECOV_n_censored")
#: Widest report table when standard output is not a terminal (columns).
DEFAULT_WIDTH = 100


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
        ``p_recovery_by_day``, ``TRECOV_KM_q25`` / ``_median`` / ``_q75`` (day, NaN: not
        reached or not available), ``TRECOV_n_censored`` and ``<METRIC>_<stat>`` for stat in
        q05, median, q95, n_defined.
    store : Path
    horizon_days : numpy.ndarray, shape ``shape``
        Last simulated day of each grid point (censoring time of TRECOV), day.
    """

    def __init__(self, attrs, axes, metrics, fields, store, horizon_days=None):
        self.attrs = attrs
        self.axes = axes
        self.metrics = metrics
        self.fields = fields
        self.store = store
        self.horizon_days = horizon_days

    @property
    def has_km(self) -> bool:
        """True when the store allows the censored (Kaplan-Meier) recovery summaries."""
        return bool(np.isfinite(self.fields["TRECOV_n_censored"]).any())

    @property
    def patients_per_point(self) -> str:
        """Solved-or-failed patients per grid point as text: "2000", or "0-2000 (incomplete)"."""
        n = self.fields["n_computed"]
        lo, hi = int(n.min()), int(n.max())
        total = int(self.attrs["n_patients"])
        if lo == hi == total:
            return f"{total:,}"
        return f"{lo:,}-{hi:,} of {total:,} (incomplete store)"

    def paired(self, axis: str, reference=None) -> dict:
        """Recovery of each grid point's patients against the same patients at a reference value
        of ``axis`` (the other axes held at the point's own values).

        Parameters
        ----------
        axis : str
            An axis name (``"patient.egfr_ml_min_173m2"``).
        reference : optional
            The reference value of that axis (as written in the scenario, e.g. ``120`` or
            ``"dialysis"``); default its first value.

        Returns
        -------
        dict
            ``{"axis", "reference", field: numpy.ndarray of shape :attr:`shape`}`` with the
            fields of :func:`cartkin.sweep.recovery.paired_recovery` (arm b: the grid point,
            arm a: the reference); pairs are patients solved in both.

        Raises
        ------
        ValueError
            Unknown axis or reference value, or a store without APLASIA and TRECOV.
        """
        import zarr

        names = [n for n, _, _ in self.axes]
        if axis not in names:
            raise ValueError(f"paired: axis {axis!r}: expected one of {names}")
        k = names.index(axis)
        values = self.axes[k][1]
        texts = [_text(v) for v in values]
        ref = 0 if reference is None else _find(texts, reference, axis)
        if "TRECOV" not in self.metrics or not self.has_km:
            raise ValueError("paired: the store needs TRECOV among its metrics and APLASIA")
        group = zarr.open_group(str(self.store), mode="r")
        keys = ("n_pairs", "share_b_later", "share_b_earlier", "share_tied",
                "share_undetermined", "median_diff_days")  # fmt: skip
        out = {key: np.full(self.shape, np.nan) for key in keys}
        cache = {}

        def arm(index):
            if index not in cache:
                ok = np.asarray(group["status"][index]) == 0
                time, event = recovery_times(np.asarray(group[APLASIA][index]),
                                             np.asarray(group["TRECOV"][index]),
                                             self.horizon_days[index])  # fmt: skip
                cache[index] = (ok, time, event, float(self.horizon_days[index]))
            return cache[index]

        for index in np.ndindex(*self.shape):
            ref_index = (*index[:k], ref, *index[k + 1 :])
            ok_a, time_a, event_a, h_a = arm(ref_index)
            ok_b, time_b, event_b, h_b = arm(index)
            both = ok_a & ok_b
            result = paired_recovery(time_a[both], event_a[both], time_b[both], event_b[both],
                                     min(h_a, h_b))  # fmt: skip
            for key in keys:
                out[key][index] = result[key]
        return {"axis": axis, "reference": texts[ref], **out}

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape: the number of values of each axis."""
        return tuple(len(v) for _, v, _ in self.axes)

    @property
    def complete(self) -> bool:
        """True when every patient of every grid point has been computed."""
        total = int(self.attrs["n_patients"]) * math.prod(self.shape)
        return int(self.fields["n_computed"].sum()) == total

    def to_dict(self, paired: dict | None = None) -> dict:
        """The report as plain JSON types (NaN -> None); schema in the README ('Sweeps').

        ``paired``: a result of :meth:`paired`, added per point under ``"paired"``.
        """
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
                "horizon_days": _plain(self.horizon_days[index]),
                "TRECOV_KM": {
                    **{s: _plain(f[f"TRECOV_KM_{s}"][index]) for s in KM_QUANTILES},
                    "n_censored": _plain(f["TRECOV_n_censored"][index]),
                },
                "metrics": {
                    m: {s: _plain(f[f"{m}_{s}"][index]) for s in (*QUANTILES, "n_defined")}
                    for m in self.metrics
                },
            }
            if paired is not None:
                point["paired"] = {
                    "axis": paired["axis"],
                    "reference": paired["reference"],
                    **{k: _plain(v[index]) for k, v in paired.items() if isinstance(v, np.ndarray)},
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

    def to_csv(self, paired: dict | None = None) -> str:
        """One row per grid point: axis values, counts, probabilities, the Kaplan-Meier
        (censored) recovery quantiles, then ``<METRIC>_<stat>`` columns (q05, median, q95,
        n_defined) and, with ``paired`` (:meth:`paired`), ``paired_<field>``; empty cells for
        undefined values."""
        import csv
        import io

        f = dict(self.fields)
        stats = (*QUANTILES, "n_defined")
        columns = ["n_computed", "n_failed", "p_failed", "p_flu_auc_in_window", "p_aplasia",
                   "p_recovery_by_day", *KM_FIELDS]  # fmt: skip
        columns += [f"{m}_{st}" for m in self.metrics for st in stats]
        if paired is not None:
            for k, v in paired.items():
                if isinstance(v, np.ndarray):
                    f[f"paired_{k}"] = v
                    columns.append(f"paired_{k}")
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

    def to_table(self, metrics=None, width: int = DEFAULT_WIDTH, paired: dict | None = None) -> str:
        """A text table, one row per grid point, no line wider than ``width`` characters.

        Columns in order of priority: the axes, patients and failures, P(aplasia), the
        Kaplan-Meier recovery median [quartiles] (censored), the paired comparison (with
        ``paired``), P(FLU_AUC in window), then ``median [q05, q95]`` per metric; those that do not
        fit are named in a last line (``--format csv`` or ``json`` has them all).
        """
        metrics = list(metrics or self.metrics)
        f = self.fields
        a = self.attrs
        index_list = list(np.ndindex(*self.shape))
        columns = []  # (header, cells); the first len(self.axes) + 2 always shown

        def add(header, cell):
            columns.append((header, [cell(index) for index in index_list]))

        for k, (name, values, _) in enumerate(self.axes):
            add(name.rpartition(".")[2], lambda i, k=k, v=values: _fmt(v[i[k]]))
        add("n", lambda i: str(int(f["n_computed"][i])))
        add("failed", lambda i: str(int(f["n_failed"][i])))
        fixed = len(columns)
        if np.isfinite(f["p_aplasia"]).any():
            add("P(aplasia)", lambda i: _fmt(f["p_aplasia"][i]))
        if self.has_km:
            add("TRECOV KM censored, d", lambda i: _km_cell(f, i,
                self.horizon_days[i]))  # fmt: skip
        if paired is not None:
            ref = paired["reference"]
            add(f"later vs {ref}", lambda i: _fmt(paired["share_b_later"][i]))
            add(f"earlier vs {ref}", lambda i: _fmt(paired["share_b_earlier"][i]))
            add(f"diff vs {ref}, d", lambda i: _fmt(paired["median_diff_days"][i]))
        if np.isfinite(f["p_flu_auc_in_window"]).any():
            add("P(FLU_AUC in window)", lambda i: _fmt(f["p_flu_auc_in_window"][i]))
        if np.isfinite(f["p_recovery_by_day"]).any():
            add(f"P(TRECOV <= {a['recovery_by_day']:g} d | aplasia)",
                lambda i: _fmt(f["p_recovery_by_day"][i]))  # fmt: skip
        for m in metrics:
            only = ", recovered only" if m == "TRECOV" else ""
            add(f"{m} ({self.metrics[m]}{only})", lambda i, m=m: (
                f"{_fmt(f[f'{m}_median'][i])} [{_fmt(f[f'{m}_q05'][i])}, "
                f"{_fmt(f[f'{m}_q95'][i])}]"))  # fmt: skip
        shown, used, left_out = [], -2, []
        for k, (header, cells) in enumerate(columns):
            w = max(len(header), *(len(c) for c in cells)) if cells else len(header)
            if k < fixed or (not left_out and used + 2 + w <= width):
                shown.append((header, cells, w))
                used += 2 + w
            else:
                left_out.append(header.split(" (")[0].split(",")[0])
        lines = ["  ".join(h.ljust(w) for h, _, w in shown)]
        lines.append("  ".join("-" * w for _, _, w in shown))
        for r in range(len(index_list)):
            lines.append("  ".join(c[r].ljust(w) for _, c, w in shown))
        head = (
            f"{a.get('title')}. Store {self.store}, model {a.get('model')}, seed {a['seed']}, "
            f"{int(f['n_computed'].sum())} patients computed, {int(f['n_failed'].sum())} failed"
            f"{'' if self.complete else '; INCOMPLETE: rerun the sweep to finish'}. Metrics: "
            "median [5th, 95th percentile] over solved patients; FLU_AUC window "
            f"{list(a['flu_auc_window_mg_h_per_l'])} mg.h/L."
            + (f" {_solver_line(json.loads(a['solver']))}." if "solver" in a else "")
        )
        if self.has_km:
            head += (" TRECOV KM: Kaplan-Meier median [quartiles] of the time from infusion to "
                     "B-cell recovery over all solved patients (never aplastic: day 0; not "
                     "recovered by the horizon: censored; '>' not reached).")  # fmt: skip
        if paired is not None:
            head += (f" Paired: the same patients at {paired['axis']} = {paired['reference']};"
                     " share of pairs recovering later / earlier there, median difference "
                     "(restricted to the horizon).")  # fmt: skip
        foot = []
        if left_out:
            foot = [f"Not shown (too wide for {width} columns): {', '.join(left_out)}; see "
                    "--format csv or json."]  # fmt: skip
        wrap = lambda text: textwrap.wrap(text, max(width, 20))  # noqa: E731
        out = [*wrap(head), *(line.rstrip()[: max(width, 20)] for line in lines)]
        out += [w for line in foot for w in wrap(line)]
        return "\n".join(out)


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
        When ``path`` is missing or not a sweep store (or one of an older layout).
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
    check_layout(path, attrs)
    log_axes = set(attrs.get("log_axes", []))
    axes = []
    for name in attrs["axes"]:
        values = _axis_values(group, name)
        log = name in log_axes or bool(
            values.dtype.kind == "f" and np.all(values > 0) and values.max() > 10 * values.min()
        )
        axes.append((name, values, log))
    metrics = {m: group[m].attrs.get("units", "") for m in attrs["metrics"]}
    shape = tuple(len(v) for _, v, _ in axes)
    names = ["n_computed", "n_failed", "p_failed", "p_flu_auc_in_window", "p_aplasia",
             "p_recovery_by_day", *KM_FIELDS]  # fmt: skip
    fields = {k: np.full(shape, np.nan) for k in names}
    for m in metrics:
        for s in (*QUANTILES, "n_defined"):
            fields[f"{m}_{s}"] = np.full(shape, np.nan)
    lo, hi = attrs["flu_auc_window_mg_h_per_l"]
    day = float(attrs["recovery_by_day"])
    has_aplasia = APLASIA in group
    horizon = np.asarray(group["horizon_days"][...])
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
        if not n_ok:
            continue
        aplastic = np.asarray(group[APLASIA][index])[ok] if has_aplasia else None
        if aplastic is not None:
            fields["p_aplasia"][index] = aplastic.mean()
        if "TRECOV" in metrics:
            t = np.asarray(group["TRECOV"][index])[ok]
            if aplastic is not None:
                time, event = recovery_times(aplastic, t, horizon[index])
                for s, v in zip(KM_QUANTILES, km_quantiles(time, event, list(KM_QUANTILES.values())),
                                strict=True):  # fmt: skip
                    fields[f"TRECOV_KM_{s}"][index] = v
                fields["TRECOV_n_censored"][index] = np.count_nonzero(~event)
                t = t[aplastic]
            if t.size:
                fields["p_recovery_by_day"][index] = np.mean(t <= day)
    return Summary(attrs, axes, metrics, fields, path, horizon)


def _axis_values(group, name) -> np.ndarray:
    """An axis's values for reports and figures: float64 for numbers, else objects (names, or
    the floats and "dialysis" of an eGFR axis with a dialysis arm)."""
    values = np.asarray(group[name][...])
    if DIALYSIS_COORD in group and group[DIALYSIS_COORD].metadata.dimension_names == (name,):
        dialysis = np.asarray(group[DIALYSIS_COORD][...])
        return np.array([DIALYSIS if d else float(v) for v, d in zip(values.tolist(), dialysis,
                                                                     strict=True)], dtype=object)  # fmt: skip
    if values.dtype.kind not in "fiu":
        return np.array([str(v) for v in values.tolist()], dtype=object)
    return values


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


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float | np.floating) else str(value)


def _find(texts, value, axis) -> int:
    text = _text(float(value)) if isinstance(value, int | float) else str(value)
    if text not in texts:
        raise ValueError(f"paired: {axis} = {value!r}: not an axis value; expected one of {texts}")
    return texts.index(text)


def _km_cell(f, index, horizon) -> str:
    """``median [q25, q75]``, with ``>H`` for a quantile not reached by the horizon H."""
    if math.isnan(float(f["TRECOV_n_censored"][index])):
        return "-"
    cells = []
    for s in ("median", "q25", "q75"):
        v = float(f[f"TRECOV_KM_{s}"][index])
        cells.append(f">{horizon:g}" if math.isnan(v) else _fmt(v))
    return f"{cells[0]} [{cells[1]}, {cells[2]}]"


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
