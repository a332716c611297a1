"""SBML math (libSBML ASTNode trees) to sympy and back.

Reading walks the ASTNode tree and builds sympy objects node by node (no string parsing, so an
SBML id such as ``beta``, ``E`` or ``N`` stays a plain symbol). Writing prints sympy as an SBML
Level 3 infix formula that :func:`libsbml.parseL3FormulaWithSettings` reads back with the model
set, so model ids win over the parser's built-in names.
"""

from __future__ import annotations

import itertools

import libsbml
import sympy
from sympy.printing.str import StrPrinter

__all__ = ["TIME", "UnsupportedMath", "ast_to_sympy", "formula", "math_ast", "number"]

#: The symbol standing for SBML's ``time`` csymbol in expressions read from or written to SBML
#: (its name is not a valid SBML id, so it never clashes with a model's own ``time``).
TIME = sympy.Symbol("<time>")

#: SBML Level 3 Core value of Avogadro's number.
_AVOGADRO = 6.02214179e23

_UNARY = {
    libsbml.AST_FUNCTION_ABS: sympy.Abs,
    libsbml.AST_FUNCTION_ARCCOS: sympy.acos,
    libsbml.AST_FUNCTION_ARCCOSH: sympy.acosh,
    libsbml.AST_FUNCTION_ARCCOT: sympy.acot,
    libsbml.AST_FUNCTION_ARCCOTH: sympy.acoth,
    libsbml.AST_FUNCTION_ARCCSC: sympy.acsc,
    libsbml.AST_FUNCTION_ARCCSCH: sympy.acsch,
    libsbml.AST_FUNCTION_ARCSEC: sympy.asec,
    libsbml.AST_FUNCTION_ARCSECH: sympy.asech,
    libsbml.AST_FUNCTION_ARCSIN: sympy.asin,
    libsbml.AST_FUNCTION_ARCSINH: sympy.asinh,
    libsbml.AST_FUNCTION_ARCTAN: sympy.atan,
    libsbml.AST_FUNCTION_ARCTANH: sympy.atanh,
    libsbml.AST_FUNCTION_CEILING: sympy.ceiling,
    libsbml.AST_FUNCTION_COS: sympy.cos,
    libsbml.AST_FUNCTION_COSH: sympy.cosh,
    libsbml.AST_FUNCTION_COT: sympy.cot,
    libsbml.AST_FUNCTION_COTH: sympy.coth,
    libsbml.AST_FUNCTION_CSC: sympy.csc,
    libsbml.AST_FUNCTION_CSCH: sympy.csch,
    libsbml.AST_FUNCTION_EXP: sympy.exp,
    libsbml.AST_FUNCTION_FACTORIAL: sympy.factorial,
    libsbml.AST_FUNCTION_FLOOR: sympy.floor,
    libsbml.AST_FUNCTION_LN: sympy.log,
    libsbml.AST_FUNCTION_SEC: sympy.sec,
    libsbml.AST_FUNCTION_SECH: sympy.sech,
    libsbml.AST_FUNCTION_SIN: sympy.sin,
    libsbml.AST_FUNCTION_SINH: sympy.sinh,
    libsbml.AST_FUNCTION_TAN: sympy.tan,
    libsbml.AST_FUNCTION_TANH: sympy.tanh,
}

_RELATIONAL = {
    libsbml.AST_RELATIONAL_EQ: sympy.Eq,
    libsbml.AST_RELATIONAL_NEQ: sympy.Ne,
    libsbml.AST_RELATIONAL_GEQ: sympy.Ge,
    libsbml.AST_RELATIONAL_GT: sympy.Gt,
    libsbml.AST_RELATIONAL_LEQ: sympy.Le,
    libsbml.AST_RELATIONAL_LT: sympy.Lt,
}

