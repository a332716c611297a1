"""Generate a model's compiled code from its equations.

Input: plain data (state symbols, kernel entry names, intermediates and rates as Python
expressions, role expressions); output: the text of one Python module holding

- ``rhs(t, y, p, dydt)``: named locals for the kernel entries and states it reads, the
  intermediates in the order written, then ``dydt[k] = <the d/dt line>``. The expressions are
  emitted as written (only function names are mapped: ``exp`` -> ``math.exp``, ``where(c, a, b)``
  -> ``a if c else b``), so the arithmetic is the one a reader sees;
- ``jac(t, y, p, J)``: the analytic Jacobian, differentiated by sympy with the intermediates
  substituted, common subexpressions eliminated (``sympy.cse``), every other entry zero;
- ``JAC_PATTERN``: its symbolic non-zeros, one string per row, from which
  :func:`cartkin.kernel.build.lu_plan` makes the static sparse LU plan;
- ``observe_roles(y, p, out)``: the observables playing the clinical roles, for the in-kernel
  metrics (NaN for a role the model lacks).

:func:`module_text` is pure; :func:`load` writes the text to the kernel cache directory under a
name holding its SHA-256 (so an edited model never runs stale code) and imports it, and keeps the
text of each description in a second cached file keyed by a hash of the inputs, so a second
process skips sympy altogether.
"""

from __future__ import annotations

import ast
import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["jacobian_entries", "kernel_code", "load", "module_text", "names_in", "to_sympy"]

_MATH = {"exp": "math.exp", "log": "math.log", "log1p": "math.log1p", "sqrt": "math.sqrt",
         "isfinite": "math.isfinite", "abs": "abs", "min": "min", "max": "max"}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# expressions: Python text -> numba code, sympy
# ---------------------------------------------------------------------------------------------
class _ToKernel(ast.NodeTransformer):
    """Map description functions to scalar code numba compiles."""

    def visit_Call(self, node):
        self.generic_visit(node)
        name = node.func.id
        if name == "where":
            cond, a, b = node.args
            return ast.IfExp(test=cond, body=a, orelse=b)
        if name == "clip":
            x, lo, hi = node.args
            inner = ast.Call(ast.Name("max", ast.Load()), [x, lo], [])
            return ast.Call(ast.Name("min", ast.Load()), [inner, hi], [])
        node.func = ast.Name(_MATH[name], ast.Load())
        return node


def kernel_code(expression: str) -> str:
    """``expression`` as scalar Python/numba code (same operations, same order)."""
    tree = _ToKernel().visit(ast.parse(expression, mode="eval"))
    return ast.unparse(ast.fix_missing_locations(tree))


def names_in(expression: str) -> set[str]:
    """Free names of a Python expression (called function names excluded)."""
    tree = ast.parse(expression, mode="eval")
    funcs = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - funcs


def to_sympy(expression: str, names: dict):
    """``expression`` as a sympy expression; ``names`` maps a name to a sympy object."""
    import sympy

    funcs = {"exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "abs": sympy.Abs,
             "min": sympy.Min, "max": sympy.Max,
             "log1p": lambda x: sympy.log(1 + x),
             "clip": lambda x, lo, hi: sympy.Min(sympy.Max(x, lo), hi),
             "where": lambda c, a, b: sympy.Piecewise((a, c), (b, True))}  # fmt: skip
    ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
           ast.Pow: lambda a, b: a**b, ast.Lt: sympy.Lt, ast.LtE: sympy.Le,
           ast.Gt: sympy.Gt, ast.GtE: sympy.Ge}  # fmt: skip

    def conv(node):
        if isinstance(node, ast.Expression):
            return conv(node.body)
        if isinstance(node, ast.BinOp):
            return ops[type(node.op)](conv(node.left), conv(node.right))
        if isinstance(node, ast.UnaryOp):
            value = conv(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Constant):
            v = node.value
            return sympy.Integer(v) if isinstance(v, int) else sympy.Float(v)
        if isinstance(node, ast.Name):
            return names[node.id]
        if isinstance(node, ast.Call):
            return funcs[node.func.id](*[conv(a) for a in node.args])
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return ops[type(node.ops[0])](conv(node.left), conv(node.comparators[0]))
        raise ValueError(f"{ast.unparse(node)!r}: not differentiable by cartkin's codegen")

    return conv(ast.parse(expression, mode="eval"))


