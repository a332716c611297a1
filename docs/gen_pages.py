"""Generate the site's pages that restate code: one page per built-in model, the scenario schema.

Usage::

    python docs/gen_pages.py            # rewrite docs/models/*.md and docs/reference/scenario.md
    python docs/gen_pages.py --check    # exit 1 if a committed page differs from the code

The model pages read the public model API (``Model.states``, ``parameters``, ``observables``,
``derived``, ``equations``) through :mod:`cartkin.modeldoc`, and the calibration file next to
the model (``cartkin/models/<name>_calibration.json`` or ``cartkin/models/calibration/<name>.json``).
The scenario page reads the key lists and dataclasses that validate a scenario file
(:mod:`cartkin.scenario`, :mod:`cartkin.patient`, :mod:`cartkin.regimen`, and the ``[data]``,
``[fit]``, ``[sweep]``, ``[outcomes]`` parsers), so a key added to the code without a
description here fails ``tests/test_docs.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "kappa", "lambda",
    "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Equations in LaTeX
# ---------------------------------------------------------------------------------------------


def tex_symbol(name: str) -> str:
    """LaTeX for a model symbol: ``delta_E`` -> ``\\delta_{E}``, ``k_IL6_ref`` -> ``k_{IL6,ref}``."""
    base, _, sub = name.partition("_")
    if base in GREEK:
        head = "\\" + base
    elif len(base) == 1:
        head = base
    else:
        head = f"\\mathrm{{{base}}}"
    if not sub:
        return head
    sub = sub.replace("_", ",")
    sub = sub if len(sub) == 1 or sub.isdigit() else f"\\mathrm{{{sub}}}"
    return f"{head}_{{{sub}}}"


def tex_expression(text: str, names) -> str:
    """LaTeX for one right-hand side (sympy, written in the order of the code)."""
    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    text = re.sub(r"\b(\d+)\.0\b", r"\1", text)  # 1.0 -> 1
    local = {n: sympy.Symbol(n) for n in names}
    expr = parse_expr(text, local_dict=local, evaluate=False)
    symbol_names = {sympy.Symbol(n): tex_symbol(n) for n in names}
    return sympy.latex(expr, order="none", symbol_names=symbol_names, mul_symbol="dot")


def _aligned(rows) -> str:
    body = " \\\\[6pt]\n".join(rows)
    return f"$$\n\\begin{{aligned}}\n{body}\n\\end{{aligned}}\n$$"


def equations_tex(model) -> str | None:
    """The model's equations as display math, or None if they hold control flow (``if``)."""
    from cartkin import modeldoc

    lines = modeldoc.parse_equations(model)
    if any(line.kind == "other" for line in lines):
        return None
    names = {s.symbol for s in modeldoc.symbols(model)} | {line.left for line in lines}
    blocks: dict[str, list[str]] = {"intermediate": [], "rate": [], "derived": [], "initial": []}
    inputs = []
    for line in lines:
        rhs = tex_expression(line.right, names)
        sym = tex_symbol(line.left)
        if line.kind == "rate":
            blocks["rate"].append(f"\\frac{{d{sym}}}{{dt}} &= {rhs}")
        elif line.kind == "initial":
            blocks["initial"].append(f"{sym}(t_0) &= {rhs}")
        elif line.kind == "input":
            schedule = line.raw.split(":", 1)[0].strip()
            inputs.append(f"- {schedule}: \\({sym} \\mathrel{{+}}= {rhs}\\)")
        else:
            blocks[line.kind].append(f"{sym} &= {rhs}")
    out = []
    titles = {"derived": "Per patient (computed once from covariates, dosing and the table):",
              "initial": "Initial state (other states start at 0):"}  # fmt: skip
    for kind in ("intermediate", "rate", "derived", "initial"):
        if blocks[kind]:
            if kind in titles:
                out.append(titles[kind])
            out.append(_aligned(blocks[kind]))
    if inputs:
        out.append("Dosing events (the regimen supplies days and doses):\n\n" + "\n".join(inputs))
    return "\n\n".join(out)


# ---------------------------------------------------------------------------------------------
# Model pages
# ---------------------------------------------------------------------------------------------


def _cell(text) -> str:
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", str(text))  # Sphinx roles -> code
    return text.replace("``", "`").replace("|", "\\|").replace("\n", " ")


