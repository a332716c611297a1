"""Model registry: built-in models by name, and a way to add your own.

Built-in models: ``sle_cart`` (mechanistic, SLE, version 3: levels, dose response and
persistence calibrated to data, fludarabine killing the product, lupus kidney from the
chronicity index; docs/models/sle_cart_v3_science.md), ``sle_cart_v2`` and ``sle_cart_v1``
(earlier versions, kept for comparison), ``stein2019`` (empirical tisagenlecleucel kinetics) and ``cart4`` (the 4-state
benchmark model). Each is a :class:`Description` (``cartkin/models/<name>.py``, see
:mod:`cartkin.models.description` for the format); :func:`get` builds it on first use
(generated, cached compiled code). Fit, sweep, plot and the CLI only use the :class:`Model`
interface, so a registered user model works everywhere a built-in one does.

Adding a model
--------------
Write a :class:`Description` (states, parameter table, equations by name, observables, roles,
dosing inputs; ``examples/my_model.py`` is a 3-state example) and either
``cartkin.models.register(description)`` or keep it in a file as ``MODEL = Description(...)``
and load it by path: ``cartkin.models.load("path/to/my_model.py")``, or
``model = "path/to/my_model.py"`` in a scenario. Its compiled code is generated and cached on
disk keyed by content: the first process compiles, later ones load it in a fraction of a second,
and an edited file is compiled afresh.

A model that cannot be written symbolically can still be a hand-written :class:`Model` with a
numba ``rhs(t, y, p, dydt)`` (optionally ``jac`` and ``observe_roles``) in a file defining
``MODEL = Model(...)``. ``load_module(path)`` returns the module itself, for a file that only
defines an ``rhs`` for :func:`cartkin.solve_ode`.
"""

from __future__ import annotations

from pathlib import Path

from cartkin.errors import ScenarioError
from cartkin.models.assemble import build
from cartkin.models.base import ROLES, Individual, Model, Observable, State
from cartkin.models.description import (
    Bolus,
    Description,
    DescriptionError,
    Infusion,
    Switch,
)
from cartkin.parameters import suggest

__all__ = [
    "ROLES",
    "Bolus",
    "Description",
    "DescriptionError",
    "Individual",
    "Infusion",
    "Model",
    "Observable",
    "State",
    "Switch",
    "available",
    "build",
    "get",
    "load",
    "load_module",
    "register",
    "unregister",
]

_REGISTRY: dict[str, Model | Description] = {}
_BUILTIN = ("sle_cart", "stein2019", "sle_cart_v1", "cart4", "sle_cart_v2")


def register(model: Model | Description, *, replace: bool = False) -> Model:
    """Make ``model`` available by name to :func:`get`, simulate, fit, sweep and the CLI.

    Parameters
    ----------
    model : Model or Description
        A description is built first (:func:`build`).
    replace : bool
        Allow replacing a registered model of the same name (never a built-in one).

    Returns
    -------
    Model
        The model, so ``MODEL = register(Model(...))`` reads naturally.
    """
    if isinstance(model, Description):
        model = build(model)
    if not isinstance(model, Model):
        raise TypeError(f"register() takes a cartkin.models.Model, got {type(model).__name__}")
    if model.name in _BUILTIN and _REGISTRY.get(model.name) is not None:
        if get(model.name) is not model:
            raise ValueError(f"{model.name!r} is a built-in model and cannot be replaced")
    elif model.name in _REGISTRY and not replace:
        raise ValueError(
            f"A model named {model.name!r} is already registered; pass replace=True to replace it"
        )
    _REGISTRY[model.name] = model
    return model


def unregister(name: str) -> None:
    """Remove a user model from the registry (built-in models stay)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in model and cannot be removed")
    _REGISTRY.pop(name, None)


def available() -> list[str]:
    """Names of the registered models, built-in first."""
    return list(_REGISTRY)


def get(name: str | Model) -> Model:
    """The model called ``name`` (a Model passes through).

    Raises
    ------
    ScenarioError
        (a ValueError) If no model has that name, with the closest match and the list of names.
    """
    if isinstance(name, Model):
        return name
    if not isinstance(name, str):
        raise TypeError(f"model must be a model name or a Model, got {name!r}")
    try:
        model = _REGISTRY[name]
    except KeyError:
        raise ScenarioError(
            f"Unknown model {name!r}.{suggest(name, _REGISTRY)} "
            f"Available models: {', '.join(_REGISTRY)}"
        ) from None
    if isinstance(model, Description):  # built on first use: code generated and cached
        model = _REGISTRY[name] = build(model)
    return model


def load_module(path):
    """Import a Python file by path with an on-disk kernel cache keyed by its content.

    Parameters
    ----------
    path : str or Path
        A ``.py`` file; right-hand sides defined at its top level get cached kernels.

    Returns
    -------
    module

    Raises
    ------
    ScenarioError
        The file does not exist, is not a ``.py`` file, or fails to import (the message names
        the file and the error).
    """
    from pathlib import Path

    from cartkin.kernel import build

    path = Path(path)
    if path.suffix != ".py":
        raise ScenarioError(f"{path}: expected a Python model file ending in .py")
    if not path.is_file():
        raise ScenarioError(f"{path}: no such model file")
    try:
        return build.load_module(path)
    except ScenarioError:
        raise
    except Exception as exc:  # any error in user code: one line naming the file
        first = " ".join(str(exc).split())[:300]
        raise ScenarioError(
            f"{path}: importing the model file failed: {type(exc).__name__}: {first}"
        ) from exc


def load(path: str | Path) -> Model:
    """The ``MODEL`` defined by a Python file, with kernels cached on disk by file content.

    Parameters
    ----------
    path : str or Path
        A ``.py`` file defining ``MODEL = cartkin.models.Description(...)`` (or ``Model``),
        or an SBML Level 3 file (``.xml``, ``.sbml``; see :mod:`cartkin.models.sbml.load` and
        docs/sbml.md).

    Returns
    -------
    Model
        Not registered: pass it to :func:`cartkin.simulate` directly, or register it.

    Raises
    ------
    ScenarioError
        As :func:`load_module`, or the file defines no ``MODEL``.
    """
    from pathlib import Path

    if Path(path).suffix.lower() in (".xml", ".sbml"):
        from cartkin.models.sbml.load import load_sbml

        return load_sbml(path)
    module = load_module(path)
    model = getattr(module, "MODEL", None)
    if isinstance(model, Description):
        model = build(model)
        module.MODEL = model  # built once per process
    if not isinstance(model, Model):
        raise ScenarioError(
            f"{path}: expected the file to define MODEL = cartkin.models.Description(...) or "
            f"cartkin.models.Model(...); got "
            f"{type(model).__name__ if model is not None else 'no MODEL'}"
        )
    return model


def _register_builtins() -> None:
    from cartkin.models import cart4, sle_cart, sle_cart_v1, sle_cart_v2, stein2019

    for module in (sle_cart, stein2019, sle_cart_v1, cart4, sle_cart_v2):
        _REGISTRY[module.DESCRIPTION.name] = module.DESCRIPTION


_register_builtins()
