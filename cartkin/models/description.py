"""Models as data: a model written once, the way its paper writes it.

A :class:`Description` holds everything that defines a model, by name and without code:

- ``parameters``: the :class:`~cartkin.parameters.ParameterTable` (name, value, unit, bounds,
  description, source);
- ``states``: one line per state, ``symbol name [unit] description`` (or :class:`State` objects);
- ``derived``: per-patient quantities, one ``name = expression`` line each, of the parameters,
  the patient covariates (:data:`COVARIATES`) and the dosing summaries (see below); they are
  appended to the kernel vector ``p`` after the table entries, in the order written;
- ``equations``: named intermediates (``name = expression``) and one ``d/dt(X) = expression``
  line per state, in any order of states, intermediates before their use;
- ``initial``: ``X = expression`` lines for the state at the start time (other states start at 0);
- ``observables``: one line each, ``name [unit] = expression  # description``;
- ``roles``: which observable plays which clinical part (``cart`` is required; see
  :data:`cartkin.models.ROLES`);
- ``inputs``: how the regimen's schedules enter the model (:class:`Bolus`, :class:`Infusion`,
  :class:`Switch`). The regimen supplies the days and amounts, the engine sorts them into the
  kernel's stops: a model never builds its own event list.

Expressions are Python syntax over names; the functions available are :data:`FUNCTIONS`
(``exp``, ``log``, ``log1p``, ``sqrt``, ``min``, ``max``, ``abs``, ``clip``, ``isfinite`` and
``where(condition, a, b)``). In ``d/dt`` lines and intermediates the names are the state
symbols, table parameters, derived entries, earlier intermediates and ``t`` (days). Every
description is parsed with sympy when it is made: an unknown name, a state without an equation,
a dose into an unknown state or a unit that does not match the target state raises
:class:`DescriptionError` naming the file and line of the offending text.

Dosing schedules (``Bolus(schedule, ...)`` etc.), from the patient's regimen:

============== ======================================== ============================
schedule       ``dose`` of one event                    event duration (days)
============== ======================================== ============================
cart           CAR-T cells                              -
fludarabine    mg fludarabine phosphate (dose rule on)  infusion length
cyclophosphamide mg/m2                                  -
dialysis       1 per session                            session length
============== ======================================== ============================

An event counts when its day is finite and its dose positive (and the input's ``when``
expression, if any, holds). For each schedule ``s`` the derived and ``when`` expressions may use
``first_s_day`` (NaN without events), ``last_s_day``, ``first_s_dose`` (the dose on the first
day, 0 without events) and ``n_s``; ``t_start`` is the start of integration (0, or with
``start="first_dose"`` the earliest bolus or infusion day when that is before 0).

Build a runnable model with :func:`cartkin.models.build` (the registry and
:func:`cartkin.models.load` do it for you): it generates the numba right-hand side with named
locals, the analytic Jacobian (sympy, common subexpressions eliminated), its sparsity pattern
and sparse LU plan, and the compiled role function for in-kernel metrics, all through the
content-hashed kernel cache. A model that cannot be written symbolically can still be a
hand-written :class:`cartkin.models.Model` with a numba ``rhs``.

Example (a 3-state model, ``examples/my_model.py``)::

    MODEL = Description(
        name="my_model", description="...", parameters=PARAMETERS,
        states='''
            E  effector  [cells/uL]  CAR-T effector cells in blood
            B  b_cells   [cells/uL]  CD19+ B cells in blood
        ''',
        equations='''
            drive = B / (B + K_B)
            d/dt(E) = rho * drive * E - d_E * E
            d/dt(B) = r_B * B * (1 - B / B_max) - k_kill * E * drive
        ''',
        initial="B = B_max",
        observables="cart_cells_per_ul [cells/uL] = E  # CAR-T cells in blood",
        roles={"cart": "cart_cells_per_ul"},
        inputs=[Bolus("cart", into="E", amount="dose / (70000.0 * weight_kg)")],
    )
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cartkin.errors import ScenarioError
from cartkin.kernel.codegen import names_in
from cartkin.parameters import ParameterTable, suggest

__all__ = [
    "COVARIATES",
    "FUNCTIONS",
    "SCHEDULES",
    "Bolus",
    "Description",
    "DescriptionError",
    "Infusion",
    "Line",
    "Switch",
]

#: Functions an expression may call (scalars in the kernel, arrays over patients elsewhere).
FUNCTIONS = ("exp", "log", "log1p", "sqrt", "min", "max", "abs", "clip", "isfinite", "where")

#: Per-patient covariates a derived, initial, amount or ``when`` expression may use (arrays over
#: patients; attributes of :class:`cartkin.batch.BatchContext`).
COVARIATES = (
    "weight_kg", "height_cm", "age_years", "bsa_m2", "egfr_ml_min_173m2", "crcl_ml_min",
    "flu_auc_mg_h_per_l", "flu_cl_l_h", "flu_v1_l", "flu_v2_l", "flu_v3_l", "flu_q2_l_h",
    "flu_q3_l_h", "flu_dose_factor", "cy_mg_m2_total", "dialysis_duration_h",
    "flu_removal_fraction", "il6_elimination_per_day",
)  # fmt: skip

#: Names the generated code uses itself (with every name starting with an underscore).
RESERVED = ("t", "math", "numba", "NAN", *FUNCTIONS)

#: The regimen's schedules an input can name.
SCHEDULES = ("cart", "fludarabine", "cyclophosphamide", "dialysis")


class DescriptionError(ScenarioError):
    """A model description is wrong; the message names the file and line."""


@dataclass(frozen=True)
class Line:
    """One parsed ``name = expression`` line and where it was written."""

    name: str
    expression: str
    where: str
    unit: str = ""
    description: str = ""


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Input:
    """An engine-owned input; ``where`` (``file:line``, filled in from the caller when empty)
    names the line that wrote it in error messages."""

    where: str = field(default="", compare=False, kw_only=True)

    def __post_init__(self):
        if not self.where:
            object.__setattr__(self, "where", _caller())


@dataclass(frozen=True)
class Bolus(_Input):
    """Each event of ``schedule`` adds ``amount`` to state ``into`` at the event day (+ delay).

    Parameters
    ----------
    schedule : str
        One of :data:`SCHEDULES`.
    into : str
        Target state symbol.
    amount : str
        Expression of ``dose`` (the event's amount), parameters, derived entries and covariates,
        in the target state's unit.
    first_only : bool
        Only the first event (earliest day) of the schedule.
    delay : str
        Expression (days) added to the event day, e.g. ``"tmax"`` for a switch at the peak.
    when : str
        Expression that must hold for the event to count (``day`` is the event day).
    unit : str
        Unit of ``amount``, checked against the target state's unit when given.
    """

    schedule: str
    into: str
    amount: str = "dose"
    first_only: bool = False
    delay: str = ""
    when: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Infusion(_Input):
    """Each event of ``schedule`` runs a zero-order infusion of ``amount`` over the event's
    duration: the rate state ``rate`` rises by ``amount / duration`` at the start and falls back
    at the end. The model's equations add ``rate`` to the receiving state's ``d/dt`` line, and
    ``d/dt(rate) = 0``.

    Parameters as :class:`Bolus`; ``rate`` names the rate state (amount per day).
    """

    schedule: str
    rate: str
    amount: str = "dose"
    when: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Switch(_Input):
    """A rate switch: the flag state ``flag`` is raised by 1 at the start of each event of
    ``schedule`` (e.g. a dialysis session) and lowered at its end; the equations multiply the
    switched rate by the flag, and ``d/dt(flag) = 0``.

    Parameters as :class:`Bolus`.
    """

    schedule: str
    flag: str
    when: str = ""


def _caller() -> str:
    """``file:line`` of the first frame outside this module (where the object was written)."""
    file, line = _outside_frame()
    return "<unknown>" if file is None else f"{file}:{line}"


# ---------------------------------------------------------------------------------------------
# the description
# ---------------------------------------------------------------------------------------------
class Description:
    """A model as data (see the module docstring for the meaning of every argument).

    Parameters
    ----------
    name : str
        Registry name.
    description : str
        One paragraph: what the model is for and where it comes from.
    parameters : ParameterTable
    states : str or sequence of State
        Text block, one ``symbol name [unit] description`` line per state, in kernel order.
    equations : str
        Intermediates and ``d/dt(X) = ...`` lines.
    derived : str
        ``name = expression`` lines (kernel entries after the table's).
    initial : str
        ``X = expression`` lines (state at the start time).
    observables : str
        ``name [unit] = expression  # description`` lines.
    roles : mapping of str to str
        Role -> observable name.
    inputs : sequence of Bolus, Infusion or Switch
    start : {"zero", "first_dose"}
        Where integration starts: day 0, or the earliest bolus/infusion day when before 0.
    ignores : sequence of str
        What the model leaves out, printed with its outputs.

    Raises
    ------
    DescriptionError
        Naming the file and line of the first problem found.
    """

    def __init__(
        self,
        name: str,
        description: str,
        parameters: ParameterTable,
        states,
        equations: str,
        *,
        derived: str = "",
        initial: str = "",
        observables: str = "",
        roles: Mapping[str, str] | None = None,
        inputs: Sequence = (),
        start: str = "zero",
        ignores: Sequence[str] = (),
    ):
        from cartkin.models.base import ROLES, State

        self.file = _caller_file()
        self.name = str(name)
        self.description = description
        if not isinstance(parameters, ParameterTable):
            raise DescriptionError(
                f"{self.file}: model {name!r}: parameters must be a ParameterTable, got "
                f"{type(parameters).__name__}"
            )
        self.parameters = parameters
        if isinstance(states, str):
            self.states = tuple(self._state_lines(states, State))
        else:
            self.states = tuple(states)
        self.equations_text = _dedent(equations)
        self.derived_text = _dedent(derived)
        self.initial_text = _dedent(initial)
        self.observables_text = _dedent(observables)
        self.roles = dict(roles or {})
        self.inputs = tuple(inputs)
        if start not in ("zero", "first_dose"):
            raise DescriptionError(
                f"{self.file}: start = {start!r}: expected 'zero' or 'first_dose'"
            )
        self.start = start
        self.ignores = tuple(ignores)
        self.derived = self._assignments(self.derived_text, "derived")
        self.intermediates, self.rates = self._equations()
        self.initial = self._assignments(self.initial_text, "initial")
        self.observables = self._observables()
        self._check(ROLES)

    def __repr__(self) -> str:
        return (
            f"Description({self.name!r}, states={list(self.state_symbols)}, "
            f"parameters={len(self.parameters)}, derived={len(self.derived)})"
        )

    # -- names --------------------------------------------------------------------------------
    @property
    def state_symbols(self) -> tuple[str, ...]:
        """State symbols in kernel order."""
        return tuple(s.symbol for s in self.states)

    @property
    def derived_names(self) -> tuple[str, ...]:
        """Names of the derived (per-patient) kernel entries, in the order written."""
        return tuple(line.name for line in self.derived)

    @property
    def kernel_names(self) -> tuple[str, ...]:
        """Entries of the kernel vector ``p``: table parameters, then derived entries."""
        return tuple(self.parameters.names) + self.derived_names

    def schedule_names(self) -> tuple[str, ...]:
        """Summary names available to derived and ``when`` expressions."""
        return tuple(
            f"{kind}_{s}_{what}" if kind else f"{what}_{s}"
            for s in SCHEDULES
            for kind, what in (("first", "day"), ("last", "day"), ("first", "dose"), ("", "n"))
        )

    # -- parsing ------------------------------------------------------------------------------
    def _where(self, text: str) -> str:
        """``file:line`` of ``text`` (one stripped line) in the description's file."""
        return f"{self.file}:{_line_of(self.file, text)}"

    def _state_lines(self, block, State):
        out = []
        for raw in _dedent(block).splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.fullmatch(r"(\w+)\s+(\w+)\s+\[([^\]]*)\]\s*(.*)", line)
            if m is None:
                raise DescriptionError(
                    f"{self._where(line)}: state line {line!r}: expected 'symbol name [unit] "
                    "description'"
                )
            out.append(State(m[2], m[1], m[3].strip(), m[4].strip()))
        return out

    def _assignments(self, block, what) -> tuple[Line, ...]:
        lines = []
        for raw in block.splitlines():
            text, _, comment = raw.partition("#")
            text = text.strip()
            if not text:
                continue
            name, eq, expr = text.partition("=")
            name = name.strip()
            if not eq or not name.isidentifier() or not expr.strip():
                raise DescriptionError(
                    f"{self._where(text)}: {what} line {text!r}: expected 'name = expression'"
                )
            lines.append(Line(name, expr.strip(), self._where(text), "", comment.strip()))
        return tuple(lines)

    def _equations(self):
        intermediates, rates = [], {}
        for raw in self.equations_text.splitlines():
            text = raw.split("#", 1)[0].strip()
            if not text:
                continue
            m = re.fullmatch(r"d/dt\(\s*(\w+)\s*\)\s*=\s*(.+)", text)
            where = self._where(text)
            if m is not None:
                state = m[1]
                if state not in self.state_symbols:
                    raise DescriptionError(
                        f"{where}: d/dt({state}): {state!r} is not a state."
                        f"{suggest(state, self.state_symbols)} States: "
                        f"{', '.join(self.state_symbols)}"
                    )
                if state in rates:
                    raise DescriptionError(f"{where}: second equation for d/dt({state})")
                rates[state] = Line(state, m[2].strip(), where)
                continue
            name, eq, expr = text.partition("=")
            name = name.strip()
            if not eq or not name.isidentifier() or not expr.strip():
                raise DescriptionError(
                    f"{where}: equation line {text!r}: expected 'd/dt(X) = expression' or "
                    "'name = expression'"
                )
            intermediates.append(Line(name, expr.strip(), where))
        missing = [s for s in self.state_symbols if s not in rates]
        if missing:
            raise DescriptionError(
                f"{self.file}:{_line_of(self.file, self.equations_text.strip().splitlines()[0])}"
                f": model {self.name!r}: state {missing[0]!r} has no equation; add a line "
                f"'d/dt({missing[0]}) = ...' (states without one: {', '.join(missing)})"
            )
        return tuple(intermediates), rates

    def _observables(self) -> tuple[Line, ...]:
        out = []
        for raw in self.observables_text.splitlines():
            text, _, comment = raw.partition("#")
            text = text.strip()
            if not text:
                continue
            m = re.fullmatch(r"(\w+)\s*\[([^\]]*)\]\s*=\s*(.+)", text)
            if m is None:
                raise DescriptionError(
                    f"{self._where(text)}: observable line {text!r}: expected "
                    "'name [unit] = expression  # description'"
                )
            out.append(Line(m[1], m[3].strip(), self._where(text), m[2].strip(), comment.strip()))
        return tuple(out)

    # -- checks -------------------------------------------------------------------------------
    def _check(self, roles_known) -> None:
        table = tuple(self.parameters.names)
        states = self.state_symbols
        for name in (*table, *self.derived_names, *states, *(x.name for x in self.intermediates)):
            if name in RESERVED or name.startswith("_"):
                raise DescriptionError(
                    f"{self.file}: model {self.name!r}: the name {name!r} is reserved for the "
                    f"generated code (reserved: {', '.join(RESERVED)} and names starting with _)"
                )
        for group, names in (("derived", self.derived_names), ("state", states)):
            for k, name in enumerate(names):
                if name in table or name in names[:k]:
                    raise DescriptionError(
                        f"{self.file}: model {self.name!r}: {group} name {name!r} is used twice "
                        "(parameters, derived entries and states must have distinct names)"
                    )
        per_patient = set(table) | set(COVARIATES) | set(self.schedule_names()) | {"t_start"}
        known = set(per_patient)
        for line in self.derived:
            _check_expression(line, known, "derived")
            known.add(line.name)
        kernel = set(table) | set(self.derived_names)
        known = kernel | set(states) | {"t"}
        for line in self.intermediates:
            if line.name in known:
                raise DescriptionError(
                    f"{line.where}: intermediate {line.name!r} hides a parameter, state or "
                    "earlier intermediate of the same name"
                )
            _check_expression(line, known, "equation")
            known.add(line.name)
        for line in self.rates.values():
            _check_expression(line, known, "d/dt of")
        obs_known = known - {"t"}
        for line in self.observables:
            _check_expression(line, obs_known, "observable")
            if line.expression in states:
                unit = self.states[states.index(line.expression)].unit
                if line.unit != unit:
                    raise DescriptionError(
                        f"{line.where}: observable {line.name!r} is state {line.expression!r} "
                        f"in {unit!r} but declares [{line.unit}]"
                    )
        init_known = per_patient | set(self.derived_names)
        for line in self.initial:
            if line.name not in states:
                raise DescriptionError(
                    f"{line.where}: initial value for {line.name!r}, which is not a state."
                    f"{suggest(line.name, states)}"
                )
            _check_expression(line, init_known, "initial")
        obs_names = [o.name for o in self.observables]
        for role, obs in self.roles.items():
            if role not in roles_known:
                raise DescriptionError(
                    f"{self.file}: model {self.name!r}: unknown role {role!r}."
                    f"{suggest(role, roles_known)} Known roles: {', '.join(roles_known)}"
                )
            if obs is not None and obs not in obs_names:
                raise DescriptionError(
                    f"{self.file}: model {self.name!r}: role {role!r} names observable {obs!r}, "
                    f"which the model does not have.{suggest(obs, obs_names)}"
                )
        if self.roles.get("cart") is None:
            raise DescriptionError(
                f"{self.file}: model {self.name!r}: roles must name the CAR-T observable as 'cart'"
            )
        event_known = init_known | {"dose", "day"}
        for item in self.inputs:
            self._check_input(item, event_known)

    def _check_input(self, item, known) -> None:
        where = item.where
        kind = type(item).__name__
        if not isinstance(item, Bolus | Infusion | Switch):
            raise DescriptionError(
                f"{self.file}: inputs: expected Bolus, Infusion or Switch, got {kind}"
            )
        if item.schedule not in SCHEDULES:
            raise DescriptionError(
                f"{where}: {kind}: unknown schedule {item.schedule!r}."
                f"{suggest(item.schedule, SCHEDULES)} Schedules: {', '.join(SCHEDULES)}"
            )
        target = {Bolus: "into", Infusion: "rate", Switch: "flag"}[type(item)]
        state = getattr(item, target)
        states = self.state_symbols
        if state not in states:
            raise DescriptionError(
                f"{where}: {kind}({item.schedule!r}, {target}={state!r}): dose into unknown "
                f"state {state!r}.{suggest(state, states)} States: {', '.join(states)}"
            )
        unit = self.states[states.index(state)].unit
        declared = getattr(item, "unit", "")
        expected = unit if isinstance(item, Bolus) else f"{unit}"
        if declared and declared != expected:
            raise DescriptionError(
                f"{where}: {kind}({item.schedule!r}) into {state!r}: amount unit {declared!r} "
                f"does not match the state's unit {unit!r}"
            )
        for attr in ("amount", "delay", "when"):
            text = getattr(item, attr, "")
            if text:
                _check_expression(Line(attr, text, where), known, f"{kind} {attr}")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _caller_file() -> str:
    """File of the first frame outside this module (the model file)."""
    return _outside_frame()[0] or "<unknown>"


def _outside_frame() -> tuple[str | None, int]:
    """(file, line) of the innermost caller frame that is neither this module, nor
    ``dataclasses``, nor generated code (``<string>``); (None, 0) if there is none. Walks the
    frames directly: ``inspect.stack()`` reads source context for every frame (about 1.5 ms
    per call)."""
    here = Path(__file__).resolve()
    frame = sys._getframe(1)
    while frame is not None:
        file = frame.f_code.co_filename
        if not (file.startswith("<") or "dataclasses" in file or Path(file).resolve() == here):
            return file, frame.f_lineno
        frame = frame.f_back
    return None, 0


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text or "").strip("\n")


def _line_of(file: str, text: str) -> int | str:
    """1-based number of the first line of ``file`` that contains ``text`` ('?' if none)."""
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except OSError:
        return "?"
    for k, line in enumerate(lines, 1):
        if text in line:
            return k
    return "?"


def _check_expression(line: Line, known, what) -> None:
    try:
        tree = ast.parse(line.expression, mode="eval")
    except SyntaxError as exc:
        raise DescriptionError(
            f"{line.where}: {what} {line.name!r}: {line.expression!r} is not a valid "
            f"expression ({exc.msg})"
        ) from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = ast.unparse(node.func)
                raise DescriptionError(
                    f"{line.where}: {what} {line.name!r}: unknown function {name!r}."
                    f"{suggest(name, FUNCTIONS)} Functions: {', '.join(FUNCTIONS)}"
                )
        elif not isinstance(
            node,
            ast.Expression
            | ast.BinOp
            | ast.UnaryOp
            | ast.Compare
            | ast.BoolOp
            | ast.Name
            | ast.Constant
            | ast.Load
            | ast.operator
            | ast.unaryop
            | ast.cmpop
            | ast.boolop,
        ):
            raise DescriptionError(
                f"{line.where}: {what} {line.name!r}: {type(node).__name__} is not allowed in "
                f"an expression ({line.expression!r})"
            )
    for name in sorted(names_in(line.expression)):
        if name not in known:
            same = [k for k in sorted(known) if k.lower() == name.lower()]
            hint = f" Did you mean {same[0]!r}?" if same else suggest(name, sorted(known))
            raise DescriptionError(
                f"{line.where}: {what} {line.name!r}: unknown symbol {name!r} in "
                f"{line.expression!r}.{hint}"
            )
