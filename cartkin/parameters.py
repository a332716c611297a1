"""Parameter tables: one annotated source of truth per model.

A :class:`Parameter` holds a name, a default value, its unit, plausible bounds, a description and
where the default comes from: a paper and table ("Stein 2019, Table 1") or the word
"assumption" followed by the reason. A :class:`ParameterTable` is an ordered collection of them:
it validates overrides (unknown names get a "did you mean" hint; values outside the bounds are
refused), turns them into the float64 vector a compiled right-hand side reads, and renders the
README's parameter tables (:meth:`ParameterTable.to_markdown`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from cartkin.errors import ScenarioError

__all__ = ["Parameter", "ParameterTable", "suggest"]


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return a " Did you mean 'x'?" hint for a misspelt ``name`` (empty string if none)."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Parameter:
    """One model parameter.

    Parameters
    ----------
    name : str
        Kernel symbol, as written in the model equations (``rho``, ``delta_E``).
    default : float
        Default value, in ``unit``.
    unit : str
        Unit of the value ("1/day", "cells/uL", "-" for dimensionless).
    lower, upper : float
        Plausible bounds (inclusive), in ``unit``. Overrides outside them are refused; fitting
        uses them as box constraints.
    description : str
        What the parameter means, in one sentence.
    source : str
        Where the default comes from: a paper and table ("Stein 2019, Table 1"), a derivation
        ("derived: ..."), or "assumption: <reason>".
    """

    name: str
    default: float
    unit: str
    lower: float
    upper: float
    description: str
    source: str

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"Parameter name {self.name!r} must be a Python identifier")
        for label in ("default", "lower", "upper"):
            value = getattr(self, label)
            if not isinstance(value, int | float) or math.isnan(value):
                raise ValueError(
                    f"Parameter {self.name!r}: {label}={value!r} must be a real number"
                )
        if not self.lower <= self.default <= self.upper:
            raise ValueError(
                f"Parameter {self.name!r}: default {self.default} {self.unit} is outside its "
                f"bounds [{self.lower}, {self.upper}]"
            )
        if not self.source.strip():
            raise ValueError(
                f"Parameter {self.name!r} needs a source (paper and table) or 'assumption: why'"
            )

    @property
    def is_assumption(self) -> bool:
        """True when the default is an assumption of ours rather than a published value."""
        return self.source.lower().startswith("assumption")


class ParameterTable:
    """An ordered, read-only table of :class:`Parameter`.

    Parameters
    ----------
    parameters : iterable of Parameter
        In kernel order: entry ``k`` is ``p[k]`` in the compiled right-hand side.

    Examples
    --------
    >>> table = ParameterTable([Parameter("k", 0.1, "1/day", 0.0, 1.0, "rate", "assumption: x")])
    >>> table.vector({"k": 0.2})
    array([0.2])
    """

    def __init__(self, parameters: Iterable[Parameter], renamed: Mapping[str, str] | None = None):
        self._parameters = tuple(parameters)
        # names an earlier version of the model used, with what replaced them (for the error)
        self._renamed = dict(renamed or {})
        for p in self._parameters:
            if not isinstance(p, Parameter):
                raise TypeError(f"ParameterTable takes Parameter objects, got {type(p).__name__}")
        self._index = {p.name: k for k, p in enumerate(self._parameters)}
        # read-only table: names and defaults are built once (every simulate asks for them)
        self._names = tuple(p.name for p in self._parameters)
        self._defaults = {p.name: float(p.default) for p in self._parameters}
        if len(self._index) != len(self._parameters):
            names = [p.name for p in self._parameters]
            dups = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"ParameterTable has duplicate names: {dups}")

    # -- container protocol -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._parameters)

    def __contains__(self, name) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Parameter:
        return self._parameters[self.index(name)]

    def __repr__(self) -> str:
        return f"ParameterTable({list(self.names)})"

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in kernel order."""
        return self._names

    def index(self, name: str) -> int:
        """Position of ``name`` in the kernel vector; ScenarioError with a hint if unknown."""
        try:
            return self._index[name]
        except KeyError:
            if name in self._renamed:
                raise ScenarioError(
                    f"Parameter {name!r} no longer exists in this model: {self._renamed[name]}"
                ) from None
            raise ScenarioError(
                f"Unknown parameter {name!r}.{suggest(name, self.names)} "
                f"Known parameters: {', '.join(self.names)}"
            ) from None

    def defaults(self) -> dict[str, float]:
        """Default values, as an ordered ``{name: value}`` dict."""
        return dict(self._defaults)

    def validate(self, theta: Mapping[str, float] | None) -> dict[str, float]:
        """Check overrides and return them as floats.

        Raises
        ------
        ScenarioError
            On an unknown name (with a "did you mean"), a non-finite value or a value outside
            the parameter's bounds.
        """
        if theta is None:
            return {}
        if not isinstance(theta, Mapping):
            raise TypeError(f"theta must be a mapping of parameter name to value, got {theta!r}")
        out = {}
        for name, value in theta.items():
            par = self[name]
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise ScenarioError(
                    f"Parameter {name!r}: value {value!r} is not a number ({par.unit})"
                ) from None
            if not math.isfinite(x):
                raise ScenarioError(f"Parameter {name!r}: value {x} must be finite ({par.unit})")
            if not par.lower <= x <= par.upper:
                raise ScenarioError(
                    f"Parameter {name!r} = {x:g} {par.unit} is outside its plausible bounds "
                    f"[{par.lower:g}, {par.upper:g}] {par.unit} ({par.description})"
                )
            out[name] = x
        return out

    def values(self, theta: Mapping[str, float] | None = None) -> dict[str, float]:
        """Defaults updated with validated overrides, as an ordered dict."""
        values = self.defaults()
        values.update(self.validate(theta))
        return values

    def vector(self, theta: Mapping[str, float] | None = None) -> np.ndarray:
        """Float64 vector in kernel order: defaults with ``theta`` overrides applied.

        Parameters
        ----------
        theta : mapping of str to float, optional
            Overrides by name, each within the parameter's bounds.

        Returns
        -------
        numpy.ndarray, shape (len(self),)
        """
        return np.array(list(self.values(theta).values()), dtype=np.float64)

    def lower_bounds(self) -> np.ndarray:
        """Lower bounds in kernel order, shape (len(self),)."""
        return np.array([p.lower for p in self._parameters], dtype=np.float64)

    def upper_bounds(self) -> np.ndarray:
        """Upper bounds in kernel order, shape (len(self),)."""
        return np.array([p.upper for p in self._parameters], dtype=np.float64)

    def to_markdown(self) -> str:
        """The parameter table as GitHub markdown (name, default, unit, bounds, meaning, source)."""
        rows = [
            "| parameter | default | unit | bounds | description | source |",
            "|---|---|---|---|---|---|",
        ]
        for p in self._parameters:
            rows.append(
                f"| `{p.name}` | {p.default:.4g} | {p.unit} | [{p.lower:.4g}, {p.upper:.4g}] "
                f"| {p.description} | {p.source} |"
            )
        return "\n".join(rows) + "\n"