def _num(x) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, (int, float)):
        return f"{x:.4g}"
    return _cell(x)


def calibration_file(name: str) -> Path | None:
    """The calibration file of a built-in model, if it has one: the ``CALIBRATION_FILE`` its
    module names, else ``<name>_calibration.json`` or ``calibration/<name>.json``."""
    import importlib

    models_dir = ROOT / "cartkin" / "models"
    if (models_dir / f"{name}.py").is_file():
        declared = getattr(
            importlib.import_module(f"cartkin.models.{name}"), "CALIBRATION_FILE", None
        )
        if declared is not None and Path(declared).is_file():
            return Path(declared).resolve()
    for path in (
        models_dir / f"{name}_calibration.json",
        models_dir / "calibration" / f"{name}.json",
    ):
        if path.is_file():
            return path
    return None


def _calibration_section(name: str) -> list[str]:
    path = calibration_file(name)
    out = ["## Calibration", ""]
    if path is None:
        return [*out, "No calibration file: the defaults come from the sources in the table.", ""]
    data = json.loads(path.read_text(encoding="utf-8"))
    rel = path.relative_to(ROOT).as_posix()
    script = data.get("script") or data.get("command") or ""
    out += [f"From `{rel}`" + (f", written by `{script}`." if script else "."), ""]
    if "targets" in data and "achieved" in data and isinstance(data["targets"], dict):
        sources = data.get("sources") if isinstance(data.get("sources"), dict) else {}
        out += ["| target | published | model (calibrated) | source |", "|---|---|---|---|"]
        for key, value in data["targets"].items():
            out.append(
                f"| {key} | {_num(value)} | {_num(data['achieved'].get(key))} | "
                f"{_cell(sources.get(key, ''))} |"
            )
        out.append("")
    if isinstance(data.get("estimates"), dict):
        first = next(iter(data["estimates"].values()), None)
        if isinstance(first, dict):  # a FitResult: value, CI, identifiable
            out += ["| parameter | estimate | unit | 95% CI (profile) | identifiable | note |"]
            out += ["|---|---|---|---|---|---|"]
            for key, e in data["estimates"].items():
                ci = f"[{_num(e.get('ci_low'))}, {_num(e.get('ci_high'))}]"
                out.append(
                    f"| `{key}` | {_num(e.get('value'))} | {e.get('unit', '')} | {ci} | "
                    f"{e.get('identifiable')} | {_cell(e.get('note', ''))} |"
                )
        else:
            out += ["| parameter | calibrated value |", "|---|---|"]
            out += [f"| `{k}` | {_num(v)} |" for k, v in data["estimates"].items()]
        out.append("")
    if isinstance(data.get("targets"), list):
        out += ["Targets:", ""]
        out += [
            f"- {_cell(t.get('label', ''))}: {_cell(t.get('source', ''))}" for t in data["targets"]
        ]
        out.append("")
    for key in ("fixed", "fixed_from_sources"):
        if isinstance(data.get(key), dict) and data[key]:
            fixed = ", ".join(f"`{k}` = {_num(v)}" for k, v in data[key].items())
            out += [f"Held fixed during the calibration: {fixed}.", ""]
    if data.get("unidentified"):
        out += ["Not identified by the calibration targets:", ""]
        out += [f"- {_cell(u)}" for u in data["unidentified"]]
        out.append("")
    out += ["## Validation", ""]
    validation = data.get("validation")
    extra = path.with_name(f"{path.stem}_validation.json")
    if validation is None and extra.is_file():
        validation = json.loads(extra.read_text(encoding="utf-8"))
        out += [f"From `{extra.relative_to(ROOT).as_posix()}`:", ""]
    if isinstance(validation, list) and validation:
        keys = list(validation[0])
        out += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        out += ["| " + " | ".join(_num(row.get(k)) for k in keys) + " |" for row in validation]
    else:
        out.append(
            "No validation against data not used for the calibration is recorded "
            f"(`{rel}` has no `validation` rows and there is no `{path.stem}_validation.json` beside "
            "it)."
        )
    return [*out, ""]


