"""A model described for people: every symbol defined, as a terminal table, Markdown or JSON.

``cartkin show MODEL`` and the documentation site's model pages (``docs/gen_pages.py``) both
read a model through this module, which only uses the public :class:`cartkin.models.Model`
interface (``states``, ``parameters``, ``observables``, ``derived``, ``equations`` and, for a
model built from a :class:`cartkin.models.Description`, that description), so the output
follows the model code.

Every identifier in a model's equations is one of: a state (its symbol), a parameter of the
table, an intermediate defined by an equation line, a derived kernel value (computed per
patient: its defining line of the description), a covariate or dosing quantity the patient and
regimen supply (:data:`CONTEXT_NAMES`), or the time ``t``. A hand-written model may describe its
derived values as ``Model.symbols`` (``{symbol: (unit, description)}``).
:func:`undefined_symbols` lists the identifiers that none of these defines (empty for every
built-in model: a test keeps it so).
"""

from __future__ import annotations

import json
import keyword
import re
import shutil
import sys
import textwrap
from dataclasses import asdict, dataclass

__all__ = [
    "CONTEXT_NAMES",
    "EquationLine",
    "Symbol",
    "parse_equations",
    "symbols",
    "terminal_width",
    "to_json",
    "to_markdown",
    "to_text",
    "undefined_symbols",
]

#: Names that may appear in equation text without being model symbols (functions, ``math``).
_BUILTIN_NAMES = frozenset(
    {"exp", "log", "log1p", "sqrt", "min", "max", "abs", "clip", "isfinite", "where", "math",
     "np", "ln", "tanh", "pow"}
)  # fmt: skip

#: What the per-patient names a model description may use mean (cartkin.models.description:
#: COVARIATES, the dosing summaries, ``dose``, ``duration``, ``t_start``); the unit of a
#: covariate is the suffix of its name.
CONTEXT_NAMES: dict[str, tuple[str, str]] = {
    "weight_kg": ("kg", "body weight (covariate)"),
    "height_cm": ("cm", "height (covariate)"),
    "age_years": ("years", "age (covariate)"),
    "bsa_m2": ("m2", "body surface area (covariate, cartkin.covariates.kidney)"),
    "egfr_ml_min_173m2": ("mL/min/1.73m2", "eGFR at lymphodepletion (covariate)"),
    "crcl_ml_min": ("mL/min", "creatinine clearance (covariate)"),
    "flu_auc_mg_h_per_l": ("mg.h/L", "cumulative fludarabine AUC of the regimen (cartkin.covariates.kidney)"),
    "flu_cl_l_h": ("L/h", "F-ara-A clearance at the patient's kidney function"),
    "flu_v1_l": ("L", "F-ara-A central volume"),
    "flu_v2_l": ("L", "F-ara-A first peripheral volume"),
    "flu_v3_l": ("L", "F-ara-A second peripheral volume"),
    "flu_q2_l_h": ("L/h", "F-ara-A intercompartmental clearance, first peripheral"),
    "flu_q3_l_h": ("L/h", "F-ara-A intercompartmental clearance, second peripheral"),
    "flu_dose_factor": ("-", "fludarabine dose basis factor of the clearance model"),
    "cy_mg_m2_total": ("mg/m2", "total cyclophosphamide dose"),
    "dialysis_duration_h": ("h", "length of a dialysis session"),
    "flu_removal_fraction": ("-", "share of F-ara-A removed by one dialysis session"),
    "il6_elimination_per_day": ("1/day", "IL-6 elimination rate at the patient's kidney function"),
    "dose": (
        "",
        "the dose of one event of the input's schedule (CAR-T: cells; fludarabine: mg; "
        "cyclophosphamide: mg/m2; dialysis: 1 per session)",
    ),
    "duration": ("day", "duration of one event of the input's schedule"),
    "t_start": ("day", "start of the integration (0, or the first lymphodepletion day)"),
}
_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(.+?)\s*$")
_SUMMARY = re.compile(r"^(?:(first|last)_(\w+)_(day|dose)|n_(\w+))$")
_RATE = re.compile(r"^d/dt\(\s*(\w+)\s*\)$")
_INPUT = re.compile(r"^([^:=]+):\s*(\w+)\s*(\+=|-=|=)\s*(.+?)(?:\s+(?:over|during) each \w+)?$")
_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")


