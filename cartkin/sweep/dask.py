"""Chunks on a Dask cluster: a local one (``--workers N``) or a running one (``--scheduler``).

Workers receive the scenario text and a chunk's coordinates, parse the text once per process
(:func:`cartkin.sweep.runner._sweep_of` is cached), load the compiled kernel from the numba
cache once per process, and return the chunk's arrays; this process writes them to the store.
So the store needs no shared file system and a lost worker only costs its unfinished chunks
(Dask reschedules them; an interrupted sweep is resumed by rerunning it).

Threads: a local cluster gets ``N`` single-threaded worker processes and each chunk uses
``cores // N`` numba threads, so the cores are used once. On an external cluster each worker
runs one chunk per Dask thread with one numba thread (set ``cores`` = ``processes`` x threads
in dask-jobqueue; see ``examples/sweep_slurm.py``).
"""

from __future__ import annotations

import logging
import os
from collections import deque

__all__ = ["run_on_dask"]


def run_on_dask(sweep, store, todo, finish, engine, threads, workers, scheduler, compute_chunk):
    """Run ``todo`` chunks on Dask, calling ``finish(g, j, result)`` as each completes.

    Parameters
    ----------
    sweep : Sweep
    store : SweepStore
    todo : list of (int, int)
        ``(grid point, chunk)`` pairs still to compute.
    finish : callable
    engine : callable or None
    threads : int or None
        numba threads per chunk (see the module docstring for the defaults).
    workers : int or None
        Worker processes of a new local cluster.
    scheduler : str or None
        Address of a running scheduler (used when given).
    compute_chunk : callable
        :func:`cartkin.sweep.runner.compute_chunk` (passed in, so this module does not import
        the runner that imports it).
    """
    from dask.distributed import Client, LocalCluster, as_completed

    # Ctrl-C cancels the queued chunks; distributed logs every cancellation as a warning
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.ERROR)

    cluster = None
    if scheduler:
        client = Client(scheduler)
        threads = threads or 1
        slots = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()) or 1
    else:
        cores = os.cpu_count() or 1
        threads = threads or max(1, cores // workers)
        # numba reads NUMBA_NUM_THREADS at import: workers must allow the chosen count
        env = {"NUMBA_NUM_THREADS": str(max(threads, 1)), "OPENBLAS_NUM_THREADS": "1"}
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            env=env,
        )  # fmt: skip
        client = Client(cluster)
        slots = workers
    queue = deque(todo)
    in_flight = {}
    pending = as_completed()
    try:
        # keep about two chunks per slot queued: enough to hide latency, little to lose on Ctrl-C
        def submit():
            g, j = queue.popleft()
            start, stop = store.chunk_range(j)
            fut = client.submit(
                compute_chunk, sweep.text, sweep.source, g, start, stop, engine, threads,
                pure=False,
            )  # fmt: skip
            in_flight[fut.key] = (g, j)
            pending.add(fut)

        for _ in range(min(len(queue), 2 * slots)):
            submit()
        for fut in pending:
            g, j = in_flight.pop(fut.key)
            result = fut.result()
            fut.release()
            finish(g, j, result)
            if queue:
                submit()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        logger.setLevel(level)
