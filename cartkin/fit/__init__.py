"""Estimation: likelihood (error models, M3 censoring, priors), ML/MAP fits, profiles.

Submodules: :mod:`cartkin.fit.likelihood` (closed-form per-record log-likelihoods),
:mod:`cartkin.fit.problem` (data + parameters -> batched objective),
:mod:`cartkin.fit.estimate` (multistart ML/MAP, Hessian SEs), :mod:`cartkin.fit.profile`
(profile-likelihood intervals), :mod:`cartkin.fit.targets` (summary targets),
:mod:`cartkin.fit.result` (``FitResult``), :mod:`cartkin.fit.spec` (the scenario's ``[fit]``
table), :mod:`cartkin.fit.cli` (``cartkin fit``), :mod:`cartkin.fit.plots` (figures).

``fit``, ``Problem``, ``FitResult`` and ``Target`` are imported on first use, so that importing
the likelihood (or building the command line) stays light.
"""

from cartkin.fit.likelihood import (
    ERROR_KINDS,
    ErrorModel,
    LogNormalPrior,
    loglik,
    loglik_total,
)

__all__ = [
    "ERROR_KINDS",
    "ErrorModel",
    "FitResult",
    "LogNormalPrior",
    "Problem",
    "Target",
    "fit",
    "loglik",
    "loglik_total",
]

_LAZY = {
    "fit": "cartkin.fit.estimate",
    "Problem": "cartkin.fit.problem",
    "FitResult": "cartkin.fit.result",
    "Target": "cartkin.fit.targets",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cartkin.fit' has no attribute {name!r}")
