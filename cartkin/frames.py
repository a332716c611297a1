"""Results as data: pandas DataFrames, xarray Datasets and short reprs.

Every result object (:class:`cartkin.simulate.SimulationResult`,
:class:`cartkin.metrics.MetricTable`, :class:`cartkin.fit.result.FitResult`,
:class:`cartkin.fit.popresult.PopulationFitResult`) has ``to_dataframe(layout="long" |
"wide")`` and ``to_xarray()`` built here, so every table has the same shape:

- ``"wide"``: one column per quantity (observable, metric, parameter) with its unit in
  ``DataFrame.attrs["units"]``;
- ``"long"``: one row per value, with ``variable``, ``value`` and ``unit`` columns (the shape
  plotting libraries and ``groupby`` want).

xarray Datasets carry ``units`` (and ``long_name`` where known) in each variable's attributes.
pandas and xarray are cartkin dependencies; they are imported when a table is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = ["Layout", "check_layout", "fmt", "long_from_wide", "table_frame", "table_xarray"]

Layout = Literal["long", "wide"]
LAYOUTS = ("long", "wide")


def fmt(value: Any, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits (``"nan"``, ``"None"``, text unchanged)."""
    if value is None or isinstance(value, bool | str):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "nan" if math.isnan(x) else f"{x:.{digits}g}"


def check_layout(layout: str) -> str:
    """Refuse a layout other than "long" or "wide", naming the argument."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout = {layout!r}: expected 'long' or 'wide'")
    return layout


def long_from_wide(
    frame: pd.DataFrame, id_columns: Sequence[str], units: Mapping[str, str]
) -> pd.DataFrame:
    """Melt the value columns of a wide ``frame`` into ``variable``, ``value``, ``unit`` rows."""
    values = [c for c in frame.columns if c not in id_columns]
    long = frame.melt(id_vars=list(id_columns), value_vars=values, var_name="variable")
    long["unit"] = long["variable"].map(lambda v: units.get(v, ""))
    return long


def table_frame(
    records: Iterable[Mapping[str, Any]], key: str, layout: str, value: str = "value"
) -> pd.DataFrame:
    """A table of named quantities (metrics, estimates) as a DataFrame.

    Parameters
    ----------
    records : iterable of mapping
        One record per quantity, with ``key`` (its name), ``value`` and ``unit``, and any
        other fields (``note``, ``se``, ...).
    key : str
        The name field ("name", "parameter").
    layout : {"long", "wide"}
        "long": one row per quantity, every field a column. "wide": one row, one column per
        quantity holding its ``value``; units in ``attrs["units"]``.
    value : str
        The field that holds the value.
    """
    import pandas as pd

    rows = [dict(r) for r in records]
    check_layout(layout)
    if layout == "long":
        frame = pd.DataFrame(rows)
        if key in frame.columns:
            frame = frame[[key, *(c for c in frame.columns if c != key)]]
        return frame
    frame = pd.DataFrame([{r[key]: r[value] for r in rows}])
    frame.attrs["units"] = {r[key]: r.get("unit", "") for r in rows}
    return frame


def table_xarray(
    records: Iterable[Mapping[str, Any]], key: str, dim: str, attrs: Mapping[str, Any]
) -> xr.Dataset:
    """A table of named quantities as an xarray Dataset along ``dim`` (one variable per
    numeric field: value, se, ...; ``unit`` and text fields as coordinates)."""
    import xarray as xr

    rows = [dict(r) for r in records]
    names = [r[key] for r in rows]
    fields = [f for f in dict.fromkeys(f for r in rows for f in r) if f != key]
    data_vars: dict[str, Any] = {}
    coords: dict[str, Any] = {dim: names}
    for f in fields:
        column = [r.get(f) for r in rows]
        if all(_is_number(v) for v in column):
            data_vars[f] = (dim, np.array([np.nan if v is None else v for v in column], float))
        else:
            coords[f] = (dim, np.array(["" if v is None else str(v) for v in column], object))
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs))


def _is_number(v) -> bool:
    return v is None or (isinstance(v, int | float | np.number) and not isinstance(v, bool))


#: Tables a fit result gives as a DataFrame.
FIT_TABLES = ("estimates", "predictions")
_RECORD_KEYS = ("id", "time", "observable", "cens", "limit")


def fit_frame(
    estimates: Iterable[Mapping[str, Any]],
    predictions: Sequence[Mapping[str, Any]],
    layout: str,
    table: str,
) -> pd.DataFrame:
    """A fit result's estimates or per-record predictions as a DataFrame.

    Parameters
    ----------
    estimates : iterable of mapping
        One record per estimated quantity: ``name``, ``value``, ``unit``, ``se``, ``ci_low``,
        ``ci_high`` and more.
    predictions : sequence of mapping
        One record per observation: ``id``, ``time``, ``observable``, ``dv``, ``pred``,
        ``ipred``, residuals.
    layout : {"long", "wide"}
        Estimates: "long" one row per quantity, "wide" one row of values. Predictions: "wide"
        one row per record, "long" one row per record and quantity (``dv``, ``pred``, ...).
    table : {"estimates", "predictions"}
    """
    import pandas as pd

    check_layout(layout)
    if table == "estimates":
        return table_frame(estimates, "name", layout)
    if table != "predictions":
        raise ValueError(f"table = {table!r}: expected one of {FIT_TABLES}")
    frame = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in r.items()}
                          for r in predictions])  # fmt: skip
    if layout == "long" and not frame.empty:
        keys = [c for c in _RECORD_KEYS if c in frame.columns]
        frame = frame.melt(id_vars=keys, var_name="variable")
    return frame


def fit_repr(kind: str, head: str, estimates: Iterable[Mapping[str, Any]], tail: str) -> str:
    """``Kind(head: name = value unit (SE se), ...; tail)`` with 4 significant digits."""
    parts = []
    for e in estimates:
        se = "" if e.get("se") is None else f" (SE {fmt(e['se'])})"
        unit = f" {e['unit']}" if e.get("unit") not in (None, "", "-") else ""
        parts.append(f"{e['name']} = {fmt(e['value'])}{unit}{se}")
    return f"{kind}({head}: {', '.join(parts)}; {tail})"
