"""Run several optimizer starts side by side, their simulations merged into shared batch calls.

Each start runs its own sequential optimizer (scipy's ``least_squares`` or ``minimize``) in a
Python thread. Whenever a start needs simulations it hands its parameter rows to a
:class:`Lockstep` gatherer and waits; when every running start is waiting, the last one to
arrive runs one :meth:`Problem.simulate` call for all rows (one batch-engine call) and hands
each start its share. So k starts cost about as many batch calls as one start, each k times
larger: the Python and call overhead is paid once per round instead of once per start.

The batch engine gives every row the same numbers whatever else is in the call, so the result
equals running the starts one after another.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["run_lockstep"]


class Lockstep:
    """Gathers simulate() calls of the worker threads into one call (see module docstring)."""

    def __init__(self, simulate, n_workers: int):
        self._simulate = simulate
        self._cond = threading.Condition()
        self._active = n_workers
        self._pending: dict[int, np.ndarray] = {}
        self._results: dict[int, object] = {}
        self._round = 0

    def simulate(self, worker: int, x):
        x = np.atleast_2d(x)
        with self._cond:
            self._pending[worker] = x
            if len(self._pending) >= self._active:
                self._run_locked()
            while worker not in self._results:
                self._cond.wait()
            out = self._results.pop(worker)
        if isinstance(out, BaseException):
            raise out
        return out

    def done(self):
        with self._cond:
            self._active -= 1
            if self._pending and len(self._pending) >= self._active:
                self._run_locked()

    def _run_locked(self):
        workers = list(self._pending)
        rows = [self._pending[w] for w in workers]
        self._pending.clear()
        try:
            curves = self._simulate(np.vstack(rows))
            start = 0
            for w, r in zip(workers, rows, strict=True):
                stop = start + r.shape[0]
                self._results[w] = {k: v[start:stop] for k, v in curves.items()}
                start = stop
        except BaseException as exc:  # hand the error to every waiting start
            for w in workers:
                self._results[w] = exc
        self._cond.notify_all()


def run_lockstep(problem, tasks):
    """Run ``tasks`` (callables taking no argument) in lockstep; return their results in order.

    While they run, ``problem.simulate`` called from a task's thread goes through the gatherer.
    """
    if len(tasks) <= 1:
        return [task() for task in tasks]
    gather = Lockstep(problem._simulate_direct, len(tasks))
    local = threading.local()
    results: list = [None] * len(tasks)

    def hook(x):
        worker = getattr(local, "worker", None)
        if worker is None:
            return problem._simulate_direct(x)
        return gather.simulate(worker, x)

    def work(k):
        local.worker = k
        try:
            results[k] = tasks[k]()
        except BaseException as exc:
            results[k] = exc
        finally:
            local.worker = None
            gather.done()

    problem._simulate_hook = hook
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(len(tasks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        problem._simulate_hook = None
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results
