"""cartkin description expressions (Python syntax) to sympy and back.

A description writes its expressions in Python syntax over names, with the functions ``exp``,
``log``, ``log1p``, ``sqrt``, ``min``, ``max``, ``abs``, ``clip``, ``isfinite`` and
``where(condition, a, b)`` (:data:`cartkin.models.description.FUNCTIONS`). :func:`to_sympy` reads
one into sympy for the SBML writer; :func:`to_python` prints sympy read from SBML as such an
expression (``Piecewise`` as nested ``where``, ``Max``/``Min`` as two-argument ``max``/``min``).
"""

from __future__ import annotations

import ast

import sympy
from sympy.printing.str import StrPrinter

__all__ = ["NAN_TEXT", "UnsupportedExpression", "to_python", "to_sympy"]

#: How a NaN is written in a description expression (inf - inf; no name needed).
NAN_TEXT = "(1e309 - 1e309)"


class UnsupportedExpression(ValueError):
    """An expression that the other side cannot write (the message names the construct)."""


def _isfinite(x):
    if x.is_number:
        import math

        return sympy.true if math.isfinite(complex(x).real) else sympy.false
    raise UnsupportedExpression(f"isfinite({x}) of a non-constant has no SBML form")


_FUNCS = {
    "exp": sympy.exp,
    "log": sympy.log,
    "log1p": lambda x: sympy.log(1 + x),
    "sqrt": sympy.sqrt,
    "abs": sympy.Abs,
    "min": sympy.Min,
    "max": sympy.Max,
    "clip": lambda x, lo, hi: sympy.Min(sympy.Max(x, lo), hi),
    "where": lambda c, a, b: sympy.Piecewise((a, c), (b, True)),
    "isfinite": _isfinite,
}
_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARE = {
    ast.Lt: sympy.Lt,
    ast.LtE: sympy.Le,
    ast.Gt: sympy.Gt,
    ast.GtE: sympy.Ge,
    ast.Eq: sympy.Eq,
    ast.NotEq: sympy.Ne,
}


def to_sympy(expression: str, names) -> sympy.Basic:
    """The sympy form of a description expression.

    Parameters
    ----------
    expression : str
    names : mapping of str to sympy object or number
        What each name stands for; a name missing from it becomes ``sympy.Symbol(name)``.

    Raises
    ------
    UnsupportedExpression
        For syntax outside the description's expression language.
    """

    def conv(node):
        if isinstance(node, ast.Expression):
            return conv(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](conv(node.left), conv(node.right))
        if isinstance(node, ast.UnaryOp):
            value = conv(node.operand)
            if isinstance(node.op, ast.USub):
                return -value
            if isinstance(node.op, ast.UAdd):
                return value
            if isinstance(node.op, ast.Not):
                return sympy.Not(value)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            v = node.value
            if isinstance(v, bool):
                return sympy.true if v else sympy.false
            return sympy.Integer(v) if isinstance(v, int) else sympy.Float(v)
        if isinstance(node, ast.Name):
            value = names.get(node.id, None)
            return sympy.Symbol(node.id) if value is None else sympy.sympify(value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in _FUNCS:
                return _FUNCS[node.func.id](*[conv(a) for a in node.args])
        if isinstance(node, ast.Compare):
            parts, left = [], conv(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = conv(comp)
                parts.append(_COMPARE[type(op)](left, right))
                left = right
            return sympy.And(*parts)
        if isinstance(node, ast.BoolOp):
            values = [conv(v) for v in node.values]
            return sympy.And(*values) if isinstance(node.op, ast.And) else sympy.Or(*values)
        raise UnsupportedExpression(f"{ast.unparse(node)!r} has no SBML form")

    return conv(ast.parse(expression, mode="eval"))


class _PythonPrinter(StrPrinter):
    """sympy -> description expression (Python syntax, description functions only)."""

    def __init__(self, rename):
        super().__init__()
        self.rename = rename

    def _print_Symbol(self, expr):
        return self.rename.get(expr.name, expr.name)

    def _print_Float(self, expr):
        value = float(expr)
        if value != value:
            return NAN_TEXT
        text = repr(value)
        return f"({text})" if value < 0 else text

    def _print_Integer(self, expr):
        return f"({expr.p})" if expr.p < 0 else str(expr.p)

    def _print_Rational(self, expr):
        return f"({expr.p} / {expr.q})"

    def _print_NaN(self, expr):
        return NAN_TEXT

    def _print_Infinity(self, expr):
        return "1e309"

    def _print_NegativeInfinity(self, expr):
        return "(-1e309)"

    def _print_Exp1(self, expr):
        return "exp(1)"

    def _print_Pi(self, expr):
        return repr(float(sympy.pi))

    def _print_BooleanTrue(self, expr):
        return "1.0"

    def _print_BooleanFalse(self, expr):
        return "0.0"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp == sympy.S.Half:
            return f"sqrt({self._print(base)})"
        if exp == -1:
            return f"1 / ({self._print(base)})"
        return f"({self._print(base)}) ** ({self._print(exp)})"

    def _call(self, name, args):
        return f"{name}({', '.join(self._print(a) for a in args)})"

    def _print_exp(self, expr):
        return self._call("exp", expr.args)

    def _print_log(self, expr):
        return self._call("log", expr.args)

    def _print_Abs(self, expr):
        return self._call("abs", expr.args)

    def _pairwise(self, name, args):
        args = list(args)
        text = self._print(args[-1])
        for a in reversed(args[:-1]):
            text = f"{name}({self._print(a)}, {text})"
        return text

    def _print_Max(self, expr):
        return self._pairwise("max", expr.args)

    def _print_Min(self, expr):
        return self._pairwise("min", expr.args)

    def _print_Relational(self, expr):
        op = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}[expr.rel_op]
        return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

    def _where(self, cond, a: str, b: str) -> str:
        """``where`` with ``cond`` split into relations (and/or/not nest as ``where``)."""
        if cond == sympy.true:
            return a
        if cond == sympy.false:
            return b
        if isinstance(cond, sympy.And):
            first, *rest = cond.args
            return self._where(first, self._where(sympy.And(*rest), a, b), b)
        if isinstance(cond, sympy.Or):
            first, *rest = cond.args
            return self._where(first, a, self._where(sympy.Or(*rest), a, b))
        if isinstance(cond, sympy.Not):
            return self._where(cond.args[0], b, a)
        if isinstance(cond, sympy.core.relational.Relational):
            return f"where({self._print(cond)}, {a}, {b})"
        raise UnsupportedExpression(f"the condition {cond} has no cartkin form")

    def _print_Piecewise(self, expr):
        text = NAN_TEXT  # SBML: a piecewise without otherwise is undefined where no piece holds
        for value, cond in reversed(expr.args):
            text = self._where(cond, self._print(value), text)
        return text

    def _print_Function(self, expr):
        raise UnsupportedExpression(
            f"{type(expr).__name__}() is not among the functions of cartkin model expressions "
            "(exp, log, sqrt, abs, min, max, piecewise)"
        )

    _print_Boolean = _print_Function


def to_python(expr, rename=None) -> str:
    """``expr`` (sympy) as a description expression; ``rename`` maps symbol names.

    Raises
    ------
    UnsupportedExpression
        For a function the description language lacks (floor, sin, ...) or a boolean used
        as a number outside a piecewise.
    """
    return _PythonPrinter(rename or {}).doprint(expr)