def model_page(name: str) -> str:
    """The Markdown page of one registered model."""
    from cartkin import modeldoc, models

    model = models.get(name)
    syms = modeldoc.symbols(model)
    out = [
        f"# {name}",
        "",
        "<!-- generated by docs/gen_pages.py from the model code: do not edit -->",
        "",
        " ".join(model.description.split()),
        "",
        f"`cartkin show {name}` prints the same in a terminal; "
        f"`cartkin show {name} --format json` for scripts.",
        "",
        "## Equations",
        "",
        "Time \\(t\\) in days (day 0: CAR-T infusion). Every symbol is defined in the tables below.",
        "",
    ]
    tex = equations_tex(model)
    if tex:
        out += [tex, ""]
        out += ['??? note "The same equations as written in the code"', ""]
        out += ["    ```text"] + [
            f"    {line}" for line in model.equations.strip("\n").splitlines()
        ]
        out += ["    ```", ""]
    else:
        out += ["```text", model.equations.strip("\n"), "```", ""]
    out += ["## States", "", "| symbol | state | unit | description |", "|---|---|---|---|"]
    out += [
        f"| \\({tex_symbol(s.symbol)}\\) `{s.symbol}` | `{s.name}` | {s.unit} | {_cell(s.description)} |"
        for s in model.states
    ]
    out += ["", "## Parameters", ""]
    out += [
        "| symbol | default | unit | bounds | description | source |",
        "|---|---|---|---|---|---|",
    ]
    for p in model.parameters:
        out.append(
            f"| \\({tex_symbol(p.name)}\\) `{p.name}` | {p.default:.4g} | {_cell(p.unit)} | "
            f"[{p.lower:.4g}, {p.upper:.4g}] | {_cell(p.description)} | {_cell(p.source)} |"
        )
    other = [s for s in syms if s.kind in ("derived", "intermediate", "time")]
    if other:
        out += ["", "## Derived values and intermediates", ""]
        out += [
            "Derived values are computed once per patient (from covariates, dosing and the "
            "table); intermediates are defined by the equations above.",
            "",
            "| symbol | kind | unit | definition |",
            "|---|---|---|---|",
        ]
        for s in other:
            out.append(
                f"| \\({tex_symbol(s.symbol)}\\) `{s.symbol}` | {s.kind} | "
                f"{_cell(s.unit) or 'from definition'} | {_cell(s.description)} |"
            )
    out += ["", "## Observables", "", "| observable | unit | description |", "|---|---|---|"]
    out += [f"| `{o.name}` | {o.unit} | {_cell(o.description)} |" for o in model.observables]
    roles = {k: v for k, v in model.roles.items() if v is not None}
    out += ["", "Roles (what metrics, fits and outcomes read): "]
    out += [", ".join(f"{k} = `{v}`" for k, v in roles.items()) + ".", ""]
    out += _calibration_section(name)
    return "\n".join(out).rstrip("\n") + "\n"


def dvid_names() -> str:
    """The observables (DVID names) and roles of every model, for the dataset reference."""
    from cartkin import models

    out = ["| model | DVID (observable) | unit | role | description |", "|---|---|---|---|---|"]
    for name in models.available():
        m = models.get(name)
        role_of = {v: k for k, v in m.roles.items() if v is not None}
        for o in m.observables:
            out.append(
                f"| {name} | `{o.name}` | {o.unit} | {role_of.get(o.name, '')} | "
                f"{_cell(o.description)} |"
            )
    from cartkin.data.units import UNITS

    out += ["", "Units read (scaled within a dimension; anything else is refused):", ""]
    out += ["| dimension | units (reference first) |", "|---|---|"]
    dims: dict[str, list[str]] = {}
    for u in UNITS:
        dims.setdefault(u.dimension, []).append(f"`{u.symbol}`")
    out += [f"| {d} | {', '.join(v)} |" for d, v in dims.items()]
    return "\n".join(out) + "\n"


def models_index() -> str:
    """The models overview page."""
    from cartkin import models

    out = [
        "# Models",
        "",
        "<!-- generated by docs/gen_pages.py from the model code: do not edit -->",
        "",
        "| model | states | parameters | description |",
        "|---|---|---|---|",
    ]
    for name in models.available():
        m = models.get(name)
        first = " ".join(m.description.split())
        out.append(
            f"| [{name}]({name}.md) | {len(m.states)} | {len(m.parameters)} | {_cell(first)} |"
        )
    out += [
        "",
        "Each page is generated from the model code and its calibration file "
        "(`python docs/gen_pages.py`). To add a model, see the tutorial "
        "[Write your own model](../tutorials/own_model.md).",
    ]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Scenario schema
