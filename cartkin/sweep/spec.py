"""The ``[sweep]`` table of a scenario file: axes, virtual population, metrics, seed.

A sweep is an ordinary scenario file (``cartkin.scenario``) plus a ``[sweep]`` table::

    [sweep]
    n_patients = 1000                 # virtual patients per grid point
    seed = 20261129                   # root seed, an integer in [0, 2**64)
    metrics = ["CMAX", "TRECOV"]      # default: every metric the model has
    flu_auc_window_mg_h_per_l = [13.8, 20.0]   # target window for P(FLU_AUC in window)
    recovery_by_day = 180.0           # P(B-cell recovery by this day)
    trajectories = 20                 # store the observables of patients 0..19 (default 0)
    trajectory_step_days = 1.0        # on this grid, days 0..t_end_days

    [sweep.axes]                      # dotted scenario key -> list of values
    "cart.cells_per_kg" = { log_from = 3e4, to = 1e6, n = 8 }
    "patient.egfr_ml_min_173m2" = [120, 90, 60, 30, 15, "dialysis"]
    clearance_model = ["langenhorst2019", "varela2025"]

    [sweep.dialysis]                  # the schedule used by the eGFR value "dialysis"
    session_days = [-7.5, -4.5, -2.5, -0.5, 2.5]

    [sweep.variability]               # omega^2 of a log-normal by parameter name
    rho = 0.3
    flu_clearance = 0.053             # on the fludarabine clearance

Each grid point is the base scenario with that point's axis values written into it and validated
by the scenario loader, so a bad axis value gets the loader's own message, prefixed with the
sweep axis and grid point. Every error names the file, the key, the value and what was expected.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cartkin.batch import METRIC_NAMES
from cartkin.config import check_keys
from cartkin.covariates.patient import DialysisSchedule
from cartkin.errors import ScenarioError
from cartkin.parameters import suggest
from cartkin.scenario import scenario_from_dict
from cartkin.sweep.axes import Axis, apply_axis_value, is_number, parse_axes, value_text

__all__ = ["FLU_CLEARANCE", "METRIC_UNITS", "Axis", "Sweep", "load_sweep", "sweep_from_text"]

#: Metrics a sweep can store, with their units (definitions in :mod:`cartkin.metrics`; these
#: are the in-kernel metrics of :data:`cartkin.batch.METRIC_NAMES`).
METRIC_UNITS = {name: unit for name, (unit, _) in METRIC_NAMES.items()}
_ROLE_OF = {name: role for name, (_, role) in METRIC_NAMES.items() if role not in (None, "cart")}

#: Name of the variability entry on the fludarabine clearance (not a model parameter).
FLU_CLEARANCE = "flu_clearance"

#: Default FLU_AUC target window, mg.h/L: from the 13.8 mg.h/L mark below which relapse was
#: more frequent (Fabrizio VA et al., Blood Adv 2022;6:1961) to the 20 mg.h/L optimum in
#: transplant conditioning above which immune recovery was impaired (Langenhorst JB et al.,
#: Blood Adv 2019;3:2179). Assumption: that the window carries over to CAR-T in SLE.
DEFAULT_FLU_WINDOW = (13.8, 20.0)
#: Default day for P(B-cell recovery by day): 180 (assumption: about twice the 110 +/- 32 d
#: reappearance of Mackensen 2022, so a clearly late recovery counts as "not by day 180").
DEFAULT_RECOVERY_DAY = 180.0
#: Upper limit on omega^2 (assumption: 4 is a CV above 700%, beyond any published IIV).
_OMEGA2_MAX = 4.0
_MAX_PATIENTS = 100_000_000
_SWEEP_KEYS = (
    "n_patients",
    "seed",
    "metrics",
    "flu_auc_window_mg_h_per_l",
    "recovery_by_day",
    "trajectories",
    "trajectory_step_days",
    "axes",
    "variability",
    "dialysis",
)


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the base scenario, its axes and its virtual population.

    Attributes
    ----------
    source : str
        File name used in messages.
    text : str
        The scenario file text (stored in the result store).
    scenario_hash : str
        SHA-256 of ``text``; a store from another text is refused.
    base : cartkin.scenario.Scenario
    axes : tuple of Axis
    n_patients : int
    seed : int
    metrics : tuple of str
    variability : dict of str to float
        omega^2 by model parameter name, plus ``flu_clearance``.
    flu_auc_window_mg_h_per_l : tuple of float
    recovery_by_day : float
    trajectories : int
        Patients (indices 0 .. trajectories - 1 at every grid point) whose observables are
        stored on ``trajectory_t_days``.
    trajectory_step_days : float
    """

    source: str
    text: str
    scenario_hash: str
    base: Any
    axes: tuple[Axis, ...]
    n_patients: int
    seed: int
    metrics: tuple[str, ...]
    variability: dict[str, float]
    flu_auc_window_mg_h_per_l: tuple[float, float]
    recovery_by_day: float
    trajectories: int = 0
    trajectory_step_days: float = 1.0
    _raw: dict = field(repr=False, default_factory=dict)
    _dialysis: dict | None = field(repr=False, default=None)

    @property
    def model(self):
        """The model (:class:`cartkin.models.base.Model`)."""
        return self.base.model

    @property
    def trajectory_t_days(self) -> np.ndarray:
        """Output days of the stored trajectories: 0 to the base scenario's horizon."""
        t_end = float(self.base.t_days[-1])
        n = math.floor(t_end / self.trajectory_step_days + 1e-9)
        t = self.trajectory_step_days * np.arange(n + 1)
        return t if math.isclose(t[-1], t_end) else np.append(t, t_end)

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape, one entry per axis."""
        return tuple(len(a.values) for a in self.axes)

    @property
    def n_points(self) -> int:
        """Number of grid points."""
        return math.prod(self.shape)

    @property
    def n_total(self) -> int:
        """Virtual patients in the whole sweep."""
        return self.n_points * self.n_patients

    def index(self, g: int) -> tuple[int, ...]:
        """Axis indices of flat grid point ``g`` (C order)."""
        return tuple(int(i) for i in np.unravel_index(g, self.shape)) if self.axes else ()

    def coords(self, g: int) -> dict[str, Any]:
        """``{axis key: value}`` of grid point ``g``."""
        return {a.key: a.values[i] for a, i in zip(self.axes, self.index(g), strict=True)}

    @cached_property
    def points(self) -> list:
        """The scenario of every grid point (:class:`cartkin.scenario.Scenario`), flat C order."""
        return [self._point(dict(zip([a.key for a in self.axes], c, strict=True)))
                for c in itertools.product(*(a.values for a in self.axes))]  # fmt: skip

    def _point(self, coords: dict):
        raw = copy.deepcopy(self._raw)
        for key, value in coords.items():
            apply_axis_value(raw, key, value, self._dialysis)
        label = ", ".join(f"{k} = {value_text(v)}" for k, v in coords.items())
        try:
            return scenario_from_dict(raw, source=self.source)
        except ScenarioError as exc:
            detail = str(exc).removeprefix(f"{self.source}: ")
            raise ScenarioError(
                f"{self.source}: [sweep.axes] grid point ({label}): {detail}"
            ) from None


def load_sweep(path: str | Path) -> Sweep:
    """Read a scenario file with a ``[sweep]`` table and validate it.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Sweep

    Raises
    ------
    ScenarioError
        Naming the file, the key, the value and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"{path}: no such scenario file")
    return sweep_from_text(path.read_text(encoding="utf-8"), source=str(path))