_REFUSED = {
    libsbml.AST_FUNCTION_DELAY: "the delay() function (delay differential equations)",
    libsbml.AST_FUNCTION_RATE_OF: "the rateOf() function",
    libsbml.AST_LAMBDA: "a lambda outside a function definition",
    libsbml.AST_FUNCTION_QUOTIENT: "the quotient() function",
    libsbml.AST_FUNCTION_REM: "the rem() function",
}


def number(value: float) -> sympy.Expr:
    """A real as sympy: an Integer when it is a whole number (exact), else a Float."""
    if value.is_integer() and abs(value) < 2.0**53:
        return sympy.Integer(int(value))
    return sympy.Float(value)


class UnsupportedMath(ValueError):
    """A MathML construct cartkin does not translate (the reader names the element)."""


def ast_to_sympy(node) -> sympy.Basic:
    """The sympy expression of a libSBML ASTNode tree.

    Parameters
    ----------
    node : libsbml.ASTNode
        Math with function definitions already expanded (the reader expands them).

    Returns
    -------
    sympy.Basic
        Names become ``sympy.Symbol(id)``; the ``time`` csymbol becomes :data:`TIME`.

    Raises
    ------
    UnsupportedMath
        For delay, rateOf, quotient, rem, an unexpanded user function or an unknown node.
    """
    t = node.getType()
    args = [ast_to_sympy(node.getChild(i)) for i in range(node.getNumChildren())]
    if t in (libsbml.AST_INTEGER,):
        return sympy.Integer(node.getInteger())
    if t in (libsbml.AST_REAL, libsbml.AST_REAL_E):
        return number(node.getReal())
    if t == libsbml.AST_RATIONAL:
        return sympy.Rational(node.getNumerator(), node.getDenominator())
    if t == libsbml.AST_NAME:
        return sympy.Symbol(node.getName())
    if t == libsbml.AST_NAME_TIME:
        return TIME
    if t == libsbml.AST_NAME_AVOGADRO:
        return sympy.Float(_AVOGADRO)
    if t == libsbml.AST_CONSTANT_E:
        return sympy.E
    if t == libsbml.AST_CONSTANT_PI:
        return sympy.pi
    if t == libsbml.AST_CONSTANT_TRUE:
        return sympy.true
    if t == libsbml.AST_CONSTANT_FALSE:
        return sympy.false
    if t == libsbml.AST_PLUS:
        return sympy.Add(*args)
    if t == libsbml.AST_TIMES:
        return sympy.Mul(*args)
    if t == libsbml.AST_MINUS:
        return -args[0] if len(args) == 1 else args[0] - args[1]
    if t == libsbml.AST_DIVIDE:
        return args[0] / args[1]
    if t in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER):
        return args[0] ** args[1]
    if t in _UNARY and len(args) == 1:
        return _UNARY[t](args[0])
    if t == libsbml.AST_FUNCTION_LOG:  # children: [logbase,] argument; default base 10
        base, arg = (args[0], args[1]) if len(args) == 2 else (sympy.Integer(10), args[0])
        return sympy.log(arg) / sympy.log(base)
    if t == libsbml.AST_FUNCTION_ROOT:  # children: [degree,] argument; default degree 2
        degree, arg = (args[0], args[1]) if len(args) == 2 else (sympy.Integer(2), args[0])
        return arg ** (1 / degree)
    if t == libsbml.AST_FUNCTION_MAX:
        return sympy.Max(*args)
    if t == libsbml.AST_FUNCTION_MIN:
        return sympy.Min(*args)
    if t == libsbml.AST_FUNCTION_PIECEWISE:
        pieces = [(args[k], args[k + 1]) for k in range(0, len(args) - 1, 2)]
        otherwise = args[-1] if len(args) % 2 else sympy.nan
        return sympy.Piecewise(*pieces, (otherwise, True))
    if t in _RELATIONAL:
        pairs = [_RELATIONAL[t](a, b) for a, b in itertools.pairwise(args)]
        return sympy.And(*pairs)
    if t == libsbml.AST_LOGICAL_AND:
        return sympy.And(*args)
    if t == libsbml.AST_LOGICAL_OR:
        return sympy.Or(*args)
    if t == libsbml.AST_LOGICAL_XOR:
        return sympy.Xor(*args)
    if t == libsbml.AST_LOGICAL_NOT:
        return sympy.Not(args[0])
    if t in _REFUSED:
        raise UnsupportedMath(f"uses {_REFUSED[t]}, which cartkin does not translate")
    if t == libsbml.AST_FUNCTION:
        raise UnsupportedMath(f"calls {node.getName()!r}, which is not a function definition")
    raise UnsupportedMath(
        f"uses the MathML element {node.getName() or libsbml.formulaToL3String(node)!r} "
        f"(ASTNode type {t}), which cartkin does not translate"
    )


