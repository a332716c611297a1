"""cartkin: cellular kinetics of CAR-T cell therapy.

Public API only: everything a modeler needs is re-exported here.
"""

import gc as _gc

# The import (numba, numpy, the models) creates about 10^5 objects that live as long as the
# process; the cyclic garbage collector traversed them several times during it for nothing
# (the import took 15 ms less of about 0.2 s without it, measured 2026-11-29). It is paused for
# the import only and left as the caller had it.
_gc_was_enabled = _gc.isenabled()
_gc.disable()
try:
    from cartkin import metrics, models
    from cartkin.covariates import kidney
    from cartkin.covariates.patient import DialysisSchedule, Patient
    from cartkin.covariates.regimen import (
        CarTDose,
        Context,
        Lymphodepletion,
        Regimen,
        build_context,
    )
    from cartkin.errors import CartkinError, DataError, ScenarioError, SolverError
    from cartkin.ode import ODESolution, Status, solve_ode
    from cartkin.parameters import Parameter, ParameterTable
    from cartkin.scenario import Scenario, load_scenario
    from cartkin.simulate import SimulationResult, simulate, simulate_context
finally:
    if _gc_was_enabled:
        _gc.enable()
    del _gc_was_enabled, _gc

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
