"""Instantiate the integrator kernel (the parts in `cartkin/kernel/parts/`) for one right-hand side.

numba cannot cache a function that receives another compiled function as an argument, and it
checks a cached function only against its own source file. So the kernel source (the part
files of :mod:`cartkin.kernel.parts` joined in order: :func:`template_text`) refers to ``rhs``,
``jac``, ``HAS_JAC`` and ``CACHE`` as module globals, and this module gives it those globals:

(a) generated models (:mod:`cartkin.kernel.codegen` writes a model's ``rhs``, ``jac``,
    ``observe_roles`` and ``JAC_PATTERN`` to ``<cache dir>/model_*.py`` and imports it under a
    name holding a SHA-256 of its text; every built-in model is one) and hand-written ones
    (``rhs`` defined at the top of a module under ``cartkin.models``), whose file on disk still
    holds the code that was imported: a generated file ``<cache dir>/kernel_*.py``
    = a header importing that ``rhs`` + the kernel source, with ``CACHE = True``. Its name holds
    a SHA-256 of its own text and of the model file, so an edited model or kernel part gets a new
    file (never a stale kernel) and a fresh process loads the compiled kernel from numba's cache.
    The cache directory is ``$CARTKIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/cartkin``, else
    ``~/.cache/cartkin``. Files are written atomically (temporary file + ``os.link``, which
    keeps a file another process wrote first), and processes sharing the cache compile each
    kernel once (:mod:`cartkin.kernel.compile_lock`).
(b) any other ``rhs``: the part files executed in order in one fresh module namespace with
    ``CACHE = False``, compiled once per process and kept per ``(rhs, jac)`` object.

(c) a user model file loaded by path (:func:`load_module`, used by ``cartkin.models.load`` and
    ``model = "my_model.py"`` in a scenario) takes path (a): the file is imported under a name
    that holds a SHA-256 of its content, and the kernel file's hash covers the content too, plus
    the source files of any compiled helper the ``rhs`` calls from other files (so an edited
    helper is never stale either). A second process loads the compiled kernel from the cache.

Each file-backed kernel is built for one method family (``"erk"``: tsit5/dopri5, ``"ros"``:
rodas5, ``"all"``: auto and the batch kernels), so a call compiles only the integrator it uses:
the kernel's ``WITH_ERK`` / ``WITH_ROS`` constants let numba prune the other family. An
in-memory kernel (path b) is compiled once with every method, since nothing is kept for the
next process.

A built-in model's ``rhs`` must be self-contained (use only its arguments, ``math`` and
``numpy``): a helper it imports from another file is not part of the hash.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import types
from pathlib import Path

import numpy as np
from numba import njit
from numba.core.dispatcher import Dispatcher

from cartkin import progress
from cartkin.kernel.compile_lock import share_compiles
from cartkin.kernel.parts import PARTS

#: Directory of the kernel part files (:data:`cartkin.kernel.parts.PARTS`).
PARTS_DIR = Path(__file__).with_name("parts")
BUILTIN_PREFIX = "cartkin.models."
#: Prefix of the module names of user model files loaded by :func:`load_module`.
USER_PREFIX = "_cartkin_user_"
#: Method families a kernel is built for, and the kernel constants that select them.
#: ``"all"`` (auto and the batch kernels) also compiles the in-kernel metrics (``WITH_METRICS``).
FAMILIES = {"erk": (True, False), "ros": (False, True), "all": (True, True)}

_kernels: dict = {}
_lock = threading.Lock()
_template_cache: list[str] = []


@njit
def _no_jacobian(t, y, p, J):  # placeholder so the kernel always type-checks
    pass


@njit
def _no_solve(M, x):  # placeholder: a kernel without a generated sparse solve never calls it
    pass


@njit
def _no_factor(M):  # placeholder: a kernel without a generated sparse LU never calls it
    return 1


@njit
def _no_roles(y, p, out):  # placeholder: a model without observe_roles has no in-kernel metrics
    for k in range(out.size):
        out[k] = np.nan


def part_paths() -> list[Path]:
    """The kernel part files, in the order they are joined (:data:`cartkin.kernel.parts.PARTS`)."""
    return [PARTS_DIR / f"{name}.py" for name in PARTS]


def template_text() -> str:
    """The kernel source: the part files joined in order, each after a comment naming it (read
    once per process)."""
    if not _template_cache:
        texts = [
            f"# ---- part: cartkin/kernel/parts/{path.name}\n" + path.read_text(encoding="utf-8")
            for path in part_paths()
        ]
        _template_cache.append("\n\n".join(texts))
    return _template_cache[0]


def cache_dir() -> Path:
    """Directory of generated kernel files: $CARTKIN_CACHE_DIR, $XDG_CACHE_HOME/cartkin, ~/.cache/cartkin."""
    env = os.environ.get("CARTKIN_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "cartkin"


def get_kernel(rhs, jac=None, roles=None, family="all"):
    """Kernel module for ``(rhs, jac, roles)``: exposes ``_solve``, the batch kernels and the
    kernel's constants.

    ``family`` ("erk", "ros" or "all") is the set of methods the kernel can run; the batch
    kernels need "all".

    ``roles`` is the model's compiled ``observe_roles(y, p, out)`` (in-kernel metrics). For a
    built-in model it defaults to the ``observe_roles`` defined in the rhs's module, so
    ``solve_ode`` and the batch engine share one generated kernel file. Built once per process
    per triple; see the module docstring for which path (file-backed and cached, or in-memory)
    a right-hand side takes.
    """
    if roles is None:
        roles = _module_roles(rhs)
    key = (rhs, jac, roles, family)
    kernel = _kernels.get(key)
    if kernel is not None:
        return kernel
    with _lock:
        kernel = _kernels.get(key)
        if kernel is None:
            kernel = _build(rhs, jac, roles, family)
            _kernels[key] = kernel
            progress.watch_kernel(kernel, progress.model_label(rhs))  # "compiling ..." line
            if kernel.WITH_ERK and kernel.WITH_ROS:  # an in-memory kernel serves every method
                for other in FAMILIES:
                    _kernels.setdefault((rhs, jac, roles, other), kernel)
    return kernel


def kernel_path(rhs, jac=None, roles=None, family="all") -> Path | None:
    """Generated file used for ``(rhs, jac, roles)``, or None when it takes the in-memory path."""
    if roles is None:
        roles = _module_roles(rhs)
    info = _builtin_info(rhs, jac, roles)
    if info is None:
        return None
    text, _ = _generated_text(*info, family=family)
    return cache_dir() / _file_name(info[0], info[1], text, info[-1], family)


def load_module(path) -> types.ModuleType:
    """Import a user model file by path, under a name keyed by a SHA-256 of its content.

    The same content gives the same module name in every process, so the kernels of its ``rhs``
    are cached on disk like a built-in model's; an edited file gets a new name (never stale).

    Parameters
    ----------
    path : str or Path
        A Python file.

    Returns
    -------
    module
    """
    path = Path(path).resolve()
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:24]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"{USER_PREFIX}{stem}_{digest}"
    return import_file(name, path)


def import_file(name, path):
    """Import ``path`` as module ``name`` once per process (removed again if it fails to run)."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _module_roles(rhs):
    """The ``observe_roles`` defined beside a built-in or model-file ``rhs``, or None."""
    func = _py_func(rhs)
    module_name = getattr(func, "__module__", None) or ""
    if not module_name.startswith((BUILTIN_PREFIX, USER_PREFIX)):
        return None
    module = sys.modules.get(module_name)
    roles = getattr(module, "observe_roles", None)
    return roles if hasattr(roles, "py_func") else None


