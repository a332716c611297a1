"""cartkin: cellular kinetics of CAR-T cell therapy.

Public API only: everything a modeler needs is re-exported here.
"""

from cartkin import kidney, metrics, models
from cartkin.errors import CartkinError, DataError, ScenarioError, SolverError
from cartkin.ode import ODESolution, Status, solve_ode
from cartkin.parameters import Parameter, ParameterTable
from cartkin.patient import DialysisSchedule, Patient
from cartkin.regimen import CarTDose, Context, Lymphodepletion, Regimen, build_context
from cartkin.scenario import Scenario, load_scenario
from cartkin.simulate import SimulationResult, simulate, simulate_context

__version__ = "0.1.0"


def __getattr__(name):
    # cartkin.data imports pandas: loaded on first use, so `import cartkin` stays light
    if name == "data":
        import cartkin.data

        return cartkin.data
    raise AttributeError(f"module 'cartkin' has no attribute {name!r}")


__all__ = [
    "CarTDose",
    "CartkinError",
    "Context",
    "DataError",
    "DialysisSchedule",
    "Lymphodepletion",
    "ODESolution",
    "Parameter",
    "ParameterTable",
    "Patient",
    "Regimen",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "SolverError",
    "Status",
    "__version__",
    "build_context",
    "data",
    "kidney",
    "load_scenario",
    "metrics",
    "models",
    "simulate",
    "simulate_context",
    "solve_ode",
]
