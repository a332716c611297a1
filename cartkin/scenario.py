"""Scenario files: one clinical question per TOML file.

A scenario names a model, a patient, a regimen, parameter overrides, the simulation horizon and,
optionally, variants to compare (doses, kidney function, clearance models)::

    [scenario]
    name = "..."
    model = "sle_cart"                  # cartkin.models.available()
    t_end_days = 270.0                  # horizon, days after CAR-T infusion
    output_step_days = 0.25             # spacing of the reported trajectory
    clearance_model = "langenhorst2019" # cartkin.covariates.kidney.CLEARANCE_MODELS

    [patient]                           # cartkin.Patient fields
    weight_kg = 50.0
    ...
    [patient.dialysis]                  # cartkin.DialysisSchedule fields (dialysis patients)
    session_days = [-7.0, -5.0, ...]

    [lymphodepletion]                   # cartkin.Lymphodepletion fields; without this table
                                        # no lymphodepletion is simulated (an empty table is
                                        # the usual Flu/Cy: the class defaults)
    [cart]                              # cartkin.CarTDose fields
    [parameters]                        # model parameter overrides (see `cartkin show MODEL`)
    [solver]                            # method, rtol, atol
    [data]                              # observed data for fits: file, [data.dvid], [data.units]
                                        # (cartkin/data/spec.py)

    [[variant]]                         # optional, repeated: what differs from the base
    label = "eGFR 60"
    patient = { egfr_ml_min_173m2 = 60.0 }

Every key is checked: an unknown key gets a "did you mean", a value of the wrong type or unit
(a string such as ``"50 kg"``, a key such as ``weight_lb``) says the expected form, a missing
required key is named, and out-of-range values are refused by the dataclasses. Each error names
the file and the key. Checks across keys: lymphodepletion before the first CAR-T day (and at
most ``cartkin.covariates.regimen.MAX_LD_GAP_DAYS`` before it), every CAR-T day within the horizon, the
output grid at most :data:`MAX_OUTPUT_ROWS` rows, solver tolerances that ``solve_ode`` accepts.

``model`` is a registered model name or the path of a Python file defining ``MODEL`` (see
:func:`cartkin.models.load`), relative to the scenario file.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cartkin.config import (
    SCENARIO_KEYS,
    SOLVER_KEYS,
    TOP_LEVEL_KEYS,
    VARIANT_KEYS,
    check_keys,
    replaced_kidney_keys,
    section_label,
)
from cartkin.covariates.kidney import CLEARANCE_MODELS
from cartkin.covariates.patient import DialysisSchedule, Patient, as_float, brief
from cartkin.covariates.regimen import CarTDose, Lymphodepletion, Regimen, check_dose_for
from cartkin.errors import ScenarioError
from cartkin.ode import METHODS as SOLVER_METHODS
from cartkin.ode import RTOL_MIN
from cartkin.parameters import suggest

__all__ = [
    "MAX_OUTPUT_ROWS",
    "MAX_T_END_DAYS",
    "Scenario",
    "Variant",
    "load_scenario",
    "scenario_from_dict",
]

#: Largest output grid per arm (rows of the trajectory, ``t_end_days / output_step_days + 1``).
#: Assumption: 200,001 rows x ~20 columns x 8 bytes is ~30 MB per arm, a few seconds of CSV;
#: beyond that a grid is almost always a typo (1e-5 for 0.25). Change it with
#: ``cartkin.scenario.MAX_OUTPUT_ROWS = ...`` in Python if you really need more rows.
MAX_OUTPUT_ROWS = 200_001

#: Longest horizon, days. Assumption: ten years, beyond the longest CAR-T follow-up the models'
#: parameters come from (about five years of persistence data).
MAX_T_END_DAYS = 3650.0

#: Deepest nesting of tables and arrays a scenario may have (a scenario needs 4:
#: [[variant]] -> patient -> dialysis -> session_days).
MAX_NESTING = 8


@dataclass(frozen=True)
class Variant:
    """One arm of a scenario: everything needed to simulate it."""

    label: str
    patient: Patient
    regimen: Regimen
    theta: dict[str, float]
    clearance_model: str


@dataclass(frozen=True)
class Scenario:
    """A validated scenario file.

    Attributes
    ----------
    path : Path or None
        The file it came from.
    name, description : str
    model : cartkin.models.base.Model
    t_days : ndarray, shape (n_times,)
        Output times in days after CAR-T infusion.
    solver : dict
        ``method``, ``rtol``, ``atol`` for :func:`cartkin.simulate`.
    base : Variant
        The scenario as written.
    variants : list of Variant
        The ``[[variant]]`` arms, each the base with its overrides applied (empty when none).
    outcomes : cartkin.outcomes.OutcomeSettings or None
        The ``[outcomes]`` and ``[case]`` tables (lupus nephritis outcomes: dialysis rule,
        SLEDAI-2K inputs, named days, reported case values); None when neither is given.
    """

    path: Path | None
    name: str
    description: str
    model: Any
    t_days: np.ndarray
    solver: dict[str, Any]
    base: Variant
    variants: list[Variant] = field(default_factory=list)
    outcomes: Any = None
    data: Any = None  # cartkin.data.DataSpec from the [data] table (cartkin/data/spec.py)
    has_sweep: bool = False  # a [sweep] table: `cartkin simulate` runs only the base patient

    @property
    def arms(self) -> list[Variant]:
        """The variants if any, else the base alone."""
        return self.variants or [self.base]

    def run(self) -> list:
        """Simulate every arm with the scenario's solver settings.

        Returns
        -------
        list of cartkin.simulate.SimulationResult
            One per arm, in file order, each labelled with its arm's label.
        """
        from cartkin.simulate import simulate

        results = [
            simulate(
                self.model,
                arm.patient,
                arm.regimen,
                self.t_days,
                theta=arm.theta,
                clearance_model=arm.clearance_model,
                label=arm.label,
                **self.solver,
            )
            for arm in self.arms
        ]
        if self.outcomes is not None and self.outcomes.dialysis_schedule != "given":
            from cartkin.outcomes import apply_dialysis_rule

            results = [apply_dialysis_rule(r, self.outcomes) for r in results]
        return results


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario TOML file.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` file.

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        Naming the file, the key and the expected form.
    """
    path = Path(path)
    if path.is_dir():
        raise ScenarioError(f"{path}: is a directory; expected a scenario .toml file")
    if not path.exists():
        raise ScenarioError(f"{path}: no such scenario file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{path}: not a UTF-8 text file (byte {exc.start} is 0x{raw[exc.start]:02x}); "
            "expected a TOML scenario file"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark from some editors
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ScenarioError(
            f"{path}: tables or arrays nested too deeply to read; a scenario nests at most "
            f"{MAX_NESTING} levels"
        ) from None
    except ValueError as exc:  # e.g. an integer longer than Python's 4300-digit limit
        raise ScenarioError(f"{path}: not valid TOML: {' '.join(str(exc).split())[:200]}") from None
    return scenario_from_dict(data, source=path)


def scenario_from_dict(data: dict, source: str | Path | None = None) -> Scenario:
    """Validate a scenario given as a dict (the parsed TOML); ``source`` names it in errors."""
    where = str(source) if source is not None else "<scenario>"
    depth = _nesting(data)
    if depth > MAX_NESTING:
        raise ScenarioError(
            f"{where}: tables or arrays nested {depth} levels deep; a scenario nests at most "
            f"{MAX_NESTING} levels ([[variant]] -> patient -> dialysis -> session_days is 4)"
        )
    check_keys(where, "", data, TOP_LEVEL_KEYS, required=("scenario", "patient", "cart"))

    meta = _typed_section(where, "scenario", data["scenario"], SCENARIO_KEYS, required=("model",))
    model = _get_model(where, meta["model"])
    t_end = meta.get("t_end_days", 365.0)
    step = meta.get("output_step_days", 0.25)
    for key, value in (("t_end_days", t_end), ("output_step_days", step)):
        if not value > 0 or not math.isfinite(value):
            raise ScenarioError(
                f"{where}: [scenario] {key} = {brief(value)}: expected a number > 0 (days)"
            )
    if t_end > MAX_T_END_DAYS:
        raise ScenarioError(
            f"{where}: [scenario] t_end_days = {t_end:g}: expected at most {MAX_T_END_DAYS:g} "
            "days (ten years, beyond the follow-up behind the models' parameters)"
        )
    rows = t_end / step + 1
    if rows > MAX_OUTPUT_ROWS:
        raise ScenarioError(
            f"{where}: [scenario] t_end_days = {t_end:g} with output_step_days = {step:g} gives "
            f"{rows:.6g} output rows per arm; the limit is {MAX_OUTPUT_ROWS} "
            "(cartkin.scenario.MAX_OUTPUT_ROWS): raise output_step_days or shorten t_end_days"
        )
    n = round(t_end / step)
    if not math.isclose(n * step, t_end, rel_tol=1e-9) or n < 1:
        raise ScenarioError(
            f"{where}: [scenario] t_end_days = {t_end!r} is not a whole number of output_step_days "
            f"= {step!r}: expected t_end_days to be a multiple of output_step_days"
        )
    t_days = np.linspace(0.0, t_end, n + 1)
    clearance_model = _check_clearance(
        where, "[scenario] clearance_model", meta.get("clearance_model")
    )

    solver: dict[str, Any] = {"method": "rodas5", "rtol": 1e-8, "atol": 1e-10}
    solver.update(_typed_section(where, "solver", data.get("solver", {}), SOLVER_KEYS))
    if solver["method"] not in SOLVER_METHODS:
        raise ScenarioError(
            f"{where}: [solver] method = {solver['method']!r}: expected one of {SOLVER_METHODS}"
            + suggest(solver["method"], SOLVER_METHODS)
        )
    if not RTOL_MIN <= solver["rtol"] < 0.1:
        raise ScenarioError(
            f"{where}: [solver] rtol = {solver['rtol']!r}: expected {RTOL_MIN:.2g} <= rtol < 0.1 "
            "(the solver cannot resolve a tighter relative tolerance in float64)"
        )
    if not 0 < solver["atol"] < 1:
        raise ScenarioError(f"{where}: [solver] atol = {solver['atol']!r}: expected 0 < atol < 1")

    raw = {k: data.get(k, {}) for k in ("patient", "cart", "parameters")}
    # no [lymphodepletion] table: none is simulated (never a silent Flu/Cy)
    raw["lymphodepletion"] = data.get("lymphodepletion")
    base = _build_variant(where, model, meta.get("name", "base"), raw, clearance_model, t_end)

    variants = []
    raw_variants = data.get("variant", [])
    if not isinstance(raw_variants, list):
        raise ScenarioError(
            f"{where}: [variant] must be an array of tables ([[variant]] ... ), got "
            f"{type(raw_variants).__name__}"
        )
    for i, entry in enumerate(raw_variants):
        label_where = f"[[variant]] #{i + 1}"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{where}: {label_where}: expected a table of overrides")
        check_keys(where, label_where, entry, VARIANT_KEYS, required=("label",))
        label = entry["label"]
        if not isinstance(label, str) or not label:
            raise ScenarioError(
                f"{where}: {label_where} label = {brief(label)}: expected a non-empty string"
            )
        merged = {
            k: _merge(
                where, f"{label_where} {k}", raw[k], entry.get(k, None if raw[k] is None else {})
            )
            for k in raw
        }
        cm = _check_clearance(
            where, f"{label_where} clearance_model", entry.get("clearance_model", clearance_model)
        )
        variants.append(_build_variant(where, model, label, merged, cm, t_end, context=label_where))
    labels = [v.label for v in variants]
    duplicated = sorted({x for x in labels if labels.count(x) > 1})
    if duplicated:
        raise ScenarioError(
            f"{where}: [[variant]] labels repeat: {duplicated}; expected unique labels"
        )

    outcomes = None
    if "outcomes" in data or "case" in data:
        from cartkin.outcomes import settings_from_tables

        outcomes = settings_from_tables(data.get("outcomes"), data.get("case"), where)

    return Scenario(
        path=Path(source) if source is not None else None,
        name=meta.get("name", where),
        description=meta.get("description", ""),
        model=model,
        t_days=t_days,
        solver=solver,
        base=base,
        variants=variants,
        outcomes=outcomes,
        data=_data_spec(where, data.get("data"), source),
        has_sweep="sweep" in data,
    )


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _nesting(data) -> int:
    """Depth of nested tables and arrays (iterative: a 20,000-deep array must not recurse)."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            return depth
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _typed_section(where, section, table, spec, required=()):
    check_keys(where, section, table, tuple(spec), required=required)
    out = {}
    for key, value in table.items():
        kind, expected = spec[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            if not math.isfinite(as_float(value)):
                raise ScenarioError(
                    f"{where}: [{section}] {key} = {brief(value)}: expected {expected}"
                )
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ScenarioError(f"{where}: [{section}] {key} = {brief(value)}: expected {expected}")
        out[key] = value
    return out


def _check_clearance(where, key, value):
    if value is None:
        return CLEARANCE_MODELS[0]
    if not isinstance(value, str) or value not in CLEARANCE_MODELS:
        raise ScenarioError(
            f"{where}: {key} = {brief(value)}: expected one of {CLEARANCE_MODELS}"
            + (suggest(value, CLEARANCE_MODELS) if isinstance(value, str) else "")
        )
    return value


def _get_model(where, name):
    from cartkin import models

    if name.endswith(".py"):
        # a user model file, relative to the scenario file
        path = Path(name)
        if not path.is_absolute() and where != "<scenario>":
            path = Path(where).parent / path
        try:
            return models.load(path)
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: [scenario] model = {name!r}: {exc}") from None
    try:
        return models.get(name)
    except (KeyError, ValueError, ScenarioError) as exc:
        raise ScenarioError(f"{where}: [scenario] model = {name!r}: {exc}") from None


def _merge(where, key, base, override):
    """Apply a variant's overrides to a base section.

    A kidney key replaces the base patient's kidney specification, except that a new dialysis
    schedule alone keeps a dialysis patient's residual function
    (:func:`cartkin.config.replaced_kidney_keys`).
    """
    if base is None and override is None:  # a section neither the base nor the variant has
        return None
    if not isinstance(override, dict):
        raise ScenarioError(
            f"{where}: {key} = {brief(override)}: expected an inline table of overrides"
        )
    if base is None:  # a section the base scenario does not have: the variant's alone
        return dict(override)
    merged = dict(base)
    for k in replaced_kidney_keys(override, "dialysis" in base):
        merged.pop(k, None)
    merged.update(override)
    return merged


def _fields(cls):
    return tuple(f.name for f in dataclasses.fields(cls))


def _list_fields(cls):
    """Fields that take a list (annotated as a tuple): days and fractions."""
    return tuple(f.name for f in dataclasses.fields(cls) if "tuple" in str(f.type))


def _construct(where, section, cls, table, nested=None):
    """Build dataclass ``cls`` from a TOML table, naming the file and section in every error."""
    nested = nested or {}
    allowed = _fields(cls)
    required = tuple(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    check_keys(where, section, table, allowed, required=required)
    kwargs = {}
    for key, value in table.items():
        if key in nested:
            sub_cls = nested[key]
            sub = f"{section[:-1]}.{key}]" if section.endswith("]") else f"{section}.{key}"
            kwargs[key] = _construct(where, sub, sub_cls, value)
            continue
        if isinstance(value, str) and key not in ("sex", "flu_rule"):
            if key in _list_fields(cls):
                example = f"{key} = [-2.5, -0.5]" if "session" in key else f"{key} = [0.0]"
                expected = f"a list of numbers (days), e.g. {example}"
            else:
                expected = f"a number (the unit is in the key's name), e.g. {key} = 1.0"
            raise ScenarioError(
                f"{where}: {section_label(section)}{key} = {brief(value)}: expected {expected}"
            )
        if isinstance(value, dict):
            raise ScenarioError(
                f"{where}: {section_label(section)}{key} = {brief(value)}: expected a value, not a table"
            )
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {section_label(section)}{exc}") from None


def _build_variant(where, model, label, raw, clearance_model, t_end, context=""):
    prefix = f"{context} " if context else ""

    def section(name):
        return f"{prefix}[{name}]" if context else name

    patient = _construct(
        where,
        section("patient"),
        Patient,
        raw["patient"],
        nested={"dialysis": DialysisSchedule},
    )
    if raw["lymphodepletion"] is None:
        ld = Lymphodepletion.none()
    else:
        ld = _construct(where, section("lymphodepletion"), Lymphodepletion, raw["lymphodepletion"])
    cart = _construct(where, section("cart"), CarTDose, raw["cart"])
    if cart.days[-1] > t_end:
        raise ScenarioError(
            f"{where}: {section_label(section('cart'))}days = {list(cart.days)}: day {cart.days[-1]:g} is "
            f"after the end of the simulation ([scenario] t_end_days = {t_end:g}); expected every "
            "CAR-T day within the horizon"
        )
    try:
        check_dose_for(patient, cart)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {section_label(section('cart'))}{exc}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            regimen = Regimen(lymphodepletion=ld, cart=cart)
        except ScenarioError as exc:
            raise ScenarioError(
                f"{where}: {section_label(section('lymphodepletion'))}{exc}"
            ) from None
    for w in caught:
        warnings.warn(
            f"{where}: {section_label(section('lymphodepletion'))}{w.message}",
            w.category,
            stacklevel=3,
        )
    theta = raw["parameters"]
    if not isinstance(theta, dict):
        raise ScenarioError(
            f"{where}: {section_label(section('parameters'))}expected a table of name = value"
        )
    checked = {}
    for key, value in theta.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(as_float(value)):
            raise ScenarioError(
                f"{where}: {section_label(section('parameters'))}{key} = {brief(value)}: expected a "
                "finite number in the parameter's unit (see `cartkin show MODEL`)"
            )
        checked[key] = float(value)
    try:
        model.parameters.vector(checked)  # validates names (did you mean) and bounds
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {section_label(section('parameters'))}{exc}") from None
    return Variant(
        label=label,
        patient=patient,
        regimen=regimen,
        theta=checked,
        clearance_model=clearance_model,
    )


def _data_spec(where, table, source):
    """The optional [data] table (observed data for fits), parsed by cartkin.data.spec."""
    if table is None:
        return None
    from cartkin.data.spec import parse_data_table

    base_dir = Path(source).parent if source is not None else None
    return parse_data_table(table, where, base_dir)
