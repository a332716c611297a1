"""An SBML file as a cartkin model: :func:`load_sbml` (``cartkin.models.load("file.xml")``).

The SBML model is read (:mod:`cartkin.models.sbml.read`), flattened into differential equations
(:func:`cartkin.models.sbml.ir.to_ode`) and written as a :class:`~cartkin.models.Description`, which
is built like any other model (generated right-hand side, analytic Jacobian, kernel cache):

- states are the SBML ids (species values are concentrations where the species has
  ``hasOnlySubstanceUnits="false"``, amounts otherwise, as SBML simulators report them);
- constant parameters and compartment sizes form the parameter table (bounds and sources from a
  cartkin annotation when the file has one, else unbounded with the file as source);
- initial assignments of constants are derived entries; assignment rules are intermediates of
  the equations and observables;
- events at fixed times become stops of the kernel with their jumps (see :class:`_TimedEvents`).

Ids that are reserved in cartkin expressions (``t``, the function names, Python keywords, the
dose-schedule summaries) get a trailing underscore; a warning lists them. An id equal to a
covariate name (``weight_kg``) is a table parameter that takes the covariate's place.
"""

from __future__ import annotations

import keyword
import math
import warnings
from pathlib import Path

import numpy as np
import sympy

from cartkin.errors import ScenarioError
from cartkin.models.base import Model, ModelSolution
from cartkin.models.sbml.expressions import UnsupportedExpression, to_python
from cartkin.models.sbml.ir import OdeSystem, SbmlModel, to_ode
from cartkin.models.sbml.mathml import TIME
from cartkin.models.sbml.read import read_sbml

__all__ = ["SbmlImportedModel", "SbmlWarning", "description_from_sbml", "load_sbml"]


class SbmlWarning(UserWarning):
    """An SBML file was read with an adjustment the user should know about."""


def load_sbml(path):
    """The cartkin model of an SBML Level 3 file.

    Parameters
    ----------
    path : str or Path
        An SBML file (``.xml`` or ``.sbml``), or SBML text.

    Returns
    -------
    cartkin.models.Model
        Not registered; ``model.solve(t_days)`` runs it without a patient.

    Raises
    ------
    ScenarioError
        The file is missing or invalid, or uses an element cartkin does not translate (the
        message names the file and the element).
    """
    from cartkin.models.assemble import build

    ir = read_sbml(path)
    ode = to_ode(ir)
    description, events = description_from_sbml(ir, ode)
    built = build(description)
    if not events:
        return built
    return _imported_model(built, _TimedEvents(description, events))


# ---------------------------------------------------------------------------------------------
def _reserved() -> set[str]:
    """Names an SBML id cannot keep: the generated code's (cartkin.models.description.RESERVED),
    the dose-schedule summaries, ``dose``, ``day``, ``t_start`` and Python keywords."""
    from cartkin.models.description import RESERVED, SCHEDULES

    schedule = {
        f"{k}_{s}_{w}" if k else f"{w}_{s}"
        for s in SCHEDULES
        for k, w in (("first", "day"), ("last", "day"), ("first", "dose"), ("", "n"))
    }
    return set(RESERVED) | {"t_start", "dose", "day"} | schedule | set(keyword.kwlist)


def _renames(ir: SbmlModel) -> dict[str, str]:
    reserved = _reserved()
    taken = set(ir.entities)
    out = {TIME.name: "t"}
    moved = []
    for eid in ir.entities:
        if eid in reserved or eid.startswith("_"):
            new = eid.lstrip("_") or "x"
            new = new + "_"
            while new in taken or new in reserved:
                new += "_"
            taken.add(new)
            out[eid] = new
            moved.append(f"{eid} -> {new}")
    if moved:
        warnings.warn(
            f"{ir.source}: ids reserved in cartkin expressions renamed: {', '.join(moved)}",
            SbmlWarning,
            stacklevel=3,
        )
    return out


