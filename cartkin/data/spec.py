"""The scenario file's ``[data]`` table: where the data are and how to read their codes.

::

    [data]
    file = "../cartkin/data/examples/synthetic_cohort.csv"   # optional; relative to the scenario
    [data.dvid]                  # DVID code -> model observable name or role
    1 = "cart"
    2 = "b_cells"
    [data.units]                 # unit of each DVID code, role or observable, when the file has
    cart = "cells/uL"            # no UNIT column (a UNIT column wins where it has a value)
    b_cells = "cells/uL"
    [data.sex]                   # numeric SEX codes, if the file uses them
    0 = "male"
    1 = "female"

Keys of ``[data.dvid]`` are the codes as written in the DVID column (TOML keys are strings;
``1`` and ``"1"`` are the same code). Values of ``[data.units]`` must be units cartkin knows
(:data:`cartkin.data.units.UNITS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cartkin.data.units import known_units, parse_unit
from cartkin.errors import DataError, ScenarioError

__all__ = ["DataSpec", "ScenarioLike", "dvid_key", "parse_assignments", "parse_data_table"]

_KEYS = ("file", "dvid", "units", "sex")


def dvid_key(code) -> str:
    """Normalise a DVID code for lookup: ``1``, ``1.0`` and ``"1"`` are the same key."""
    text = str(code).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def parse_assignments(values, option: str, what: str) -> dict[str, str]:
    """``["1=cart", "2=b_cells"]`` (repeatable ``--dvid``/``--unit`` options) -> a dict.

    Parameters
    ----------
    values : sequence of str or None
        ``KEY=VALUE`` texts; a text may hold several, comma-separated.
    option : str
        The option, for messages (``"--dvid"``).
    what : str
        What a value is, for messages (``"an observable name or role"``).

    Raises
    ------
    DataError
        A text without ``=`` or with an empty side, naming the option and the text.
    """
    out: dict[str, str] = {}
    for text in values or ():
        for item in str(text).split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise DataError(
                    f"{option} {item!r}: expected KEY=VALUE (KEY a DVID code, role or "
                    f"observable; VALUE {what})"
                )
            out[dvid_key(key)] = value.strip()
    return out


class ScenarioLike(Protocol):
    """What the data layer reads of a :class:`cartkin.Scenario`: its model, its base variant
    (patient, regimen, clearance model) and its parsed ``[data]`` table.

    A protocol rather than an import, because :mod:`cartkin.scenario` parses the ``[data]``
    table with this module: the data layer sits above the scenario loader.
    """

    model: Any
    base: Any
    data: DataSpec | None


@dataclass(frozen=True)
class DataSpec:
    """How to read a dataset (the parsed ``[data]`` table).

    Attributes
    ----------
    file : Path or None
        Dataset path, resolved against the scenario file's folder.
    dvid_map : dict of str to str
        DVID code (normalised by :func:`dvid_key`) -> observable name or role.
    units : dict of str to str
        DVID code, role or observable name -> unit.
    sex_codes : dict of str to str
        Numeric SEX code (normalised) -> "female" or "male".
    """

    file: Path | None = None
    dvid_map: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    sex_codes: dict = field(default_factory=dict)


def parse_data_table(table, where: str = "<scenario>", base_dir: Path | None = None) -> DataSpec:
    """Validate a ``[data]`` table and return a :class:`DataSpec`.

    Parameters
    ----------
    table : dict
        The parsed TOML table.
    where : str
        The scenario file, for error messages.
    base_dir : Path, optional
        Folder that a relative ``file`` is resolved against (the scenario's folder).

    Raises
    ------
    ScenarioError
        Naming the file, the key, the value and what was expected.
    """
    from cartkin.config import check_keys

    check_keys(where, "data", table, _KEYS)
    path = None
    if "file" in table:
        if not isinstance(table["file"], str) or not table["file"]:
            raise ScenarioError(f"{where}: [data] file = {table['file']!r}: expected a path string")
        path = Path(table["file"])
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    dvid_map = {}
    for code, name in _table(where, "dvid", table.get("dvid", {})).items():
        if not isinstance(name, str) or not name:
            raise ScenarioError(
                f"{where}: [data.dvid] {code} = {name!r}: expected an observable name or a role "
                "(a string such as 'cart' or 'b_cells_per_ul')"
            )
        dvid_map[dvid_key(code)] = name
    units = {}
    for key, unit in _table(where, "units", table.get("units", {})).items():
        if not isinstance(unit, str) or parse_unit(unit) is None:
            raise ScenarioError(
                f"{where}: [data.units] {key} = {unit!r}: expected a unit cartkin knows, one of "
                + ", ".join(known_units())
            )
        units[dvid_key(key)] = unit
    sex_codes = {}
    for code, sex in _table(where, "sex", table.get("sex", {})).items():
        if sex not in ("female", "male"):
            raise ScenarioError(
                f'{where}: [data.sex] {code} = {sex!r}: expected "female" or "male"'
            )
        sex_codes[dvid_key(code)] = sex
    return DataSpec(file=path, dvid_map=dvid_map, units=units, sex_codes=sex_codes)


def _table(where, name, value):
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: [data.{name}]: expected a table of key = value")
    return value
