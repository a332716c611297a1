"""cartkin unit strings ("1/day", "cells/uL", "mg.h/L") as SBML unit definitions.

A unit string is a product and quotient of known unit words with integer powers: ``*`` or ``.``
multiply, ``/`` divides (left to right), ``^`` raises, parentheses group, and the word ``per``
divides everything on its left by everything on its right ("pg/mL/day per (cells/uL)^2").
``-`` and ``1`` are dimensionless. A string with an unknown word has no SBML unit definition:
the exporter then writes no ``units`` attribute and keeps the string in the cartkin annotation.
"""

from __future__ import annotations

import re

import libsbml

__all__ = ["parse_unit", "unit_definition_id", "unit_text"]

# word -> (libSBML unit kind, scale (power of ten), multiplier)
_WORDS = {
    "s": (libsbml.UNIT_KIND_SECOND, 0, 1.0),
    "min": (libsbml.UNIT_KIND_SECOND, 0, 60.0),
    "h": (libsbml.UNIT_KIND_SECOND, 0, 3600.0),
    "day": (libsbml.UNIT_KIND_SECOND, 0, 86400.0),
    "week": (libsbml.UNIT_KIND_SECOND, 0, 604800.0),
    "L": (libsbml.UNIT_KIND_LITRE, 0, 1.0),
    "dL": (libsbml.UNIT_KIND_LITRE, -1, 1.0),
    "mL": (libsbml.UNIT_KIND_LITRE, -3, 1.0),
    "uL": (libsbml.UNIT_KIND_LITRE, -6, 1.0),
    "kg": (libsbml.UNIT_KIND_GRAM, 3, 1.0),
    "g": (libsbml.UNIT_KIND_GRAM, 0, 1.0),
    "mg": (libsbml.UNIT_KIND_GRAM, -3, 1.0),
    "ug": (libsbml.UNIT_KIND_GRAM, -6, 1.0),
    "ng": (libsbml.UNIT_KIND_GRAM, -9, 1.0),
    "pg": (libsbml.UNIT_KIND_GRAM, -12, 1.0),
    "mol": (libsbml.UNIT_KIND_MOLE, 0, 1.0),
    "mmol": (libsbml.UNIT_KIND_MOLE, -3, 1.0),
    "umol": (libsbml.UNIT_KIND_MOLE, -6, 1.0),
    "nmol": (libsbml.UNIT_KIND_MOLE, -9, 1.0),
    "m": (libsbml.UNIT_KIND_METRE, 0, 1.0),
    "cm": (libsbml.UNIT_KIND_METRE, -2, 1.0),
    "m2": (libsbml.UNIT_KIND_METRE, 0, 1.0),  # handled as m^2 below
    "cell": (libsbml.UNIT_KIND_ITEM, 0, 1.0),
    "cells": (libsbml.UNIT_KIND_ITEM, 0, 1.0),
    "copies": (libsbml.UNIT_KIND_ITEM, 0, 1.0),
    "item": (libsbml.UNIT_KIND_ITEM, 0, 1.0),
    "IU": (libsbml.UNIT_KIND_DIMENSIONLESS, 0, 1.0),
    "%": (libsbml.UNIT_KIND_DIMENSIONLESS, -2, 1.0),
}

_TOKEN = re.compile(r"\s*(per\b|[A-Za-z%][A-Za-z0-9%]*|-?\d+(?:\.\d+)?|[()*./^]|-)")

# factor: (kind, scale, multiplier, exponent)
_Factor = tuple[int, int, float, int]


def parse_unit(text: str) -> list[_Factor] | None:
    """The SBML unit factors of a cartkin unit string, or None if it has an unknown word.

    Returns
    -------
    list of (kind, scale, multiplier, exponent) or None
        An empty list for a dimensionless unit ("-", "1", "").
    """
    text = text.strip()
    if text in ("", "-", "1"):
        return []
    pos, tokens = 0, []
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            return None
        tokens.append(match.group(1))
        pos = match.end()
    try:
        factors, rest = _parse_per(tokens)
    except (ValueError, IndexError):
        return None
    return factors if not rest else None


def _parse_per(tokens):
    left, rest = _parse_product(tokens)
    while rest and rest[0] == "per":
        right, rest = _parse_product(rest[1:])
        left = left + _invert(right)
    return left, rest


def _parse_product(tokens):
    factors, rest = _parse_power(tokens)
    while rest and rest[0] in ("*", ".", "/"):
        more, rest2 = _parse_power(rest[1:])
        factors = factors + (_invert(more) if rest[0] == "/" else more)
        rest = rest2
    return factors, rest


def _parse_power(tokens):
    factors, rest = _parse_atom(tokens)
    if rest and rest[0] == "^":
        power = int(rest[1])
        factors = [(k, s, m, e * power) for k, s, m, e in factors]
        rest = rest[2:]
    return factors, rest


def _parse_atom(tokens):
    head, rest = tokens[0], tokens[1:]
    if head == "(":
        factors, rest = _parse_per(rest)
        if not rest or rest[0] != ")":
            raise ValueError("unbalanced parenthesis")
        return factors, rest[1:]
    if head in ("1", "-"):
        return [], rest
    if head == "m2":
        return [(libsbml.UNIT_KIND_METRE, 0, 1.0, 2)], rest
    if head not in _WORDS:
        raise ValueError(f"unknown unit {head!r}")
    kind, scale, multiplier = _WORDS[head]
    return [(kind, scale, multiplier, 1)], rest


def _invert(factors):
    return [(k, s, m, -e) for k, s, m, e in factors]


def unit_definition_id(text: str) -> str:
    """An SBML id for the unit string ``text`` ("cells/uL" -> "u_cells_per_uL")."""
    out = text.strip()
    for old, new in (("/", "_per_"), (" per ", "_per_"), ("*", "_"), (".", "_"), ("^", "")):
        out = out.replace(old, new)
    out = out.replace("%", "percent").replace("-", "dimensionless")
    out = re.sub(r"[^A-Za-z0-9_]", "", out.replace(" ", "_"))
    return "u_" + re.sub(r"_+", "_", out).strip("_")


def unit_text(model, units: str) -> str:
    """A readable unit string for the SBML ``units`` attribute value ``units``.

    The unit definition's name when it has one (the exporter stores the cartkin unit string
    there), else its id; a built-in SBML unit kind reads as itself.
    """
    if not units:
        return ""
    definition = model.getUnitDefinition(units)
    if definition is not None and definition.isSetName():
        return definition.getName()
    return units