def description_from_sbml(ir: SbmlModel, ode: OdeSystem | None = None):
    """The :class:`~cartkin.models.Description` of an SBML model and its timed events.

    Returns
    -------
    (Description, list of TimedEvent)
        Event ids, targets and expressions use the renamed ids.
    """
    from cartkin.models.base import ROLES, State
    from cartkin.models.description import Description
    from cartkin.parameters import Parameter, ParameterTable

    ode = to_ode(ir) if ode is None else ode
    rename = _renames(ir)
    ents = ir.entities

    def py(expr, what):
        try:
            return to_python(expr, rename)
        except UnsupportedExpression as exc:
            raise ScenarioError(f"{ir.source}: {what}: {exc}") from None

    def name(eid):
        return rename.get(eid, eid)

    used = _used_names(ode)
    table = []
    for eid, value in ode.constants.items():
        ent = ents[eid]
        if ent.kind == "compartment" and eid not in used:
            continue  # a compartment size nothing reads (cartkin's unit compartment)
        info = ent.info
        lower = float(info.get("lower", -math.inf))
        upper = float(info.get("upper", math.inf))
        if not lower <= value <= upper:
            lower, upper = min(lower, value), max(upper, value)
        label = {"compartment": "size of compartment", "species": "species"}.get(ent.kind, "")
        table.append(
            Parameter(
                name(eid), float(value), ent.units or "-", lower, upper,
                info.get("description") or ent.name or f"{label or ent.kind} {eid} of the SBML model",
                info.get("source") or f"SBML file {Path(ir.source).name}, {ent.kind} {eid!r}",
            )
        )  # fmt: skip
    derived = [f"{name(k)} = {py(e, f'the initial assignment of {k!r}')}"
               for k, e in ode.derived.items()]  # fmt: skip
    states = []
    for sid in ode.states:
        ent = ents[sid]
        what = {"species": f"species in {ent.compartment}", "compartment": "compartment size"}
        text = ent.info.get("description") or ent.name or what.get(ent.kind, ent.kind)
        if ent.kind == "species" and "description" not in ent.info:
            text += " (amount)" if ent.amount else " (concentration)"
        states.append(State(name(sid), name(sid), ent.units or "-", text))
    equations = [f"{name(k)} = {py(e, f'the assignment rule of {k!r}')}"
                 for k, e in ode.rules.items()]  # fmt: skip
    equations += [f"d/dt({name(s)}) = {py(ode.rhs[s], f'the equation of {s!r}')}"
                  for s in ode.states]  # fmt: skip
    time_rules = _time_dependent(ode)
    rules_sub = {sympy.Symbol(k): e for k, e in reversed(ode.rules.items())}
    initial = []
    for sid, expr in ode.initial.items():
        for _ in range(len(rules_sub) + 1):  # rules may use rules
            expr = expr.xreplace(rules_sub)
        if expr != 0:
            initial.append(f"{name(sid)} = {py(expr, f'the initial value of {sid!r}')}")
    observables, roles = [], {}
    skipped = []
    for rid in ode.rules:
        info = ents[rid].info
        if info.get("kind") == "intermediate":
            continue
        if rid in time_rules:
            skipped.append(rid)
            continue
        unit = ents[rid].units or "-"
        text = (info.get("description") or ents[rid].name or f"assignment rule {rid}").replace(
            "#", ""
        )
        observables.append(f"{name(rid)} [{unit}] = {name(rid)}  # {text}")
        if info.get("role") in ROLES:
            roles[info["role"]] = name(rid)
    if skipped:
        warnings.warn(
            f"{ir.source}: assignment rules that depend on time are not observables: "
            f"{', '.join(skipped)}",
            SbmlWarning,
            stacklevel=3,
        )
    for pair in filter(None, ir.info.get("roles", "").split(";")):
        role, _, obs = pair.partition("=")
        if role in ROLES and name(obs) in {o.split(" ", 1)[0] for o in observables}:
            roles.setdefault(role, name(obs))
    if "cart" not in roles:
        roles, observables = _cart_role(ir, ode, states, observables, roles)
    model_name = ir.id
    return (
        Description(
            name=model_name,
            description=_first_paragraph(ir),
            parameters=ParameterTable(table),
            states=states,
            equations="\n".join(equations),
            derived="\n".join(derived),
            initial="\n".join(initial),
            observables="\n".join(observables),
            roles=roles,
        ),
        [_renamed_event(e, rename) for e in ode.events],
    )


