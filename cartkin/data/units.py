"""Units of observed data: spelling, scale factors within a dimension, and CAR-T routing.

cartkin converts a value only by an exact scale factor between units of the same dimension
(cells/mL -> cells/uL is x 1e-3; ng/L -> pg/mL is x 1). It never converts between dimensions
on its own: a CAR-T level in transgene copies/ug DNA is not turned into cells/uL here. Instead,
CAR-T data are *routed* to the model observable that has their dimension (the roles ``cart``,
``cart_copies``, ``cart_percent_t``), so the model's own declared factor (for example its
``copies_per_cell`` parameter) links them inside the prediction, where a fit can estimate it.
Anything else is refused with the units cartkin knows for that dimension.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = ["CART_ROLES", "UNITS", "Unit", "canonical", "parse_unit", "scale_factor"]


@dataclass(frozen=True)
class Unit:
    """A unit cartkin can read.

    Attributes
    ----------
    symbol : str
        Canonical spelling ("cells/uL").
    dimension : str
        What it measures ("cell_concentration", "copies_per_dna", "percent", ...).
    factor : float
        Value of 1 of this unit in the dimension's reference unit (the first listed).
    """

    symbol: str
    dimension: str
    factor: float


# Reference unit first in each dimension. Factors are exact unit arithmetic (1 uL = 1e-3 mL
# = 1e-6 L; 1 mm3 = 1 uL), not assumptions.
UNITS = (
    Unit("cells/uL", "cell_concentration", 1.0),
    Unit("cells/mm3", "cell_concentration", 1.0),
    Unit("cells/mL", "cell_concentration", 1e-3),
    Unit("cells/L", "cell_concentration", 1e-6),
    Unit("10^6 cells/L", "cell_concentration", 1.0),
    Unit("10^9 cells/L", "cell_concentration", 1e3),
    Unit("copies/ug", "copies_per_dna", 1.0),
    Unit("copies/ng", "copies_per_dna", 1e3),
    Unit("%", "percent", 1.0),
    Unit("fraction", "percent", 100.0),
    Unit("pg/mL", "mass_concentration", 1.0),
    Unit("ng/L", "mass_concentration", 1.0),
    Unit("ng/mL", "mass_concentration", 1e3),
    Unit("IU/mL", "international_units", 1.0),
    Unit("cells", "cells", 1.0),
)

_BY_SYMBOL = {u.symbol.lower(): u for u in UNITS}

# Common spellings -> canonical symbol (after lower-casing, removing spaces and mapping micro).
_ALIASES = {
    "cells/ul": "cells/uL",
    "cell/ul": "cells/uL",
    "/ul": "cells/uL",
    "cells/mm3": "cells/mm3",
    "/mm3": "cells/mm3",
    "cells/ml": "cells/mL",
    "cells/l": "cells/L",
    "10^6/l": "10^6 cells/L",
    "10^6cells/l": "10^6 cells/L",
    "1e6/l": "10^6 cells/L",
    "10^9/l": "10^9 cells/L",
    "10^9cells/l": "10^9 cells/L",
    "1e9/l": "10^9 cells/L",
    "g/l": None,  # explicitly not a cell count (grams per litre)
    "copies/ug": "copies/ug",
    "copies/ugdna": "copies/ug",
    "copies/ugofdna": "copies/ug",
    "copies/ug_dna": "copies/ug",
    "copies/ng": "copies/ng",
    "copies/ngdna": "copies/ng",
    "%": "%",
    "percent": "%",
    "pct": "%",
    "fraction": "fraction",
    "pg/ml": "pg/mL",
    "ng/l": "ng/L",
    "ng/ml": "ng/mL",
    "iu/ml": "IU/mL",
    "u/ml": None,  # enzyme or arbitrary units: not IU/mL without a calibration
    "cells": "cells",
}

#: Roles whose observables all measure CAR-T; data go to the one matching their dimension.
CART_ROLES = {
    "cell_concentration": "cart",
    "copies_per_dna": "cart_copies",
    "percent": "cart_percent_t",
}


def canonical(text: str) -> str:
    """Normalise a unit's spelling for lookup (lower case, no spaces, micro as ``u``)."""
    s = str(text).strip().lower().replace(" ", "")
    for micro in ("\u00b5", "\u03bc", "mc"):
        s = s.replace(micro + "l", "ul").replace(micro + "g", "ug")
    return s.replace("×", "x").replace("x10^", "10^").replace("*10^", "10^")


@lru_cache(maxsize=256)
def parse_unit(text: str) -> Unit | None:
    """Return the :class:`Unit` for a spelling, or None when cartkin does not know it."""
    key = canonical(text)
    if key in _ALIASES:
        symbol = _ALIASES[key]
        return None if symbol is None else _BY_SYMBOL[symbol.lower()]
    return _BY_SYMBOL.get(key)


def scale_factor(from_unit: Unit, to_unit: Unit) -> float:
    """Multiply a value in ``from_unit`` by this to get it in ``to_unit`` (same dimension)."""
    if from_unit.dimension != to_unit.dimension:
        raise ValueError(f"cannot convert {from_unit.symbol} to {to_unit.symbol}")
    return from_unit.factor / to_unit.factor


def known_units(dimension: str | None = None) -> list[str]:
    """Canonical symbols cartkin reads, optionally only those of one dimension."""
    return [u.symbol for u in UNITS if dimension is None or u.dimension == dimension]