# ---------------------------------------------------------------------------------------------

#: Descriptions of the keys of the tables whose parsers keep a key list but no per-key text.
#: tests/test_docs.py checks these against the key lists in the code both ways.
KEY_NOTES: dict[str, dict[str, tuple[str, str, str]]] = {
    # table: {key: (type, default, description with unit and range)}
    "data": {
        "file": (
            "string",
            "-",
            "dataset path, relative to the scenario file (NONMEM-style CSV "
            "or long format; see [Dataset format](dataset.md))",
        ),
        "dvid": ("table", "{}", "DVID code -> observable or role (needed for numeric codes)"),
        "units": (
            "table",
            "{}",
            "unit per DVID code, role or observable where the file has no UNIT value",
        ),
        "sex": ("table", "{}", 'numeric SEX code -> "female" or "male" (refused without it)'),
    },
    "fit": {
        "free": ("list of strings", "[]", "model parameters to estimate (CLI `--free` overrides)"),
        "free_error": (
            '"all" or list',
            "[]",
            'residual-error parameters to estimate: "all", or a list such as '
            '["cart_cells_per_ul.sigma_add"]; [] holds them fixed',
        ),
        "starts": (
            "integer",
            "8",
            "optimizer starts (initial values plus a Latin hypercube); CLI `--starts`",
        ),
        "seed": ("integer", "0", "seed of the start design; CLI `--seed`"),
        "profile": ("boolean", "true", "compute profile-likelihood 95% intervals"),
        "grid_step_days": ("float, day", "0.25", "grid step for summary targets"),
        "horizon_days": (
            "float, day",
            "365",
            "grid end for summary targets (unset: 365 days or the last target day)",
        ),
        "predict_days": (
            "list of float, day",
            "[]",
            "extra days at which predictions are reported",
        ),
        "bounds": ("table", "{}", "`name = [lower, upper]` within the parameter table's bounds"),
        "priors": (
            "table",
            "{}",
            "`[fit.priors.NAME]`: log-normal prior, `median` and `sd_log` (or `omega2`), `source`",
        ),
        "error": (
            "table",
            "{}",
            "`[fit.error.OBSERVABLE]`: `kind` (log, additive, "
            "proportional, combined), `sigma_add`, `sigma_prop`",
        ),
        "target": (
            "array of tables",
            "[]",
            "`[[fit.target]]`: `metric`, `kind` (normal | "
            "interval), `mean`/`sd` or `lower`/`upper`, `log`, `observable`, `day`, "
            "`threshold`, `source`",
        ),
    },
    "sweep": {
        "n_patients": ("integer", "required", "virtual patients per grid point, >= 1"),
        "seed": ("integer", "required", "root seed, in [0, 2**64)"),
        "metrics": (
            "list of strings",
            "all",
            "metrics stored per patient (see [Metrics](metrics.md))",
        ),
        "flu_auc_window_mg_h_per_l": (
            "[float, float], mg.h/L",
            "[13.8, 20.0]",
            "window for P(FLU_AUC in window)",
        ),
        "recovery_by_day": ("float, day", "180", "day for P(B-cell recovery by day)"),
        "trajectories": ("integer", "0", "also store every observable of patients 0..m-1"),
        "trajectory_step_days": ("float, day", "-", "spacing of stored trajectories"),
        "axes": (
            "table",
            "{}",
            '`"dotted.scenario.key" = [values]` or '
            '`{ from, to, n }` / `{ log_from, to, n }`; `"dialysis"` as a kidney value '
            "uses [sweep.dialysis]",
        ),
        "variability": (
            "table",
            "{}",
            "omega^2 of log-normal factors exp(eta) per model "
            "parameter, plus `flu_clearance`; each in [0, 4]",
        ),
        "dialysis": (
            "table",
            "-",
            "the hemodialysis arm's schedule (fields of [patient.dialysis])",
        ),
    },
    "outcomes": {
        "days": ("list of float, day", "[90, 180, 270]", "named days for the outcome metric rows"),
        "dialysis_schedule": (
            "string",
            '"given"',
            '"given" or "follow_kidney_function" '
            "(sessions after day 0 follow the simulated kidney function)",
        ),
        "dialysis_free_ml_min_173m2": (
            "float, mL/min/1.73m2",
            "10",
            "kidney function above which no dialysis is needed (assumption)",
        ),
        "stable_fraction": (
            "float",
            "0.85",
            "kidney function >= this x day 0 counts as stable (KDIGO response)",
        ),
        "sledai": ("table", "{}", "[outcomes.sledai]: SLEDAI-2K settings (below)"),
    },
    "outcomes.sledai": {
        "items": (
            "table",
            "{}",
            "non-modelled SLEDAI-2K items: `item = true` (always) or [from_day, to_day]",
        ),
        "proteinuria_g_per_24h": ("float, g/24h", "0.5", "proteinuria item threshold"),
        "low_c3_g_per_l": ("float, g/L", "0.9", "low complement threshold"),
        "dsdna_iu_per_ml": ("float, IU/mL", "15", "increased DNA binding threshold"),
        "window_days": ("float, day", "10", "SLEDAI-2K look-back window"),
        "anuria_below_ml_min_173m2": (
            "float, mL/min/1.73m2",
            "1",
            "urine items unscorable below this kidney function",
        ),
    },
    "case": {
        "source": ("string", "-", "the publication the reported values come from"),
        "notes": ("string", "-", "free text"),
        "reported": (
            "table",
            "{}",
            "[case.reported]: `quantity = [[day, value], ...]` "
            "(sledai2k, proteinuria_g_per_24h, ...), drawn as markers",
        ),
    },
}