def jacobian_entries(states, kernel_names, intermediates, rates):
    """Symbolic Jacobian: ``{(i, j): sympy expression}`` of the non-zero entries.

    Parameters
    ----------
    states : sequence of str
    kernel_names : sequence of str
    intermediates : sequence of (name, expression)
    rates : sequence of str
        One expression per state, in state order.
    """
    import sympy

    y = [sympy.Symbol(s) for s in states]
    names = {s: sym for s, sym in zip(states, y, strict=True)}
    names.update({k: sympy.Symbol(k) for k in kernel_names})
    names["t"] = sympy.Symbol("t")
    for name, expr in intermediates:
        names[name] = to_sympy(expr, names)
    out = {}
    for i, expr in enumerate(rates):
        f = to_sympy(expr, names)
        for j, yj in enumerate(y):
            if f.has(yj):
                d = sympy.diff(f, yj)
                if d != 0:
                    out[(i, j)] = d
    return out


# ---------------------------------------------------------------------------------------------
# module text
# ---------------------------------------------------------------------------------------------
def module_text(label, states, kernel_names, intermediates, rates, roles, used_by=None) -> str:
    """Source of the generated module (see the module docstring).

    Parameters
    ----------
    label : str
        Model name and file, for the header comment.
    states : sequence of str
        State symbols in kernel order.
    kernel_names : sequence of str
        Names of the kernel vector ``p``'s entries.
    intermediates : sequence of (name, expression)
    rates : sequence of str
        ``d/dt`` expression per state.
    roles : sequence of str or None
        Expression per role slot of ``observe_roles``'s ``out`` (None: NaN).
    """
    import sympy

    p_index = {k: i for i, k in enumerate(kernel_names)}
    y_index = {s: i for i, s in enumerate(states)}
    inter = dict(intermediates)

    def needed(exprs):
        """Every name ``exprs`` read, through the intermediates they use."""
        need = set()
        stack = [n for e in exprs for n in names_in(e)]
        while stack:
            n = stack.pop()
            if n in need:
                continue
            need.add(n)
            if n in inter:
                stack.extend(names_in(inter[n]))
        return need

    def locals_for(exprs, with_t=True):
        """Local assignment lines (kernel entries, states, intermediates) ``exprs`` need."""
        need = needed(exprs)
        lines = [f"    {k} = _p[{i}]" for k, i in p_index.items() if k in need]
        lines += [f"    {s} = _y[{i}]" for s, i in y_index.items() if s in need]
        lines += [f"    {n} = {kernel_code(e)}" for n, e in intermediates if n in need]
        return lines

    src = [
        f"# Generated by cartkin.kernel.codegen for {label}: do not edit.",
        "import math",
        "",
        "import numba",
        "",
        "NAN = float('nan')",
        "",
        "",
        '@numba.njit(cache=True, error_model="numpy")',
        "def rhs(t, _y, _p, _dydt):",
        "    # dy/dt (per day)",
    ]
    src += locals_for(rates)
    src += [f"    _dydt[{k}] = {kernel_code(e)}" for k, e in enumerate(rates)]

    entries = jacobian_entries(states, kernel_names, intermediates, rates)
    keys = sorted(entries)
    n = len(states)
    src += ["", "", '@numba.njit(cache=True, error_model="numpy")', "def jac(t, _y, _p, _J):",
            "    # d(dy/dt)/dy: zero outside JAC_PATTERN, jac_nonzeros inside",
            f"    for _i in range({n}):", f"        for _j in range({n}):",
            "            _J[_i, _j] = 0.0",
            "    jac_nonzeros(t, _y, _p, _J)"]  # fmt: skip
    src += ["", "", '@numba.njit(cache=True, error_model="numpy")',
            "def jac_nonzeros(t, _y, _p, _J):",
            "    # the JAC_PATTERN entries of d(dy/dt)/dy only (the others are not written; the",
            "    # kernel zeroes them once), generated by sympy (common subexpressions as _c<k>)"]  # fmt: skip
    subs, reduced = sympy.cse([entries[k] for k in keys],
                              symbols=sympy.numbered_symbols("_c"))  # fmt: skip
    free = {str(s) for e in reduced for s in e.free_symbols}
    free |= {str(s) for _, e in subs for s in e.free_symbols}
    src += [f"    {k} = _p[{i}]" for k, i in p_index.items() if k in free]
    src += [f"    {s} = _y[{i}]" for s, i in y_index.items() if s in free]
    src += [f"    {sym} = {_pycode(e)}" for sym, e in subs]
    src += [f"    _J[{i}, {j}] = {_pycode(e)}" for (i, j), e in zip(keys, reduced, strict=True)]

    src += ["", "", '@numba.njit(cache=True, error_model="numpy")',
            "def observe_roles(_y, _p, _out):",
            "    # role values at one state (cartkin.models.ROLES order; NaN where absent)",
            "    _n_out = _out.shape[0]"]  # fmt: skip
    src += locals_for([r for r in roles if r is not None])
    for k, expr in enumerate(roles):
        value = "NAN" if expr is None else kernel_code(expr)
        src += [f"    if _n_out > {k}:", f"        _out[{k}] = {value}"]
    src += [f"    for _k in range({len(roles)}, _n_out):", "        _out[_k] = NAN"]

    pattern = ["".join("x" if (i, j) in entries else "." for j in range(n)) for i in range(n)]
    src += ["", "", "#: Symbolic non-zeros of jac (rows: d(dy_i/dt)/dy_j).", "JAC_PATTERN = ("]
    src += [f"    {row!r}," for row in pattern] + [")", ""]
    role_states = sorted(i for st, i in y_index.items() if st in needed([r for r in roles if r]))
    src += ["#: The states observe_roles reads (kernel indices): the in-kernel metrics evaluate",
            "#: the dense output of only these.", f"ROLE_STATES = {tuple(role_states)!r}", ""]
    src += ["#: The rates do not read the time t: df/dt is exactly 0, so the Rosenbrock kernel",
            "#: skips its difference quotient (one rhs call per Jacobian).",
            f"AUTONOMOUS = {'t' not in needed(rates)}", ""]  # fmt: skip
    src += ["#: jac writes 0.0 to every entry outside JAC_PATTERN and jac_nonzeros writes only the",
            "#: entries of JAC_PATTERN (all come from the same symbolic entries), so the kernel",
            "#: need not check its Jacobians against the pattern and zeroes the rest once.",
            "JAC_PATTERN_EXACT = True", ""]  # fmt: skip
    return "\n".join(src)


