"""Estimation: likelihood (error models, M3 censoring, priors), ML/MAP fits, profiles.

Submodules: :mod:`cartkin.fit.likelihood` (closed-form per-record log-likelihoods),
:mod:`cartkin.fit.problem` (data + parameters -> batched objective),
:mod:`cartkin.fit.estimate` (multistart ML/MAP, Hessian SEs), :mod:`cartkin.fit.profile`
(profile-likelihood intervals), :mod:`cartkin.fit.targets` (summary targets),
:mod:`cartkin.fit.result` (``FitResult``), :mod:`cartkin.fit.spec` (the scenario's ``[fit]``
table), :mod:`cartkin.fit.cli` (``cartkin fit``), :mod:`cartkin.fit.plots` (figures),
:mod:`cartkin.fit.population` (population fits by SAEM, ``fit_population``).

Every name here is imported on first use, so that building the command line (which imports
``cartkin.fit.cli``) stays light: the likelihood needs ``scipy.special``, which ``cartkin
simulate`` does not.
"""

__all__ = [
    "ERROR_KINDS",
    "ErrorModel",
    "FitResult",
    "LogNormalPrior",
    "PopulationFitResult",
    "Problem",
    "Target",
    "fit",
    "fit_population",
    "loglik",
    "loglik_total",
]

_LAZY = {
    "ERROR_KINDS": "cartkin.fit.likelihood",
    "ErrorModel": "cartkin.fit.likelihood",
    "LogNormalPrior": "cartkin.fit.likelihood",
    "loglik": "cartkin.fit.likelihood",
    "loglik_total": "cartkin.fit.likelihood",
    "fit": "cartkin.fit.estimate",
    "fit_population": "cartkin.fit.population",
    "PopulationFitResult": "cartkin.fit.population",
    "Problem": "cartkin.fit.problem",
    "FitResult": "cartkin.fit.result",
    "Target": "cartkin.fit.targets",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cartkin.fit' has no attribute {name!r}")
