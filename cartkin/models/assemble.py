"""From a :class:`~cartkin.models.description.Description` to a runnable :class:`Model`.

:func:`build` generates and loads the compiled code (:mod:`cartkin.kernel.codegen`), turns the
observables into numpy functions, and gives the model the engine's dosing: :func:`individualize`
evaluates the derived entries and the initial state over all patients at once and sorts the
regimen's events into the kernel's stops and jumps (no per-patient Python).
"""

from __future__ import annotations

import ast
import functools

import numpy as np

from cartkin.kernel import codegen
from cartkin.models.base import ROLES, BatchIndividuals, Model, Observable
from cartkin.models.description import (
    COVARIATES,
    SCHEDULES,
    Bolus,
    Description,
    Infusion,
    Switch,
)

__all__ = ["build", "individualize", "schedules"]

#: numpy meaning of the description functions (element-wise over patients or times).
NUMPY = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt, "min": np.minimum,
    "max": np.maximum, "abs": np.abs, "clip": np.clip, "isfinite": np.isfinite,
    "where": np.where,
}  # fmt: skip

#: Infusion length when the regimen gives none for a dialysis session, h (assumption: the
#: usual 4-hour session).
DEFAULT_SESSION_H = 4.0


@functools.lru_cache(maxsize=4096)
def _compile_expr(text: str, where: str):
    """Byte code of one checked expression (parsed once per process)."""
    return compile(ast.parse(text, mode="eval"), where, "eval")


def build(description: Description) -> Model:
    """The runnable model of ``description`` (compiled code generated and cached).

    Parameters
    ----------
    description : Description

    Returns
    -------
    Model
        With the generated ``rhs``, ``jac`` (analytic, sparse pattern) and ``observe_roles``,
        an array-valued ``individualize`` and the description kept as ``model.description_``.
    """
    d = description
    role_exprs = []
    obs_by_name = {o.name: o for o in d.observables}
    for role in ROLES:
        name = d.roles.get(role)
        role_exprs.append(None if name is None else obs_by_name[name].expression)
    module = codegen.load(
        d.name,
        f"model {d.name!r} ({d.file})",
        list(d.state_symbols),
        list(d.kernel_names),
        [(line.name, line.expression) for line in d.intermediates],
        [d.rates[s].expression for s in d.state_symbols],
        role_exprs,
    )
    observables = tuple(
        Observable(o.name, o.unit, o.description or o.expression, _observable_fn(d, o))
        for o in d.observables
    )

    def individualize_(values, bctx):
        return individualize(d, values, bctx)

    model = Model(
        name=d.name,
        description=d.description,
        states=d.states,
        parameters=d.parameters,
        observables=observables,
        rhs=module.rhs,
        jac=module.jac,
        individualize=individualize_,
        roles=d.roles,
        equations=equations_text(d),
        derived=d.derived_names,
        batch=True,
        observe_roles=module.observe_roles,
    )
    model.description_ = d
    model.patient_free_inputs = lambda values: patient_free_inputs(d, values)
    model.generated = module
    if d.ignores:
        model.ignores = d.ignores
    return model


def equations_text(d: Description) -> str:
    """The description's equations, derived entries, initial state and inputs, as written."""
    parts = [d.equations_text]
    if d.derived_text:
        parts += ["", "# per patient (kernel entries after the parameter table)", d.derived_text]
    if d.initial_text:
        parts += ["", "# initial state (others 0)", d.initial_text]
    if d.inputs:
        parts += ["", "# inputs (schedules from the regimen)"]
        parts += [_input_text(item) for item in d.inputs]
    return "\n".join(parts)


def _input_text(item) -> str:
    if isinstance(item, Bolus):
        extra = " (first only)" if item.first_only else ""
        delay = f" + {item.delay}" if item.delay else ""
        return f"{item.schedule}{extra} on day{delay}: {item.into} += {item.amount}"
    if isinstance(item, Infusion):
        return f"{item.schedule}: {item.rate} += ({item.amount}) / duration over each infusion"
    return f"{item.schedule}: {item.flag} = 1 during each session"


def _observable_fn(d: Description, obs):
    """``fn(states (n_t, n_states), p (n_kernel,)) -> (n_t,)`` evaluating the expression."""
    code = _compile_expr(obs.expression, obs.where)
    inter = {line.name: line for line in d.intermediates}
    needed = []
    stack = list(codegen.names_in(obs.expression))
    seen = set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in inter:
            stack += list(codegen.names_in(inter[n].expression))
    needed = [(line.name, _compile_expr(line.expression, line.where))
              for line in d.intermediates if line.name in seen]  # fmt: skip
    s_index = {s: k for k, s in enumerate(d.state_symbols)}
    p_index = {k: i for i, k in enumerate(d.kernel_names)}

    def fn(states, p):
        ns = dict(NUMPY)
        for name in seen:
            if name in s_index:
                ns[name] = states[:, s_index[name]]
            elif name in p_index:
                ns[name] = p[p_index[name]]
        for name, c in needed:
            ns[name] = eval(c, {"__builtins__": {}}, ns)
        out = eval(code, {"__builtins__": {}}, ns)
        return np.broadcast_to(np.asarray(out, dtype=np.float64), (states.shape[0],))

    return fn


