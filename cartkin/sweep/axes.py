"""Sweep axes: dotted scenario keys and their values, checked and written into a scenario.

``"cart.cells_per_kg" = [3e4, 1e5]``, ``{ log_from = 3e4, to = 1e6, n = 8 }`` (log-spaced) or
``{ from = a, to = b, n = k }`` (evenly spaced); ``clearance_model`` is short for
``scenario.clearance_model``; ``"patient.egfr_ml_min_173m2"`` may take the value ``"dialysis"``
(the ``[sweep.dialysis]`` schedule). A kidney-function axis replaces the base patient's kidney
function, except that the value ``"dialysis"`` keeps the residual function of a base patient
already on dialysis (the rule of scenario variants).

In the store such an eGFR axis stays numeric: the dialysis arm's eGFR coordinate is NaN and a
boolean coordinate ``patient.dialysis`` along the same dimension marks it, so
``ds.sel({"patient.egfr_ml_min_173m2": 60})`` selects by number.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from cartkin.config import KIDNEY_KEYS, SCENARIO_KEYS, SOLVER_KEYS, replaced_kidney_keys
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import CarTDose, Lymphodepletion
from cartkin.errors import ScenarioError
from cartkin.parameters import suggest

__all__ = ["DIALYSIS", "DIALYSIS_COORD", "Axis", "apply_axis_value", "axis_attrs", "parse_axes"]

_SECTIONS = {
    "patient": tuple(f.name for f in dataclasses.fields(Patient)),
    "lymphodepletion": tuple(f.name for f in dataclasses.fields(Lymphodepletion)),
    "cart": tuple(f.name for f in dataclasses.fields(CarTDose)),
    "scenario": tuple(k for k in SCENARIO_KEYS if k not in ("name", "description", "model")),
    "solver": tuple(SOLVER_KEYS),
}
DIALYSIS = "dialysis"
#: Name of the boolean store coordinate that marks the dialysis arm of an eGFR axis.
DIALYSIS_COORD = "patient.dialysis"

#: long_name and units of the common axis keys (store attributes and figure labels); other
#: keys fall back to the model's parameter table or to the unit suffix of the key.
AXIS_ATTRS = {
    "cart.cells_per_kg": ("CAR-T dose", "cells/kg"),
    "cart.flat_cells": ("CAR-T dose", "cells"),
    "patient.egfr_ml_min_173m2": ("eGFR", "mL/min/1.73m2"),
    "patient.crcl_ml_min": ("creatinine clearance", "mL/min"),
    "patient.serum_creatinine_mg_dl": ("serum creatinine", "mg/dL"),
    "patient.weight_kg": ("body weight", "kg"),
    "patient.height_cm": ("height", "cm"),
    "patient.age_years": ("age", "year"),
    "patient.sex": ("sex", None),
    "lymphodepletion.flu_mg_m2_per_day": ("fludarabine dose", "mg/m2/day"),
    "lymphodepletion.flu_rule": ("fludarabine dose rule", None),
    "lymphodepletion.flu_target_auc_mg_h_per_l": ("fludarabine AUC target", "mg.h/L"),
    "lymphodepletion.cy_mg_m2": ("cyclophosphamide dose", "mg/m2"),
    "scenario.clearance_model": ("fludarabine clearance model", None),
    "scenario.t_end_days": ("horizon after CAR-T infusion", "day"),
    "solver.method": ("integration method", None),
    "solver.rtol": ("relative tolerance", "1"),
    "solver.atol": ("absolute tolerance", "1"),
}
_UNIT_SUFFIXES = (("_days", "day"), ("_h", "h"), ("_kg", "kg"), ("_mg_m2", "mg/m2"),
                  ("_mg_h_per_l", "mg.h/L"), ("_years", "year"), ("_cm", "cm"))  # fmt: skip


@dataclass(frozen=True)
class Axis:
    """One sweep dimension.

    Attributes
    ----------
    key : str
        Dotted scenario key (``"cart.cells_per_kg"``); also the dimension name in the store.
    values : tuple
        Values in file order (numbers, or strings such as clearance-model names or "dialysis").
    log : bool
        True when given as ``{log_from, to, n}`` (plots use a log scale for it).
    """

    key: str
    values: tuple
    log: bool = False

    @property
    def numeric(self) -> bool:
        """True when every value is a number (the store coordinate is then float64)."""
        return all(isinstance(v, int | float) and not isinstance(v, bool) for v in self.values)

    @property
    def has_dialysis(self) -> bool:
        """True for a kidney axis whose values are numbers and ``"dialysis"``."""
        return DIALYSIS in self.values and all(is_number(v) or v == DIALYSIS for v in self.values)

    def coordinate(self) -> np.ndarray:
        """The store coordinate: float64 for numbers (NaN for ``"dialysis"`` on an eGFR axis
        that mixes both, see :attr:`has_dialysis`), else the values as strings."""
        if self.numeric:
            return np.asarray(self.values, dtype=np.float64)
        if self.has_dialysis:
            return np.asarray([math.nan if v == DIALYSIS else v for v in self.values], np.float64)
        return np.asarray([value_text(v) for v in self.values], dtype=str)

    def dialysis_mask(self) -> np.ndarray:
        """The ``patient.dialysis`` coordinate: True at the dialysis value (bool, shape (n,))."""
        return np.asarray([v == DIALYSIS for v in self.values], dtype=bool)


def axis_attrs(key: str, model=None) -> tuple[str, str | None]:
    """(long_name, units) of an axis key; units None for names (strings)."""
    key = "scenario.clearance_model" if key == "clearance_model" else key
    if key in AXIS_ATTRS:
        return AXIS_ATTRS[key]
    section, _, name = key.partition(".")
    if section == "parameters" and model is not None and name in model.parameters.names:
        par = model.parameters[name]
        unit = "1" if par.unit in ("-", "") else par.unit
        return f"{name}: {par.description.rstrip('.')}", unit
    unit = next((u for suffix, u in _UNIT_SUFFIXES if name.endswith(suffix)), "1")
    return name.replace("_", " "), unit


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def value_text(value) -> str:
    return f"{value:g}" if is_number(value) else str(value)


def _axis_key(where, key, model):
    """Check a dotted axis key; return it normalised (``clearance_model`` -> scenario's)."""
    if key == "clearance_model":
        return "scenario.clearance_model"
    section, _, name = key.partition(".")
    sections = (*_SECTIONS, "parameters")
    if section not in sections or not name:
        raise ScenarioError(
            f"{where} unknown axis {key!r}: expected a dotted scenario key 'section.key' with "
            f"section one of {', '.join(sections)} (or clearance_model), e.g. "
            '"cart.cells_per_kg"' + suggest(section, sections)
        )
    allowed = model.parameters.names if section == "parameters" else _SECTIONS[section]
    if name not in allowed:
        raise ScenarioError(
            f"{where} unknown axis {key!r}: [{section}] has no key {name!r}."
            f"{suggest(name, allowed)} Expected one of: {', '.join(allowed)}"
        )
    if section == "patient" and name == "dialysis":
        raise ScenarioError(
            f'{where} axis {key!r}: use "patient.egfr_ml_min_173m2" = [..., "dialysis"] with a '
            "[sweep.dialysis] schedule to cross a dialysis arm with eGFR values"
        )
    return key


def _axis_values(where, key, value):
    if isinstance(value, dict):
        spec = dict(value)
        log = "log_from" in spec
        start_key = "log_from" if log else "from"
        if set(spec) != {start_key, "to", "n"}:
            raise ScenarioError(
                f"{where} {key} = {value!r}: expected a list of values, {{ log_from = a, to = b, "
                "n = k }} (log-spaced) or { from = a, to = b, n = k } (evenly spaced)"
            )
        a, b, n = spec[start_key], spec["to"], spec["n"]
        if not (is_number(a) and is_number(b) and math.isfinite(a) and math.isfinite(b)):
            raise ScenarioError(f"{where} {key} = {value!r}: expected numbers for {start_key}, to")
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ScenarioError(f"{where} {key} = {value!r}: n = {n!r}: expected an integer >= 2")
        if a == b:
            raise ScenarioError(f"{where} {key} = {value!r}: expected {start_key} != to")
        if log and not (a > 0 and b > 0):
            raise ScenarioError(
                f"{where} {key} = {value!r}: a log-spaced range needs log_from > 0 and to > 0"
            )
        grid = np.geomspace(a, b, n) if log else np.linspace(a, b, n)
        return tuple(float(x) for x in grid), log
    if not isinstance(value, list) or not value:
        raise ScenarioError(
            f"{where} {key} = {value!r}: expected a non-empty list of values or a range "
            "{ log_from = a, to = b, n = k }"
        )
    for v in value:
        if not (is_number(v) or isinstance(v, str)):
            raise ScenarioError(
                f"{where} {key}: value {v!r}: expected numbers or strings (one value per grid line)"
            )
    texts = [value_text(v) for v in value]
    repeated = sorted({t for t in texts if texts.count(t) > 1})
    if repeated:
        raise ScenarioError(f"{where} {key} = {value!r}: values repeat: {repeated}")
    return tuple(float(v) if is_number(v) else v for v in value), False


def parse_axes(source, table, model, dialysis) -> tuple[Axis, ...]:
    """The ``[sweep.axes]`` table as Axis objects (ScenarioError naming file, key, value)."""
    where = f"{source}: [sweep.axes]"
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: expected a table of key = [values], got {table!r}")
    axes, seen = [], set()
    for key, value in table.items():
        name = _axis_key(where, key, model)
        if name in seen:
            raise ScenarioError(f"{where} {key!r}: the same scenario key appears twice")
        seen.add(name)
        values, log = _axis_values(where, key, value)
        if DIALYSIS in values:
            if name != "patient.egfr_ml_min_173m2":
                raise ScenarioError(
                    f'{where} {key}: value "dialysis" is allowed only on '
                    '"patient.egfr_ml_min_173m2"'
                )
            if dialysis is None:
                raise ScenarioError(
                    f'{where} {key}: value "dialysis" needs a [sweep.dialysis] table (the '
                    "session schedule: session_days, duration_h, flu_removal_fraction)"
                )
        axes.append(Axis(key=key, values=values, log=log))
    kidney = [a.key for a in axes if a.key.startswith("patient.") and a.key[8:] in KIDNEY_KEYS]
    if len(kidney) > 1:
        raise ScenarioError(
            f"{where}: {kidney} each set the kidney function; expected at most one kidney axis"
        )
    return tuple(axes)


def apply_axis_value(raw: dict, key: str, value, dialysis) -> None:
    """Write one axis value into a scenario dict.

    A kidney value replaces the base patient's kidney specification by the rule of scenario
    variants (:func:`cartkin.config.replaced_kidney_keys`): an eGFR value replaces all of it;
    the value ``"dialysis"`` for a base patient already on dialysis replaces only the schedule,
    so the base's residual kidney function stays.
    """
    section, _, name = key.partition(".") if key != "clearance_model" else ("scenario", "", key)
    table = raw.setdefault(section, {})
    if section == "patient" and name in KIDNEY_KEYS:
        given = ("dialysis",) if value == DIALYSIS else (name,)
        for k in replaced_kidney_keys(given, "dialysis" in table):
            table.pop(k, None)
        if value == DIALYSIS:
            table["dialysis"] = copy.deepcopy(dialysis)
            return
    table[name] = value
