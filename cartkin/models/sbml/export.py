"""A model description for one patient as SBML (the core of ``cartkin export``).

:func:`model_ir` evaluates what is per patient (covariates, the dose schedule) from a
:class:`~cartkin.covariates.context.BatchContext` of one patient and keeps everything else
symbolic: table parameters stay SBML parameters and derived entries become initial assignments
of them, so changing a parameter in an SBML simulator changes the derived values as it does in
cartkin. Doses become SBML events (:mod:`cartkin.models.sbml.parts`). The patient, regimen and
scenario side is :mod:`cartkin.export.sbml`.
"""

from __future__ import annotations

import math

import numpy as np
import sympy

from cartkin.errors import ScenarioError
from cartkin.models.assemble import NUMPY, schedules
from cartkin.models.description import COVARIATES, SCHEDULES, Bolus, Infusion
from cartkin.models.sbml.expressions import UnsupportedExpression, to_sympy
from cartkin.models.sbml.ir import SbmlModel
from cartkin.models.sbml.mathml import TIME
from cartkin.models.sbml.parts import Dose, Quantity, build_ir

__all__ = ["COVARIATE_UNITS", "description_of", "model_ir"]

#: Units of the per-patient covariates a description may use (BatchContext attributes).
COVARIATE_UNITS = {
    "weight_kg": "kg",
    "height_cm": "cm",
    "age_years": "year",
    "bsa_m2": "m2",
    "egfr_ml_min_173m2": "mL/min/1.73m2",
    "crcl_ml_min": "mL/min",
    "flu_auc_mg_h_per_l": "mg.h/L",
    "flu_cl_l_h": "L/h",
    "flu_v1_l": "L",
    "flu_v2_l": "L",
    "flu_v3_l": "L",
    "flu_q2_l_h": "L/h",
    "flu_q3_l_h": "L/h",
    "flu_dose_factor": "-",
    "cy_mg_m2_total": "mg/m2",
    "dialysis_duration_h": "h",
    "flu_removal_fraction": "-",
    "il6_elimination_per_day": "1/day",
}


def description_of(model):
    """The :class:`~cartkin.models.Description` a model was built from.

    Raises
    ------
    ScenarioError
        For a hand-written model (a numba ``rhs`` has no symbolic equations to export).
    """
    d = getattr(model, "description_", None)
    if d is None:
        raise ScenarioError(
            f"model {model.name!r} is hand-written (a numba rhs, no Description); SBML export "
            "needs the model written as a cartkin.models.Description"
        )
    return d


