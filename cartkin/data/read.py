"""Read and validate observed CAR-T data: NONMEM-style or long-format CSV.

Two layouts are accepted and detected from the header:

NONMEM style (the format every pharmacometric tool shares; recognised by ``ID``, ``TIME`` and
``DV`` in any case, column names are read case-insensitively)
    ``ID, TIME, DV`` required; ``MDV, EVID, AMT, CMT, ADDL, II, DVID, CENS, LIMIT, UNIT``
    optional; covariates ``WT`` (kg), ``HT`` (cm), ``AGE`` (years), ``SEX`` (F/M), ``EGFR``
    (mL/min/1.73m2), ``CRCL`` (mL/min), ``SCR`` (mg/dL), ``DIALYSIS`` (0/1). ``TIME`` is in days
    from the CAR-T infusion. ``EVID=1`` rows are CAR-T doses with ``AMT`` in cells; ``ADDL``
    more doses every ``II`` days are expanded into doses. ``CMT`` on a dose row must name the
    CAR-T infusion, cartkin models' one dose input (``1``, or empty); on observation rows it
    must be one value per DVID (the DVID names what DV measures). ``SS`` (steady state) and
    ``RATE`` (zero-order infusion) are refused. ``.`` or an empty cell is a missing value.
Long format (recognised by ``id, time_days, observable, value`` in any case)
    ``id, time_days, observable, value, unit`` required; ``lloq, cens`` optional; covariate
    columns named as the :class:`cartkin.Patient` fields (``weight_kg``, ``sex``, ...). A row
    whose ``observable`` is ``dose`` is a CAR-T dose (``value`` in cells). A value written
    ``.``, ``BLQ``, empty, or ``<x`` is below the limit (``lloq``, or ``x``).

A header that is neither gets a "did you mean" for each missing column of the nearer layout.

Censoring (M3): ``CENS=1`` means the true value lies below the limit. The limit is ``LIMIT``
when it is given and positive; otherwise ``DV`` (the nlmixr2/Monolix habit of writing the LLOQ
in ``DV``; a ``LIMIT`` of 0 there is the interval's lower end). A row with both, different and
positive, would be an interval to Monolix and is refused. A censored record's ``value`` holds
its limit. ``CENS=-1`` (above a limit) is refused.

Every problem in the file is collected and reported at once in one :class:`DataError`, each line
naming the row (1-based line of the file), the column, the value and what was expected. Rows
that are valid but not used (``MDV=1``, ``EVID=2``, observations before day 0) are listed in
``Dataset.excluded`` with the reason; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from cartkin.data.dataset import Dataset
    from cartkin.models.base import Model

from cartkin.data.spec import DataSpec, ScenarioLike, dvid_key
from cartkin.data.units import CART_ROLES, known_units, parse_unit, scale_factor
from cartkin.errors import DataError

__all__ = ["COVARIATES", "LONG_COLUMNS", "NONMEM_COLUMNS", "read"]

NONMEM_COLUMNS = (
    "ID", "TIME", "DV", "MDV", "EVID", "AMT", "CMT", "ADDL", "II", "DVID", "CENS", "LIMIT", "UNIT",
)  # fmt: skip
#: Columns that identify each layout (in any case).
NONMEM_REQUIRED = ("ID", "TIME", "DV")
LONG_REQUIRED = ("id", "time_days", "observable", "value")
LONG_COLUMNS = ("id", "time_days", "observable", "value", "unit", "lloq", "cens")

#: Numeric covariates: NONMEM column -> (long-format / Patient field, unit, lower, upper).
#: The ranges are the plausibility limits of :class:`cartkin.Patient` (unit-mistake checks).
COVARIATES = {
    "WT": ("weight_kg", "kg", 2.0, 300.0),
    "HT": ("height_cm", "cm", 40.0, 250.0),
    "AGE": ("age_years", "years", 0.0, 120.0),
    "EGFR": ("egfr_ml_min_173m2", "mL/min/1.73m2", 0.0, 200.0),
    "CRCL": ("crcl_ml_min", "mL/min", 0.0, 300.0),
    "SCR": ("serum_creatinine_mg_dl", "mg/dL", 0.1, 20.0),
}
_OTHER_COVARIATES = {"SEX": "sex", "DIALYSIS": "dialysis"}
SUBJECT_COLUMNS = (*(v[0] for v in COVARIATES.values()), "sex", "dialysis")

_LONG_NAMES = {
    "ID": "id", "TIME": "time_days", "DV": "value", "AMT": "value", "DVID": "observable",
    "LIMIT": "lloq", "CENS": "cens", "UNIT": "unit", "SEX": "sex", "DIALYSIS": "dialysis",
    **{k: v[0] for k, v in COVARIATES.items()},
}  # fmt: skip
#: Dose-record features cartkin does not model, and why.
_UNSUPPORTED_DOSING = {
    "SS": "empty or 0: steady-state dosing (SS) is refused: CAR-T cells are infused once or a "
    "few times, never to steady state; write each infusion as an EVID=1 row, or use ADDL/II",
    "RATE": "empty or 0: zero-order infusions (RATE) are refused: cartkin gives each CAR-T "
    "infusion as a bolus at TIME",
}
#: CMT values that name the CAR-T infusion, the one dose input of every cartkin model.
_DOSE_CMT = ("1", "cart")
#: Most doses one ADDL may add (a unit check: ADDL counts infusions, not days).
_MAX_ADDL = 100
#: NONMEM's IGNORE=C habit: a column C whose cell "C" (or "#") comments the row out.
_COMMENT_COLUMN = "C"
#: Plausible TIME, days from the CAR-T infusion: the day range cartkin.covariates.patient accepts for
#: schedules (a unit-mistake check, e.g. hours written as days).
_TIME_RANGE_DAYS = (-365.0, 3650.0)
_MISSING = ("", ".", "na", "nan")
_BLQ = ("blq", "<lloq", "bql", "<lod")
_DOSE_NAMES = ("dose", "cart_dose_cells")
_MAX_CELLS = 1e11  # CarTDose.flat_cells upper limit


def _missing(text: str) -> bool:
    return text.strip().lower() in _MISSING


class _Problems:
    """Collects every problem of a file; raised together as one DataError.

    The message gives one line per distinct problem; the same problem on many rows (one
    misspelt DVID on 300 rows) is one line naming the rows (the first 20, then the count).
    ``DataError.problems`` keeps every problem on its own line.
    """

    _SHOWN_ROWS = 20

    def __init__(self, source: str):
        self.source = source
        self.items: list[str] = []
        self._groups: dict[str, list] = {}  # "column: value: expected" -> rows
        self.names: dict[str, str] = {}  # NONMEM name -> the file's column name (long format)

    def add(self, row, column, value, expected):
        where = f"row {row}" if row is not None else "header"
        column = self.names.get(column, column)
        col = f", column {column}" if column else ""
        shown = f": {value!r}" if value is not None else ""
        self.items.append(f"{where}{col}{shown}: {expected}")
        self._groups.setdefault(f"{col}{shown}: {expected}", []).append(row)

    def raise_if_any(self):
        if not self.items:
            return
        lines = []
        for what, rows in self._groups.items():
            if len(rows) == 1:
                lines.append(f"{'header' if rows[0] is None else f'row {rows[0]}'}{what}")
                continue
            shown = ", ".join(str(r) for r in rows[: self._SHOWN_ROWS])
            more = f" ... ({len(rows)} rows)" if len(rows) > self._SHOWN_ROWS else ""
            lines.append(f"rows {shown}{more}{what}")
        n = len(self.items)
        text = "\n  ".join(lines)
        err = DataError(f"{self.source}: {n} problem{'s' * (n != 1)} in the data:\n  {text}")
        err.problems = list(self.items)
        raise err


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], list[str]]:
    """Header, (line number, cells) per data line, and leading ``#`` comment lines."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such data file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc})") from None
    header, rows, comments = None, [], []
    reader = csv.reader(text.splitlines())
    for line_no, cells in enumerate(reader, start=1):
        if not cells or all(not c.strip() for c in cells):
            continue
        if cells[0].lstrip().startswith("#"):
            if header is None:
                comments.append(",".join(cells).lstrip("# ").rstrip())
            continue
        if header is None:
            header = [c.strip() for c in cells]
            continue
        rows.append((line_no, [c.strip() for c in cells]))
    if header is None:
        raise DataError(f"{path}: no header line (expected column names such as ID,TIME,DV)")
    return header, rows, comments


