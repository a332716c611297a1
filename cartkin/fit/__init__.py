"""Estimation: likelihood (error models, M3 censoring, priors), ML/MAP fits, profiles.

Submodules: :mod:`cartkin.fit.likelihood` (closed-form per-record log-likelihoods),
:mod:`cartkin.fit.estimate` (multistart ML/MAP, uncertainty), :mod:`cartkin.fit.targets`
(summary targets), :mod:`cartkin.fit.result` (``FitResult``), :mod:`cartkin.fit.cli`.
"""

from cartkin.fit.likelihood import (
    ERROR_KINDS,
    ErrorModel,
    LogNormalPrior,
    loglik,
    loglik_total,
)

__all__ = ["ERROR_KINDS", "ErrorModel", "LogNormalPrior", "loglik", "loglik_total"]
