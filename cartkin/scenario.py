"""Scenario files: one clinical question per TOML file.

A scenario names a model, a patient, a regimen, parameter overrides, the simulation horizon and,
optionally, variants to compare (doses, kidney function, clearance models)::

    [scenario]
    name = "..."
    model = "sle_cart"                  # cartkin.models.available()
    t_end_days = 270.0                  # horizon, days after CAR-T infusion
    output_step_days = 0.25             # spacing of the reported trajectory
    clearance_model = "langenhorst2019" # cartkin.kidney.CLEARANCE_MODELS

    [patient]                           # cartkin.Patient fields
    weight_kg = 50.0
    ...
    [patient.dialysis]                  # cartkin.DialysisSchedule fields (dialysis patients)
    session_days = [-7.0, -5.0, ...]

    [lymphodepletion]                   # cartkin.Lymphodepletion fields
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
the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cartkin.errors import ScenarioError
from cartkin.kidney import CLEARANCE_MODELS
from cartkin.ode import METHODS as SOLVER_METHODS
from cartkin.parameters import suggest
from cartkin.patient import DialysisSchedule, Patient
from cartkin.regimen import CarTDose, Lymphodepletion, Regimen

__all__ = ["Scenario", "Variant", "load_scenario", "scenario_from_dict"]


# Keys of [scenario] and [solver], with the expected type and a description for error messages.
_SCENARIO_KEYS = {
    "name": (str, "a short title"),
    "description": (str, "one paragraph: the clinical question"),
    "model": (str, "a model name (see `cartkin models`)"),
    "t_end_days": (float, "the horizon in days after CAR-T infusion, > 0"),
    "output_step_days": (float, "the spacing of the reported trajectory in days, > 0"),
    "clearance_model": (str, f"one of {CLEARANCE_MODELS}"),
}
_SOLVER_KEYS = {
    "method": (str, f"one of {SOLVER_METHODS}"),
    "rtol": (float, "a relative tolerance in (0, 0.1)"),
    "atol": (float, "an absolute tolerance in (0, 1)"),
}
_TOP_LEVEL = (
    "scenario",
    "patient",
    "lymphodepletion",
    "cart",
    "parameters",
    "solver",
    "variant",
    "outcomes",
    "case",
    "data",  # observed data for fits (cartkin/data/spec.py)
    "fit",  # estimation settings (cartkin/fit/spec.py)
    "sweep",  # virtual-patient sweeps (cartkin/sweep/spec.py; ignored by simulate)
)
_VARIANT_KEYS = ("label", "patient", "lymphodepletion", "cart", "parameters", "clearance_model")
_KIDNEY_KEYS = ("egfr_ml_min_173m2", "crcl_ml_min", "serum_creatinine_mg_dl", "dialysis")



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
    if not path.is_file():
        raise ScenarioError(f"{path}: no such scenario file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return scenario_from_dict(data, source=path)


def scenario_from_dict(data: dict, source: str | Path | None = None) -> Scenario:
    """Validate a scenario given as a dict (the parsed TOML); ``source`` names it in errors."""
    where = str(source) if source is not None else "<scenario>"
    _check_keys(where, "", data, _TOP_LEVEL, required=("scenario", "patient", "cart"))

    meta = _typed_section(where, "scenario", data["scenario"], _SCENARIO_KEYS, required=("model",))
    model = _get_model(where, meta["model"])
    t_end = meta.get("t_end_days", 365.0)
    step = meta.get("output_step_days", 0.25)
    for key, value in (("t_end_days", t_end), ("output_step_days", step)):
        if not value > 0 or not math.isfinite(value):
            raise ScenarioError(
                f"{where}: [scenario] {key} = {value!r}: expected a number > 0 (days)"
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

    solver = {"method": "rodas5", "rtol": 1e-8, "atol": 1e-10}
    solver.update(_typed_section(where, "solver", data.get("solver", {}), _SOLVER_KEYS))
    if solver["method"] not in SOLVER_METHODS:
        raise ScenarioError(
            f"{where}: [solver] method = {solver['method']!r}: expected one of {SOLVER_METHODS}"
            + suggest(solver["method"], SOLVER_METHODS)
        )
    if not 0 < solver["rtol"] < 0.1 or not 0 < solver["atol"] < 1:
        raise ScenarioError(
            f"{where}: [solver] rtol = {solver['rtol']!r}, atol = {solver['atol']!r}: expected "
            "0 < rtol < 0.1 and 0 < atol < 1"
        )

    raw = {k: data.get(k, {}) for k in ("patient", "lymphodepletion", "cart", "parameters")}
    base = _build_variant(where, model, meta.get("name", "base"), raw, clearance_model)

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
        _check_keys(where, label_where, entry, _VARIANT_KEYS, required=("label",))
        label = entry["label"]
        if not isinstance(label, str) or not label:
            raise ScenarioError(
                f"{where}: {label_where} label = {label!r}: expected a non-empty string"
            )
        merged = {k: _merge(where, f"{label_where} {k}", raw[k], entry.get(k, {})) for k in raw}
        cm = _check_clearance(
            where, f"{label_where} clearance_model", entry.get("clearance_model", clearance_model)
        )
        variants.append(_build_variant(where, model, label, merged, cm, context=label_where))
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
    )


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _label(section):
    """'patient' -> '[patient] '; an already bracketed '[[variant]] #1 [patient]' stays as is."""
    if not section:
        return ""
    return f"{section} " if section.startswith("[") else f"[{section}] "


def _check_keys(where, section, table, allowed, required=()):
    """Refuse unknown keys (with a did-you-mean and a unit hint) and name missing ones."""
    label = _label(section)
    if not isinstance(table, dict):
        raise ScenarioError(
            f"{where}: {label.strip() or 'top level'}: expected a table, got {table!r}"
        )
    for key in table:
        if key not in allowed:
            raise ScenarioError(
                f"{where}: {label}unknown key {key!r}."
                + _unit_hint(key, allowed)
                + suggest(key, allowed)
                + f" Expected keys: {', '.join(allowed)}"
            )
    for key in required:
        if key not in table:
            raise ScenarioError(f"{where}: {label}missing required key {key!r}")


def _unit_hint(key, allowed):
    """Say so when a key has the right stem but another unit suffix (weight_lb for weight_kg)."""
    stem = key.split("_")[0]
    same_stem = [a for a in allowed if a.split("_")[0] == stem and a != key]
    if same_stem and "_" in key:
        return f" cartkin takes {same_stem[0]!r} (the unit is part of the name: convert the value)."
    return ""


def _typed_section(where, section, table, spec, required=()):
    _check_keys(where, section, table, tuple(spec), required=required)
    out = {}
    for key, value in table.items():
        kind, expected = spec[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ScenarioError(f"{where}: [{section}] {key} = {value!r}: expected {expected}")
        out[key] = value
    return out


def _check_clearance(where, key, value):
    if value is None:
        return CLEARANCE_MODELS[0]
    if value not in CLEARANCE_MODELS:
        raise ScenarioError(
            f"{where}: {key} = {value!r}: expected one of {CLEARANCE_MODELS}"
            + suggest(str(value), CLEARANCE_MODELS)
        )
    return value


def _get_model(where, name):
    from cartkin import models

    try:
        return models.get(name)
    except (KeyError, ValueError, ScenarioError) as exc:
        raise ScenarioError(f"{where}: [scenario] model = {name!r}: {exc}") from None


def _merge(where, key, base, override):
    """Apply a variant's overrides to a base section (a kidney spec replaces the base's one)."""
    if not isinstance(override, dict):
        raise ScenarioError(f"{where}: {key} = {override!r}: expected an inline table of overrides")
    merged = dict(base)
    if any(k in override for k in _KIDNEY_KEYS):
        for k in _KIDNEY_KEYS:
            merged.pop(k, None)
    merged.update(override)
    return merged


def _fields(cls):
    return tuple(f.name for f in dataclasses.fields(cls))


def _construct(where, section, cls, table, nested=None):
    """Build dataclass ``cls`` from a TOML table, naming the file and section in every error."""
    nested = nested or {}
    allowed = _fields(cls)
    required = tuple(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    _check_keys(where, section, table, allowed, required=required)
    kwargs = {}
    for key, value in table.items():
        if key in nested:
            sub_cls = nested[key]
            sub = f"{section[:-1]}.{key}]" if section.endswith("]") else f"{section}.{key}"
            kwargs[key] = _construct(where, sub, sub_cls, value)
            continue
        if isinstance(value, str) and key not in ("sex", "flu_rule"):
            raise ScenarioError(
                f"{where}: {_label(section)}{key} = {value!r}: expected a number (the unit is in the "
                f"key's name), e.g. {key} = 1.0"
            )
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {_label(section)}{exc}") from None


def _build_variant(where, model, label, raw, clearance_model, context=""):
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
    ld = _construct(where, section("lymphodepletion"), Lymphodepletion, raw["lymphodepletion"])
    cart = _construct(where, section("cart"), CarTDose, raw["cart"])
    theta = raw["parameters"]
    if not isinstance(theta, dict):
        raise ScenarioError(
            f"{where}: {_label(section('parameters'))}expected a table of name = value"
        )
    try:
        model.parameters.vector(theta)  # validates names (did you mean) and bounds
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {_label(section('parameters'))}{exc}") from None
    return Variant(
        label=label,
        patient=patient,
        regimen=Regimen(lymphodepletion=ld, cart=cart),
        theta={k: float(v) for k, v in theta.items()},
        clearance_model=clearance_model,
    )


def _data_spec(where, table, source):
    """The optional [data] table (observed data for fits), parsed by cartkin.data.spec."""
    if table is None:
        return None
    from cartkin.data.spec import parse_data_table

    base_dir = Path(source).parent if source is not None else None
    return parse_data_table(table, where, base_dir)