class _L3Printer(StrPrinter):
    """sympy -> SBML Level 3 infix formula (libSBML's L3 syntax)."""

    def _print_Symbol(self, expr):
        return "time" if expr == TIME else expr.name

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"({expr.p}/{expr.q})"

    def _print_Integer(self, expr):
        return str(expr.p)

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp == -1:
            return f"1/({self._print(base)})"
        if exp == sympy.S.Half:
            return f"sqrt({self._print(base)})"
        return f"({self._print(base)})^({self._print(exp)})"

    def _print_Exp1(self, expr):
        return "exp(1)"

    def _print_Pi(self, expr):
        return repr(float(sympy.pi))

    def _print_NaN(self, expr):
        return "NaN"

    def _print_Infinity(self, expr):
        return "INF"

    def _print_NegativeInfinity(self, expr):
        return "(-INF)"

    def _print_BooleanTrue(self, expr):
        return "true"

    def _print_BooleanFalse(self, expr):
        return "false"

    def _call(self, name, args):
        return f"{name}({', '.join(self._print(a) for a in args)})"

    def _print_Function(self, expr):
        names = {"ceiling": "ceil", "log": "ln", "Abs": "abs"}
        name = type(expr).__name__
        return self._call(names.get(name, name), expr.args)

    _print_exp = _print_log = _print_Abs = _print_floor = _print_ceiling = _print_Function

    def _print_Max(self, expr):
        return self._call("max", expr.args)

    def _print_Min(self, expr):
        return self._call("min", expr.args)

    def _print_Piecewise(self, expr):
        parts = []
        for value, cond in expr.args:
            if cond == sympy.true:
                parts.append(self._print(value))
                break
            parts += [self._print(value), self._print(cond)]
        return f"piecewise({', '.join(parts)})"

    def _print_Relational(self, expr):
        names = {"<": "lt", "<=": "leq", ">": "gt", ">=": "geq", "==": "eq", "!=": "neq"}
        return self._call(names[expr.rel_op], expr.args)

    def _print_And(self, expr):
        return self._call("and", expr.args)

    def _print_Or(self, expr):
        return self._call("or", expr.args)

    def _print_Xor(self, expr):
        return self._call("xor", expr.args)

    def _print_Not(self, expr):
        return self._call("not", expr.args)


def formula(expr) -> str:
    """``expr`` (sympy, or a number) as an SBML Level 3 infix formula."""
    return _L3Printer().doprint(sympy.sympify(expr))


def math_ast(expr, model):
    """The libSBML ASTNode of ``expr``, parsed with ``model`` so its ids win over built-ins.

    Raises
    ------
    ValueError
        If libSBML cannot parse the printed formula (names the formula and libSBML's message).
    """
    settings = libsbml.L3ParserSettings()
    settings.setModel(model)
    settings.setParseLog(libsbml.L3P_PARSE_LOG_AS_LN)
    text = formula(expr)
    ast = libsbml.parseL3FormulaWithSettings(text, settings)
    if ast is None:
        raise ValueError(f"libSBML could not parse {text!r}: {libsbml.getLastParseL3Error()}")
    return ast
