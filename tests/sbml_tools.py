"""Test helpers for the SBML tests: libRoadRunner runs and a scipy solve of an OdeSystem.

The scipy solve is a check of the SBML flattening (cartkin.models.sbml.ir.to_ode) that shares no code
with cartkin's kernel; libRoadRunner is the independent SBML simulator.
"""

from __future__ import annotations

import numpy as np
import sympy
from scipy.integrate import solve_ivp

from cartkin.models.sbml.mathml import TIME


def roadrunner_run(sbml_text: str, t_days, ids, *, amounts=()):
    """libRoadRunner's values of ``ids`` at ``t_days`` (rtol 1e-12, atol 1e-14), from time 0.

    Species in ``amounts`` are read as amounts; other species as concentrations.
    """
    import roadrunner

    rr = roadrunner.RoadRunner(sbml_text)
    rr.integrator.relative_tolerance = 1e-12
    rr.integrator.absolute_tolerance = 1e-14
    rr.integrator.maximum_num_steps = 10**6
    species = set(rr.model.getFloatingSpeciesIds()) | set(rr.model.getBoundarySpeciesIds())
    rr.timeCourseSelections = [
        "time",
        *(f"[{i}]" if i in species and i not in amounts else i for i in ids),
    ]
    t = np.asarray(t_days, dtype=float)
    start = t[0] != 0.0  # libRoadRunner starts the model at the first time given: start at 0
    out = np.asarray(rr.simulate(times=np.concatenate([[0.0], t]) if start else t))
    return out[1:, 1:] if start else out[:, 1:]


def scipy_solve(ode, t_days, rtol=1e-11, atol=1e-13):
    """Solve an OdeSystem with scipy's LSODA between event times; returns (n_times, n_states)."""
    states = [sympy.Symbol(s) for s in ode.states]
    consts = dict(ode.constants)
    for name, expr in ode.derived.items():
        consts[name] = float(expr.subs(consts))
    subs = {sympy.Symbol(k): v for k, v in consts.items()}
    rules = {sympy.Symbol(k): e.subs(subs) for k, e in ode.rules.items()}
    ordered = list(rules.items())

    def expand(expr):
        for sym, rule in reversed(ordered):
            expr = expr.subs(sym, rule)
        return expr.subs(subs)

    rhs = sympy.lambdify([TIME, states], [expand(ode.rhs[s]) for s in ode.states], "numpy")
    y = np.array([float(expand(ode.initial[s]).subs({TIME: 0.0})) for s in ode.states])
    t_eval = np.asarray(t_days, dtype=float)
    events = sorted(((float(e.time.subs(subs)), e) for e in ode.events), key=lambda pair: pair[0])
    cuts = [t for t, _ in events if t_eval[0] < t < t_eval[-1]]
    out = np.empty((t_eval.size, y.size))
    t_now = t_eval[0]
    for t_ev, event in events:
        if t_ev <= t_now:
            if event.fire_at_start:
                _apply(y, ode, event, subs)
    bounds = [*cuts, t_eval[-1]]
    for k, t_next in enumerate(bounds):
        sel = (t_eval >= t_now) & (t_eval <= t_next)
        if k < len(bounds) - 1:
            sel &= t_eval < t_next
        sol = solve_ivp(
            lambda t, yy: rhs(t, yy),
            (t_now, t_next),
            y,
            method="LSODA",
            t_eval=t_eval[sel],
            rtol=rtol,
            atol=atol,
            dense_output=False,
        )
        out[sel] = sol.y.T
        end = solve_ivp(
            lambda t, yy: rhs(t, yy), (t_now, t_next), y, method="LSODA", rtol=rtol, atol=atol
        )
        y = end.y[:, -1].copy()
        for t_ev, event in events:
            if t_ev == t_next and k < len(bounds) - 1:
                _apply(y, ode, event, subs)
        if k < len(bounds) - 1 and np.any(t_eval == t_next):
            out[t_eval == t_next] = y
        t_now = t_next
    return out


def _apply(y, ode, event, subs):
    k = ode.states.index(event.target)
    value = float(event.value.subs(subs))
    y[k] = y[k] + value if event.kind == "add" else value
