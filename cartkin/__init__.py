"""cartkin: cellular kinetics of CAR-T cell therapy.

Public API only: everything a modeler needs is re-exported here.
"""

from cartkin.errors import CartkinError, DataError, ScenarioError, SolverError

__version__ = "0.1.0"

__all__ = [
    "CartkinError",
    "DataError",
    "ScenarioError",
    "SolverError",
    "__version__",
]
