"""The scenario schema: which keys each table of a scenario file takes, and the key check.

One place for the keys of ``[scenario]``, ``[solver]``, the top level, ``[[variant]]`` and the
kidney-function keys of ``[patient]``, and for :func:`check_keys` (unknown key -> did-you-mean and
unit hint; missing required key named), used by :mod:`cartkin.scenario`, the data spec
(``[data]``), the outcomes tables and the sweep spec.
"""

from __future__ import annotations

import argparse

from cartkin.covariates.kidney import CLEARANCE_MODELS
from cartkin.covariates.patient import brief
from cartkin.errors import ScenarioError
from cartkin.ode import METHODS as SOLVER_METHODS
from cartkin.ode import RTOL_MIN
from cartkin.parameters import suggest

__all__ = [
    "KIDNEY_KEYS",
    "SCENARIO_KEYS",
    "SOLVER_KEYS",
    "TOP_LEVEL_KEYS",
    "VARIANT_KEYS",
    "check_keys",
    "positive_int",
    "replaced_kidney_keys",
    "section_label",
    "unit_hint",
]

# Keys of [scenario] and [solver], with the expected type and a description for error messages.
SCENARIO_KEYS = {
    "name": (str, "a short title"),
    "description": (str, "one paragraph: the clinical question"),
    "model": (str, "a model name (see `cartkin models`)"),
    "t_end_days": (float, "the horizon in days after CAR-T infusion, > 0"),
    "output_step_days": (float, "the spacing of the reported trajectory in days, > 0"),
    "clearance_model": (str, f"one of {CLEARANCE_MODELS}"),
}
SOLVER_KEYS = {
    "method": (str, f"one of {SOLVER_METHODS}"),
    "rtol": (float, f"a relative tolerance in [{RTOL_MIN:.2g}, 0.1)"),
    "atol": (float, "an absolute tolerance in (0, 1)"),
}
TOP_LEVEL_KEYS = (
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
VARIANT_KEYS = ("label", "patient", "lymphodepletion", "cart", "parameters", "clearance_model")
KIDNEY_KEYS = ("egfr_ml_min_173m2", "crcl_ml_min", "serum_creatinine_mg_dl", "dialysis")


def replaced_kidney_keys(given, base_on_dialysis: bool) -> tuple[str, ...]:
    """The base patient's kidney keys that an override setting the kidney keys ``given``
    replaces.

    Any kidney key replaces the whole kidney specification (eGFR, CrCl, serum creatinine and
    dialysis), except that a dialysis schedule alone, for a base patient already on dialysis,
    replaces only the schedule: changing the sessions does not change the kidneys, so the
    residual function stays. Used by scenario variants and by dataset covariates.
    """
    given = set(given) & set(KIDNEY_KEYS)
    if not given:
        return ()
    if given == {"dialysis"} and base_on_dialysis:
        return ("dialysis",)
    return KIDNEY_KEYS


def section_label(section: str) -> str:
    """'patient' -> '[patient] '; an already bracketed '[[variant]] #1 [patient]' stays as is."""
    if not section:
        return ""
    return f"{section} " if section.startswith("[") else f"[{section}] "


def check_keys(where, section, table, allowed, required=()) -> None:
    """Refuse unknown keys (with a did-you-mean and a unit hint) and name missing ones.

    Parameters
    ----------
    where : str
        The file (or other source) named first in a message.
    section : str
        Table name ("patient"), or an already bracketed label ("[[variant]] #1 [patient]").
    table : dict
        The table read from the file.
    allowed, required : sequence of str
        Keys the table may have, and those it must have.

    Raises
    ------
    ScenarioError
        Naming the file, the table and the key, with a did-you-mean and the expected keys.
    """
    label = section_label(section)
    if not isinstance(table, dict):
        raise ScenarioError(
            f"{where}: {label.strip() or 'top level'}: expected a table, got {brief(table)}"
        )
    for key in table:
        if key not in allowed:
            raise ScenarioError(
                f"{where}: {label}unknown key {key!r}."
                + unit_hint(key, allowed)
                + suggest(key, allowed)
                + f" Expected keys: {', '.join(allowed)}"
            )
    for key in required:
        if key not in table:
            raise ScenarioError(f"{where}: {label}missing required key {key!r}")


def unit_hint(key, allowed):
    """Say so when a key has the right stem but another unit suffix (weight_lb for weight_kg)."""
    stem = key.split("_")[0]
    same_stem = [a for a in allowed if a.split("_")[0] == stem and a != key]
    if same_stem and "_" in key:
        return f" cartkin takes {same_stem[0]!r} (the unit is part of the name: convert the value)."
    return ""


def positive_int(text: str) -> int:
    """argparse ``type`` for a count of at least 1 (``--n-patients``, ``--ids-per-page``).

    Raises
    ------
    argparse.ArgumentTypeError
        Naming the value and what was expected.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return value