def _cart_role(ir, ode, states, observables, roles):
    """A model without a CAR-T observable: the role ``cart`` names the first observable, or an
    observable made of the first state (cartkin's metrics need one; warned)."""
    if observables:
        first = observables[0].split(" ", 1)[0]
    else:
        s = states[0]
        first = f"{s.symbol}_value"
        observables = [f"{first} [{s.unit}] = {s.symbol}  # state {s.symbol}"]
    warnings.warn(
        f"{ir.source}: no observable has the role 'cart' (a cartkin annotation); cartkin's "
        f"CAR-T metrics will read {first!r}",
        SbmlWarning,
        stacklevel=4,
    )
    return {**roles, "cart": first}, observables


def _used_names(ode: OdeSystem) -> set[str]:
    """Ids that any expression of the flattened model reads."""
    exprs = [*ode.rhs.values(), *ode.rules.values(), *ode.derived.values(),
             *ode.initial.values(), *(e.time for e in ode.events),
             *(e.value for e in ode.events)]  # fmt: skip
    return {s.name for e in exprs for s in sympy.sympify(e).free_symbols}


def _time_dependent(ode: OdeSystem) -> set[str]:
    """Rules that use time directly or through other rules."""
    out: set[str] = set()
    for rid, expr in ode.rules.items():  # in evaluation order
        names = {s.name for s in expr.free_symbols}
        if TIME.name in names or names & out:
            out.add(rid)
    return out


def _first_paragraph(ir: SbmlModel) -> str:
    import re

    text = re.sub(r"<[^>]+>", " ", ir.notes or "")
    text = " ".join(text.split())
    head = f"Imported from the SBML file {Path(ir.source).name} (model {ir.id!r})."
    return f"{ir.name or ir.id}: {text[:600]}\n\n{head}" if text else f"{ir.name or ir.id}. {head}"


def _renamed_event(event, rename):
    from dataclasses import replace

    subs = {sympy.Symbol(k): sympy.Symbol(v) for k, v in rename.items() if k != TIME.name}
    return replace(
        event,
        target=rename.get(event.target, event.target),
        time=event.time.xreplace(subs),
        value=event.value.xreplace(subs),
    )