# ---------------------------------------------------------------------------------------------
def _build(rhs, jac, roles, family):
    info = _builtin_info(rhs, jac, roles)
    if info is not None:
        try:
            return _load_generated(*info, family=family)
        except OSError:
            pass  # unwritable cache directory: compile in memory instead
    # not cached on disk: compile every method once, so a second method costs nothing more
    return _exec_template(rhs, jac, roles, "all")


def _py_func(f):
    return getattr(f, "py_func", f)


def _builtin_info(rhs, jac, roles=None):
    """(module name, rhs name, jac name or None, roles name or None, module file, module source)
    or None."""
    func = _py_func(rhs)
    module_name = getattr(func, "__module__", None) or ""
    user = module_name.startswith(USER_PREFIX)
    if not (module_name.startswith(BUILTIN_PREFIX) or user):
        return None
    module = sys.modules.get(module_name)
    name = getattr(func, "__name__", "")
    if module is None or getattr(module, name, None) is not rhs:
        return None
    extra_names = []
    for f in (jac, roles):
        if f is None:
            extra_names.append(None)
            continue
        ffunc = _py_func(f)
        f_name = getattr(ffunc, "__name__", "")
        if (
            getattr(ffunc, "__module__", None) != module_name
            or getattr(module, f_name, None) is not f
        ):
            return None
        extra_names.append(f_name)
    path = getattr(module, "__file__", None)
    if not path:
        return None
    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None
    # The file must still hold the code that was imported: otherwise the cached kernel would
    # be compiled from the old code but filed under the new text's hash.
    for f in (rhs, jac, roles):
        if f is not None and not _same_code(_py_func(f), source, path):
            return None
    if user:
        for f in (rhs, jac, roles):
            if f is not None:
                source += _helper_sources(_py_func(f), path)
    return module_name, name, extra_names[0], extra_names[1], path, source


