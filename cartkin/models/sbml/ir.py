"""A small intermediate form between SBML and cartkin model descriptions.

:class:`SbmlModel` holds what cartkin reads from and writes to SBML: compartments, species and
parameters (:class:`Entity`), initial assignments, assignment rules, rate rules, reactions with
kinetic laws and stoichiometry (:class:`Reaction`) and events (:class:`Event`), all math as sympy
expressions. :func:`to_ode` flattens it into the ordinary differential equations cartkin solves
(:class:`OdeSystem`): one right-hand side per state, the constants, the rules in evaluation order,
and the events that map onto cartkin's inputs (:class:`TimedEvent`).

Species values are concentrations (amount / compartment size) when the species has
``hasOnlySubstanceUnits="false"``, as SBML simulators report them, and amounts otherwise; a
reaction's kinetic law (substance per time) changes a concentration species by
``stoichiometry * rate / size`` and an amount species by ``stoichiometry * rate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy

from cartkin.errors import ScenarioError
from cartkin.models.sbml.mathml import TIME, number

__all__ = ["Entity", "Event", "OdeSystem", "Reaction", "SbmlModel", "TimedEvent", "to_ode"]


@dataclass
class Entity:
    """A compartment, species or parameter.

    Attributes
    ----------
    id : str
        SBML id.
    kind : {"compartment", "species", "parameter"}
    value : float or None
        Compartment size, parameter value, or species initial value as reported (concentration
        unless ``amount``); None when only an initial assignment or rule gives it.
    constant : bool
        SBML ``constant``.
    units : str
        cartkin unit string ("" if none).
    name : str
        SBML ``name`` (cartkin writes a state's public long name here).
    compartment : str
        Species only: its compartment id.
    amount : bool
        Species only: ``hasOnlySubstanceUnits`` (the value is an amount, not a concentration).
    boundary : bool
        Species only: ``boundaryCondition`` (reactions do not change it).
    conversion_factor : str
        Species only: id of its conversion factor parameter ("" if none).
    info : dict of str to str
        The cartkin annotation of the element (bounds, source, description, role).
    """

    id: str
    kind: str
    value: float | None = None
    constant: bool = True
    units: str = ""
    name: str = ""
    compartment: str = ""
    amount: bool = False
    boundary: bool = False
    conversion_factor: str = ""
    info: dict[str, str] = field(default_factory=dict)


@dataclass
class Reaction:
    """A reaction: kinetic law (substance per time) and net stoichiometry (products positive)."""

    id: str
    rate: sympy.Expr
    stoichiometry: dict[str, float]


@dataclass
class Event:
    """An SBML event without delay or priority (the reader refuses those)."""

    id: str
    trigger: sympy.Basic
    assignments: dict[str, sympy.Expr]
    initial_value: bool = True
    persistent: bool = True
    use_values_from_trigger_time: bool = True


@dataclass
class SbmlModel:
    """The parts of an SBML Level 3 model that cartkin reads and writes (module docstring)."""

    id: str
    name: str = ""
    notes: str = ""
    entities: dict[str, Entity] = field(default_factory=dict)
    initial_assignments: dict[str, sympy.Expr] = field(default_factory=dict)
    assignment_rules: dict[str, sympy.Expr] = field(default_factory=dict)
    rate_rules: dict[str, sympy.Expr] = field(default_factory=dict)
    reactions: list[Reaction] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    conversion_factor: str = ""
    info: dict[str, str] = field(default_factory=dict)
    source: str = "<SBML>"


@dataclass
class TimedEvent:
    """An event at a fixed time that changes one state by a constant.

    Attributes
    ----------
    id : str
        SBML id of the event.
    time : sympy.Expr
        When it fires (an expression of constants).
    target : str
        The state it changes.
    kind : {"add", "set"}
        ``target = target + value`` (a bolus) or ``target = value`` (a switch of a state with
        no dynamics of its own).
    value : sympy.Expr
        The amount added or the value set (an expression of constants).
    fire_at_start : bool
        Whether it fires when ``time`` is at or before the start of the simulation (SBML:
        a trigger whose ``initialValue`` is false).
    """

    id: str
    time: sympy.Expr
    target: str
    kind: str
    value: sympy.Expr
    fire_at_start: bool


@dataclass
class OdeSystem:
    """The differential equations of an :class:`SbmlModel` (see :func:`to_ode`).

    Attributes
    ----------
    states : list of str
        State ids in document order (in the order of the cartkin annotation ``state_index``
        when the file has one).
    rhs : dict of str to sympy.Expr
        d(state)/dt per state, in terms of states, constants, rule variables and :data:`TIME`.
    rules : dict of str to sympy.Expr
        Assignment rules, in an order where each uses only those before it.
    constants : dict of str to float
        Numeric constants (parameters and compartment sizes with values).
    derived : dict of str to sympy.Expr
        Constants given by initial assignments, in evaluation order.
    initial : dict of str to sympy.Expr
        Initial value of each state, in terms of constants, derived values and rule variables.
    events : list of TimedEvent
    """

    states: list[str]
    rhs: dict[str, sympy.Expr]
    rules: dict[str, sympy.Expr]
    constants: dict[str, float]
    derived: dict[str, sympy.Expr]
    initial: dict[str, sympy.Expr]
    events: list[TimedEvent]


def _error(model: SbmlModel, message: str) -> ScenarioError:
    return ScenarioError(f"{model.source}: {message}")


def _order(model: SbmlModel, exprs: dict[str, sympy.Expr], what: str) -> dict[str, sympy.Expr]:
    """``exprs`` sorted so each uses only earlier ones (ScenarioError on a cycle)."""
    done: dict[str, sympy.Expr] = {}
    pending = dict(exprs)
    while pending:
        ready = [
            k for k, e in pending.items() if not ({s.name for s in e.free_symbols} & set(pending))
        ]
        if not ready:
            raise _error(model, f"the {what} of {', '.join(sorted(pending))} depend on each other")
        for k in ready:
            done[k] = pending.pop(k)
    return done


def to_ode(model: SbmlModel) -> OdeSystem:
    """Flatten an :class:`SbmlModel` into differential equations.

    States are, in document order, the entities with a rate rule, the non-boundary species
    that reactions change, and the non-constant entities that events change but nothing else
    does (their derivative is zero between events).

    Raises
    ------
    ScenarioError
        Naming the file and element: a reaction changes a species in a compartment whose size
        varies; an entity has two rules; an event does not map onto a timed bolus or switch
        (see :class:`TimedEvent`); a state has no initial value; rules or initial assignments
        form a cycle.
    """
    ents = model.entities
    for var in model.rate_rules:
        if var in model.assignment_rules:
            raise _error(model, f"{var!r} has both a rate rule and an assignment rule")
    flux: dict[str, sympy.Expr] = {}
    for reaction in model.reactions:
        for sid, nu in reaction.stoichiometry.items():
            species = ents[sid]
            if species.boundary or nu == 0:
                continue
            if species.constant:
                raise _error(
                    model,
                    f"reaction {reaction.id!r} changes species {sid!r}, which is constant and "
                    "not a boundary species",
                )
            if sid in model.rate_rules or sid in model.assignment_rules:
                raise _error(
                    model,
                    f"reaction {reaction.id!r} changes species {sid!r}, which a rule also sets "
                    "(only boundary species may have rules and take part in reactions)",
                )
            term = number(nu) * reaction.rate
            factor = species.conversion_factor or model.conversion_factor
            if factor:
                term = sympy.Symbol(factor) * term
            if not species.amount:
                comp = ents[species.compartment]
                if not comp.constant and (
                    comp.id in model.rate_rules
                    or comp.id in model.assignment_rules
                    or any(comp.id in e.assignments for e in model.events)
                ):
                    raise _error(
                        model,
                        f"reaction {reaction.id!r} changes the concentration of {sid!r} in "
                        f"compartment {comp.id!r}, whose size varies; cartkin supports reactions "
                        "in compartments of constant size only",
                    )
                term = term / sympy.Symbol(comp.id)
            flux[sid] = flux.get(sid, sympy.Integer(0)) + term
    event_targets = {var for e in model.events for var in e.assignments}
    states = [
        eid
        for eid, ent in ents.items()
        if eid in model.rate_rules
        or eid in flux
        or (eid in event_targets and eid not in model.assignment_rules)
    ]
    # a file written by cartkin keeps its state order (species and parameters are listed apart)
    states.sort(key=lambda sid: float(ents[sid].info.get("state_index", math.inf)))
    for var in event_targets & set(model.assignment_rules):
        event = next(e.id for e in model.events if var in e.assignments)
        raise _error(model, f"event {event!r} assigns {var!r}, which an assignment rule sets")
    for sid in states:
        if ents[sid].constant:
            what = "rate rule" if sid in model.rate_rules else "event"
            raise _error(model, f"{sid!r} is constant but a {what} changes it")
    rhs = {}
    for sid in states:
        if sid in model.rate_rules:
            rhs[sid] = model.rate_rules[sid]
        else:
            rhs[sid] = flux.get(sid, sympy.Integer(0))
    if not states:
        raise _error(
            model,
            "the model has no dynamics (no reactions, rate rules or events change anything); "
            "cartkin needs at least one state",
        )
    rules = _order(model, model.assignment_rules, "assignment rules")
    state_set = set(states)
    read = _names_read(model)
    constants, derived_raw = {}, {}
    for eid, ent in ents.items():
        if eid in state_set or eid in rules:
            continue
        if eid in model.initial_assignments:
            derived_raw[eid] = model.initial_assignments[eid]
        elif ent.value is not None:
            constants[eid] = float(ent.value)
        elif eid in read:
            raise _error(model, f"{ent.kind} {eid!r} has no value, initial assignment or rule")
    initial = {}
    for sid in states:
        if sid in model.initial_assignments:
            initial[sid] = model.initial_assignments[sid]
        elif ents[sid].value is not None:
            initial[sid] = number(float(ents[sid].value))
        else:
            raise _error(model, f"{ents[sid].kind} {sid!r} has no initial value")
    derived = _order(model, derived_raw, "initial assignments")
    _check_initial_order(model, initial, derived, rules, state_set)
    events = _timed_events(model, state_set, rhs, rules)
    return OdeSystem(states, rhs, rules, constants, derived, initial, events)


def _names_read(model: SbmlModel) -> set[str]:
    """Ids that some expression reads, or that hold a species being changed (its compartment)."""
    exprs = [*model.initial_assignments.values(), *model.assignment_rules.values(),
             *model.rate_rules.values(), *(r.rate for r in model.reactions)]  # fmt: skip
    for event in model.events:
        exprs += [event.trigger, *event.assignments.values()]
    out = {s.name for e in exprs for s in sympy.sympify(e).free_symbols}
    for reaction in model.reactions:
        out |= {model.entities[sid].compartment for sid in reaction.stoichiometry}
        out |= {model.entities[sid].conversion_factor for sid in reaction.stoichiometry}
    out |= {model.conversion_factor}
    return out - {""}


def _check_initial_order(model, initial, derived, rules, states):
    """Refuse a constant whose initial assignment uses a state or a time-dependent rule."""
    varying = set(states) | {TIME.name} | set(rules)
    for eid, expr in derived.items():
        used = {s.name for s in expr.free_symbols} & varying
        if used:
            raise _error(
                model,
                f"the initial assignment of {eid!r} uses {', '.join(sorted(used))}; cartkin "
                "supports initial assignments of constants that use constants only",
            )
    for sid, expr in initial.items():
        used = {s.name for s in expr.free_symbols} & (set(states) | {TIME.name})
        if used:
            raise _error(
                model,
                f"the initial value of {sid!r} uses the state(s) {', '.join(sorted(used))}; "
                "cartkin supports initial values computed from constants and rules only",
            )


def _timed_events(model, states, rhs, rules) -> list[TimedEvent]:
    """Events that map onto timed boluses and switches (see :class:`TimedEvent`)."""
    varying = set(states) | set(rules) | {TIME.name}
    out = []
    for event in model.events:
        t_fire = _trigger_time(event.trigger)
        if t_fire is None or {s.name for s in t_fire.free_symbols} & varying:
            raise _error(
                model,
                f"event {event.id!r} has the trigger {event.trigger}; cartkin maps events "
                "triggered at a fixed time only (time >= T or time > T, T a constant expression)",
            )
        for var, expr in event.assignments.items():
            x = sympy.Symbol(var)
            added = sympy.expand(expr - x)
            uses = {s.name for s in added.free_symbols} & varying
            if not uses:
                kind, value = "add", added
            elif sympy.sympify(rhs.get(var, 0)).is_zero and not (
                {s.name for s in expr.free_symbols} & varying
            ):
                kind, value = "set", expr
            else:
                raise _error(
                    model,
                    f"event {event.id!r} assigns {var} = {expr}; cartkin maps event assignments "
                    "that add a constant to a state (x = x + c) or set a state without "
                    "dynamics to a constant (x = c)",
                )
            for other in out:
                if other.target == var and sympy.simplify(other.time - t_fire).is_zero:
                    raise _error(
                        model,
                        f"events {other.id!r} and {event.id!r} both assign {var!r} at time "
                        f"{t_fire}; SBML leaves the order of simultaneous events open, so "
                        "merge them into one event",
                    )
            out.append(TimedEvent(event.id, t_fire, var, kind, value, not event.initial_value))
    return out


def _trigger_time(trigger) -> sympy.Expr | None:
    """T for a trigger ``time >= T`` or ``time > T`` (either side), else None."""
    if isinstance(trigger, sympy.Ge | sympy.Gt):
        big, small = trigger.args
    elif isinstance(trigger, sympy.Le | sympy.Lt):
        small, big = trigger.args
    else:
        return None
    if big == TIME and TIME not in small.free_symbols:
        return small
    return None