def _detect(path, header) -> tuple[str, list[str], dict[str, str]]:
    """Layout ("nonmem" or "long"), the header with cartkin's names, and those names -> the
    file's spelling where they differ (for messages)."""
    upper = {c.upper() for c in header}
    lower = {c.lower() for c in header}
    if set(LONG_REQUIRED) <= lower:
        known = {*LONG_COLUMNS, *SUBJECT_COLUMNS}
        kind, names = "long", [c.lower() if c.lower() in known else c for c in header]
    elif set(NONMEM_REQUIRED) <= upper:
        known = {*NONMEM_COLUMNS, *COVARIATES, *_OTHER_COVARIATES, *_UNSUPPORTED_DOSING}
        known.add(_COMMENT_COLUMN)
        kind, names = "nonmem", [c.upper() if c.upper() in known else c for c in header]
    else:
        raise DataError(f"{path}: header {header}: {_layout_hint(header)}")
    spelled = {new: old for new, old in zip(names, header, strict=True) if new != old}
    return kind, names, spelled


def _check_misspelt_columns(kind, header, problems) -> None:
    """A column cartkin does not read that is close to one it reads and the file lacks (EGRF
    for EGFR) is a problem: read as written, its values would be silently ignored."""
    if kind == "long":
        known = {*LONG_COLUMNS, *SUBJECT_COLUMNS}
    else:
        known = {*NONMEM_COLUMNS, *COVARIATES, *_OTHER_COVARIATES, *_UNSUPPORTED_DOSING}
    absent = known - set(header)
    for column in header:
        if column in known or len(column) < 3:
            continue
        close = _closest(column, absent)
        if close is not None:
            problems.add(
                None,
                column,
                None,
                f"not a column cartkin reads, and {close!r} is missing: did you mean {close!r}? "
                "(rename the column, or drop it)",
            )


