"""Run a sweep: chunks of virtual patients -> engine -> store, locally or on a Dask cluster.

The unit of work is a chunk: one grid point and up to ``chunk_size`` consecutive patients.
Every chunk's numbers depend only on the scenario text, the grid point and the patient indices
(:mod:`cartkin.sweep.seeds`), so the store is bit-identical whatever the chunk size, the number
of threads or workers, the order in which chunks finish, or how many times the sweep was
interrupted and resumed. Only this process writes to the store; workers return arrays.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cartkin.errors import ScenarioError, SolverError
from cartkin.sweep.population import (
    ENGINE_ERROR,
    batch_engine,
    batch_trajectories,
    draw_population,
)
from cartkin.sweep.spec import Sweep, load_sweep, sweep_from_text
from cartkin.sweep.store import SweepStore

__all__ = ["DEFAULT_CHUNK_SIZE", "SweepInterrupted", "SweepRun", "compute_chunk", "run_sweep"]

#: Patients per chunk: large enough that one compiled call amortises its overhead (a chunk of
#: sle_cart takes about 0.9 s at its 11,000 patients/s on 2 cores), small enough that an
#: interrupted sweep loses little.
DEFAULT_CHUNK_SIZE = 10_000


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: the chunks finished so far are in the store."""


@dataclass(frozen=True)
class SweepRun:
    """What a call of :func:`run_sweep` did.

    Attributes
    ----------
    store : Path
    n_total : int
        Virtual patients in the sweep (all grid points).
    n_computed : int
        Patients computed by this call (the rest were already in the store).
    n_failed : int
        Patients with a failure status computed by this call.
    seconds : float
        Wall time of the computing part of this call.
    """

    store: Path
    n_total: int
    n_computed: int
    n_failed: int
    seconds: float

    @property
    def patients_per_s(self) -> float:
        return self.n_computed / self.seconds if self.seconds > 0 else float("nan")


@lru_cache(maxsize=4)
def _sweep_of(text: str, source: str) -> Sweep:
    """The Sweep of a scenario text, parsed once per process (workers get the text)."""
    return sweep_from_text(text, source)


def compute_chunk(
    text: str,
    source: str,
    point: int,
    start: int,
    stop: int,
    engine: Callable | None = None,
    threads: int | None = None,
) -> dict:
    """Metrics of patients ``start <= k < stop`` at grid point ``point`` (runs on workers).

    An exception in the engine is recorded as status ``ENGINE_ERROR`` for the chunk's
    patients (with the message under ``"error"``), never raised: one bad chunk does not stop
    a million-patient sweep. (:func:`run_sweep` stops, writing nothing for it, when the first
    chunk it computes fails this way: that is a systematic problem, not a bad patient.)

    Returns
    -------
    dict
        ``{metric: (n,) float64, "status": (n,) int, "error": str or None}``, plus
        ``"trajectories"`` (``{observable: (m, n_t)}``, ``"status"``) when the chunk holds some
        of the first ``sweep.trajectories`` patients.
    """
    sweep = _sweep_of(text, source)
    engine = engine or batch_engine
    if threads:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    n = stop - start
    try:
        pop = draw_population(sweep, point, start, stop)
        out = engine(pop, sweep.metrics, threads=threads)
        result = {m: np.asarray(out[m], dtype=np.float64) for m in sweep.metrics}
        result["status"] = np.asarray(out["status"], dtype=np.int64)
        result["error"] = None
    except Exception as exc:  # recorded per patient, counted in the report
        result = {m: np.full(n, np.nan) for m in sweep.metrics}
        result["status"] = np.full(n, ENGINE_ERROR, dtype=np.int64)
        result["error"] = f"{type(exc).__name__}: {exc}"
    if start < sweep.trajectories:
        result["trajectories"] = _trajectories(sweep, point, start, min(stop, sweep.trajectories),
                                               threads)  # fmt: skip
    return result


def _trajectories(sweep, point, start, stop, threads):
    t = sweep.trajectory_t_days
    try:
        return batch_trajectories(draw_population(sweep, point, start, stop), t, threads)
    except Exception:  # recorded like a failed metric chunk
        out = {o.name: np.full((stop - start, t.size), np.nan) for o in sweep.model.observables}
        out["status"] = np.full(stop - start, ENGINE_ERROR, dtype=np.int64)
        return out


