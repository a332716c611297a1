"""The model interface every fit, sweep, plot and CLI command relies on.

A :class:`Model` is data a modeler can read: its states, its parameter table, its observables,
one compiled right-hand side and the function that turns parameters and a patient context into
the kernel's inputs (:class:`Individual`). Nothing outside ``cartkin/models/<name>.py`` looks at a
model's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cartkin.errors import ScenarioError
from cartkin.parameters import ParameterTable, suggest

__all__ = [
    "ROLES",
    "BatchIndividuals",
    "Individual",
    "Model",
    "ModelSolution",
    "Observable",
    "State",
    "check_individuals",
]

#: Roles a model can give its observables. ``cart`` is required; the others may be None.
ROLES = (
    "cart",
    "cart_copies",
    "cart_percent_t",
    "b_cells",
    "il6",
    "anti_dsdna",
    "complement",
    "ln_activity",
    "proteinuria",
    "kidney_function",
)


@dataclass(frozen=True)
class State:
    """One state variable.

    Parameters
    ----------
    name : str
        Public long name ("effector"), used in results and CSV columns.
    symbol : str
        Kernel symbol as in the equations ("C_E").
    unit : str
        Unit of the state ("cells/uL").
    description : str
        What the state is.
    """

    name: str
    symbol: str
    unit: str
    description: str


@dataclass(frozen=True)
class Observable:
    """What an assay measures, as a function of the states.

    Parameters
    ----------
    name : str
        Public name with its unit as suffix ("cart_cells_per_ul").
    unit : str
        Unit of the values.
    description : str
        The assay and the formula, in words.
    fn : callable
        ``fn(states, p) -> values``: ``states`` shape (n_times, n_states), ``p`` the kernel
        parameter vector; returns shape (n_times,).
    """

    name: str
    unit: str
    description: str
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray] = field(repr=False)


@dataclass(frozen=True)
class Individual:
    """Kernel inputs for one patient.

    Attributes
    ----------
    p : numpy.ndarray, shape (n_kernel,)
        Parameter table values in table order, then the derived values named in
        ``Model.derived`` (kernel order: ``Model.kernel_names``).
    y0 : numpy.ndarray, shape (n_states,)
        State at day 0 (CAR-T infusion day), before any dose in ``jumps``.
    t_stops : numpy.ndarray, shape (n_stops,)
        Increasing times (days) where the state jumps (doses) or the right-hand side changes.
    jumps : numpy.ndarray, shape (n_stops, n_states)
        Amount added to the state at each stop (zeros for a pure discontinuity).
    t0 : float
        Time (days, <= 0) at which ``y0`` holds and the integration starts. 0 for models whose
        day-0 state already reflects lymphodepletion; the first lymphodepletion day for models
        that simulate lymphodepletion in time. Stops must lie at or after ``t0``.
    """

    p: np.ndarray
    y0: np.ndarray
    t_stops: np.ndarray
    jumps: np.ndarray
    t0: float = 0.0


@dataclass(frozen=True)
class ModelSolution:
    """States of a model solved without a patient (:meth:`Model.solve`).

    Attributes
    ----------
    t : numpy.ndarray, shape (n_t,)
        Output times, days.
    y : numpy.ndarray, shape (n_t, n_states)
        States at ``t`` (kernel order).
    state_names : tuple of str
        Column names of ``y``: the state symbols (for an SBML model, the SBML ids).
    """

    t: np.ndarray
    y: np.ndarray
    state_names: tuple[str, ...]


class Model:
    """A CAR-T kinetic model: states, parameters, observables, equations and dosing.

    Parameters
    ----------
    name : str
        Registry name ("sle_cart").
    description : str
        One paragraph: what the model is for and where it comes from.
    states : sequence of State
        In kernel order.
    parameters : ParameterTable
        Fittable parameters with defaults, bounds and sources; kernel entries ``p[:len(table)]``.
    observables : sequence of Observable
        What can be compared with data.
    rhs : numba-jitted callable
        ``rhs(t, y, p, dydt)`` writing dy/dt (per day) into ``dydt``.
    individualize : callable
        ``individualize(values, ctx) -> Individual`` where ``values`` is the ordered dict of
        table values (defaults with validated overrides) and ``ctx`` a
        :class:`cartkin.covariates.kidney.Context`-like object.
    roles : mapping
        Which observable plays which part (see :data:`ROLES`): ``{"cart": name, "b_cells":
        name or None, "il6": name or None, ...}``. ``cart`` is required and in cells/uL.
    equations : str
        The equations as written in the rhs (for ``cartkin show`` and the README).
    derived : sequence of str
        Names of the values ``individualize`` appends to ``p`` after the table entries.
    jac : callable, optional
        ``jac(t, y, p, J)`` analytic Jacobian; None lets the solver use finite differences.
    batch : bool
        True when ``individualize`` is array-valued: it takes ``values`` as ``{name: (n,)
        array}`` and a :class:`cartkin.batch.BatchContext` and returns a
        :class:`cartkin.batch.BatchIndividuals` for all ``n`` patients at once (numpy
        broadcasting, no per-patient Python); the scalar :meth:`individualize` is then its
        ``n = 1`` case. False (user models): ``individualize(values, ctx)`` is scalar and
        :meth:`individualize_batch` loops over ``bctx.contexts`` in Python (slow for sweeps).
    observe_roles : numba-jitted callable, optional
        ``observe_roles(y, p, out)`` writing ``out[k]`` for the roles of
        ``cartkin.batch.KERNEL_ROLES`` in that order (cart, cart_copies, cart_percent_t, b_cells,
        il6, anti_dsdna; NaN where the model lacks the role) from one state vector ``y``;
        defined in the model's own file. Enables in-kernel metrics (:func:`cartkin.batch.metrics`).

    Notes
    -----
    To add a model: write ``rhs`` in its own module (all compiled code of the model in that one
    file, so the compile cache keys on its source), build a ``Model`` and call
    :func:`cartkin.models.register`. Fit, sweep and plot then work with it by name.
    """

    def __init__(
        self,
        name: str,
        description: str,
        states: Sequence[State],
        parameters: ParameterTable,
        observables: Sequence[Observable],
        rhs: Callable,
        individualize: Callable,
        roles: Mapping[str, str | None],
        equations: str,
        derived: Sequence[str] = (),
        jac: Callable | None = None,
        *,
        batch: bool = False,
        observe_roles: Callable | None = None,
    ):
        if not isinstance(parameters, ParameterTable):
            raise TypeError(
                f"Model {name!r}: parameters must be a ParameterTable, got "
                f"{type(parameters).__name__}"
            )
        self.name = str(name)
        self.description = description
        self.states = tuple(states)
        self.parameters = parameters
        self.observables = tuple(observables)
        self.rhs = rhs
        self._individualize = individualize
        self.equations = equations
        self.derived = tuple(derived)
        self.jac = jac
        self.batch = bool(batch)
        self.observe_roles = observe_roles
        obs_names = [o.name for o in self.observables]
        if len(set(obs_names)) != len(obs_names):
            raise ValueError(f"Model {name!r}: duplicate observable names {obs_names}")
        kernel = list(parameters.names) + list(self.derived)
        if len(set(kernel)) != len(kernel):
            raise ValueError(f"Model {name!r}: derived names clash with parameter names")
        roles = dict(roles)
        for role, obs in roles.items():
            if role not in ROLES:
                raise ValueError(
                    f"Model {name!r}: unknown role {role!r}.{suggest(role, ROLES)} "
                    f"Known roles: {', '.join(ROLES)}"
                )
            if obs is not None and obs not in obs_names:
                raise ValueError(
                    f"Model {name!r}: role {role!r} names observable {obs!r}, which the model "
                    f"does not have.{suggest(obs, obs_names)}"
                )
        if roles.get("cart") is None:
            raise ValueError(f"Model {name!r}: roles must name the CAR-T observable as 'cart'")
        self.roles = {role: roles.get(role) for role in ROLES}

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, states={list(self.state_names)}, "
            f"parameters={len(self.parameters)}, observables={list(self.observable_names)})"
        )

    # -- names ------------------------------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        """Public state names, in kernel order."""
        return tuple(s.name for s in self.states)

    @property
    def state_symbols(self) -> tuple[str, ...]:
        """Kernel state symbols, in kernel order."""
        return tuple(s.symbol for s in self.states)

    @property
    def observable_names(self) -> tuple[str, ...]:
        """Observable names."""
        return tuple(o.name for o in self.observables)

    @property
    def kernel_names(self) -> tuple[str, ...]:
        """Names of the entries of the kernel vector ``p``: table entries, then derived ones."""
        return tuple(self.parameters.names) + self.derived

    @property
    def n_states(self) -> int:
        """Number of states."""
        return len(self.states)

    def observable(self, name: str) -> Observable:
        """The observable called ``name`` (ValueError with a hint if unknown)."""
        for obs in self.observables:
            if obs.name == name:
                return obs
        raise ValueError(
            f"Model {self.name!r} has no observable {name!r}."
            f"{suggest(name, self.observable_names)} Observables: "
            f"{', '.join(self.observable_names)}"
        )

    def state_index(self, name: str) -> int:
        """Index of a state given by public name or kernel symbol."""
        for k, s in enumerate(self.states):
            if name in (s.name, s.symbol):
                return k
        raise ValueError(
            f"Model {self.name!r} has no state {name!r}."
            f"{suggest(name, self.state_names + self.state_symbols)} States: "
            f"{', '.join(self.state_names)}"
        )

    # -- computation ------------------------------------------------------------------------------
    def individualize(self, theta: Mapping[str, float] | None, ctx) -> Individual:
        """Kernel inputs for one patient.

        Parameters
        ----------
        theta : mapping of str to float or None
            Overrides of table parameters (validated: names, bounds).
        ctx : Context
            Patient, regimen and derived exposure (see docs/design.md section 3).

        Returns
        -------
        Individual
        """
        values = self.parameters.values(theta)
        if self.batch:
            from cartkin.covariates.context import BatchContext

            bctx = BatchContext.from_contexts([ctx])
            arrays = {k: np.array([v], dtype=np.float64) for k, v in values.items()}
            ind = self._batch_checked(self._individualize(arrays, bctx), 1).individual(0)
        else:
            ind = self._individualize(values, ctx)
        n_kernel, n = len(self.kernel_names), self.n_states
        p = np.ascontiguousarray(ind.p, dtype=np.float64)
        y0 = np.ascontiguousarray(ind.y0, dtype=np.float64)
        t_stops = np.ascontiguousarray(ind.t_stops, dtype=np.float64).reshape(-1)
        jumps = np.ascontiguousarray(ind.jumps, dtype=np.float64).reshape(t_stops.size, n)
        if p.shape != (n_kernel,) or y0.shape != (n,):
            raise RuntimeError(
                f"Model {self.name!r}: individualize returned p {p.shape} and y0 {y0.shape}; "
                f"expected ({n_kernel},) and ({n},)"
            )
        t0 = float(getattr(ind, "t0", 0.0))
        if not (np.isfinite(t0) and t0 <= 0.0):
            raise RuntimeError(
                f"Model {self.name!r}: individualize returned t0 = {t0!r}; expected <= 0"
            )
        return Individual(p=p, y0=y0, t_stops=t_stops, jumps=jumps, t0=t0)

    def individualize_batch(self, values, bctx):
        """Kernel inputs of all patients of a :class:`cartkin.batch.BatchContext`.

        Parameters
        ----------
        values : dict of str to numpy.ndarray, shape (n,)
            Table values per patient, in table order, already validated (use
            :func:`cartkin.batch.individualize` to validate overrides).
        bctx : BatchContext

        Returns
        -------
        BatchIndividuals
            Array-valued models (``batch=True``) compute it in one vectorized call; other
            models loop over ``bctx.contexts`` in Python (slow: about the cost of a scalar
            individualize per patient), which needs a context built from scalar contexts.
        """
        n = bctx.n
        if self.batch:
            return self._batch_checked(self._individualize(values, bctx), n)
        if bctx.contexts is None:
            raise ValueError(
                f"Model {self.name!r} has a scalar individualize (batch=False): it needs the "
                "per-patient contexts, but this BatchContext has none (built from covariates). "
                "Build it with BatchContext.from_contexts, or give the model an array-valued "
                "individualize (Model(..., batch=True))"
            )
        names = list(values)
        individuals = []
        for i, ctx in enumerate(bctx.contexts):
            row = {k: float(values[k][i]) for k in names}
            individuals.append(self._checked(self._individualize(row, ctx)))
        return BatchIndividuals.from_individuals(individuals)

    def _checked(self, ind) -> Individual:
        n_kernel, n = len(self.kernel_names), self.n_states
        p = np.ascontiguousarray(ind.p, dtype=np.float64)
        y0 = np.ascontiguousarray(ind.y0, dtype=np.float64)
        if p.shape != (n_kernel,) or y0.shape != (n,):
            raise RuntimeError(
                f"Model {self.name!r}: individualize returned p {p.shape} and y0 {y0.shape}; "
                f"expected ({n_kernel},) and ({n},)"
            )
        t_stops = np.ascontiguousarray(ind.t_stops, dtype=np.float64).reshape(-1)
        jumps = np.ascontiguousarray(ind.jumps, dtype=np.float64).reshape(t_stops.size, n)
        return Individual(
            p=p, y0=y0, t_stops=t_stops, jumps=jumps, t0=float(getattr(ind, "t0", 0.0))
        )

    def _batch_checked(self, inds, n):
        inds = check_individuals(self, inds)
        if inds.n != n:
            raise RuntimeError(
                f"Model {self.name!r}: batch individualize returned {inds.n} patients; expected {n}"
            )
        return inds

    def kernel_vector(self, params: Mapping[str, float] | None = None) -> np.ndarray:
        """Kernel vector ``p`` without a patient: table values (with ``params`` overrides), then
        the derived entries (NaN where they need a patient, unless the model knows how to
        compute them without one, as a description-built model does)."""
        values = self.parameters.values(params)
        defaults = getattr(self, "patient_free_inputs", None)
        if defaults is not None:
            return defaults(values)[0]
        return np.array([*values.values(), *([np.nan] * len(self.derived))], dtype=np.float64)

    def solve(
        self,
        t_days,
        params: Mapping[str, float] | None = None,
        y0=None,
        *,
        method: str = "rodas5",
        rtol: float = 1e-8,
        atol: float = 1e-10,
        max_steps: int = 100_000,
    ) -> ModelSolution:
        """Solve the model's equations without a patient, dosing or events.

        Parameters
        ----------
        t_days : array_like, shape (n_t,)
            Strictly increasing output times, days; integration starts at ``t_days[0]``.
        params : mapping of str to float, optional
            Overrides of table parameters (validated).
        y0 : array_like, shape (n_states,), optional
            Initial state; default the model's own (a description's ``initial`` lines with no
            patient covariates; zeros for a hand-written model).
        method, rtol, atol, max_steps
            As in :func:`cartkin.ode.solve_ode` (default rtol 1e-8).

        Returns
        -------
        ModelSolution
        """
        from cartkin.ode import solve_ode

        values = self.parameters.values(params)
        defaults = getattr(self, "patient_free_inputs", None)
        if defaults is not None:
            p, y_default = defaults(values)
        else:
            p = self.kernel_vector(params)
            y_default = np.zeros(self.n_states)
        y = y_default if y0 is None else np.asarray(y0, dtype=np.float64)
        if y.shape != (self.n_states,):
            raise ValueError(
                f"Model {self.name!r}: y0 has shape {y.shape}; expected ({self.n_states},)"
            )
        t = np.asarray(t_days, dtype=np.float64)
        sol = solve_ode(self.rhs, y, t, p, jac=self.jac, method=method, rtol=rtol, atol=atol,
                        max_steps=max_steps)  # fmt: skip
        return ModelSolution(t=sol.t, y=sol.y, state_names=self.state_symbols)

    def observe(self, states: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
        """All observables for a trajectory ``states`` (n_times, n_states) and kernel ``p``."""
        states = np.asarray(states, dtype=np.float64)
        return {o.name: np.asarray(o.fn(states, p), dtype=np.float64) for o in self.observables}

    def kernel_values(self, p: np.ndarray) -> dict[str, float]:
        """The kernel vector ``p`` as an ordered ``{name: value}`` dict."""
        return dict(zip(self.kernel_names, (float(x) for x in p), strict=True))

    def describe(self) -> str:
        """A markdown description: states, parameters, derived values, observables, equations."""
        lines = [f"# {self.name}", "", self.description.strip(), "", "## States", ""]
        lines += ["| symbol | name | unit | description |", "|---|---|---|---|"]
        lines += [f"| `{s.symbol}` | {s.name} | {s.unit} | {s.description} |" for s in self.states]
        lines += ["", "## Parameters", "", self.parameters.to_markdown()]
        if self.derived:
            lines += ["Derived kernel entries (appended to `p` in this order): "]
            lines += [", ".join(f"`{d}`" for d in self.derived), ""]
        lines += ["## Observables", "", "| name | unit | description |", "|---|---|---|"]
        lines += [f"| {o.name} | {o.unit} | {o.description} |" for o in self.observables]
        lines += ["", "## Equations", "", "```", self.equations.strip("\n"), "```", ""]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Kernel inputs with a patient axis
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BatchIndividuals:
    """Kernel inputs of ``n`` patients (the batch form of :class:`cartkin.models.Individual`).

    Attributes
    ----------
    p : numpy.ndarray, shape (n, n_kernel)
        Kernel vectors (``model.kernel_names`` order).
    y0 : numpy.ndarray, shape (n, n_states)
        State at ``t0``, before any jump.
    t0 : numpy.ndarray, shape (n,)
        Start of integration, days (<= 0).
    t_stops : numpy.ndarray, shape (n, m)
        Stop times per patient, non-decreasing in the first ``n_stops[i]`` entries, +inf after.
    jumps : numpy.ndarray, shape (n, m, n_states)
        Jumps added at the stops (zero padded).
    n_stops : numpy.ndarray of int64, shape (n,)
        Number of real stops of each patient.
    """

    p: np.ndarray
    y0: np.ndarray
    t0: np.ndarray
    t_stops: np.ndarray
    jumps: np.ndarray
    n_stops: np.ndarray

    @property
    def n(self) -> int:
        """Number of patients."""
        return int(self.p.shape[0])

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (
            f"BatchIndividuals(n={self.n}, n_kernel={self.p.shape[1]}, "
            f"n_states={self.y0.shape[1]}, max_stops={self.t_stops.shape[1]})"
        )

    @classmethod
    def from_individuals(cls, individuals: Sequence) -> BatchIndividuals:
        """Stack scalar :class:`cartkin.models.Individual` objects (padding the stops)."""
        individuals = list(individuals)
        if not individuals:
            raise ScenarioError("BatchIndividuals.from_individuals: expected at least one")
        n_states = individuals[0].y0.size
        m = max(ind.t_stops.size for ind in individuals)
        t_stops = np.full((len(individuals), m), np.inf)
        jumps = np.zeros((len(individuals), m, n_states))
        for i, ind in enumerate(individuals):
            k = ind.t_stops.size
            t_stops[i, :k] = ind.t_stops
            jumps[i, :k] = ind.jumps
        return cls(
            p=np.array([ind.p for ind in individuals], dtype=np.float64),
            y0=np.array([ind.y0 for ind in individuals], dtype=np.float64),
            t0=np.array([float(getattr(ind, "t0", 0.0)) for ind in individuals]),
            t_stops=t_stops,
            jumps=jumps,
            n_stops=np.array([ind.t_stops.size for ind in individuals], dtype=np.int64),
        )

    def individual(self, i: int):
        """Patient ``i`` as a scalar :class:`cartkin.models.Individual` (stops trimmed)."""
        k = int(self.n_stops[i])
        return Individual(
            p=self.p[i].copy(),
            y0=self.y0[i].copy(),
            t_stops=self.t_stops[i, :k].copy(),
            jumps=self.jumps[i, :k].copy(),
            t0=float(self.t0[i]),
        )

    def take(self, index) -> BatchIndividuals:
        """Patients ``index`` (integer array, may repeat), in that order."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        return BatchIndividuals(
            p=self.p[index], y0=self.y0[index], t0=self.t0[index], t_stops=self.t_stops[index],
            jumps=self.jumps[index], n_stops=self.n_stops[index],
        )  # fmt: skip