class _TimedEvents:
    """The SBML events of an imported model as kernel stops and jumps.

    Each :class:`~cartkin.models.sbml.ir.TimedEvent` becomes a stop at its time (from the kernel
    vector of each patient) with a jump of its target: ``value`` for an ``add`` event, and for a
    ``set`` event the value minus the target's value just before (the target has no dynamics
    of its own, so that value is its initial value or the last event's result). An event at or
    before the start fires at the start only if its trigger's ``initialValue`` is false (SBML).
    Called as ``individualize``: the description's, plus the events.
    """

    def __init__(self, description, events):
        self.description = description
        self.events = events
        names = list(description.kernel_names)
        self.s_index = {s: k for k, s in enumerate(description.state_symbols)}
        self.fns = [
            (sympy.lambdify(names, e.time, "numpy"), sympy.lambdify(names, e.value, "numpy"))
            for e in events
        ]

    def stops(self, p, t0, y0):
        """``(t_stops (n, m), jumps (n, m, n_states))`` of the events, sorted by time, padded
        with +inf, for kernel vectors ``p`` (n, n_kernel), start times ``t0`` (n,) and initial
        states ``y0`` (n, n_states)."""
        n, n_states = p.shape[0], y0.shape[1]
        cols = [p[:, k] for k in range(p.shape[1])]
        with np.errstate(all="ignore"):
            times = np.stack([np.broadcast_to(f(*cols), (n,)) for f, _ in self.fns], axis=1)
            amounts = np.stack([np.broadcast_to(g(*cols), (n,)) for _, g in self.fns], axis=1)
        fires = np.stack(
            [(times[:, k] > t0) | e.fire_at_start for k, e in enumerate(self.events)], axis=1
        )
        times = np.maximum(times, t0[:, None])
        order = np.argsort(np.where(fires, times, np.inf), axis=1, kind="stable")
        current = np.array(y0, dtype=np.float64)
        jumps = np.zeros((n, len(self.events), n_states))
        for col in range(len(self.events)):  # events in time order, all patients at once
            k = order[:, col]
            for e_k, event in enumerate(self.events):
                sel = (k == e_k) & fires[:, e_k]
                if not sel.any():
                    continue
                j = self.s_index[event.target]
                amount = amounts[sel, e_k]
                if event.kind == "set":
                    amount = amount - current[sel, j]
                current[sel, j] += amount
                jumps[np.flatnonzero(sel), col, j] = amount
        t_ev = np.where(
            np.take_along_axis(fires, order, axis=1), np.take_along_axis(times, order, axis=1),
            np.inf,
        )  # fmt: skip
        return t_ev, jumps

    def __call__(self, values, bctx):
        from cartkin.models.assemble import individualize
        from cartkin.models.base import BatchIndividuals

        base = individualize(self.description, values, bctx)
        p = np.asarray(base.p)
        y0 = np.asarray(base.y0, dtype=np.float64)
        n, n_states = y0.shape
        t0 = np.asarray(base.t0, dtype=np.float64).reshape(n)
        t_ev, jumps = self.stops(p, t0, y0)
        t_base = np.asarray(base.t_stops).reshape(n, -1)
        j_base = np.asarray(base.jumps).reshape(n, t_base.shape[1], n_states)
        t_all = np.concatenate([t_base, t_ev], axis=1)
        j_all = np.concatenate([j_base, jumps], axis=1)
        merged = np.argsort(t_all, axis=1, kind="stable")
        t_all = np.take_along_axis(t_all, merged, axis=1)
        j_all = np.take_along_axis(j_all, merged[:, :, None], axis=1)
        n_stops = np.isfinite(t_all).sum(axis=1).astype(np.int64)
        m = int(n_stops.max(initial=0))
        return BatchIndividuals(p=p, y0=y0, t0=t0, t_stops=t_all[:, :m], jumps=j_all[:, :m],
                                n_stops=n_stops)  # fmt: skip


class SbmlImportedModel(Model):
    """A model read from SBML: its events at fixed times apply in :meth:`solve` too (and, as
    its ``individualize``, in :func:`cartkin.simulate`, fits and sweeps)."""

    timed: _TimedEvents

    def solve(self, t_days, params=None, y0=None, *, method="rodas5", rtol=1e-8, atol=1e-10,
              max_steps=100_000) -> ModelSolution:  # fmt: skip
        """:meth:`cartkin.models.Model.solve` with the SBML events as stops and jumps;
        integration starts at ``t_days[0]`` (same arguments and result)."""
        from cartkin.ode import solve_ode

        p, y_default = self.patient_free_inputs(self.parameters.values(params))
        y = y_default if y0 is None else np.asarray(y0, dtype=np.float64)
        if y.shape != (self.n_states,):
            raise ValueError(
                f"Model {self.name!r}: y0 has shape {y.shape}; expected ({self.n_states},)"
            )
        t = np.asarray(t_days, dtype=np.float64)
        t_ev, jumps = self.timed.stops(p[None, :], t[:1], y[None, :])
        keep = t_ev[0] <= t[-1]
        sol = solve_ode(
            self.rhs, y, t, p, jac=self.jac, method=method, rtol=rtol, atol=atol,
            max_steps=max_steps, t_stops=t_ev[0][keep], jumps=jumps[0][keep],
        )  # fmt: skip
        return ModelSolution(t=sol.t, y=sol.y, state_names=self.state_symbols)


def _imported_model(built, timed: _TimedEvents) -> SbmlImportedModel:
    model = SbmlImportedModel(
        name=built.name, description=built.description, states=built.states,
        parameters=built.parameters, observables=built.observables, rhs=built.rhs,
        individualize=timed, roles=built.roles, equations=built.equations,
        derived=built.derived, jac=built.jac, batch=True, observe_roles=built.observe_roles,
    )  # fmt: skip
    model.timed = timed
    for attr in ("description_", "generated", "ignores", "patient_free_inputs"):
        if hasattr(built, attr):
            setattr(model, attr, getattr(built, attr))
    return model
