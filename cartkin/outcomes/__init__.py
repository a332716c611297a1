"""Clinical outcomes of lupus nephritis after CAR-T, derived from a model's outcome roles.

Built on the roles ``proteinuria`` (g/24h), ``kidney_function`` (residual, mL/min/1.73m2),
``complement`` (C3, g/L), ``anti_dsdna`` (IU/mL) and ``ln_activity`` (0-24), never on a model's
internals, so any registered model that plays these roles gets:

- :mod:`cartkin.outcomes.dialysis`: dialysis need (sessions per week, interval) from residual
  kidney function by a documented rule, and session days that follow a trajectory;
- :mod:`cartkin.outcomes.sledai`: SLEDAI-2K over time (modelled items from the outputs, the
  others as inputs, the anuric caveat);
- :mod:`cartkin.outcomes.response`: KDIGO 2024 partial and complete response times;
- :mod:`cartkin.outcomes.report`: settings, derived CSV columns, metric rows (through
  :func:`cartkin.metrics.compute`), a case's reported values and the re-simulation with a
  dialysis schedule that follows the function.
"""

from cartkin.outcomes import dialysis, response, sledai
from cartkin.outcomes.dialysis import (
    KDOQI_STEPWISE,
    DialysisRule,
    follow_kidney_function,
    schedule_sessions,
)
from cartkin.outcomes.report import (
    CASE_QUANTITIES,
    OUTCOME_ROLES,
    CaseReport,
    OutcomeSettings,
    apply_dialysis_rule,
    case_comparison,
    case_model_values,
    derived_columns,
    derived_series,
    describe,
    has_outcomes,
    outcome_metrics,
    settings_from_tables,
    sledai_of,
)
from cartkin.outcomes.sledai import SledaiScore, SledaiSettings

__all__ = [
    "CASE_QUANTITIES",
    "KDOQI_STEPWISE",
    "OUTCOME_ROLES",
    "CaseReport",
    "DialysisRule",
    "OutcomeSettings",
    "SledaiScore",
    "SledaiSettings",
    "apply_dialysis_rule",
    "case_comparison",
    "case_model_values",
    "derived_columns",
    "derived_series",
    "describe",
    "dialysis",
    "follow_kidney_function",
    "has_outcomes",
    "outcome_metrics",
    "response",
    "schedule_sessions",
    "settings_from_tables",
    "sledai",
    "sledai_of",
]