def _layout_hint(header) -> str:
    """What a header that is neither layout lacks, with a did-you-mean from its own columns."""
    layouts = (("NONMEM", NONMEM_REQUIRED, str.upper), ("long", LONG_REQUIRED, str.lower))
    best = max(
        layouts, key=lambda lay: sum(c in {lay[2](h) for h in header} for c in lay[1])
    )  # the layout with more of its columns present (NONMEM on a tie)
    name, required, case = best
    present = {case(h) for h in header}
    missing = []
    for col in required:
        if col in present:
            continue
        others = [h for h in header if case(h) not in required]
        missing.append(f"{col}{_suggest_ci(col, others)}")
    return (
        "expected a NONMEM-style dataset (columns ID, TIME, DV in any case, optionally MDV, "
        "EVID, AMT, CMT, ADDL, II, DVID, CENS, LIMIT, UNIT and covariates) or the long format "
        f"(id, time_days, observable, value, unit, optionally lloq, cens). As the {name} layout "
        f"it lacks: {'; '.join(missing)}"
    )


def _closest(name, choices):
    """The entry of ``choices`` closest to ``name``, compared case-insensitively, or None.

    ``choices`` may be a mapping of spellings to the name each one suggests (an observable's
    name without its unit suffix -> the observable).
    """
    aliases = choices if isinstance(choices, dict) else {c: c for c in choices}
    by_lower = {}
    for alias, target in aliases.items():
        by_lower.setdefault(str(alias).lower(), target)
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def _did_you_mean(name, choices) -> str:
    """A " Did you mean 'x'?" hint for a misspelt ``name`` (empty string if none is close)."""
    close = _closest(name, choices)
    return f" Did you mean {close!r}?" if close is not None else ""


def _suggest_ci(name, choices) -> str:
    """A " (did you mean 'x'?)" hint for a missing column ``name``, from the file's columns."""
    close = _closest(name, choices)
    return f" (did you mean {close!r}?)" if close is not None else ""


def _long_to_nonmem(header, rows, problems):
    """Map long-format rows onto NONMEM column names (cells stay text)."""
    for required in ("unit",):
        if required not in header:
            problems.add(None, required, None, "the long format needs a 'unit' column")
    index = {name: i for i, name in enumerate(header)}
    cov_names = {v[0]: k for k, v in COVARIATES.items()} | {"sex": "SEX", "dialysis": "DIALYSIS"}
    out_header = ["ID", "TIME", "DV", "EVID", "AMT", "MDV", "DVID", "CENS", "LIMIT", "UNIT"]
    extra = [c for c in header if c in cov_names]
    out_header += [cov_names[c] for c in extra]
    out = []
    for line_no, cells in rows:

        def get(name, cells=cells):
            i = index.get(name)
            return cells[i] if i is not None and i < len(cells) else ""

        obs, value, lloq = get("observable"), get("value"), get("lloq")
        if obs.strip().lower() in _DOSE_NAMES:
            rec = [get("id"), get("time_days"), ".", "1", value, "1", ".", "0", ".", get("unit")]
        else:
            cens, limit = get("cens"), lloq
            low = value.strip().lower()
            if not cens:
                if low.startswith("<") and low not in _BLQ:
                    cens, limit, value = "1", value.strip()[1:], "."
                elif _missing(value) or low in _BLQ:
                    cens, value = ("1", ".") if not _missing(lloq) else ("0", value)
                else:
                    cens = "0"
            elif low in _BLQ:
                value = "."
            rec = [get("id"), get("time_days"), value, "0", ".", "0", obs, cens, limit]
            rec.append(get("unit"))
        rec += [get(c) for c in extra]
        out.append((line_no, rec))
    return out_header, out


