"""Sweeps: many virtual patients over a grid of scenario values, into a Zarr store.

``load_sweep`` reads a scenario file with a ``[sweep]`` table, ``run_sweep`` computes it
(locally or on Dask, resumable), ``summarize`` reports it and ``cartkin.sweep.plots`` draws it.
See the README section "Sweeps".

The names below are imported on first use, so that ``cartkin simulate`` does not pay for
loading the sweep machinery (zarr, scipy.special, the batch engine) at start-up.
"""

from importlib import import_module

_EXPORTS = {
    "Axis": "cartkin.sweep.axes",
    "Summary": "cartkin.sweep.report",
    "summarize": "cartkin.sweep.report",
    "SweepInterrupted": "cartkin.sweep.runner",
    "SweepRun": "cartkin.sweep.runner",
    "run_sweep": "cartkin.sweep.runner",
    "Sweep": "cartkin.sweep.spec",
    "load_sweep": "cartkin.sweep.spec",
    "sweep_from_text": "cartkin.sweep.spec",
    "open_store": "cartkin.sweep.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cartkin.sweep' has no attribute {name!r}")