# ---------------------------------------------------------------------------------------------
# dosing: the regimen's schedules -> stops and jumps
# ---------------------------------------------------------------------------------------------
def schedules(bctx, n: int) -> dict[str, tuple]:
    """``{schedule: (days (n, m), doses (n, m), durations (n, 1))}`` of a BatchContext.

    Pads: days NaN, doses 0. Durations in days (0 for instantaneous doses).
    """

    def arr(name):
        return np.asarray(getattr(bctx, name), dtype=np.float64)

    flu_d = np.full((n, 1), float(bctx.flu_infusion_h) / 24.0)
    dia_h = arr("dialysis_duration_h").reshape(n)
    dia_d = (np.where(dia_h > 0, dia_h, DEFAULT_SESSION_H) / 24.0)[:, None]
    sessions = arr("dialysis_session_days").reshape(n, -1)
    return {
        "cart": (arr("cart_dose_days").reshape(n, -1),
                 np.nan_to_num(arr("cart_dose_cells").reshape(n, -1)), np.zeros((n, 1))),
        "fludarabine": (arr("flu_dose_days").reshape(n, -1),
                        np.nan_to_num(arr("flu_dose_mg").reshape(n, -1)), flu_d),
        "cyclophosphamide": (arr("cy_days").reshape(n, -1),
                             np.nan_to_num(arr("cy_mg_m2").reshape(n, -1)), np.zeros((n, 1))),
        "dialysis": (sessions, np.ones_like(sessions), dia_d),
    }  # fmt: skip


def _summaries(sched) -> dict[str, np.ndarray]:
    out = {}
    for s in SCHEDULES:
        days, doses, _ = sched[s]
        valid = np.isfinite(days) & (doses > 0)
        n = days.shape[0]
        if days.shape[1]:
            first = np.where(valid, days, np.inf).min(axis=1)
            last = np.where(valid, days, -np.inf).max(axis=1)
        else:
            first, last = np.full(n, np.inf), np.full(n, -np.inf)
        any_ = valid.any(axis=1)
        out[f"first_{s}_day"] = np.where(any_, first, np.nan)
        out[f"last_{s}_day"] = np.where(any_, last, np.nan)
        on_first = valid & (days == first[:, None])
        out[f"first_{s}_dose"] = np.where(on_first, doses, 0.0).sum(axis=1)
        out[f"n_{s}"] = valid.sum(axis=1).astype(np.float64)
    return out


def individualize(d: Description, values, bctx):
    """Kernel inputs of ``n`` patients from table values and a BatchContext.

    Parameters
    ----------
    d : Description
    values : dict of str to numpy.ndarray, shape (n,)
        Table values per patient, in table order.
    bctx : cartkin.batch.BatchContext

    Returns
    -------
    cartkin.batch.BatchIndividuals
    """
    n = int(np.asarray(bctx.weight_kg).shape[0])
    ns = dict(NUMPY)
    for name in COVARIATES:
        ns[name] = np.asarray(getattr(bctx, name), dtype=np.float64).reshape(n)
    for name, x in values.items():
        ns[name] = _per_patient(x, n)
    sched = schedules(bctx, n)
    ns.update(_summaries(sched))
    t_start = np.zeros(n)
    if d.start == "first_dose":
        for item in d.inputs:
            if isinstance(item, Bolus | Infusion):
                days, doses, _ = sched[item.schedule]
                ok = np.isfinite(days) & (doses > 0)
                if days.shape[1]:
                    t_start = np.minimum(t_start, np.where(ok, days, np.inf).min(axis=1))
    ns["t_start"] = t_start
    env = {"__builtins__": {}}
    derived = []
    for line in d.derived:
        value = _per_patient(eval(_compile_expr(line.expression, line.where), env, ns), n)
        ns[line.name] = value
        derived.append(value)
    # (n_kernel, n) stacked then transposed: faster than column_stack for a single patient
    p = np.array([*(ns[name] for name in d.parameters.names), *derived], dtype=np.float64)
    p = np.ascontiguousarray(p.T)
    n_states = len(d.states)
    s_index = {s: k for k, s in enumerate(d.state_symbols)}
    y0 = np.zeros((n, n_states))
    for line in d.initial:
        y0[:, s_index[line.name]] = eval(_compile_expr(line.expression, line.where), env, ns)
    t_stops, jumps, n_stops = _events(d, ns, sched, s_index, n, n_states)
    return BatchIndividuals(p=p, y0=y0, t0=t_start, t_stops=t_stops, jumps=jumps,
                            n_stops=n_stops)  # fmt: skip


