"""Progress on stderr: the "compiling <model> (first run only)" line and progress bars.

A kernel is compiled by numba the first time one of its functions is called, and only when
numba's disk cache has no copy; :func:`watch_kernel` registers a kernel's compiled functions,
and a numba compile-event listener prints one line when such a compile starts and its time
when it ends (nothing is printed when the kernel comes from the cache). Bars
(:func:`bar`) are tqdm bars on stderr, drawn only when stderr is a terminal unless forced.
"""

from __future__ import annotations

import sys
import threading
import time

__all__ = ["bar", "watch_kernel"]

_lock = threading.Lock()
_watched: dict[int, str] = {}  # id(dispatcher) -> model label
_state = {"installed": False, "depth": 0, "start": 0.0, "label": ""}


def watch_kernel(kernel, label: str) -> None:
    """Announce compiles of the compiled functions of ``kernel`` (a module) as ``label``.

    Parameters
    ----------
    kernel : module
        A kernel module built by :mod:`cartkin.kernel.build`.
    label : str
        The model's name as the user knows it (for example ``sle_cart_v1``).
    """
    from numba.core.dispatcher import Dispatcher

    with _lock:
        for value in vars(kernel).values():
            if isinstance(value, Dispatcher):
                _watched[id(value)] = label
        if not _state["installed"]:
            from numba.core import event

            event.register("numba:compile", _Listener())
            _state["installed"] = True


def model_label(rhs) -> str:
    """A readable model name from a right-hand side: its module's last part (a user model
    file's stem, without the content hash)."""
    func = getattr(rhs, "py_func", rhs)
    module = getattr(func, "__module__", None) or "model"
    name = module.rsplit(".", 1)[-1]
    if name.startswith("_cartkin_user_"):  # cartkin.kernel.build.USER_PREFIX + stem + hash
        name = name[len("_cartkin_user_") :].rsplit("_", 1)[0]
    # generated model modules: "model_<stem>_<hash>" (cartkin.kernel.codegen)
    return name.removeprefix("model_")


def _make_listener():
    from numba.core import event

    class Listener(event.Listener):
        """Prints the first top-level compile of a watched kernel function and its time."""

        def on_start(self, ev):
            label = _watched.get(id(ev.data.get("dispatcher")))
            if label is None:
                return
            _state["depth"] += 1
            if _state["depth"] == 1:
                _state["start"], _state["label"] = time.perf_counter(), label
                print(f"compiling {label} (first run only) ...", file=sys.stderr, flush=True)

        def on_end(self, ev):
            if id(ev.data.get("dispatcher")) not in _watched:
                return
            _state["depth"] -= 1
            if _state["depth"] == 0:
                took = time.perf_counter() - _state["start"]
                print(f"compiled {_state['label']} in {took:.1f} s", file=sys.stderr, flush=True)

    return Listener


def _Listener():  # the class is built lazily: importing this module does not import numba
    return _make_listener()()


def bar(total: int, desc: str, *, unit: str = "it", force: bool | None = None):
    """A progress bar on stderr, for use as a context manager.

    On a terminal (or with ``force=True``) a tqdm bar; elsewhere (a log file, a pipe) one line
    when the stage starts and one with its time when it ends, so a log still shows where a run
    spends its time.

    Parameters
    ----------
    total : int
        Number of steps.
    desc : str
        Label shown before the bar.
    unit : str
        Unit of a step.
    force : bool, optional
        A tqdm bar even when stderr is not a terminal (True); default: on a terminal.
    """
    if force or (force is None and sys.stderr.isatty()):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                    dynamic_ncols=True)  # fmt: skip
    return _Lines(total, desc)


class _Lines:
    """The plain-text stand-in of a bar: a start line and an end line with the time."""

    def __init__(self, total, desc):
        self.total, self.desc, self.n = total, desc, 0

    def __enter__(self):
        self.t0 = time.perf_counter()
        print(f"{self.desc} ...", file=sys.stderr, flush=True)
        return self

    def update(self, n=1):
        self.n += n

    def __exit__(self, *exc):
        took = time.perf_counter() - self.t0
        print(f"{self.desc}: {self.n} of {self.total} done in {took:.1f} s", file=sys.stderr,
              flush=True)  # fmt: skip
        return False