def sweep_from_text(text: str, source: str = "<scenario>") -> Sweep:
    """:func:`load_sweep` for a scenario given as TOML text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    if "sweep" not in data:
        raise ScenarioError(
            f"{source}: no [sweep] table: expected [sweep] with n_patients, seed and [sweep.axes] "
            "(see the README section 'Sweeps')"
        )
    raw = dict(data)
    table = raw.pop("sweep")
    if raw.get("variant"):
        raise ScenarioError(
            f"{source}: [[variant]] with [sweep]: a sweep's arms are its [sweep.axes]; move "
            "each variant's differences into an axis"
        )
    base = scenario_from_dict(raw, source=source)
    where = f"{source}: [sweep]"
    check_keys(source, "sweep", table, _SWEEP_KEYS)
    for key in ("n_patients", "seed"):
        if key not in table:
            raise ScenarioError(f"{where} missing required key {key!r}")
    n_patients = _integer(where, "n_patients", table["n_patients"], 1, _MAX_PATIENTS)
    seed = _integer(where, "seed", table["seed"], 0, 2**64 - 1)
    model = base.model
    metrics = _metrics(where, table.get("metrics"), model)
    window = table.get("flu_auc_window_mg_h_per_l", list(DEFAULT_FLU_WINDOW))
    if (
        not isinstance(window, list)
        or len(window) != 2
        or not all(is_number(x) and math.isfinite(x) for x in window)
        or not 0 <= window[0] < window[1]
    ):
        raise ScenarioError(
            f"{where} flu_auc_window_mg_h_per_l = {window!r}: expected [low, high] in mg.h/L "
            "with 0 <= low < high, e.g. [13.8, 20.0]"
        )
    recovery_day = table.get("recovery_by_day", DEFAULT_RECOVERY_DAY)
    if not is_number(recovery_day) or not 0 < recovery_day < math.inf:
        raise ScenarioError(
            f"{where} recovery_by_day = {recovery_day!r}: expected a number of days > 0, e.g. 180"
        )
    trajectories = _integer(where, "trajectories", table.get("trajectories", 0), 0, 1000)
    if trajectories > n_patients:
        raise ScenarioError(
            f"{where} trajectories = {trajectories}: expected at most n_patients = {n_patients}"
        )
    step = table.get("trajectory_step_days", 1.0)
    if not is_number(step) or not 0 < step <= float(base.t_days[-1]):
        raise ScenarioError(
            f"{where} trajectory_step_days = {step!r}: expected a number of days in (0, "
            f"{float(base.t_days[-1]):g}] (the horizon)"
        )
    dialysis = table.get("dialysis")
    if dialysis is not None:
        if not isinstance(dialysis, dict):
            raise ScenarioError(
                f"{source}: [sweep.dialysis] = {dialysis!r}: expected a table of DialysisSchedule "
                "fields (session_days, duration_h, flu_removal_fraction)"
            )
        try:
            DialysisSchedule(**dialysis)
        except TypeError as exc:
            raise ScenarioError(f"{source}: [sweep.dialysis]: {exc}") from None
        except ScenarioError as exc:
            raise ScenarioError(f"{source}: [sweep.dialysis] {exc}") from None
    elif "dialysis" in raw.get("patient", {}):
        dialysis = raw["patient"]["dialysis"]
    axes = parse_axes(source, table.get("axes", {}), model, dialysis)
    variability = _variability(source, table.get("variability", {}), model)
    sweep = Sweep(
        source=source,
        text=text,
        scenario_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        base=base,
        axes=axes,
        n_patients=n_patients,
        seed=seed,
        metrics=metrics,
        variability=variability,
        flu_auc_window_mg_h_per_l=(float(window[0]), float(window[1])),
        recovery_by_day=float(recovery_day),
        trajectories=trajectories,
        trajectory_step_days=float(step),
        _raw=raw,
        _dialysis=dialysis,
    )
    sweep.points  # noqa: B018 -- validate every grid point now, not in a worker
    return sweep


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------


def _integer(where, key, value, lower, upper):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not lower <= value <= upper:
        raise ScenarioError(
            f"{where} {key} = {value!r}: expected an integer in [{lower}, {upper:.4g}]"
        )
    return value


def available_metrics(model) -> tuple[str, ...]:
    """The sweep metrics ``model`` has (B-cell and IL-6 metrics need those roles)."""
    return tuple(m for m in METRIC_UNITS if _ROLE_OF.get(m) is None or model.roles.get(_ROLE_OF[m]))


def _metrics(where, value, model):
    known = available_metrics(model)
    if value is None:
        return known
    if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
        raise ScenarioError(
            f"{where} metrics = {value!r}: expected a non-empty list of metric names, e.g. "
            f'["CMAX", "TRECOV"]; known: {", ".join(known)}'
        )
    for m in value:
        if m not in known:
            why = (
                f" (model {model.name!r} has no {_ROLE_OF[m]} observable)"
                if m in METRIC_UNITS
                else ""
            )
            raise ScenarioError(
                f"{where} metrics: unknown metric {m!r}{why}.{suggest(m, known)} Known: "
                f"{', '.join(known)}"
            )
    if len(set(value)) != len(value):
        raise ScenarioError(f"{where} metrics = {value!r}: a metric is listed twice")
    return tuple(value)


def _variability(source, table, model):
    where = f"{source}: [sweep.variability]"
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: expected a table of name = omega^2, got {table!r}")
    names = (*model.parameters.names, FLU_CLEARANCE)
    out = {}
    for name, omega2 in table.items():
        if name not in names:
            raise ScenarioError(
                f"{where} unknown name {name!r}: expected a parameter of model "
                f"{model.name!r} or {FLU_CLEARANCE!r}.{suggest(name, names)}"
            )
        if not is_number(omega2) or not 0 <= omega2 <= _OMEGA2_MAX:
            raise ScenarioError(
                f"{where} {name} = {omega2!r}: expected omega^2 of a log-normal (variance of "
                f"log values), a number in [0, {_OMEGA2_MAX:g}]; a CV of 30% is omega^2 = "
                "ln(1 + 0.3^2) = 0.086"
            )
        out[name] = float(omega2)
    return out