def _helper_sources(func, own_path) -> str:
    """Source of every file (other than ``own_path``) holding a compiled function ``func`` calls.

    Followed through helpers of helpers; a helper reached as ``module.helper`` counts too.
    """
    seen_files = {str(own_path)}
    seen_funcs = set()
    texts = []
    stack = [func]
    while stack:
        f = stack.pop()
        if id(f) in seen_funcs:
            continue
        seen_funcs.add(id(f))
        code = getattr(f, "__code__", None)
        if code is None:
            continue
        names = set()
        codes = [code]
        while codes:
            c = codes.pop()
            names.update(c.co_names)
            codes.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        g = getattr(f, "__globals__", {})
        candidates = [g.get(n) for n in names]
        for mod in [c for c in candidates if isinstance(c, types.ModuleType)]:
            candidates += [getattr(mod, n, None) for n in names]
        for c in candidates:
            if isinstance(c, Dispatcher):
                py = c.py_func
                file = getattr(py.__code__, "co_filename", "")
                if file and file not in seen_files and os.path.isfile(file):
                    seen_files.add(file)
                    texts.append("\0" + Path(file).read_text(encoding="utf-8"))
                stack.append(py)
    return "".join(texts)


def _same_code(func, source, path) -> bool:
    try:
        module_code = compile(source, path, "exec")
    except SyntaxError:
        return False
    target = func.__code__
    stack = [module_code]
    while stack:
        code = stack.pop()
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                if (
                    const.co_name == target.co_name
                    and const.co_code == target.co_code
                    and const.co_names == target.co_names
                    and _plain_consts(const) == _plain_consts(target)
                ):
                    return True
                stack.append(const)
    return False


def _plain_consts(code):
    return tuple(c for c in code.co_consts if not isinstance(c, types.CodeType))


def _generated_text(module_name, name, jac_name, roles_name, path, source, family="all"):
    with_erk, with_ros = FAMILIES[family]
    lines = [
        "# Generated by cartkin.kernel.build from cartkin/kernel/parts/*.py: do not edit.",
        f"# Integrator kernel for {module_name}.{name} ({path}).",
        "from numba import njit",
        f"from {module_name} import {name} as rhs",
        "CACHE = True",
        f"WITH_ERK = {with_erk}",
        f"WITH_ROS = {with_ros}",
        f"WITH_METRICS = {family == 'all'}",
    ]
    if jac_name is None:
        lines += [
            "HAS_JAC = False",
            "",
            "",
            "@njit(cache=CACHE)",
            "def jac(t, y, p, J):",
            "    pass",
            "",
            "",
        ]
    elif _exact_jacobian(sys.modules.get(module_name), jac_name):
        # the generated jac's pattern entries only: the kernel's J starts zeroed
        lines += [f"from {module_name} import jac_nonzeros as jac", "HAS_JAC = True"]
    else:
        lines += [f"from {module_name} import {jac_name} as jac", "HAS_JAC = True"]
    if roles_name is None:
        lines += [
            "HAS_ROLES = False",
            "",
            "",
            "@njit(cache=CACHE)",
            "def observe_roles(y, p, out):",
            "    for k in range(out.size):",
            "        out[k] = float('nan')",
        ]
    else:
        lines += [f"from {module_name} import {roles_name} as observe_roles", "HAS_ROLES = True"]
    module = sys.modules.get(module_name)
    pattern = _module_pattern(module)
    lines += _plan_lines(pattern, _exact_jacobian(module, jac_name))
    lines += _role_lines(_module_role_states(module) if roles_name is not None else None)
    lines += [f"AUTONOMOUS = {getattr(module, 'AUTONOMOUS', False) is True}"]
    lines += _solve_lines(pattern)
    header = "\n".join(lines) + "\n\n"
    return header + template_text(), source