def _docstring_params(cls) -> dict[str, tuple[str, str]]:
    import griffe

    doc = griffe.Docstring(cls.__doc__ or "")
    out = {}
    for section in doc.parse("numpy", warnings=False):
        if section.kind.value in ("parameters", "attributes"):
            for p in section.value:
                out[p.name] = (str(p.annotation or ""), " ".join(str(p.description).split()))
    return out


def _dataclass_rows(cls) -> list[tuple[str, str, str, str]]:
    params = _docstring_params(cls)
    rows = []
    for f in dataclasses.fields(cls):
        ann, text = params.get(f.name, ("", ""))
        kind = re.sub(r",?\s*(default .*|optional)$", "", ann).strip() or str(f.type)
        if f.default is not dataclasses.MISSING:
            default = "-" if f.default is None else repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "required"
        rows.append((f.name, kind, default, text))
    return rows


def _table_md(title: str, intro: str, rows) -> list[str]:
    out = [f"## `[{title}]`", "", intro, ""] if intro else [f"## `[{title}]`", ""]
    out += ["| key | type | default | description (unit, range) |", "|---|---|---|---|"]
    for key, kind, default, text in rows:
        out.append(f"| `{key}` | {_cell(kind)} | `{_cell(default)}` | {_cell(text)} |")
    return [*out, ""]


def _schema():
    """The module holding the scenario keys: ``cartkin.config`` (or ``cartkin.scenario``)."""
    try:
        from cartkin import config

        return config, "{}_KEYS", "TOP_LEVEL_KEYS"
    except ImportError:  # the layout before cartkin/config.py
        from cartkin import scenario

        return scenario, "_{}_KEYS", "_TOP_LEVEL"


def scenario_key_lists() -> dict[str, tuple[str, ...]]:
    """The keys each scenario table accepts, read from the code that validates it."""
    from cartkin.data import spec as data_spec
    from cartkin.fit import spec as fit_spec
    from cartkin.outcomes import report
    from cartkin.sweep import spec as sweep_spec

    schema, keys, top = _schema()
    return {
        "top": tuple(getattr(schema, top)),
        "scenario": tuple(getattr(schema, keys.format("SCENARIO"))),
        "solver": tuple(getattr(schema, keys.format("SOLVER"))),
        "variant": tuple(getattr(schema, keys.format("VARIANT"))),
        "data": tuple(data_spec._KEYS),
        "fit": tuple(fit_spec._KEYS),
        "sweep": tuple(sweep_spec._SWEEP_KEYS),
        "outcomes": tuple(report._OUTCOME_KEYS),
        "outcomes.sledai": tuple(report._SLEDAI_KEYS),
        "case": tuple(report._CASE_KEYS),
    }