def read(
    path: str | Path | None = None,
    *,
    model: str | Model | None = None,
    dvid_map: Mapping[Any, str] | None = None,
    units: Mapping[Any, str] | None = None,
    sex_codes: Mapping[Any, str] | None = None,
    scenario: ScenarioLike | DataSpec | None = None,
    exclude_unknown: bool = False,
) -> Dataset:
    """Read a NONMEM-style or long-format CSV into a validated :class:`Dataset`.

    Parameters
    ----------
    path : str or Path, optional
        The CSV file. Leading lines starting with ``#`` are kept as ``Dataset.header_comments``.
        Default: the scenario's ``[data] file``.
    model : str or cartkin.models.Model, optional if ``scenario`` is given
        The model whose observables the data are matched to.
    dvid_map : dict, optional
        DVID code -> observable name or role (``{1: "cart", 2: "b_cells"}``). Required for
        numeric DVID codes. Defaults to the scenario's ``[data.dvid]``.
    units : dict, optional
        DVID code, role or observable -> unit, used where the file has no UNIT value.
        Defaults to the scenario's ``[data.units]``.
    sex_codes : dict, optional
        Numeric SEX code -> ``"female"`` or ``"male"`` (``{0: "male", 1: "female"}``).
        Defaults to the scenario's ``[data.sex]``; without it numeric codes are refused.
    scenario : cartkin.Scenario or DataSpec, optional
        Supplies the model, the ``[data]`` table and, later, the base patient and regimen.
    exclude_unknown : bool
        False (default): an observation whose DVID the model has no observable for is a
        problem. True: it is excluded and listed in ``Dataset.excluded`` (to fit a model to
        the part of a dataset it describes, e.g. ``stein2019`` to a file with B cells).

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Listing every problem: file, row, column, value and what was expected.
    """
    from cartkin import models
    from cartkin.data.dataset import Dataset

    spec = _spec_of(scenario)
    if model is None:
        if scenario is None or not hasattr(scenario, "model"):
            raise DataError("read: model = None; expected a model name or Model (or a scenario)")
        model = scenario.model
    model = models.get(model)
    dvid_map = {dvid_key(k): v for k, v in (dvid_map or spec.dvid_map).items()}
    units = {dvid_key(k): v for k, v in (units or spec.units).items()}
    sex_codes = {dvid_key(k): str(v).lower() for k, v in (sex_codes or spec.sex_codes).items()}
    bad = {k: v for k, v in sex_codes.items() if v not in ("female", "male")}
    if bad:
        raise DataError(f"read: sex_codes = {bad}: expected codes mapped to 'female' or 'male'")
    if path is None:
        if spec.file is None:
            raise DataError("read: no path given and no [data] file in the scenario")
        path = spec.file
    path = Path(path)
    source = path.name
    header, rows, comments = _read_rows(path)
    kind, header, spelled = _detect(path, header)
    if not rows:
        raise DataError(f"{path}: no data rows after the header; expected one row per record")
    problems = _Problems(str(path))
    problems.names = spelled
    _check_misspelt_columns(kind, header, problems)
    if kind == "long":
        header, rows = _long_to_nonmem(header, rows, problems)
        problems.names = {k: spelled.get(v, v) for k, v in _LONG_NAMES.items()}
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        problems.add(None, ",".join(duplicated), None, "each column name once")
    known = {*NONMEM_COLUMNS, *COVARIATES, *_OTHER_COVARIATES, *_UNSUPPORTED_DOSING}
    known.add(_COMMENT_COLUMN)
    ignored = [c for c in header if c not in known]
    index = {name: i for i, name in enumerate(header)}

    excluded = []
    if _COMMENT_COLUMN in index:
        i_c, kept = index[_COMMENT_COLUMN], []
        for line_no, cells in rows:
            if i_c < len(cells) and cells[i_c] in ("C", "#"):
                pid = cells[index["ID"]] if index["ID"] < len(cells) else ""
                excluded.append(
                    {"row": line_no, "id": pid, "time_days": math.nan,
                     "reason": "commented out (C column)"}
                )  # fmt: skip
            else:
                kept.append((line_no, cells))
        rows = kept
    resolver = _Resolver(model, dvid_map, units, problems, exclude_unknown)
    if "DVID" not in header:
        problems.add(
            None,
            "DVID",
            None,
            "a DVID column naming each observation's observable or role (for example "
            f"'{model.roles['cart']}' or 'cart'); cartkin does not guess what DV measures"
            + _suggest_ci("DVID", ignored),
        )

    obs_records, dose_records, more_excluded, subject_values = _parse_rows(
        rows, header, index, resolver, problems, sex_codes
    )
    excluded += more_excluded
    _check_order(rows, index, problems)
    subjects = _subjects(subject_values, problems)
    observations = pd.DataFrame(
        obs_records,
        columns=[
            "id", "time_days", "observable", "value", "cens", "limit", "unit", "dvid", "row",
        ],
    )  # fmt: skip
    observations["source"] = source
    doses = pd.DataFrame(dose_records, columns=["id", "time_days", "cells", "row"])
    _check_duplicates(observations, ["id", "time_days", "observable"], problems, "observation")
    _check_duplicates(doses, ["id", "time_days"], problems, "CAR-T dose")
    problems.raise_if_any()

    ids = list(dict.fromkeys([pid for pid in _ids_in_order(rows, index)]))
    observations = observations.astype(
        {"id": str, "time_days": float, "value": float, "cens": int, "limit": float, "row": int}
    )
    excluded_rows = pd.DataFrame(excluded, columns=["row", "id", "time_days", "reason"])
    return Dataset(
        observations=observations.reset_index(drop=True),
        doses=doses.astype({"id": str, "time_days": float, "cells": float}),
        subjects=subjects.reindex(ids),
        excluded=excluded_rows.sort_values("row", kind="stable").reset_index(drop=True),
        ids=ids,
        model=model,
        path=path,
        kind=kind,
        ignored_columns=ignored,
        header_comments=comments,
        rerouted=resolver.rerouted,
        scenario=None if isinstance(scenario, DataSpec) else scenario,
    )