@dataclass(frozen=True)
class Symbol:
    """One symbol of a model's equations.

    Parameters
    ----------
    symbol : str
        As written in the equations ("C_E").
    kind : str
        ``state``, ``parameter``, ``derived`` (per patient, from covariates and the table),
        ``intermediate`` (defined by an equation line), ``input`` (a covariate or dosing
        quantity the regimen supplies) or ``time``.
    unit : str
        Unit ("-" for dimensionless, "" where the unit follows from the definition).
    description : str
        What it is; for an intermediate, its defining expression.
    """

    symbol: str
    kind: str
    unit: str
    description: str


@dataclass(frozen=True)
class EquationLine:
    """One line of a model's equations text.

    Parameters
    ----------
    kind : str
        ``intermediate`` (``x = ...``), ``rate`` (``d/dt(X) = ...`` or ``dX = ...``),
        ``derived`` (a per-patient kernel entry), ``initial`` (a state at the start), ``input``
        (what a dosing event adds to a state) or ``other`` (control flow such as ``if``).
    left : str
        The name defined (for ``rate``, ``initial`` and ``input``: the state symbol).
    right : str
        The expression.
    raw : str
        The line as written.
    """

    kind: str
    left: str
    right: str
    raw: str


def parse_equations(model) -> list[EquationLine]:
    """The lines of ``model.equations``, classified (comments and blank lines dropped).

    Reads both forms: hand-written models (``dX = ...``) and models built from a
    :class:`cartkin.models.Description` (``d/dt(X) = ...`` with ``# per patient``,
    ``# initial state`` and ``# inputs`` sections).
    """
    states = {s.symbol for s in model.states}
    section = "equations"
    out = []
    for raw in model.equations.strip("\n").splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            head = stripped.lower()
            if "per patient" in head:
                section = "derived"
            elif "initial" in head:
                section = "initial"
            elif "input" in head:
                section = "input"
            continue
        text = stripped.split("#", 1)[0].strip() if section != "equations" else stripped
        if not text:
            continue
        if section == "input":
            m = _INPUT.match(text)
            out.append(
                EquationLine("input", m[2], m[4], raw)
                if m
                else EquationLine("other", "", text, raw)
            )
            continue
        m = _ASSIGN.match(text) or re.match(r"^\s*(d/dt\(\s*\w+\s*\))\s*=\s*(.+?)\s*$", text)
        if not m:
            out.append(EquationLine("other", "", text, raw))
            continue
        left, right = m.group(1), m.group(2)
        rate = _RATE.match(left)
        if rate:
            out.append(EquationLine("rate", rate[1], right, raw))
        elif section == "derived":
            out.append(EquationLine("derived", left, right, raw))
        elif section == "initial":
            out.append(EquationLine("initial", left, right, raw))
        elif left.startswith("d") and left[1:] in states:
            out.append(EquationLine("rate", left[1:], right, raw))
        else:
            out.append(EquationLine("intermediate", left, right, raw))
    return out


def _derived_info(model) -> dict[str, tuple[str, str]]:
    """``{name: (unit, definition)}`` of the derived kernel entries, from the best source."""
    description = getattr(model, "description_", None)
    info: dict[str, tuple[str, str]] = {}
    for line in parse_equations(model):
        if line.kind == "derived":
            info.setdefault(line.left, ("", f"= {line.right}"))
    for line in getattr(description, "derived", ()) or ():
        text = getattr(line, "description", "") or ""
        definition = f"{text}: {line.expression}" if text else f"= {line.expression}"
        info[line.name] = (getattr(line, "unit", "") or "", definition)
    own = getattr(model, "symbols", None)
    if isinstance(own, dict):
        info.update(own)
    return info


def _context_symbol(name: str) -> Symbol | None:
    if name in CONTEXT_NAMES:
        unit, text = CONTEXT_NAMES[name]
        return Symbol(name, "input", unit, text)
    m = _SUMMARY.match(name)
    if m:
        if m[4]:
            return Symbol(name, "input", "-", f"number of {m[4]} events")
        what = "day" if m[3] == "day" else "dose"
        unit = "day" if m[3] == "day" else ""
        return Symbol(name, "input", unit, f"{m[1]} {m[2]} {what} of the regimen")
    return None