def check_individuals(model, inds: BatchIndividuals) -> BatchIndividuals:
    """Shapes, dtypes and values of batch kernel inputs; C-contiguous float64 copies if needed.

    Raises
    ------
    RuntimeError
        When a model's ``individualize`` returned inconsistent arrays (a bug in the model).
    ScenarioError
        Non-finite initial states or jumps, stops out of order or before ``t0``, ``t0 > 0``.
    """
    n_kernel, n_states = len(model.kernel_names), model.n_states
    p = np.ascontiguousarray(inds.p, dtype=np.float64)
    n = p.shape[0] if p.ndim == 2 else -1
    y0 = np.ascontiguousarray(inds.y0, dtype=np.float64)
    t0 = np.ascontiguousarray(inds.t0, dtype=np.float64)
    t_stops = np.ascontiguousarray(inds.t_stops, dtype=np.float64)
    jumps = np.ascontiguousarray(inds.jumps, dtype=np.float64)
    n_stops = np.ascontiguousarray(inds.n_stops, dtype=np.int64)
    m = t_stops.shape[1] if t_stops.ndim == 2 else -1
    expected = {
        "p": (p, (n, n_kernel)),
        "y0": (y0, (n, n_states)),
        "t0": (t0, (n,)),
        "t_stops": (t_stops, (n, m)),
        "jumps": (jumps, (n, m, n_states)),
        "n_stops": (n_stops, (n,)),
    }
    for name, (arr, shape) in expected.items():
        if n < 0 or m < 0 or arr.shape != shape:
            raise RuntimeError(
                f"Model {model.name!r}: batch individualize gave {name} of shape {arr.shape}; "
                f"expected {shape} (n patients, {n_kernel} kernel entries, {n_states} states)"
            )
    _first_bad(~np.isfinite(y0).all(axis=1), "initial state y0 is not finite")
    _first_bad(~(np.isfinite(t0) & (t0 <= 0.0)), "t0 must be finite and <= 0 days", t0)
    _first_bad((n_stops < 0) | (n_stops > m), f"n_stops must lie in [0, {m}]", n_stops)
    real = np.arange(m)[None, :] < n_stops[:, None]
    _first_bad((real & ~np.isfinite(t_stops)).any(axis=1), "a stop time is not finite")
    _first_bad(
        (real & (t_stops < t0[:, None])).any(axis=1),
        "a stop (dose) lies before the model's start t0", t0,
    )  # fmt: skip
    if m > 1:
        padded = np.where(real, t_stops, np.inf)  # padding (inf or anything) is never compared
        with np.errstate(invalid="ignore"):  # inf - inf past the last real stop
            decreasing = np.diff(padded, axis=1) < 0
        _first_bad((real[:, 1:] & decreasing).any(axis=1), "stop times must be non-decreasing")
    _first_bad((real[:, :, None] & ~np.isfinite(jumps)).any(axis=(1, 2)), "a jump is not finite")
    return BatchIndividuals(p=p, y0=y0, t0=t0, t_stops=t_stops, jumps=jumps, n_stops=n_stops)


def _first_bad(mask, what, values=None):
    if np.any(mask):
        i = int(np.flatnonzero(mask)[0])
        shown = "" if values is None else f" (value {values[i]!r})"
        raise ScenarioError(
            f"patient {i} of {mask.size}: {what}{shown}; {int(mask.sum())} patient(s) affected"
        )
