"""Simulate one patient: model + patient + regimen -> trajectory, observables, exposure.

:func:`simulate` is the Python boundary between the modelling objects and the compiled
integrator: it builds the patient context (fludarabine exposure, doses), individualises the
model, calls :func:`cartkin.ode.solve_ode` once and returns a :class:`SimulationResult`.
Day 0 is the CAR-T infusion; the model's state at day 0 already reflects lymphodepletion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from cartkin import models
from cartkin.errors import ScenarioError, SolverError
from cartkin.models.base import Individual, Model
from cartkin.ode import check_times

__all__ = ["SimulationResult", "simulate", "simulate_context"]


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """One simulated patient.

    Attributes
    ----------
    model : Model
    t_days : numpy.ndarray, shape (n_t,)
        Output times, days after CAR-T infusion.
    states : numpy.ndarray, shape (n_t, n_states)
        States in ``model.states`` order (right-continuous at doses).
    observables : dict of str to numpy.ndarray, shape (n_t,)
        Every observable of the model, by name.
    exposure : cartkin.covariates.kidney.FludarabineExposure or None
        Fludarabine exposure of the patient and regimen.
    theta : dict of str to float
        Parameter table values used (defaults with overrides), in table order.
    individual : Individual
        Kernel inputs (``p`` with derived entries, day-0 state, dose stops and jumps).
    context : Context
        Patient, regimen and the numbers derived from them.
    solution : cartkin.ode.ODESolution
        Solver output with status and step counts.
    options : dict
        Solver options used (``method``, ``rtol``, ``atol``, ``max_steps``).
    label : str
        Name of the arm (for tables and legends).
    """

    model: Model
    t_days: np.ndarray
    states: np.ndarray
    observables: dict[str, np.ndarray]
    exposure: object
    theta: dict[str, float]
    individual: Individual
    context: object
    solution: object
    options: dict = field(default_factory=dict)
    label: str = ""

    @property
    def success(self) -> bool:
        """True when the solver reached the last output time."""
        return bool(self.solution.success)

    @property
    def status(self):
        """Solver status (:class:`cartkin.ode.Status`)."""
        return self.solution.status

    @property
    def parameters(self) -> dict[str, float]:
        """Individual kernel values by name: table values then derived ones (LD, k_IL6, ...)."""
        return self.model.kernel_values(self.individual.p)

    def state(self, name: str) -> np.ndarray:
        """Trajectory of one state, by public name or kernel symbol, shape (n_t,)."""
        return self.states[:, self.model.state_index(name)]

    def role(self, role: str) -> np.ndarray | None:
        """Observable playing ``role`` ("cart", "b_cells", "il6", ...), or None."""
        name = self.model.roles.get(role)
        return None if name is None else self.observables[name]

    def evaluate(self, t_days) -> SimulationResult:
        """The same patient, parameters and solver settings at other output times.

        Used by the metrics for model integrals and crossing times on a fine grid.
        """
        return run_individual(
            self.model, self.individual, self.context, self.theta, t_days, self.options, self.label
        )

    def to_columns(self) -> dict[str, np.ndarray]:
        """Columns for a CSV file: ``t_days``, every observable, then every state.

        State columns are ``state_<name>_<unit suffix>`` (e.g. ``state_effector_cells_per_ul``).
        """
        columns = {"t_days": self.t_days}
        columns.update(self.observables)
        for k, s in enumerate(self.model.states):
            suffix = _unit_suffix(s.unit)
            columns[f"state_{s.name}" + (f"_{suffix}" if suffix else "")] = self.states[:, k]
        return columns


def simulate(
    model: str | Model,
    patient,
    regimen,
    t_days,
    theta: Mapping[str, float] | None = None,
    clearance_model: str = "langenhorst2019",
    method: str = "rodas5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    *,
    max_steps: int = 100_000,
    label: str | None = None,
) -> SimulationResult:
    """Simulate a patient receiving a regimen.

    Parameters
    ----------
    model : str or Model
        A registered model name (``"sle_cart"``, ``"stein2019"``) or a Model.
    patient : cartkin.covariates.patient.Patient
    regimen : cartkin.covariates.regimen.Regimen
    t_days : array_like, shape (n_t,)
        Strictly increasing output times in days after CAR-T infusion, all >= 0.
    theta : mapping of str to float, optional
        Overrides of the model's parameter table (names and bounds are checked).
    clearance_model : str
        Fludarabine clearance model (see :mod:`cartkin.covariates.kidney`).
    method : {"rodas5", "tsit5", "dopri5", "auto"}
        Integrator (see :func:`cartkin.ode.solve_ode`).
    rtol, atol : float
        Solver tolerances (atol in state units, cells/uL for most states).
    max_steps : int
        Step budget of the integrator.
    label : str, optional
        Arm name for tables and legends (default: the model name).

    Returns
    -------
    SimulationResult

    Raises
    ------
    ScenarioError
        Bad times, a dose before day 0, or bad parameter overrides.
    SolverError
        The integrator stopped early (the message names the model and the failure).
    """
    from cartkin.covariates.regimen import build_context

    ctx = build_context(patient, regimen, clearance_model)
    return simulate_context(
        model, ctx, t_days, theta, method=method, rtol=rtol, atol=atol, max_steps=max_steps,
        label=label,
    )  # fmt: skip


def simulate_context(
    model: str | Model,
    ctx,
    t_days,
    theta: Mapping[str, float] | None = None,
    *,
    method: str = "rodas5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    label: str | None = None,
) -> SimulationResult:
    """:func:`simulate` for an already built :class:`cartkin.covariates.regimen.Context`.

    Fitting and sweeps use it to reuse one context (the fludarabine exposure) across many
    parameter sets. Arguments as in :func:`simulate`.
    """
    model = models.get(model)
    individual = model.individualize(theta, ctx)
    options = {"method": method, "rtol": rtol, "atol": atol, "max_steps": max_steps}
    values = model.parameters.values(theta)
    return run_individual(
        model, individual, ctx, values, t_days, options, model.name if label is None else label
    )


def run_individual(model, individual, ctx, theta, t_days, options, label) -> SimulationResult:
    """Solve one patient's kernel inputs (``model.individualize``) and wrap the result.

    ``theta``: the table values used; ``options``: ``method``, ``rtol``, ``atol``,
    ``max_steps`` of :func:`cartkin.ode.solve_ode`; ``label``: the arm name.
    """
    from cartkin.ode import solve_ode

    t = check_times(t_days)
    t_stops, jumps = individual.t_stops, individual.jumps
    t0 = float(getattr(individual, "t0", 0.0))
    if t_stops.size and t_stops[0] < t0:
        raise ScenarioError(
            f"dose on day {t_stops[0]:g}: doses must be on day {t0:g} or later (day 0 is the "
            f"CAR-T infusion; the model starts at day {t0:g})"
        )
    # integrate from t0 (0, or the first lymphodepletion day); stops after the last output do not
    # matter; outputs before t0 are not defined
    if t[0] < t0:
        raise ScenarioError(
            f"t_days[0] = {t[0]:g} days: model {model.name!r} starts at day {t0:g} for this "
            f"patient (day 0 is the CAR-T infusion); give times >= {t0:g}"
        )
    grid = t if t[0] == t0 else np.concatenate([[t0], t])
    keep = t_stops <= grid[-1]
    try:
        sol = solve_ode(
            model.rhs, individual.y0, grid, individual.p, jac=model.jac,
            t_stops=t_stops[keep], jumps=jumps[keep], **options,
        )  # fmt: skip
    except SolverError as exc:
        raise SolverError(
            f"{model.name} ({label}): {exc} (method {options['method']!r}, rtol "
            f"{options['rtol']:g}; try method='rodas5' or check the parameter overrides)",
            solution=exc.solution,
        ) from exc
    states = sol.y if grid is t else sol.y[1:]
    return SimulationResult(
        model=model,
        t_days=t,
        states=states,
        observables=model.observe(states, individual.p),
        exposure=getattr(ctx, "exposure", None),
        theta=dict(theta),
        individual=individual,
        context=ctx,
        solution=sol,
        options=dict(options),
        label=label,
    )


_UNIT_WORDS = {"uL": "ul", "mL": "ml", "ug": "ug", "IU": "iu", "%": "percent"}


def _unit_suffix(unit: str) -> str:
    """'cells/uL' -> 'cells_per_ul', 'pg/mL' -> 'pg_per_ml', '-' -> ''."""
    if unit in ("-", ""):
        return ""
    parts = [p.strip() for p in unit.split("/")]
    words = [_UNIT_WORDS.get(p, p).lower() for p in parts]
    return re.sub(r"[^a-z0-9_]+", "_", "_per_".join(words)).strip("_")