def symbols(model) -> list[Symbol]:
    """Every symbol the model's equations use, defined.

    Parameters
    ----------
    model : cartkin.models.Model or str
        A model or a registered model name.

    Returns
    -------
    list of Symbol
        States in kernel order, then the parameter table, then derived values, then
        intermediates in equation order, then covariates and dosing quantities the regimen
        supplies, then ``t`` if the equations use it.
    """
    from cartkin import models

    model = models.get(model)
    out = [Symbol(s.symbol, "state", s.unit, f"{s.description} (`{s.name}`)") for s in model.states]
    out += [Symbol(p.name, "parameter", p.unit, p.description) for p in model.parameters]
    info = _derived_info(model)
    for name in model.derived:
        unit, text = info.get(name, ("", ""))
        out.append(Symbol(name, "derived", unit, text))
    known = {s.symbol for s in out}
    lines = parse_equations(model)
    for line in lines:
        if line.kind == "intermediate" and line.left not in known:
            out.append(Symbol(line.left, "intermediate", "", line.right))
            known.add(line.left)
    used = set()
    for line in lines:
        used |= _identifiers(line.right)
    for name in sorted(used - known):
        sym = _context_symbol(name)
        if sym is not None:
            out.append(sym)
            known.add(name)
    if "t" in used and "t" not in known:
        out.append(Symbol("t", "time", "day", "time since CAR-T infusion"))
    return out


def _identifiers(text: str) -> set[str]:
    # numbers like 1.0e-3 contain "e" followed by digits: drop them before scanning names
    text = re.sub(r"\b\d+(\.\d*)?([eE][-+]?\d+)?\b", " ", text)
    return {w for w in _IDENT.findall(text) if not keyword.iskeyword(w)}


def undefined_symbols(model) -> list[str]:
    """Identifiers in ``model.equations`` that no state, parameter, derived value, line or
    input defines, and derived values without a description. Empty for a documented model."""
    from cartkin import models

    model = models.get(model)
    syms = symbols(model)
    defined = {s.symbol for s in syms}
    states = {s.symbol for s in model.states}
    missing = set()
    for line in parse_equations(model):
        if line.kind in ("rate", "initial", "input") and line.left not in states:
            missing.add(line.left)
        if line.kind == "other":
            continue  # control flow: its names are checked on the assignment lines it guards
        missing |= {n for n in _identifiers(line.right) if n not in defined}
    missing -= _BUILTIN_NAMES
    missing |= {s.symbol for s in syms if s.kind == "derived" and not s.description}
    return sorted(missing)


# ---------------------------------------------------------------------------------------------
# Output forms
# ---------------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:.4g}"


def to_json(model) -> str:
    """The model as JSON: name, description, states, parameters, derived values, intermediates,
    observables, roles and the equations text."""
    from cartkin import models

    model = models.get(model)
    syms = symbols(model)
    doc = {
        "name": model.name,
        "description": model.description.strip(),
        "states": [
            {"name": s.name, "symbol": s.symbol, "unit": s.unit, "description": s.description}
            for s in model.states
        ],
        "parameters": [
            {
                "name": p.name,
                "default": p.default,
                "unit": p.unit,
                "lower": p.lower,
                "upper": p.upper,
                "description": p.description,
                "source": p.source,
            }
            for p in model.parameters
        ],
        "derived": [asdict(s) for s in syms if s.kind == "derived"],
        "intermediates": [asdict(s) for s in syms if s.kind in ("intermediate", "time")],
        "inputs": [asdict(s) for s in syms if s.kind == "input"],
        "observables": [
            {"name": o.name, "unit": o.unit, "description": o.description}
            for o in model.observables
        ],
        "roles": {k: v for k, v in model.roles.items() if v is not None},
        "equations": model.equations.strip("\n"),
    }
    return json.dumps(doc, indent=2)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(model) -> str:
    """The model as Markdown: states, equations, other symbols, parameters, observables."""
    from cartkin import models

    model = models.get(model)
    syms = symbols(model)
    lines = [f"# {model.name}", "", model.description.strip(), "", "## States", ""]
    lines += ["| symbol | state | unit | description |", "|---|---|---|---|"]
    lines += [
        f"| `{s.symbol}` | {s.name} | {s.unit} | {_md_cell(s.description)} |" for s in model.states
    ]
    lines += ["", "## Equations", "", "```text", model.equations.strip("\n"), "```", ""]
    other = [s for s in syms if s.kind in ("derived", "intermediate", "input", "time")]
    if other:
        lines += [
            "## Other symbols",
            "",
            "| symbol | kind | unit | definition |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{s.symbol}` | {s.kind} | {s.unit or '(from definition)'} | "
            f"{_md_cell(s.description)} |"
            for s in other
        ]
        lines.append("")
    lines += ["## Parameters", "", model.parameters.to_markdown()]
    lines += ["## Observables", "", "| observable | unit | description |", "|---|---|---|"]
    lines += [f"| `{o.name}` | {o.unit} | {_md_cell(o.description)} |" for o in model.observables]
    return "\n".join(lines) + "\n"


