"""Assemble an :class:`~cartkin.models.sbml.ir.SbmlModel` from a model's parts (the exporter's core).

The exporter (:mod:`cartkin.export.sbml`) reads a cartkin model description into the small
records below; :func:`build_ir` turns them into SBML elements:

- a state whose unit is dimensionless ("-") becomes a non-constant parameter with a rate rule;
  any other state a species with ``hasOnlySubstanceUnits="true"`` in the compartment ``body``
  of size 1 (its value is the state in the state's own unit, whatever a simulator reports:
  amount and concentration are equal) with a rate rule;
- table parameters and covariates become constant parameters with values and units;
- derived constants become constant parameters with initial assignments;
- named intermediates and observables become non-constant parameters with assignment rules;
- doses and switches become events triggered at ``time >= T``.

Each element carries a cartkin annotation (bounds, source, description, role), so
export -> import gives back the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from cartkin.models.sbml.ir import Entity, Event, SbmlModel
from cartkin.models.sbml.mathml import TIME

__all__ = ["COMPARTMENT", "Dose", "Quantity", "build_ir"]

#: Id of the unit compartment that holds exported species.
COMPARTMENT = "body"


@dataclass
class Quantity:
    """One exported quantity: a state, parameter, covariate, derived value or observable.

    Attributes
    ----------
    id : str
        SBML id (the model symbol).
    expr : sympy.Expr or float
        The value (parameter, covariate), the initial value (state; a number or an
        expression of constants), or the defining expression (derived, intermediate,
        observable).
    unit : str
        cartkin unit string.
    info : dict of str to str
        Annotation attributes (description, source, lower, upper, role, name).
    rate : sympy.Expr, optional
        States only: d(state)/dt.
    name : str
        SBML ``name`` (a state's public long name).
    """

    id: str
    expr: sympy.Expr | float
    unit: str = ""
    info: dict[str, str] = field(default_factory=dict)
    rate: sympy.Expr | None = None
    name: str = ""


@dataclass
class Dose:
    """A change of one state at a fixed time: ``target += value`` (add) or ``target = value``;
    ``fire_at_start``: whether it fires when its time is the start (SBML ``initialValue``
    false), as a dose on the first day does."""

    id: str
    time: sympy.Expr | float
    target: str
    value: sympy.Expr | float
    kind: str = "add"
    fire_at_start: bool = True


def _by_time(doses):
    """Doses grouped by time (one SBML event per time, so simultaneous doses add up)."""
    groups: dict[tuple, list[Dose]] = {}
    for dose in doses:
        time = sympy.sympify(dose.time)
        if time.is_number:  # 1 and 1.0 are one time (sympy's == tells them apart)
            time = sympy.Float(float(time))
        groups.setdefault((time, dose.fire_at_start), []).append(dose)
    return groups.items()


def _is_number(expr) -> bool:
    return isinstance(expr, int | float) or (
        isinstance(expr, sympy.Expr) and expr.is_number and expr.is_real is not False
    )


def build_ir(
    model_id: str,
    *,
    name: str = "",
    notes: str = "",
    states: list[Quantity],
    parameters: list[Quantity],
    derived: list[Quantity] = (),
    intermediates: list[Quantity] = (),
    observables: list[Quantity] = (),
    doses: list[Dose] = (),
    info: dict[str, str] | None = None,
) -> SbmlModel:
    """The SBML intermediate form of a model (see the module docstring).

    Parameters
    ----------
    model_id : str
        SBML model id.
    name, notes : str
        SBML model name and notes (plain text; paragraphs separated by blank lines).
    states : list of Quantity
        With ``rate`` set; ``expr`` is the initial value.
    parameters : list of Quantity
        Table parameters and covariates (``expr`` a number).
    derived : list of Quantity
        Constants computed from parameters (``expr`` an expression).
    intermediates, observables : list of Quantity
        Named expressions of states, constants and time, in evaluation order.
    doses : list of Dose
    info : dict of str to str, optional
        Model-level annotation (cartkin model name, roles).

    Returns
    -------
    SbmlModel
    """
    ir = SbmlModel(id=model_id, name=name, notes=notes, info=dict(info or {}))
    ents = ir.entities
    if any(s.unit not in ("", "-") for s in states):
        ents[COMPARTMENT] = Entity(
            COMPARTMENT, "compartment", 1.0, True, "-", "unit compartment holding the states",
            info={"description": "unit compartment: species values are the states themselves"},
        )  # fmt: skip
    for q in parameters:
        ents[q.id] = Entity(q.id, "parameter", float(q.expr), True, q.unit, q.name, info=q.info)
    for q in derived:
        ents[q.id] = Entity(q.id, "parameter", None, True, q.unit, q.name, info=q.info)
        ir.initial_assignments[q.id] = sympy.sympify(q.expr)
    for q in states:
        species = q.unit not in ("", "-")
        value = float(q.expr) if _is_number(q.expr) else None
        ents[q.id] = Entity(
            q.id, "species" if species else "parameter", value, False, q.unit, q.name,
            compartment=COMPARTMENT if species else "", amount=True, info=q.info,
        )  # fmt: skip
        if value is None:
            ir.initial_assignments[q.id] = sympy.sympify(q.expr)
        ir.rate_rules[q.id] = sympy.sympify(q.rate)
    for kind, group in (("intermediate", intermediates), ("observable", observables)):
        for q in group:
            info = {"kind": kind, **q.info}
            ents[q.id] = Entity(q.id, "parameter", None, False, q.unit, q.name, info=info)
            ir.assignment_rules[q.id] = sympy.sympify(q.expr)
    for (time, at_start), group in _by_time(doses):
        assignments: dict[str, sympy.Expr] = {}
        for dose in group:
            x = sympy.Symbol(dose.target)
            value = sympy.sympify(dose.value)
            if dose.kind == "set":
                if dose.target in assignments:
                    raise ValueError(
                        f"doses {', '.join(d.id for d in group)} at time {time} both set "
                        f"{dose.target!r}"
                    )
                assignments[dose.target] = value
            else:  # simultaneous doses into one state add up
                assignments[dose.target] = assignments.get(dose.target, x) + value
        ir.events.append(
            Event(
                "_and_".join(dict.fromkeys(d.id for d in group)),
                sympy.Ge(TIME, time),
                assignments,
                initial_value=not at_start,  # False: a dose at the start time fires then
                persistent=True,
            )
        )
    return ir