def model_ir(
    model,
    bctx,
    theta=None,
    *,
    fold_start_doses: bool = False,
    label: str = "",
) -> SbmlModel:
    """The SBML intermediate form of ``model`` for one patient.

    Parameters
    ----------
    model : cartkin.models.Model
        Built from a Description.
    bctx : cartkin.covariates.context.BatchContext
        The patient's covariates and dose schedule (one patient).
    theta : mapping, optional
        Parameter overrides (checked against the table).
    fold_start_doses : bool
        Put the boluses given at the start time into the initial state instead of events.
    label : str
        What the patient is, for the SBML notes.

    Returns
    -------
    SbmlModel
        SBML time 0 is the start of the simulation: day 0, or for a model that starts at the
        first dose (``start="first_dose"``) that day; the notes and ``info["t_start_day"]``
        say which.
    """
    d = description_of(model)
    fold = fold_start_doses
    values = model.parameters.values(theta)
    sched = {k: tuple(np.asarray(a)[0] for a in v) for k, v in schedules(bctx, 1).items()}
    covariates = {
        name: float(np.asarray(getattr(bctx, name), dtype=np.float64).reshape(-1)[0])
        for name in COVARIATES
    }
    numbers = _summaries(sched, SCHEDULES)
    t_start = 0.0
    if d.start == "first_dose":
        for item in d.inputs:
            if hasattr(item, "into") or hasattr(item, "rate"):
                days, doses, _ = sched[item.schedule]
                ok = np.isfinite(days) & (doses > 0)
                if ok.any():
                    t_start = min(t_start, float(days[ok].min()))
    numbers["t_start"] = t_start

    symbols = {name: sympy.Symbol(name) for name in model.parameters.names}
    symbols.update({name: sympy.Symbol(name) for name in covariates})
    symbols.update({k: sympy.Float(v) if math.isfinite(v) else sympy.nan
                    for k, v in numbers.items()})  # fmt: skip
    numeric = dict(values) | covariates | numbers  # for what has no SBML form
    used: set[str] = set()

    def sym(text, where, extra=None, strict=True):
        names = dict(symbols) if extra is None else symbols | extra
        try:
            expr = to_sympy(text, names)
        except UnsupportedExpression as exc:
            if not strict:
                raise
            raise ScenarioError(f"{where}: {text!r}: {exc}; SBML export cannot write it") from None
        used.update(s.name for s in expr.free_symbols)
        return expr

    derived = []
    for line in d.derived:
        try:
            expr = sym(line.expression, line.where, strict=False)
            info = {"kind": "derived", "expression": line.expression}
        except UnsupportedExpression:
            expr = sympy.Float(_evaluate(line.expression, numeric))
            info = {"kind": "derived", "expression": line.expression, "evaluated": "patient"}
        numeric[line.name] = _evaluate(line.expression, numeric)
        symbols[line.name] = sympy.Symbol(line.name)
        derived.append(Quantity(line.name, expr, "", info))

    time_names = {"t": TIME + t_start}
    intermediates = [
        Quantity(line.name, sym(line.expression, line.where, time_names), "",
                 {"kind": "intermediate"})
        for line in d.intermediates
    ]  # fmt: skip
    for line in d.intermediates:
        symbols[line.name] = sympy.Symbol(line.name)
    initial = {s: sympy.Integer(0) for s in d.state_symbols}
    for line in d.initial:
        initial[line.name] = sym(line.expression, line.where)
    doses = _doses(d, sched, numeric, sym, t_start)
    timed = getattr(model, "timed", None)  # a model imported from SBML: its own events
    for e in getattr(timed, "events", ()):
        doses.append(Dose(e.id, e.time, e.target, e.value, e.kind, e.fire_at_start))
    if fold:
        kept = []
        for dose in doses:
            time = sympy.sympify(dose.time)
            if dose.kind == "add" and time.is_number and float(time) == 0.0 and dose.fire_at_start:
                initial[dose.target] = initial[dose.target] + dose.value
            else:
                kept.append(dose)
        doses = kept
    states = [
        Quantity(s.symbol, initial[s.symbol], s.unit,
                 {"name": s.name, "description": s.description, "state_index": str(k)},
                 rate=sym(d.rates[s.symbol].expression, d.rates[s.symbol].where, time_names),
                 name=s.name)
        for k, s in enumerate(d.states)
    ]  # fmt: skip
    role_of = {obs: role for role, obs in d.roles.items() if obs is not None}
    by_name = {q.id: q for q in intermediates}
    observables = []
    for line in d.observables:
        info = {"description": line.description, "unit": line.unit}
        if line.name in role_of:
            info["role"] = role_of[line.name]
        if line.name in by_name:  # an intermediate observed under its own name (SBML imports)
            if line.expression.strip() != line.name:
                raise ScenarioError(
                    f"{line.where}: observable {line.name!r} has the name of an intermediate "
                    "but another expression; SBML has one id for both"
                )
            q = by_name[line.name]
            q.unit, q.info = line.unit, {**info, "kind": "observable"}
            continue
        observables.append(Quantity(line.name, sym(line.expression, line.where), line.unit, info))
    params = [
        Quantity(p.name, float(values[p.name]), p.unit, {
            "description": p.description, "source": p.source,
            "lower": repr(float(p.lower)), "upper": repr(float(p.upper)), "unit": p.unit,
        })
        for p in model.parameters
    ]  # fmt: skip
    params += [
        Quantity(name, value, COVARIATE_UNITS.get(name, ""),
                 {"kind": "covariate", "description": f"covariate of the exported patient: {label}"})
        for name, value in covariates.items()
        if name in used
    ]  # fmt: skip
    notes = (
        f"{d.description.strip()}\n\nExported by cartkin from the model {d.name!r} for "
        f"{label or 'one patient'}. SBML time is in days; time 0 is day {t_start:g} "
        "(day 0 is the first CAR-T infusion)."
    )
    return build_ir(
        d.name, name=d.name, notes=notes, states=states, parameters=params, derived=derived,
        intermediates=intermediates, observables=observables, doses=doses,
        info={"model": d.name, "t_start_day": repr(t_start),
              "roles": ";".join(f"{r}={o}" for r, o in d.roles.items() if o is not None)},
    )  # fmt: skip


def _summaries(sched, names) -> dict[str, float]:
    """first/last day, first dose and count of each schedule (as the description defines)."""
    out = {}
    for s in names:
        days, doses, _ = sched[s]
        ok = np.isfinite(days) & (doses > 0)
        first = float(days[ok].min()) if ok.any() else math.nan
        out[f"first_{s}_day"] = first
        out[f"last_{s}_day"] = float(days[ok].max()) if ok.any() else math.nan
        out[f"first_{s}_dose"] = float(doses[ok & (days == first)].sum()) if ok.any() else 0.0
        out[f"n_{s}"] = float(ok.sum())
    return out


def _evaluate(text: str, numeric) -> float:
    env = {"__builtins__": {}}
    return float(np.asarray(eval(compile(text, "<sbml export>", "eval"), env, NUMPY | numeric)))


def _doses(d, sched, numeric, sym, t_start) -> list[Dose]:
    """The regimen's events of one patient as :class:`Dose` records (times from SBML time 0)."""
    out: list[Dose] = []
    for item in d.inputs:
        days, doses, duration = sched[item.schedule]
        ok = np.isfinite(days) & (doses > 0)
        if getattr(item, "first_only", False) and ok.any():
            first = np.argmin(np.where(ok, days, np.inf))
            ok = np.zeros_like(ok)
            ok[first] = True
        for q in np.flatnonzero(ok):
            day, dose = float(days[q]), float(doses[q])
            local = {"dose": sympy.Float(dose), "day": sympy.Float(day)}
            if item.when and not _evaluate(item.when, numeric | {"dose": dose, "day": day}):
                continue
            tag = f"{item.schedule}_{q + 1}"  # e.g. cart_1_C_E: the first CAR-T dose into C_E
            if isinstance(item, Bolus):
                t = sympy.Float(day - t_start)
                if item.delay:
                    t = t + sym(item.delay, item.where, local)
                out.append(
                    Dose(f"{tag}_{item.into}", t, item.into, sym(item.amount, item.where, local))
                )
                continue
            length = float(np.asarray(duration).reshape(-1)[0])
            if isinstance(item, Infusion):
                target, amount = item.rate, sym(item.amount, item.where, local) / length
            else:
                target, amount = item.flag, sympy.Integer(1)
            out.append(Dose(f"{tag}_{target}_on", sympy.Float(day - t_start), target, amount))
            out.append(
                Dose(f"{tag}_{target}_off", sympy.Float(day + length - t_start), target, -amount)
            )
    return out
