"""The scenario's ``[fit]`` table: free parameters, priors, error models, bounds, targets.

A fit scenario is a normal scenario file (patient, regimen, model, ``[parameters]`` as fixed
values) plus::

    [fit]
    free = ["rho", "delta_M"]            # model parameters to estimate (log scale)
    free_error = "all"                   # the default; or ["cart_cells_per_ul.sigma_add"]; [] fixes them
    starts = 8                           # multistart design size (CLI --starts overrides)
    seed = 0                             # design seed (CLI --seed overrides)
    profile = true                       # profile-likelihood intervals
    grid_step_days = 0.25                # dense grid for summary targets
    horizon_days = 365.0                 # end of that grid
    predict_days = [365.0, 540.0]        # outcome predictions beyond the targets, with ranges

    [fit.bounds]                         # estimation bounds within the table's
    rho = [0.3, 5.0]

    [fit.priors.rho]                     # log-normal prior (MAP): median and sd_log or omega2
    median = 1.3
    sd_log = 0.5
    source = "assumption: ..."

    [fit.error.cart_cells_per_ul]        # error model per observable (default log, 0.5)
    kind = "log"
    sigma_add = 0.5

    [[fit.target]]                       # summary targets (cartkin.fit.targets)
    metric = "TRECOV"
    kind = "normal"
    mean = 110.0
    sd = 32.0
    source = "Mackensen 2022"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cartkin.errors import ScenarioError
from cartkin.fit.likelihood import error_model_from_spec, prior_from_spec
from cartkin.fit.targets import target_from_spec

__all__ = ["FitSpec", "load_fit_scenario"]

_KEYS = ("free", "free_error", "starts", "seed", "profile", "grid_step_days", "horizon_days",
         "predict_days", "bounds", "priors", "error", "target")  # fmt: skip


@dataclass
class FitSpec:
    """The parsed ``[fit]`` table (empty defaults when the scenario has none)."""

    free: list = field(default_factory=list)
    free_error: list | str = "all"  # every residual SD estimated unless the table says otherwise
    starts: int = 8
    seed: int = 0
    profile: bool = True
    grid_step_days: float = 0.25
    horizon_days: float | None = None
    predict_days: list = field(default_factory=list)
    bounds: dict = field(default_factory=dict)
    priors: dict = field(default_factory=dict)
    error_models: dict = field(default_factory=dict)
    targets: list = field(default_factory=list)

    def problem_options(self) -> dict:
        """Keyword arguments of :class:`cartkin.fit.problem.Problem` (besides data)."""
        return {"free_error": self.free_error, "priors": self.priors, "bounds": self.bounds,
                "error_models": self.error_models, "targets": self.targets,
                "grid_step_days": self.grid_step_days, "horizon_days": self.horizon_days}  # fmt: skip


def load_fit_scenario(path):
    """Read a scenario file with an optional ``[fit]`` table.

    Returns
    -------
    (cartkin.scenario.Scenario, FitSpec)
    """
    from cartkin.scenario import scenario_from_dict

    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"{path}: no such scenario file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    raw = data.pop("fit", {})
    scenario = scenario_from_dict(data, source=path)
    return scenario, fit_spec_from_dict(raw, where=f"{path}: [fit]")


def fit_spec_from_dict(raw: dict, where: str = "[fit]") -> FitSpec:
    """Validate a ``[fit]`` table (see the module docstring)."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: expected a table")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {unknown}; expected {list(_KEYS)}")
    spec = FitSpec()
    free = raw.get("free", [])
    if not isinstance(free, list) or not all(isinstance(x, str) for x in free):
        raise ScenarioError(f"{where} free = {free!r}: expected a list of parameter names")
    spec.free = free
    fe = raw.get("free_error", "all")
    if not (fe == "all" or (isinstance(fe, list) and all(isinstance(x, str) for x in fe))):
        raise ScenarioError(f'{where} free_error = {fe!r}: expected "all" or a list of names')
    spec.free_error = fe
    for key, kind in (("starts", int), ("seed", int), ("profile", bool)):
        if key in raw:
            if not isinstance(raw[key], kind) or (
                kind is int and raw[key] < (1 if key == "starts" else 0)
            ):
                raise ScenarioError(f"{where} {key} = {raw[key]!r}: expected {kind.__name__}")
            setattr(spec, key, raw[key])
    for key in ("grid_step_days", "horizon_days"):
        if key in raw:
            v = raw[key]
            if not isinstance(v, (int, float)) or not v > 0:
                raise ScenarioError(f"{where} {key} = {v!r}: expected a positive number of days")
            setattr(spec, key, float(v))
    days = raw.get("predict_days", [])
    if not isinstance(days, list) or not all(
        isinstance(d, (int, float)) and not isinstance(d, bool) and d > 0 for d in days
    ):
        raise ScenarioError(f"{where} predict_days = {days!r}: expected a list of positive days")
    spec.predict_days = sorted(float(d) for d in days)
    for name, b in raw.get("bounds", {}).items():
        if not (
            isinstance(b, list) and len(b) == 2 and all(isinstance(v, (int, float)) for v in b)
        ):
            raise ScenarioError(f"{where}.bounds.{name} = {b!r}: expected [lower, upper]")
        spec.bounds[name] = (float(b[0]), float(b[1]))
    spec.priors = {n: prior_from_spec(f"{where}.priors.{n}", p)
                   for n, p in raw.get("priors", {}).items()}  # fmt: skip
    spec.error_models = {n: error_model_from_spec(f"{where}.error.{n}", e)
                         for n, e in raw.get("error", {}).items()}  # fmt: skip
    targets = raw.get("target", [])
    if not isinstance(targets, list):
        raise ScenarioError(f"{where}: target must be an array of tables ([[fit.target]])")
    spec.targets = [target_from_spec(f"{where} [[fit.target]] #{i + 1}", t)
                    for i, t in enumerate(targets)]  # fmt: skip
    return spec
