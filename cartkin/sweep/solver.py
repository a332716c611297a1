"""The solver setting of a sweep: from the scenario's ``[solver]`` table or shipped per model.

A single simulation defaults to a tight tolerance (rodas5, rtol 1e-8: trajectories for plots and
fits). A sweep only needs its metrics to about 3 significant digits, and at that accuracy a
looser tolerance is several times faster. Which tolerance is loose enough is measured, not
guessed: ``python benchmarks/bench_sweep.py --curve --write-settings`` solves a virtual
population at a ladder of tolerances, compares every metric with a tight reference (rodas5,
rtol 1e-10), picks the fastest setting whose worst relative metric error is within the budget,
and writes it to ``cartkin/models/solver_settings.json`` together with that verified error. A
sweep without ``[solver]`` uses that setting; the store records it (attribute ``solver``) and
``cartkin report`` prints it.

The file is keyed by model name and carries a fingerprint of the model (its state names and
its parameter names and defaults). When the model changes (a recalibration) the measured
setting no longer applies: the sweep then falls back to the single-simulation default and says
so, and ``tests/test_sweep_solver.py`` fails until the curve is measured again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["SETTINGS_FILE", "SolverSetting", "model_fingerprint", "shipped_setting",
           "sweep_solver"]  # fmt: skip

#: Where the measured sweep settings live (written by ``benchmarks/bench_sweep.py --curve
#: --write-settings``).
SETTINGS_FILE = Path(__file__).resolve().parents[1] / "models" / "solver_settings.json"

#: The single-simulation default of a scenario file (``cartkin.scenario``): the sweep falls back
#: to it for a model without a measured setting.
FALLBACK = {"method": "rodas5", "rtol": 1e-8, "atol": 1e-10}


@dataclass(frozen=True)
class SolverSetting:
    """The solver options a sweep runs with, and where they come from.

    Attributes
    ----------
    method : str
    rtol, atol : float
    origin : str
        ``"scenario"`` (the file's ``[solver]`` table), ``"shipped"`` (the measured setting of
        ``solver_settings.json``) or ``"fallback"`` (no measured setting for this model).
    worst_metric_error : float or None
        Worst relative error of the sweep metrics at this setting, measured against the
        reference on the curve's virtual patients (dimensionless); None when not measured.
    note : str
        One sentence for the report: how the setting was chosen and verified.
    atol_states : dict of str to float
        Absolute tolerances of single states (by state name, in the state's unit) that replace
        ``atol`` for them; empty for a scenario's own ``[solver]`` table.
    """

    method: str
    rtol: float
    atol: float
    origin: str
    worst_metric_error: float | None
    note: str
    atol_states: dict = field(default_factory=dict)

    def options(self) -> dict:
        """``method``, ``rtol``, scalar ``atol``: the scenario's ``[solver]`` keys."""
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol}

    def engine_options(self, model) -> dict:
        """Keyword arguments of the batch engine: ``atol`` one per state of ``model`` when the
        setting has per-state tolerances."""
        out = self.options()
        if self.atol_states:
            atol = np.full(model.n_states, self.atol)
            for name, value in self.atol_states.items():
                atol[model.state_index(name)] = value
            out["atol"] = atol
        return out

    def to_json(self) -> str:
        """The store attribute ``solver`` (a JSON object)."""
        return json.dumps({**self.options(), "atol_states": self.atol_states,
                           "origin": self.origin, "worst_metric_error": self.worst_metric_error,
                           "note": self.note})  # fmt: skip

    def describe(self) -> str:
        """One line for ``cartkin report``."""
        err = (
            f"verified worst metric error {self.worst_metric_error:.1e}"
            if self.worst_metric_error is not None
            else "metric error not verified"
        )
        per_state = "".join(f", {k} {v:g}" for k, v in self.atol_states.items())
        return (f"solver: {self.method}, rtol {self.rtol:g}, atol {self.atol:g}{per_state} "
                f"({self.origin}; {err}) {self.note}").rstrip()  # fmt: skip


def model_fingerprint(model) -> str:
    """A short hash of what a measured setting depends on: the model's name, its state names,
    and its parameter names with their default values."""
    params = [(par.name, repr(float(par.default))) for par in model.parameters]
    payload = json.dumps([model.name, list(model.state_names), params])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@lru_cache(maxsize=1)
def _settings() -> dict:
    if not SETTINGS_FILE.is_file():
        return {}
    return json.loads(SETTINGS_FILE.read_text(encoding="utf-8"))


def shipped_setting(model) -> SolverSetting | None:
    """The measured sweep setting of ``model``, or None (none measured, or the model changed
    since it was measured)."""
    entry = _settings().get(model.name)
    if entry is None or entry.get("fingerprint") != model_fingerprint(model):
        return None
    curve = entry.get("curve", {})
    note = (
        f"measured by `{entry.get('command', 'benchmarks/bench_sweep.py --curve')}`: worst "
        f"relative error over {', '.join(curve.get('metrics', []))} on "
        f"{curve.get('patients', '?')} virtual patients against {curve.get('reference', '?')}"
    )
    atol_states = {k: float(v) for k, v in entry.get("atol_states", {}).items()}
    return SolverSetting(entry["method"], float(entry["rtol"]), float(entry["atol"]), "shipped",
                         float(entry["worst_metric_error"]), note, atol_states)  # fmt: skip


def sweep_solver(model, table: dict | None) -> SolverSetting:
    """The setting of a sweep of ``model`` whose scenario has the ``[solver]`` table ``table``
    (None when it has none).

    Parameters
    ----------
    model : cartkin.models.base.Model
    table : dict or None
        The scenario's validated ``[solver]`` options (``method``, ``rtol``, ``atol``), with the
        scenario defaults filled in; None when the file has no ``[solver]`` table.

    Returns
    -------
    SolverSetting
    """
    shipped = shipped_setting(model)
    if table is not None:
        same = (shipped is not None and not shipped.atol_states
                and shipped.options() == {k: table[k] for k in FALLBACK})  # fmt: skip
        return SolverSetting(
            table["method"], float(table["rtol"]), float(table["atol"]), "scenario",
            shipped.worst_metric_error if same else None,
            "the scenario's [solver] table" + ("; it equals the shipped setting" if same else ""),
        )  # fmt: skip
    if shipped is not None:
        return shipped
    entry = _settings().get(model.name)
    why = (
        f"model {model.name!r} changed since its setting was measured (fingerprint "
        f"{model_fingerprint(model)}, measured {entry.get('fingerprint')})"
        if entry
        else f"no measured sweep setting for model {model.name!r}"
    )
    return SolverSetting(
        FALLBACK["method"], FALLBACK["rtol"], FALLBACK["atol"], "fallback", None,
        f"{why}: the single-simulation default is used; measure one with "
        "`python benchmarks/bench_sweep.py --curve --write-settings` or give a [solver] table",
    )  # fmt: skip