def _file_name(module_name, name, text, source, family="all") -> str:
    digest = hashlib.sha256()
    digest.update(text.encode())
    digest.update(b"\0")
    digest.update(source.encode())
    return f"kernel_{module_name.replace('.', '_')}_{name}_{family}_{digest.hexdigest()[:24]}.py"


def _load_generated(module_name, name, jac_name, roles_name, path, source, family="all"):
    text, _ = _generated_text(module_name, name, jac_name, roles_name, path, source, family)
    directory = cache_dir()
    file_name = _file_name(module_name, name, text, source, family)
    target = directory / file_name
    if not target.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=".py")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            # link, not replace: a file another process put there first stays (its mtime keys
            # numba's cache; replacing it would make that process's compiled kernel stale)
            try:
                os.link(tmp, target)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not target.exists():
                    os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    mod_name = "_cartkin_" + file_name[:-3]
    module = import_file(mod_name, target)
    share_compiles(module)
    return module


def lu_plan(pattern):
    """Static plan of a sparse LU factorization for a Jacobian sparsity ``pattern``.

    ``pattern`` is one string per row of df/dy, ``"x"`` where an entry may be nonzero and
    ``"."`` where it is zero for every state and parameter value (a model module's
    ``JAC_PATTERN``). The Rosenbrock matrix ``I/(h gamma) - J`` has the same pattern plus its
    diagonal. Pivots are taken on the diagonal in a Markowitz order (fewest
    (row count - 1) x (column count - 1) products first, ties by index), and the fill-in of that
    order is added, as in the symbolic phase of a sparse direct solver; the kernel then factors
    and solves with loops over these index lists only (``_sp_lu_factor`` / ``_sp_lu_solve`` in
    the ``linalg`` part), and falls back to its dense partially pivoted LU for a step whose Jacobian
    has an entry outside the pattern or whose diagonal pivot would be too small.

    Returns
    -------
    dict of str to list of int
        ``SP_ORDER`` (pivot order), ``SP_LPTR``/``SP_LROW`` (rows below each pivot, per step),
        ``SP_UPTR``/``SP_UCOL`` (columns right of each pivot, per step), ``SP_MI``/``SP_MJ``
        (entries of the filled pattern, the ones the kernel writes), ``SP_OI``/``SP_OJ``
        (entries outside the declared pattern, which a Jacobian must leave at zero).
    """
    n = len(pattern)
    rows = [str(r) for r in pattern]
    for i, r in enumerate(rows):
        if len(r) != n or set(r) - {"x", "."}:
            raise ValueError(
                f"JAC_PATTERN row {i} = {r!r}: expected {n} characters, each 'x' or '.'"
            )
    nz = {(i, j) for i in range(n) for j in range(n) if rows[i][j] == "x" or i == j}
    remaining = set(range(n))
    order = []
    while remaining:

        def cost(k):
            r = sum(1 for j in remaining if (k, j) in nz)
            c = sum(1 for i in remaining if (i, k) in nz)
            return (r - 1) * (c - 1), k

        k = min(remaining, key=cost)
        order.append(k)
        remaining.remove(k)
        below = [i for i in remaining if (i, k) in nz]
        right = [j for j in remaining if (k, j) in nz]
        nz.update((i, j) for i in below for j in right)
    rank = {k: s for s, k in enumerate(order)}
    plan = {"SP_ORDER": order, "SP_LPTR": [0], "SP_LROW": [], "SP_UPTR": [0], "SP_UCOL": []}
    for k in order:
        later = sorted((i for i in range(n) if rank[i] > rank[k]), key=rank.get)
        plan["SP_LROW"] += [i for i in later if (i, k) in nz]
        plan["SP_UCOL"] += [j for j in later if (k, j) in nz]
        plan["SP_LPTR"].append(len(plan["SP_LROW"]))
        plan["SP_UPTR"].append(len(plan["SP_UCOL"]))
    filled = sorted(nz)
    plan["SP_MI"] = [i for i, _ in filled]
    plan["SP_MJ"] = [j for _, j in filled]
    outside = [(i, j) for i in range(n) for j in range(n) if rows[i][j] == "." and i != j]
    plan["SP_OI"] = [i for i, _ in outside]
    plan["SP_OJ"] = [j for _, j in outside]
    return plan


_PLAN_KEYS = ("SP_ORDER", "SP_LPTR", "SP_LROW", "SP_UPTR", "SP_UCOL", "SP_MI", "SP_MJ", "SP_OI",
              "SP_OJ")  # fmt: skip