def _pycode(expr) -> str:
    from sympy.printing.pycode import pycode

    return pycode(expr, fully_qualified_modules=True, allow_unknown_functions=False)


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------
def _write_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically unless it exists (its mtime keys numba's cache)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if not path.exists():
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(name, label, states, kernel_names, intermediates, rates, roles):
    """Generate (or find in the cache) and import the compiled module of a description.

    Returns
    -------
    module
        With ``rhs``, ``jac``, ``observe_roles`` and ``JAC_PATTERN``; imported under a name that
        :mod:`cartkin.kernel.build` files as a cached, file-backed model module.
    """
    from cartkin.kernel import build

    key = repr((states, kernel_names, intermediates, rates, roles)).encode()
    digest = hashlib.sha256(key + Path(__file__).read_bytes()).hexdigest()[:24]
    stem = "".join(c if c.isalnum() else "_" for c in name)
    directory = build.cache_dir()
    source_file = directory / f"model_{stem}_{digest}.py"
    try:
        text = source_file.read_text(encoding="utf-8")
    except OSError:
        text = module_text(label, states, kernel_names, intermediates, rates, roles)
        try:
            _write_once(source_file, text)
        except OSError:
            source_file = None
    if source_file is None or not source_file.exists():  # unwritable cache: a temporary file
        tmp_dir = Path(tempfile.mkdtemp(prefix="cartkin_model_"))
        source_file = tmp_dir / f"model_{stem}_{digest}.py"
        source_file.write_text(text, encoding="utf-8")
    text_digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return build.import_file(f"{build.USER_PREFIX}model_{stem}_{text_digest}", source_file)
