"""Published summary values as fit targets ("B cells return at 110 +/- 32 days").

Cases reported only as summaries (group means, medians, typical values) cannot give per-patient
observations; they enter a fit as summary targets. A summary-target file is a CSV with one row
per reported number:

===========  ==========================================================================
column       meaning
===========  ==========================================================================
target       short unique name of the row
study        the publication
population   who (disease, n, dose) the number describes
quantity     the reported quantity in words
metric       the :mod:`cartkin.metrics` name it corresponds to (CMAX, TMAX, TRECOV...),
             or empty when cartkin has no such metric yet
statistic    ``mean_sd``, ``median_range``, ``median_iqr``, ``typical`` (a population
             model's typical value), ``value`` (a single patient's), ``lower_bound``
             or ``upper_bound``
value        the central value (or the bound)
spread       SD for ``mean_sd``; empty otherwise
lower, upper range or IQR ends where reported; empty otherwise
unit         the unit of value, spread, lower, upper
n            number of patients behind the number (empty when not stated)
source       where in the publication (table, text, abstract, figure)
obtained     ``text``, ``table`` or ``figure`` (read off a plot: approximate)
===========  ==========================================================================

:func:`read_summary_targets` validates the file (every problem at once, as
:func:`cartkin.data.read` does) and returns a DataFrame with these columns.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd

from cartkin.errors import DataError

__all__ = ["STATISTICS", "SUMMARY_COLUMNS", "read_summary_targets"]

SUMMARY_COLUMNS = (
    "target", "study", "population", "quantity", "metric", "statistic", "value", "spread",
    "lower", "upper", "unit", "n", "source", "obtained",
)  # fmt: skip
STATISTICS = (
    "mean_sd", "median_range", "median_iqr", "typical", "value", "lower_bound", "upper_bound",
)  # fmt: skip
_OBTAINED = ("text", "table", "figure")
_NUMERIC = ("value", "spread", "lower", "upper", "n")


def read_summary_targets(path) -> pd.DataFrame:
    """Read and validate a summary-target CSV (format in the module docstring).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS` plus ``row`` (1-based line); numbers as float (NaN
        where empty).

    Raises
    ------
    DataError
        Listing every problem with its row, column, value and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such summary-target file")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    rows = [
        (i, cells)
        for i, cells in enumerate(csv.reader(lines), start=1)
        if cells and not cells[0].lstrip().startswith("#")
    ]
    if not rows:
        raise DataError(f"{path}: empty file; expected a header {', '.join(SUMMARY_COLUMNS)}")
    header = [c.strip() for c in rows[0][1]]
    missing = [c for c in SUMMARY_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: header lacks column(s) {', '.join(missing)}")
    problems, records, seen = [], [], {}
    for line_no, cells in rows[1:]:
        rec = dict(zip(header, (c.strip() for c in cells), strict=False))
        rec = {c: rec.get(c, "") for c in SUMMARY_COLUMNS}
        rec["row"] = line_no

        def bad(column, expected, rec=rec, line_no=line_no):
            problems.append(f"row {line_no}, column {column}: {rec[column]!r}: {expected}")

        for col in _NUMERIC:
            text = rec[col]
            if text == "":
                rec[col] = math.nan
                continue
            try:
                rec[col] = float(text)
            except ValueError:
                bad(col, "a number (empty when not reported)")
                rec[col] = math.nan
        if not rec["target"]:
            bad("target", "a short unique name")
        elif rec["target"] in seen:
            bad("target", f"a unique name (also on row {seen[rec['target']]})")
        seen.setdefault(rec["target"], line_no)
        if rec["statistic"] not in STATISTICS:
            bad("statistic", f"one of {', '.join(STATISTICS)}")
        if rec["obtained"] not in _OBTAINED:
            bad("obtained", f"one of {', '.join(_OBTAINED)}")
        if not rec["source"]:
            bad("source", "where in the publication the number is (table, text, figure)")
        if math.isnan(rec["value"]):
            bad("value", "the reported number")
        if rec["statistic"] == "mean_sd" and not rec["spread"] >= 0:
            bad("spread", "the SD (>= 0) of a mean_sd row")
        if rec["statistic"] in ("median_range", "median_iqr"):
            lo, hi, v = rec["lower"], rec["upper"], rec["value"]
            if not lo <= v <= hi:
                bad("lower", f"lower <= value <= upper (got {lo}, {v}, {hi})")
        records.append(rec)
    if problems:
        err = DataError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
        err.problems = problems
        raise err
    return pd.DataFrame(records, columns=[*SUMMARY_COLUMNS, "row"])