def run_sweep(
    scenario,
    out,
    *,
    chunk_size: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    engine: Callable | None = None,
    progress: bool | None = None,
    log=None,
) -> SweepRun:
    """Run (or resume) a sweep into a Zarr store.

    Parameters
    ----------
    scenario : str, Path or Sweep
        Scenario file with a ``[sweep]`` table.
    out : str or Path
        The store (``.zarr`` directory). An existing store of the same scenario text is
        resumed (only missing chunks are computed); one of another scenario is refused.
    chunk_size : int, optional
        Patients per chunk for a new store (default ``DEFAULT_CHUNK_SIZE``).
    workers : int, optional
        Start a local Dask cluster with this many worker processes.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``).
    threads : int, optional
        numba threads per chunk (default: all cores locally; cores / workers on a local
        cluster; 1 on an external cluster, whose workers run one chunk per core).
    engine : callable, optional
        ``engine(population, names, threads=...) -> {name: (n,), "status": (n,)}``; default
        :func:`cartkin.sweep.population.batch_engine`. Must be picklable for Dask.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    log : file, optional
        Where to print notes (default stderr).

    Returns
    -------
    SweepRun

    Raises
    ------
    ScenarioError
        Bad scenario or ``[sweep]`` table, or a store of another scenario.
    SweepInterrupted
        On Ctrl-C, after the finished chunks are written.
    """
    log = log or sys.stderr
    sweep = scenario if isinstance(scenario, Sweep) else load_sweep(scenario)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ScenarioError(f"--chunk-size {chunk_size!r}: expected an integer >= 1")
    if workers is not None and workers < 1:
        raise ScenarioError(f"--workers {workers!r}: expected an integer >= 1")
    existed = Path(out).exists()
    store = SweepStore.create_or_resume(out, sweep, chunk_size or DEFAULT_CHUNK_SIZE)
    if existed and chunk_size is not None and chunk_size != store.chunk_size:
        print(
            f"cartkin sweep: resuming {out} with its chunk size {store.chunk_size} (not "
            f"{chunk_size}); the numbers do not depend on it",
            file=log,
        )
    done = store.done()
    todo = [(int(g), int(j)) for g, j in zip(*np.nonzero(~done), strict=True)]
    n_done = sum(store.chunk_range(int(j))[1] - store.chunk_range(int(j))[0]
                 for j in np.nonzero(done)[1])  # fmt: skip
    if n_done:
        print(f"cartkin sweep: resuming {out}: {n_done} of {sweep.n_total} patients already "
              "computed", file=log)  # fmt: skip
    show = sys.stderr.isatty() if progress is None else progress
    bar = _progress(sweep.n_total, n_done, show)
    counts = {"computed": 0, "failed": 0, "errors": 0}

    writer = _Writer(store)

    def finish(g, j, result):
        if result.get("error") and counts["computed"] == 0:
            # the first chunk of this call failed in the engine: a systematic problem (model,
            # engine, installation), not a bad patient; stop before recording it as data
            kind = ScenarioError if result["error"].startswith("ScenarioError") else SolverError
            raise kind(
                f"the engine failed on the first chunk (grid point {sweep.coords(g)}, patients "
                f"{store.chunk_range(j)[0]}-{store.chunk_range(j)[1] - 1}): {result['error']}; "
                "nothing was written for it"
            )
        writer.put(g, j, result)
        n = result["status"].size
        counts["computed"] += n
        counts["failed"] += int(np.count_nonzero(result["status"] != 0))
        if result.get("error"):
            counts["errors"] += 1
            if counts["errors"] <= 3:
                print(f"cartkin sweep: chunk {j} of grid point {sweep.coords(g)} failed: "
                      f"{result['error']}", file=log)  # fmt: skip
        bar.update(n)

    t0 = time.perf_counter()
    try:
        if workers is None and scheduler is None:
            _run_local(sweep, store, todo, finish, engine, threads)
        else:
            from cartkin.sweep.dask import run_on_dask

            run_on_dask(
                sweep, store, todo, finish, engine, threads, workers, scheduler, compute_chunk
            )
    except KeyboardInterrupt:
        bar.close()
        writer.close()  # flush the finished chunks
        raise SweepInterrupted(
            f"interrupted: {n_done + counts['computed']} of {sweep.n_total} patients are in "
            f"{out}; run the same command again to compute the rest"
        ) from None
    except BaseException:
        writer.close()
        raise
    writer.close()
    seconds = time.perf_counter() - t0
    bar.close()
    return SweepRun(Path(out), sweep.n_total, counts["computed"], counts["failed"], seconds)


def _run_local(sweep, store, todo, finish, engine, threads):
    threads = threads or os.cpu_count() or 1
    for g, j in todo:
        start, stop = store.chunk_range(j)
        finish(g, j, compute_chunk(sweep.text, sweep.source, g, start, stop, engine, threads))


class _Writer:
    """Writes finished chunks to the store in a background thread, in arrival order.

    Zarr costs a few milliseconds per array write (more on a loaded machine), which would
    otherwise add to every chunk's compute time; here it overlaps with the next chunk.
    :meth:`close` waits for every queued chunk and re-raises a write error.
    """

    def __init__(self, store):
        self.store = store
        self.queue = queue.Queue(maxsize=8)
        self.error = None
        self.thread = threading.Thread(target=self._loop, name="sweep-writer", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self.store.write(*item)
                except BaseException as exc:  # reported by put/close in the main thread
                    self.error = exc

    def put(self, g, j, result):
        if self.error is not None:
            raise self.error
        self.queue.put((g, j, result))

    def close(self):
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error


def _progress(total: int, initial: int, show: bool):
    import shutil

    from tqdm import tqdm

    # a terminal that reports no size (0 x 0, e.g. some ptys) would make tqdm draw nothing
    size = shutil.get_terminal_size((100, 20))
    columns, rows = size.columns or 100, size.lines or 20
    return tqdm(
        total=total, initial=initial, unit=" patients", unit_scale=True, disable=not show,
        ncols=min(columns, 120), nrows=max(rows, 2), smoothing=0.1, desc="sweep",
    )  # fmt: skip