def _parse_rows(rows, header, index, resolver, problems, sex_codes):
    """Parse every data row: (observation records, dose records, excluded rows, covariates).

    Problems are collected in ``problems``; a row with a problem contributes nothing else.
    """
    obs_records, dose_records, excluded = [], [], []
    cmts: dict[str, tuple[str, int]] = {}  # DVID -> (CMT, first row) on observation rows
    subject_values: dict[str, dict[str, list[tuple[int, object]]]] = {}
    for line_no, cells in rows:
        if len(cells) > len(header):
            problems.add(line_no, None, None, f"{len(cells)} cells; the header has {len(header)}")
            continue

        def cell(name, cells=cells):
            i = index.get(name)
            return cells[i] if i is not None and i < len(cells) else ""

        def number(name, default=math.nan, row=line_no, cell=cell):
            text = cell(name)
            if _missing(text):
                return default
            try:
                value = float(text)
            except ValueError:
                problems.add(row, name, text, "a number ('.' or empty for missing)")
                return None
            if not math.isfinite(value):
                problems.add(row, name, text, "a finite number")
                return None
            return value

        pid = cell("ID")
        if _missing(pid):
            problems.add(line_no, "ID", pid, "a subject identifier")
            continue
        pid = dvid_key(pid)
        time = number("TIME", default=None)
        if time is None:
            if _missing(cell("TIME")):
                problems.add(line_no, "TIME", cell("TIME"), "days from the CAR-T infusion")
            continue
        if not _TIME_RANGE_DAYS[0] <= time <= _TIME_RANGE_DAYS[1]:
            problems.add(
                line_no,
                "TIME",
                cell("TIME"),
                f"days from the CAR-T infusion in [{_TIME_RANGE_DAYS[0]:g}, "
                f"{_TIME_RANGE_DAYS[1]:g}] (hours? divide by 24)",
            )
            continue
        _collect_covariates(pid, line_no, cell, subject_values, problems, number, sex_codes)
        evid = number("EVID", default=0.0)
        if evid is None:
            continue
        if evid not in (0.0, 1.0, 2.0):
            problems.add(
                line_no, "EVID", cell("EVID"), "0 (observation), 1 (CAR-T dose) or 2 (other)"
            )
            continue
        mdv = number("MDV", default=0.0 if evid == 0 else 1.0)
        if mdv is None:
            continue
        if mdv not in (0.0, 1.0):
            problems.add(line_no, "MDV", cell("MDV"), "0 or 1")
            continue
        base = {"row": line_no, "id": pid, "time_days": time}
        if evid == 1:
            doses = _dose_records(line_no, cell, number, problems, base, time)
            dose_records.extend(doses or ())
            continue
        cmt = cell("CMT")
        if not _missing(cmt) and not _observation_cmt(line_no, cmt, cell("DVID"), cmts, problems):
            continue
        if evid == 2:
            excluded.append(base | {"reason": "EVID=2: other event (regimen from the scenario)"})
            continue
        if mdv == 1:
            excluded.append(base | {"reason": "MDV=1: no observation"})
            continue
        record = _observation(line_no, cell, number, resolver, problems)
        if record is None:
            continue
        if "skip" in record:
            excluded.append(base | {"reason": record["skip"]})
            continue
        record |= base
        if time < 0:
            excluded.append(
                base | {"reason": f"{record['observable']} before the CAR-T infusion (day 0)"}
            )
            continue
        obs_records.append(record)

    return obs_records, dose_records, excluded, subject_values