def patient_free_inputs(d: Description, values) -> tuple[np.ndarray, np.ndarray]:
    """Kernel vector and initial state with no patient: covariates NaN, no doses, start 0.

    Derived entries that need a covariate are NaN; everything else is as for a patient.
    """
    ns = dict(NUMPY)
    ns.update({name: np.full(1, np.nan) for name in COVARIATES})
    for s in SCHEDULES:
        ns.update({f"first_{s}_day": np.full(1, np.nan), f"last_{s}_day": np.full(1, np.nan),
                   f"first_{s}_dose": np.zeros(1), f"n_{s}": np.zeros(1)})  # fmt: skip
    ns["t_start"] = np.zeros(1)
    for name, x in values.items():
        ns[name] = _per_patient(x, 1)
    env = {"__builtins__": {}}
    derived = []
    with np.errstate(all="ignore"):
        for line in d.derived:
            value = eval(_compile_expr(line.expression, line.where), env, ns)
            ns[line.name] = _per_patient(value, 1)
            derived.append(ns[line.name])
        p = np.array([*(ns[k] for k in d.parameters.names), *derived], dtype=np.float64)[:, 0]
        s_index = {s: k for k, s in enumerate(d.state_symbols)}
        y0 = np.zeros(len(d.states))
        for line in d.initial:
            value = eval(_compile_expr(line.expression, line.where), env, ns)
            y0[s_index[line.name]] = _per_patient(value, 1)[0]
    return np.ascontiguousarray(p), y0


def _per_patient(x, n: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.shape == (n,):
        return a
    return np.broadcast_to(np.atleast_1d(a), (n,)).astype(np.float64)


@functools.lru_cache(maxsize=64)
def _input_names(inputs) -> frozenset:
    """Names (and functions) the inputs' amount, delay and when expressions use."""
    names = set(NUMPY)
    for item in inputs:
        for attr in ("amount", "delay", "when"):
            text = getattr(item, attr, "")
            if text:
                names |= codegen.names_in(text)
    return frozenset(names)


def _events(d, ns, sched, s_index, n, n_states):
    """Sorted stops and jumps: one column per event (start and end of an infusion or switch
    interleaved per dose, inputs in the order written); a stable sort by time keeps that order
    among equal times."""
    env = {"__builtins__": {}}
    times, states, amounts, valid = [], [], [], []
    # per-patient values as columns, to broadcast against the (n, m) event arrays
    used = _input_names(d.inputs)
    columns = {k: (v[:, None] if isinstance(v, np.ndarray) and v.shape == (n,) else v)
               for k, v in ns.items() if k in used}  # fmt: skip
    for item in d.inputs:
        days, doses, duration = sched[item.schedule]
        width = days.shape[1]
        if width == 0:
            continue
        ok = np.isfinite(days) & (doses > 0)
        if getattr(item, "first_only", False):
            col = np.argmin(np.where(ok, days, np.inf), axis=1)
            first = np.zeros_like(ok)
            first[np.arange(n), col] = ok[np.arange(n), col]
            ok = first
        local = dict(columns, dose=doses, day=days)
        if item.when:
            cond = eval(_compile_expr(item.when, item.where), env, local)
            ok = ok & np.broadcast_to(cond, ok.shape)
        if isinstance(item, Switch):
            amount = np.ones((n, width))
        else:
            amount = np.broadcast_to(
                eval(_compile_expr(item.amount, item.where), env, local), (n, width)
            )
        if isinstance(item, Bolus):
            t = days
            if item.delay:
                t = days + eval(_compile_expr(item.delay, item.where), env, local)
            cols = [(t, s_index[item.into], amount)]
        else:
            target = s_index[item.rate if isinstance(item, Infusion) else item.flag]
            rate = amount / duration if isinstance(item, Infusion) else amount
            cols = [(days, target, rate), (days + duration, target, -rate)]
        for q in range(width):
            for t_col, state, a in cols:
                times.append(np.broadcast_to(t_col, (n, width))[:, q])
                states.append(np.full(n, state))
                amounts.append(a[:, q])
                valid.append(ok[:, q])
    if times:
        T, St = np.stack(times, axis=1), np.stack(states, axis=1)
        A, V = np.stack(amounts, axis=1), np.stack(valid, axis=1)
    else:
        T, St = np.zeros((n, 0)), np.zeros((n, 0), np.int64)
        A, V = np.zeros((n, 0)), np.zeros((n, 0), bool)
    T = np.where(V, T, np.inf)
    order = np.argsort(T, axis=1, kind="stable")
    n_events = V.sum(axis=1).astype(np.int64)
    order = order[:, : int(n_events.max(initial=0))]
    T = np.take_along_axis(T, order, axis=1)
    A = np.take_along_axis(np.where(V, A, 0.0), order, axis=1)
    St = np.take_along_axis(St, order, axis=1).astype(np.int64)
    V = np.take_along_axis(V, order, axis=1)
    # events at the same time share one stop (their jumps add up, in the order above)
    new = np.ones_like(V)
    new[:, 1:] = T[:, 1:] != T[:, :-1]
    stop = np.cumsum(new & V, axis=1) - 1
    n_stops = (new & V).sum(axis=1).astype(np.int64)
    m = int(n_stops.max(initial=0))
    t_stops = np.full((n, m), np.inf)
    jumps = np.zeros((n, m, n_states))
    rows, cols = np.nonzero(V)
    t_stops[rows, stop[rows, cols]] = T[rows, cols]
    np.add.at(jumps, (rows, stop[rows, cols], St[rows, cols]), A[rows, cols])
    return t_stops, jumps, n_stops
