"""Observed data for fitting: NONMEM-style and long-format CSV, validated and matched to a model.

::

    ds = cartkin.data.read("cohort.csv", model="sle_cart")
    ds.observations      # id, time_days, observable, value, cens, limit, unit, row, source
    ds.contexts(base_regimen)   # one Context per ID, ready for simulate_context / the batch engine

See :mod:`cartkin.data.read` for the formats and rules, :mod:`cartkin.data.units` for units and
:mod:`cartkin.data.spec` for the scenario's ``[data]`` table. Example datasets ship in
``cartkin/data/examples/`` (:func:`example_path`).
"""

from __future__ import annotations

from pathlib import Path

from cartkin.data.dataset import Dataset
from cartkin.data.read import read
from cartkin.data.spec import DataSpec, parse_data_table
from cartkin.data.summary import read_summary_targets
from cartkin.errors import DataError

__all__ = [
    "DataError",
    "DataSpec",
    "Dataset",
    "example_path",
    "parse_data_table",
    "read",
    "read_summary_targets",
]

EXAMPLES = Path(__file__).parent / "examples"


def example_path(name: str) -> Path:
    """Path of a shipped example file (``cartkin/data/examples/<name>``).

    Raises
    ------
    DataError
        When there is no such example (naming the ones that exist).
    """
    path = EXAMPLES / name
    if not path.is_file():
        names = sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in (".csv", ".md"))
        raise DataError(f"no example {name!r}; shipped examples: {', '.join(names)}")
    return path