def _module_pattern(module):
    """The module's ``JAC_PATTERN`` as a tuple of str (None without one), checked against its
    ``MODEL``'s number of states where the module has a MODEL."""
    pattern = getattr(module, "JAC_PATTERN", None)
    if pattern is None:
        return None
    where = getattr(module, "__file__", None) or module.__name__
    if isinstance(pattern, str) or not all(isinstance(r, str) for r in pattern):
        raise ValueError(f"{where}: JAC_PATTERN must be a sequence of strings, one per state")
    pattern = tuple(pattern)
    model = getattr(module, "MODEL", None)
    n_states = len(model.state_names) if hasattr(model, "state_names") else None
    if n_states is not None and len(pattern) != n_states:
        raise ValueError(
            f"{where}: JAC_PATTERN has {len(pattern)} rows; expected {n_states}, one per state "
            f"of MODEL"
        )
    try:
        _plan_lines(pattern)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return pattern


@functools.lru_cache(maxsize=8)
def _plan_lines(pattern: tuple[str, ...] | None, exact: bool = False) -> tuple[str, ...]:
    """Header lines defining SPARSE_LU, SP_CHECK and the plan arrays (literal, so the file hash
    covers them); placeholders when the model declares no pattern (the kernel never reads them).

    ``exact``: the kernel's Jacobian is the model's ``jac`` and the module promises
    (``JAC_PATTERN_EXACT = True``, written only by :mod:`cartkin.kernel.codegen`) that it is
    zero outside ``JAC_PATTERN``; then ``SP_CHECK = False`` and the kernel skips the check of
    every Jacobian against the pattern. A hand-written ``jac`` or finite differences keep it.
    """
    if pattern is None:
        plan = {key: [0] for key in _PLAN_KEYS}
        lines = ["SPARSE_LU = False"]
    else:
        plan = _plan_of(pattern)
        lines = ["SPARSE_LU = True"]
    lines += [f"SP_CHECK = {not (exact and pattern is not None)}"]
    n = len(plan["SP_ORDER"])
    lines += ["import numpy as _np"]
    lines += [f"{k} = _np.array({plan[k]!r}, dtype=_np.int64)" for k in _PLAN_KEYS]
    # 1.0 outside the declared pattern: a Jacobian is checked in one contiguous (vectorized) pass
    lines += [f"SP_OUTMASK = _np.zeros(({n}, {n}))", "SP_OUTMASK[SP_OI, SP_OJ] = 1.0"]
    return tuple(lines)


@functools.lru_cache(maxsize=8)
def _plan_of(pattern: tuple[str, ...]) -> dict:
    """:func:`lu_plan` of a pattern, once per process (both header writers read it; not to be
    modified)."""
    return lu_plan(pattern)


@functools.lru_cache(maxsize=8)
def _solve_lines(pattern: tuple[str, ...] | None) -> tuple[str, ...]:
    """Header lines SP_UNROLLED, ``_sp_lu_solve_gen(M, x)`` and ``_sp_lu_factor_gen(M)``: the
    sparse solve and factorization of the linalg part (``_sp_lu_solve``, ``_sp_lu_factor``)
    written out as straight-line code for the plan of ``pattern``, with the same operations,
    checks and return codes in the same order (no loops over the plan's index arrays).
    Placeholders without a pattern."""
    head = ["", "", "@njit(cache=CACHE, error_model='numpy')", "def _sp_lu_solve_gen(M, x):"]
    fhead = ["", "", "@njit(cache=CACHE, error_model='numpy')", "def _sp_lu_factor_gen(M):"]
    if pattern is None:
        return ("SP_UNROLLED = False", *head, "    pass", *fhead, "    return 1", "")
    plan = _plan_of(pattern)
    order, lptr, lrow = plan["SP_ORDER"], plan["SP_LPTR"], plan["SP_LROW"]
    uptr, ucol = plan["SP_UPTR"], plan["SP_UCOL"]
    factor = []
    for s, k in enumerate(order):
        factor += [f"    d = M[{k}, {k}]", "    if d != d or abs(d) == _np.inf:", "        return 2",
                   "    if d == 0.0:", "        return 1", "    inv = 1.0 / d"]  # fmt: skip
        for i in lrow[lptr[s] : lptr[s + 1]]:
            factor += [f"    f = M[{i}, {k}] * inv", "    if not (abs(f) <= SP_MAX_MULTIPLIER):",
                       "        return 1", f"    M[{i}, {k}] = f"]  # fmt: skip
            cols = ucol[uptr[s] : uptr[s + 1]]
            if len(cols):
                factor += ["    if f != 0.0:"]
                factor += [f"        M[{i}, {j}] -= f * M[{k}, {j}]" for j in cols]
        factor += [f"    M[{k}, {k}] = inv"]
    factor += ["    return 0"]
    body = ["    # forward: L (unit diagonal) in pivot order"]
    for s, k in enumerate(order):
        rows = lrow[lptr[s] : lptr[s + 1]]
        if len(rows):
            body += [f"    xk = x[{k}]", "    if xk != 0.0:"]
            body += [f"        x[{i}] -= M[{i}, {k}] * xk" for i in rows]
    body += ["    # backward: U, its diagonal stored as reciprocals"]
    for s in range(len(order) - 1, -1, -1):
        k = order[s]
        body += [f"    v = x[{k}]"]
        body += [f"    v -= M[{k}, {j}] * x[{j}]" for j in ucol[uptr[s] : uptr[s + 1]]]
        body += [f"    x[{k}] = v * M[{k}, {k}]"]
    return ("SP_UNROLLED = True", *head, *body, *fhead, *factor, "")


