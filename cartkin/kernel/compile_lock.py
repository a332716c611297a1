"""One compile per kernel across processes that share numba's on-disk cache.

Two processes (two pytest-xdist workers, two sweep workers) that start with an empty cache both
miss it and both compile the same kernel: twice the CPU, and numba's cache writes its index and
data files without a lock (numba issue 10128: a loader can pair one process's index with the
other's data). :func:`share_compiles` wraps the ``compile`` method of each cached dispatcher in a
module with an exclusive lock file beside numba's cache index. The second process waits for
the first, then finds the compiled kernel in the cache and loads it instead of compiling it.

The lock is ``fcntl.flock`` (POSIX); where ``fcntl`` is missing the dispatchers are left as
numba made them. Locks are taken in call order (a kernel before the right-hand side it calls),
and a thread that already holds a dispatcher's lock does not take it again.
"""

from __future__ import annotations

import contextlib
import os
import threading

from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import Dispatcher

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["share_compiles"]

_held = threading.local()  # lock paths this thread holds


def share_compiles(module) -> None:
    """Make every cached numba dispatcher among ``module``'s globals compile under a file lock.

    Parameters
    ----------
    module : module
        A module whose globals hold ``@njit(cache=True)`` functions (a generated kernel file).
    """
    if fcntl is None:
        return
    for value in list(vars(module).values()):
        if isinstance(value, Dispatcher):
            _wrap(value)


def _lock_path(dispatcher) -> str | None:
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    index = getattr(cache_file, "_index_path", None)
    return None if index is None else index + ".lock"


def _wrap(dispatcher) -> None:
    if "compile" in vars(dispatcher):  # wrapped already
        return
    path = _lock_path(dispatcher)
    if path is None:  # cache=False: nothing on disk to share
        return
    compile_ = dispatcher.compile

    def compile(sig):
        held = _held.__dict__.setdefault("paths", set())
        if path in held:
            return compile_(sig)
        # numba's own lock first (flock does not order the threads of one process), as numba
        # takes it before compiling any dispatcher a kernel calls
        with global_compiler_lock, _file_lock(path):
            held.add(path)
            try:
                return compile_(sig)
            finally:
                held.discard(path)

    dispatcher.compile = compile


@contextlib.contextmanager
def _file_lock(path):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # unwritable cache: numba compiles in memory, nothing to share
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