def _fmt_default(value) -> str:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(_fmt_default(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "-"
    return str(value)


def code_defaults() -> dict[str, dict[str, str]]:
    """Defaults the parsers fill in, read from the code (a minimal table parsed, or dataclass
    defaults), for the tables documented through :data:`KEY_NOTES`."""
    from cartkin.fit.spec import FitSpec
    from cartkin.outcomes import KDOQI_STEPWISE, OutcomeSettings, SledaiSettings
    from cartkin.sweep.spec import sweep_from_text

    fit = FitSpec()
    fit_defaults = {f.name: getattr(fit, f.name) for f in dataclasses.fields(FitSpec)}
    fit_defaults["error"] = fit_defaults.pop("error_models")
    fit_defaults["target"] = fit_defaults.pop("targets")
    minimal = (
        '[scenario]\nmodel = "sle_cart"\nt_end_days = 100.0\n[patient]\nweight_kg = 70\n'
        'height_cm = 170\nage_years = 40\nsex = "female"\negfr_ml_min_173m2 = 90\n[cart]\n'
        "cells_per_kg = 1e6\n[sweep]\nn_patients = 10\nseed = 1\n"
    )
    sweep = sweep_from_text(minimal)
    outcomes = OutcomeSettings()
    sledai = SledaiSettings()
    return {
        "fit": {k: _fmt_default(v) for k, v in fit_defaults.items()},
        "sweep": {
            "metrics": "all of the model's (sle_cart: " + ", ".join(sweep.metrics) + ")",
            "flu_auc_window_mg_h_per_l": _fmt_default(sweep.flu_auc_window_mg_h_per_l),
            "recovery_by_day": _fmt_default(sweep.recovery_by_day),
            "trajectories": _fmt_default(sweep.trajectories),
            "trajectory_step_days": _fmt_default(sweep.trajectory_step_days),
        },
        "outcomes": {
            "days": _fmt_default(outcomes.days),
            "dialysis_schedule": _fmt_default(outcomes.dialysis_schedule),
            "stable_fraction": _fmt_default(outcomes.stable_fraction),
            "dialysis_free_ml_min_173m2": _fmt_default(KDOQI_STEPWISE.dialysis_free_ml_min_173m2),
        },
        "outcomes.sledai": {
            f.name: _fmt_default(getattr(sledai, f.name))
            for f in dataclasses.fields(SledaiSettings)
        },
    }


def scenario_page() -> str:
    """docs/reference/scenario.md: every table and key of a scenario file."""
    from cartkin import CarTDose, DialysisSchedule, Lymphodepletion, Patient, scenario

    keys = scenario_key_lists()
    # defaults of [scenario] and [solver]: what the loader fills in for a minimal file
    minimal = scenario.scenario_from_dict(
        {"scenario": {"model": "stein2019"}, "patient": {"weight_kg": 70, "height_cm": 170,
         "age_years": 40, "sex": "female", "egfr_ml_min_173m2": 90}, "cart": {"cells_per_kg": 1e6}}
    )  # fmt: skip
    filled = {
        "t_end_days": f"{minimal.t_days[-1]:g}",
        "output_step_days": f"{minimal.t_days[1] - minimal.t_days[0]:g}",
        "clearance_model": repr(minimal.base.clearance_model),
        **{k: repr(v) for k, v in minimal.solver.items()},
    }
    types = {str: "string", float: "float", int: "integer", bool: "boolean"}

    schema, key_name, _ = _schema()

    def keyed(table):
        spec = getattr(schema, key_name.format(table.upper()))
        return [
            (k, types.get(t, t.__name__), filled.get(k, "required" if k == "model" else "-"), d)
            for k, (t, d) in spec.items()
        ]

    defaults = code_defaults()

    def noted(table):
        rows = []
        for k in keys[table]:
            kind, default, text = KEY_NOTES[table].get(k, ("?", "?", "NOT DOCUMENTED"))
            rows.append((k, kind, defaults.get(table, {}).get(k, default), text))
        return rows

    out = [
        "# Scenario file",
        "",
        "<!-- generated by docs/gen_pages.py from the code that validates scenarios: do not edit -->",
        "",
        "A scenario is a TOML file (see `scenarios/`). Unknown keys are refused with the closest "
        "valid name; every value is checked for type and range, and an error names the file, "
        "table, key, value and what was expected. Units are part of the key names "
        "(`weight_kg`, `egfr_ml_min_173m2`). Days are relative to the CAR-T infusion (day 0).",
        "",
        "Top-level tables: " + ", ".join(f"`[{k}]`" for k in keys["top"]) + " "
        "(`[scenario]`, `[patient]` and `[cart]` are required; `[[variant]]` is an array of "
        "tables).",
        "",
    ]
    out += _table_md("scenario", "", keyed("scenario"))
    out += _table_md(
        "patient",
        "Exactly one of `egfr_ml_min_173m2`, `crcl_ml_min`, `serum_creatinine_mg_dl`, unless "
        "the patient is on dialysis (`[patient.dialysis]`): then at most a residual "
        "`egfr_ml_min_173m2` or `crcl_ml_min`.",
        _dataclass_rows(Patient),
    )
    out += _table_md(
        "patient.dialysis", "Hemodialysis sessions.", _dataclass_rows(DialysisSchedule)
    )
    out += _table_md("lymphodepletion", "", _dataclass_rows(Lymphodepletion))
    out += _table_md("cart", "", _dataclass_rows(CarTDose))
    out += [
        "## `[parameters]`",
        "",
        "`name = value` for any parameter of the scenario's model, in the unit of its table "
        "(see [Models](../models/index.md) or `cartkin show MODEL`); within the parameter's "
        "bounds.",
        "",
    ]
    out += _table_md("solver", "", keyed("solver"))
    out += [
        "## `[[variant]]`",
        "",
        "Arms of the scenario: each is the base scenario with overrides. Keys: "
        + ", ".join(f"`{k}`" for k in keys["variant"])
        + " (`label` required and unique; the others are tables merged into the base ones; a "
        "kidney key replaces the base patient's kidney function, except that a dialysis schedule "
        "alone, for a base patient already on dialysis, keeps the residual kidney function).",
        "",
    ]
    for table in ("data", "fit", "sweep", "outcomes", "outcomes.sledai", "case"):
        out += _table_md(table, "", noted(table))
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------
# Benchmarks page (from benchmarks/results, written by the scripts in benchmarks/)
# ---------------------------------------------------------------------------------------------

RESULTS = ROOT / "benchmarks" / "results"


def _demote(md: str) -> str:
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", md, flags=re.M)


def _load(name):
    path = RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def benchmarks_page() -> str:
    """docs/benchmarks.md: every table of benchmarks/results with the command that made it."""
    out = [
        "# Benchmarks",
        "",
        "<!-- generated by docs/gen_pages.py from benchmarks/results: do not edit -->",
        "",
        "Each section shows the command that produced its table (run from the repository root "
        "with `pip install -e '.[bench]'` for the peers) and the date and machine of that run, "
        "as recorded in `benchmarks/results/`. Definitions and discussion: "
        "`benchmarks/README.md`.",
        "",
        "## Solvers: work-precision and time per solve",
        "",
        "Command: `python benchmarks/bench_solvers.py`",
        "",
    ]
    solvers = RESULTS / "solvers.md"
    if solvers.is_file():
        out += [_demote(solvers.read_text(encoding="utf-8").strip()), ""]
    if (RESULTS / "work_precision.png").is_file():
        out += ["![Work-precision diagram](figures/work_precision.png)", ""]
    fit = _load("fit.json")
    if fit:
        out += ["## Single-patient fit", "", "Command: `python benchmarks/bench_fit.py`", ""]
        out += [
            f"Run {fit.get('date', 'date not recorded')}, machine: {fit.get('machine', '-')}.",
            "",
        ]
        out += [(RESULTS / "fit.md").read_text(encoding="utf-8").strip(), ""]
    if (RESULTS / "population.md").is_file():
        out += [
            "## Population fit (SAEM)",
            "",
            "Command: `python benchmarks/bench_population.py`",
            "",
        ]
        out += [_demote((RESULTS / "population.md").read_text(encoding="utf-8").strip()), ""]
    sweep = _load("sweep.json")
    if sweep:
        m = sweep.get("machine", {})
        machine = (
            f"{m.get('platform', '-')}, {m.get('cpus', '-')} CPUs, numba {m.get('numba', '-')}"
        )
        setting = sweep.get("sweep_setting", {})
        sizes = ",".join(f"{n:g}" for n in sweep.get("sizes", []))
        out += [
            "## Batch engine throughput (in-kernel metrics)",
            "",
            f"Command: `python benchmarks/bench_sweep.py{' --sizes ' + sizes if sizes else ''}`",
            "",
            f"Date: not recorded in `sweep.json`; machine: {machine}. Model "
            f"{sweep.get('model', '-')}, horizon {sweep.get('horizon_days', '-')} days, "
            f"{setting.get('method', '-')} rtol {setting.get('rtol', '-')} (worst metric "
            f"error {setting.get('worst_rel_error', float('nan')):.1e}).",
            "",
            "| patients | threads | seconds | patients/s |",
            "|---:|---:|---:|---:|",
        ]
        for row in sweep.get("throughput", []):
            out.append(
                f"| {row['n']:,} | {row['threads']} | {row['seconds']:.2f} | "
                f"{row['patients_per_s']:,.0f} |"
            )
        peers = sweep.get("peers", [])
        if peers:
            out += ["", "| peer, in the same run | patients/s | the engine is |", "|---|---:|---:|"]
            out += [
                f"| {p['peer']} | {p['patients_per_s']:,.0f} | {p['engine_ratio']:.1f}x |"
                for p in peers
            ]
        out.append("")
    pipeline = _load("sweep_pipeline.json")
    if pipeline:
        out += [
            "## Sweep pipeline (store writing included)",
            "",
            "Command: `python benchmarks/bench_sweep_pipeline.py` (modes: `sweep` on all "
            "threads, `sweep1` one thread, `dask1`/`dask2` LocalCluster workers)",
            "",
            f"Date and machine: not recorded in `sweep_pipeline.json` (same machine as the "
            f"engine table above: {machine if sweep else '-'}).",
            "",
            "| mode | patients | seconds | patients/s | peak RSS (MB) |",
            "|---|---:|---:|---:|---:|",
        ]
        out += [
            f"| {r['mode']} | {r['n']:,} | {r['seconds']:.1f} | {r['patients_per_s']:,.0f} | "
            f"{r.get('peak_rss_mb', float('nan')):.0f} |"
            for r in pipeline
        ]
        out.append("")
    single = _load("single.json")
    if single:
        m = single.get("machine", {})
        cli = single.get("cli", {})
        out += [
            "## One patient from the command line",
            "",
            "Command: `python benchmarks/bench_single.py`",
            "",
            f"Run {m.get('date_utc', '-')} UTC, machine: {m.get('platform', '-')}, "
            f"{m.get('cpu_count', '-')} CPUs, load average {m.get('load_average', '-')}.",
            "",
            "| what | median (s) |",
            "|---|---:|",
            f"| `{cli.get('command', '-')}` (warm cache) | {cli.get('median_s', float('nan')):.3f} |",
            f"| bare interpreter start | {cli.get('bare_interpreter_median_s', float('nan')):.3f} |",
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------


def pages() -> dict[Path, str]:
    """Every generated page: path -> text."""
    from cartkin import models

    out = {
        DOCS / "reference" / "scenario.md": scenario_page(),
        DOCS / "reference" / "_dvid_names.md": dvid_names(),
        DOCS / "models" / "index.md": models_index(),
        DOCS / "benchmarks.md": benchmarks_page(),
    }
    for name in models.available():
        out[DOCS / "models" / f"{name}.md"] = model_page(name)
    return out


def main(argv=None) -> int:
    """Write the generated pages, or with ``--check`` report the ones that differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for path, text in pages().items():
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    figure = RESULTS / "work_precision.png"
    copy = DOCS / "figures" / "work_precision.png"
    if figure.is_file() and (not copy.is_file() or copy.read_bytes() != figure.read_bytes()):
        stale.append(copy.relative_to(ROOT).as_posix())
        if not args.check:
            copy.write_bytes(figure.read_bytes())
    if args.check and stale:
        print("out of date (run python docs/gen_pages.py): " + ", ".join(stale))
        return 1
    print(("would update: " if args.check else "updated: ") + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