def _dose_records(row, cell, number, problems, base, time):
    """The CAR-T dose(s) of one EVID=1 row (ADDL/II expanded); None after reporting."""
    ok = True
    for col, expected in _UNSUPPORTED_DOSING.items():
        value = number(col, default=0.0)
        if value is None:
            ok = False
        elif value != 0.0:
            problems.add(row, col, cell(col), expected)
            ok = False
    cmt = cell("CMT")
    if not _missing(cmt) and dvid_key(cmt).lower() not in _DOSE_CMT:
        problems.add(
            row,
            "CMT",
            cmt,
            "1 or empty: the CAR-T infusion, the one dose input of cartkin's models (each model "
            "distributes the infused cells over its own states); doses into other compartments "
            "are not modelled",
        )
        ok = False
    addl, ii = number("ADDL", default=0.0), number("II", default=0.0)
    if addl is None or ii is None:
        return None
    if not (addl.is_integer() and 0 <= addl <= _MAX_ADDL):
        problems.add(
            row, "ADDL", cell("ADDL"), f"a whole number of additional doses in [0, {_MAX_ADDL}]"
        )
        ok = False
    elif addl > 0 and not ii > 0:
        problems.add(
            row, "II", cell("II"), f"the interval in days (> 0) between the ADDL={addl:g} doses"
        )
        ok = False
    elif addl == 0 and ii != 0:
        problems.add(row, "II", cell("II"), "empty or 0 without ADDL (II spaces the ADDL doses)")
        ok = False
    amt = number("AMT", default=None)
    if amt is None:
        if _missing(cell("AMT")):
            problems.add(row, "AMT", cell("AMT"), "the CAR-T dose in cells on EVID=1")
        return None
    if not 0 < amt <= _MAX_CELLS:
        problems.add(
            row, "AMT", cell("AMT"), f"total CAR-T cells in (0, {_MAX_CELLS:g}] (not cells/kg)"
        )
        return None
    if time < 0:
        problems.add(row, "TIME", cell("TIME"), "a CAR-T dose at day >= 0 (day 0 = infusion)")
        return None
    if not ok:
        return None
    days = [time + k * ii for k in range(int(addl) + 1)]
    if days[-1] > _TIME_RANGE_DAYS[1]:
        problems.add(
            row, "ADDL", cell("ADDL"),
            f"doses within {_TIME_RANGE_DAYS[1]:g} days (the last of ADDL={addl:g} every II={ii:g} "
            f"days falls on day {days[-1]:g})",
        )  # fmt: skip
        return None
    return [base | {"time_days": day, "cells": amt} for day in days]


def _observation_cmt(row, cmt, dvid, seen, problems) -> bool:
    """CMT on an observation row: one value per DVID (DVID names the observable), else refused."""
    key = dvid_key(dvid)
    first = seen.setdefault(key, (cmt, row))
    if first[0] == cmt:
        return True
    problems.add(
        row,
        "CMT",
        cmt,
        f"CMT {first[0]!r} as on row {first[1]} for DVID {dvid!r}: cartkin takes the observable "
        "from DVID, so a DVID observed in two compartments would be read as one; give each "
        "its own DVID",
    )
    return False


def _spec_of(scenario) -> DataSpec:
    if scenario is None:
        return DataSpec()
    if isinstance(scenario, DataSpec):
        return scenario
    spec = getattr(scenario, "data", None)
    return spec if isinstance(spec, DataSpec) else DataSpec()


def _ids_in_order(rows, index):
    i = index["ID"]
    for _, cells in rows:
        if i < len(cells) and not _missing(cells[i]):
            yield dvid_key(cells[i])


class _Skip(str):
    """An observation the model has no observable for, excluded on request (the reason)."""