def _exact_jacobian(module, jac_name) -> bool:
    """True when ``jac_name`` is the generated ``jac`` of a :mod:`cartkin.kernel.codegen` module
    (``JAC_PATTERN_EXACT``): zero outside ``JAC_PATTERN``, with ``jac_nonzeros`` writing only
    the pattern's entries."""
    return (
        jac_name == "jac"
        and getattr(module, "JAC_PATTERN_EXACT", False) is True
        and hasattr(getattr(module, "jac_nonzeros", None), "py_func")
    )


def _module_role_states(module):
    """The module's ``ROLE_STATES`` (the state indices its ``observe_roles`` reads, written by
    :mod:`cartkin.kernel.codegen`) as a tuple of int, or None without one."""
    states = getattr(module, "ROLE_STATES", None)
    if states is None:
        return None
    where = getattr(module, "__file__", None) or module.__name__
    if isinstance(states, str) or not all(isinstance(i, int) and i >= 0 for i in states):
        raise ValueError(f"{where}: ROLE_STATES must be a sequence of state indices (int >= 0)")
    return tuple(states)


def _role_lines(states: tuple[int, ...] | None) -> list[str]:
    """Header lines ROLE_SUBSET / ROLE_STATES: the in-kernel metrics evaluate the dense output
    of these states only (all states when the roles' states are not known)."""
    if states is None:
        return ["ROLE_SUBSET = False", "ROLE_STATES = _np.zeros(1, dtype=_np.int64)"]
    return ["ROLE_SUBSET = True", f"ROLE_STATES = _np.array({list(states)!r}, dtype=_np.int64)"]


def _plan_globals(pattern) -> dict:
    """The names of :func:`_plan_lines` as objects, for a kernel compiled in memory."""
    namespace: dict = {}
    exec("\n".join(_plan_lines(None if pattern is None else tuple(pattern))), namespace)
    return {k: v for k, v in namespace.items() if k.startswith("SP")}


def _exec_template(rhs, jac, roles=None, family="all", pattern=None):
    """The kernel compiled in memory for ``rhs`` (``pattern``: a JAC_PATTERN for its sparse
    LU, as a model module would declare)."""
    with_erk, with_ros = FAMILIES[family]
    func = _py_func(rhs)
    label = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"
    module = types.ModuleType(f"cartkin._kernel_{id(rhs):x}", f"integrator kernel for {label}")
    module.__dict__.update(
        rhs=rhs,
        jac=_no_jacobian if jac is None else jac,
        HAS_JAC=jac is not None,
        observe_roles=_no_roles if roles is None else roles,
        HAS_ROLES=roles is not None,
        CACHE=False,
        WITH_ERK=with_erk,
        WITH_ROS=with_ros,
        WITH_METRICS=family == "all",
        ROLE_SUBSET=False,
        AUTONOMOUS=False,
        ROLE_STATES=np.zeros(1, dtype=np.int64),
        SP_UNROLLED=False,
        _sp_lu_solve_gen=_no_solve,
        _sp_lu_factor_gen=_no_factor,
        **_plan_globals(pattern),
    )
    for path in part_paths():  # each part under its own file name (tracebacks, line numbers)
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    return module