def terminal_width(stream=None) -> int:
    """Columns to fill: the terminal's width when ``stream`` is a terminal, else 100.

    Parameters
    ----------
    stream : file, optional
        Defaults to ``sys.stdout``.

    Returns
    -------
    int
        Between 40 and the terminal width (at most 100 when not attached to a terminal).
    """
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return max(40, shutil.get_terminal_size((100, 24)).columns)
    return 100


def _table(headers: list[str], rows: list[list[str]], width: int) -> list[str]:
    """A plain-text table whose lines are at most ``width`` characters (cells wrap)."""
    n = len(headers)
    natural = [max([len(headers[j])] + [len(str(r[j])) for r in rows]) for j in range(n)]
    widths = list(natural)
    budget = width - 2 * (n - 1)
    while sum(widths) > budget:
        j = max(range(n), key=lambda k: widths[k])
        if widths[j] <= 6:
            break
        widths[j] -= 1
    out = []
    for cells in [headers, *rows]:
        wrapped = [
            textwrap.wrap(str(c), widths[j], break_long_words=True, break_on_hyphens=False) or [""]
            for j, c in enumerate(cells)
        ]
        for k in range(max(len(w) for w in wrapped)):
            parts = [(w[k] if k < len(w) else "").ljust(widths[j]) for j, w in enumerate(wrapped)]
            out.append("  ".join(parts).rstrip())
        if cells is headers:
            out.append("  ".join("-" * w for w in widths))
    return out


def _wrap_equation(raw: str, width: int) -> list[str]:
    """One equation line wrapped to ``width``, continuation lines indented under its right side."""
    indent = raw[: len(raw) - len(raw.lstrip())]
    m = _ASSIGN.match(raw)
    head, body = (f"{indent}{m.group(1)} = ", m.group(2)) if m else (indent, raw.strip())
    return textwrap.wrap(
        body,
        width,
        initial_indent=head,
        subsequent_indent=" " * min(len(head), width // 3),
        break_on_hyphens=False,
    ) or [""]


def to_text(model, width: int | None = None) -> str:
    """The model as plain-text tables at most ``width`` columns wide (default: the terminal's).

    Every symbol printed in the equations is defined in the tables that follow them.
    """
    from cartkin import models

    model = models.get(model)
    width = terminal_width() if width is None else max(40, int(width))
    syms = symbols(model)
    out = [model.name, "=" * len(model.name)]
    out += [*textwrap.wrap(" ".join(model.description.split()), width), ""]
    out += [
        *textwrap.wrap("States (time t in days; dX or d/dt(X): the rate of change of X)", width),
        "",
    ]
    out += _table(
        ["symbol", "state", "unit", "description"],
        [[s.symbol, s.name, s.unit, s.description] for s in model.states],
        width,
    )
    out += ["", "Equations", ""]
    for raw in model.equations.strip("\n").splitlines():
        out += _wrap_equation(raw, width)
    other = [s for s in syms if s.kind in ("derived", "intermediate", "input", "time")]
    if other:
        head = "Other symbols (derived: per patient; input: from the patient and regimen)"
        out += ["", *textwrap.wrap(head, width), ""]
        out += _table(
            ["symbol", "kind", "unit", "definition"],
            [[s.symbol, s.kind, s.unit or "-", s.description] for s in other],
            width,
        )
    out += ["", "Parameters (sources: --format markdown)", ""]
    out += _table(
        ["name", "default", "unit", "bounds", "description"],
        [
            [p.name, _num(p.default), p.unit, f"[{_num(p.lower)}, {_num(p.upper)}]", p.description]
            for p in model.parameters
        ],
        width,
    )
    out += ["", "Observables", ""]
    out += _table(
        ["observable", "unit", "description"],
        [[o.name, o.unit, o.description] for o in model.observables],
        width,
    )
    return "\n".join(out) + "\n"