class _Resolver:
    """DVID code + unit -> (observable, factor to the observable's unit)."""

    def __init__(self, model, dvid_map, units, problems, exclude_unknown=False):
        self.model = model
        self.exclude_unknown = exclude_unknown
        self.dvid_map = dvid_map
        self.units = units
        self.problems = problems
        self.observables = {o.name: o for o in model.observables}
        self.role_of = {obs: role for role, obs in model.roles.items() if obs is not None}
        self.rerouted: dict[tuple[str, str], str] = {}
        self._cache: dict[tuple[str, str], tuple] = {}

    def resolve(self, row, code, unit_text):
        """(observable, factor, unit) for a DVID code and unit cell; None after reporting."""
        key = (code, unit_text)
        if key in self._cache:
            return self._cache[key]
        n_problems = len(self.problems.items)
        obs = self.observable(row, code)
        if isinstance(obs, _Skip):
            self._cache[key] = obs
            return obs
        routed = None if obs is None else self.unit_for(row, code, obs, unit_text)
        if routed is not None and len(self.problems.items) == n_problems:
            self._cache[key] = routed  # only clean resolutions: every bad row is reported
        return routed

    def observable(self, row, code):
        key = dvid_key(code)
        name = self.dvid_map.get(key, key)
        if name not in self.dvid_map.values() and _is_number(key):
            self.problems.add(
                row,
                "DVID",
                code,
                "an observable name or role; numeric DVID codes need a mapping "
                f"(dvid_map={{{key}: 'cart'}}, [data.dvid] {key} = \"cart\" in the scenario, or "
                f"`cartkin fit --dvid {key}=cart`)",
            )
            return None
        if name in self.observables:
            return name
        if name in self.model.roles and self.model.roles[name] is not None:
            return self.model.roles[name]
        if self.exclude_unknown:
            return _Skip(f"{name}: model {self.model.name} has no such observable")
        if name in self.model.roles:
            self.problems.add(
                row, "DVID", code, f"a role model {self.model.name!r} has an observable for"
            )
            return None
        choices = [*self.observables, *(r for r, o in self.model.roles.items() if o)]
        # an observable also answers to its name without the unit ('cart_cells' for
        # cart_cells_per_ul), so a misspelling is matched to what it names, not to its unit
        aliases = {o.split("_per_")[0]: o for o in self.observables} | {c: c for c in choices}
        self.problems.add(
            row,
            "DVID",
            code,
            f"an observable of model {self.model.name!r} or a role.{_did_you_mean(name, aliases)}"
            f" Known: {', '.join(choices)}",
        )
        return None

    def unit_for(self, row, code, obs, text):
        """Return (observable after routing, factor into its unit, unit symbol) or None."""
        if _missing(text):
            key = dvid_key(code)
            role = self.role_of.get(obs)
            text = next(
                (
                    self.units[k]
                    for k in (key, self.dvid_map.get(key), obs, role)
                    if k in self.units
                ),
                None,
            )
            if text is None:
                if dvid_key(code) == obs:  # a full observable name carries its unit
                    text = self.observables[obs].unit
                else:
                    self.problems.add(
                        row,
                        "UNIT",
                        None,
                        f"a unit for DVID {code!r}: add a UNIT column, units={{{code!r}: "
                        f"'{self.observables[obs].unit}'}}, [data.units] in the scenario or "
                        f"`cartkin fit --unit {code}={self.observables[obs].unit}`",
                    )
                    return None
        unit = parse_unit(text)
        target = self.observables[obs]
        target_unit = parse_unit(target.unit)
        if unit is None:
            self.problems.add(
                row, "UNIT", text, f"a unit cartkin knows: {', '.join(known_units())}"
            )
            return None
        if target_unit is None:  # a user model with a unit cartkin does not know: exact match
            if text.strip() != target.unit:
                self.problems.add(row, "UNIT", text, f"{target.unit!r} (the unit of {obs})")
                return None
            return obs, 1.0, target.unit
        if unit.dimension != target_unit.dimension:
            routed = self._route(obs, unit)
            if routed is None:
                self.problems.add(
                    row,
                    "UNIT",
                    text,
                    f"a unit of {obs} ({target.unit}): "
                    f"{', '.join(known_units(target_unit.dimension))}. cartkin converts "
                    f"{unit.dimension.replace('_', ' ')} to {target.unit} only through an "
                    "observable the model declares, and this model has none",
                )
                return None
            self.rerouted[(dvid_key(code), unit.symbol)] = routed
            obs, target_unit = routed, parse_unit(self.observables[routed].unit)
        return obs, scale_factor(unit, target_unit), target_unit.symbol

    def _route(self, obs, unit):
        """CAR-T data in another dimension go to the model's CAR-T observable of that dimension."""
        if self.role_of.get(obs) not in CART_ROLES.values():
            return None
        role = CART_ROLES.get(unit.dimension)
        return self.model.roles.get(role) if role else None


def _is_number(text) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _observation(row, cell, number, resolver, problems):
    """Parse one EVID=0, MDV=0 record; None after reporting its problems."""
    code = cell("DVID")
    if _missing(code):
        problems.add(row, "DVID", code, "the observable or role this DV measures")
        return None
    dv, limit, cens = number("DV"), number("LIMIT"), number("CENS", default=0.0)
    if dv is None or limit is None or cens is None:
        return None
    ok = True
    if cens not in (0.0, 1.0):
        expected = "0 or 1" + (" (CENS=-1, above a limit, is not supported)" if cens == -1 else "")
        problems.add(row, "CENS", cell("CENS"), expected)
        ok = False
    for name, value in (("DV", dv), ("LIMIT", limit)):
        if value < 0:
            problems.add(row, name, cell(name), "a value >= 0 (a level cannot be negative)")
            ok = False
    if cens == 1:
        if limit > 0 and dv > 0 and not math.isclose(dv, limit, rel_tol=1e-9):
            # Monolix/nlmixr2 read such a row as the interval [LIMIT, DV]; cartkin's M3 needs one
            # limit, so it refuses to guess which column holds it
            problems.add(
                row,
                "LIMIT",
                cell("LIMIT"),
                f"one limit for a CENS=1 record: DV {cell('DV')} and LIMIT differ (interval "
                "censoring is not supported); give the LLOQ in LIMIT and '.' in DV",
            )
            ok = False
        limit = limit if limit > 0 else dv  # LIMIT 0 is the interval's lower end (Monolix)
        if not limit > 0:
            problems.add(row, "LIMIT", cell("LIMIT"), "the limit (LLOQ, > 0) of a CENS=1 record")
            ok = False
    elif math.isnan(dv):
        problems.add(row, "DV", cell("DV"), "a value where MDV=0 (or MDV=1, or CENS=1 + LIMIT)")
        ok = False
    if not ok:
        return None
    routed = resolver.resolve(row, code, cell("UNIT"))
    if routed is None:
        return None
    if isinstance(routed, _Skip):
        return {"skip": str(routed)}
    obs, factor, unit = routed
    value = limit if cens == 1 else dv
    return {
        "observable": obs,
        "value": value * factor,
        "cens": int(cens),
        "limit": limit * factor,
        "unit": unit,
        "dvid": code,
    }


