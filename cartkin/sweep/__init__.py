"""Sweeps: many virtual patients over a grid of scenario values, into a Zarr store.

``load_sweep`` reads a scenario file with a ``[sweep]`` table, ``run_sweep`` computes it
(locally or on Dask, resumable), ``summarize`` reports it and ``cartkin.sweep.plots`` draws it.
See the README section "Sweeps".
"""

from cartkin.sweep.report import Summary, summarize
from cartkin.sweep.runner import SweepInterrupted, SweepRun, run_sweep
from cartkin.sweep.spec import Axis, Sweep, load_sweep, sweep_from_text
from cartkin.sweep.store import open_store

__all__ = [
    "Axis",
    "Summary",
    "Sweep",
    "SweepInterrupted",
    "SweepRun",
    "load_sweep",
    "open_store",
    "run_sweep",
    "summarize",
    "sweep_from_text",
]