def _collect_covariates(pid, row, cell, store, problems, number, sex_codes):
    values = store.setdefault(pid, {})
    for col, (field, unit, lower, upper) in COVARIATES.items():
        value = number(col)
        if value is None or math.isnan(value):
            continue
        if not lower <= value <= upper:
            hint = ""
            if col == "SCR" and value > upper:
                hint = " (umol/L? divide by 88.4 for mg/dL)"
            if col == "HT" and value < lower:
                hint = " (metres? multiply by 100)"
            problems.add(row, col, cell(col), f"{field} in [{lower:g}, {upper:g}] {unit}{hint}")
            continue
        values.setdefault(field, []).append((row, value))
    sex = cell("SEX")
    if not _missing(sex):
        key = sex.lower()
        key = sex_codes.get(dvid_key(sex), key)
        if key in ("f", "female", "w", "woman"):
            values.setdefault("sex", []).append((row, "female"))
        elif key in ("m", "male", "man"):
            values.setdefault("sex", []).append((row, "male"))
        else:
            problems.add(
                row,
                "SEX",
                sex,
                "F or M (numeric codes are ambiguous: datasets use 0/1 and 1/2 either way; "
                "declare them with sex_codes={0: 'male', 1: 'female'} or [data.sex])",
            )
    dialysis = cell("DIALYSIS")
    if not _missing(dialysis):
        if dialysis.lower() in ("1", "1.0", "true", "yes"):
            values.setdefault("dialysis", []).append((row, True))
        elif dialysis.lower() in ("0", "0.0", "false", "no"):
            values.setdefault("dialysis", []).append((row, False))
        else:
            problems.add(row, "DIALYSIS", dialysis, "0 or 1 (1 = on hemodialysis)")


def _subjects(store, problems) -> pd.DataFrame:
    """One row per ID; a covariate that changes within an ID is a problem (not time-varying)."""
    records = {}
    for pid, fields in store.items():
        rec = {}
        for field, entries in fields.items():
            distinct = {v for _, v in entries}
            if len(distinct) > 1:
                rows = ", ".join(str(r) for r, _ in entries[:6])
                problems.add(
                    entries[0][0],
                    field,
                    sorted(distinct, key=str),
                    f"one value per ID (ID {pid}, rows {rows}); time-varying covariates are not "
                    "supported",
                )
            rec[field] = entries[0][1]
        records[pid] = rec
    frame = pd.DataFrame.from_dict(records, orient="index").reindex(columns=SUBJECT_COLUMNS)
    frame.index.name = "id"
    frame["dialysis"] = frame["dialysis"].astype("boolean")
    return frame


def _check_order(rows, index, problems):
    """TIME non-decreasing within each ID, and each ID in one contiguous block."""
    i_id, i_t = index["ID"], index["TIME"]
    last_time, last_row, seen, current = {}, {}, set(), None
    for line_no, cells in rows:
        if i_id >= len(cells) or i_t >= len(cells) or _missing(cells[i_id]):
            continue
        pid = dvid_key(cells[i_id])
        if pid != current:
            if pid in seen:
                problems.add(
                    line_no,
                    "ID",
                    cells[i_id],
                    f"each ID's rows together (ID {pid} already ended before row {line_no})",
                )
            seen.add(pid)
            current = pid
        try:
            t = float(cells[i_t])
        except ValueError:
            continue
        if pid in last_time and t < last_time[pid]:
            problems.add(
                line_no,
                "TIME",
                cells[i_t],
                f"times sorted within each ID (ID {pid}: {t:g} after {last_time[pid]:g} at "
                f"row {last_row[pid]})",
            )
        last_time[pid], last_row[pid] = t, line_no


def _check_duplicates(frame, keys, problems, what):
    if frame.empty:
        return
    dup = frame[frame.duplicated(keys, keep="first")]
    for rec in dup.itertuples(index=False):
        first = frame[(frame[keys] == pd.Series(rec._asdict())[keys]).all(axis=1)]["row"].iloc[0]
        problems.add(
            rec.row,
            "TIME",
            rec.time_days,
            f"one {what} per ID, time{' and observable' if 'observable' in keys else ''} "
            f"(duplicate of row {first}, ID {rec.id})",
        )
