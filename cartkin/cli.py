"""The ``cartkin`` command line.

``cartkin simulate SCENARIO``  print the metrics of a scenario, optionally write the trajectory
                               (CSV) and a figure; ``--format json`` for scripts.
``cartkin fit SCENARIO [DATA]`` fit free parameters to data and/or summary targets
                               (:mod:`cartkin.fit.cli`).
``cartkin models``             list the models.
``cartkin show MODEL``         a model's states, equations, symbols and parameters: a table that
                               fits the terminal (``--format markdown|json`` for the rest).
``cartkin export MODEL --sbml FILE``  the model as SBML Level 3 (:mod:`cartkin.export.cli`).
``cartkin --version``          the installed version.

Errors exit with status 2 (bad input) or 1 (solver failure) and a one-line message; ``--debug``
shows the traceback. Output paths (directory exists, figure format known) are checked before
anything runs. Warnings (an assumption the input relies on) print as one line each.

Other modules add subcommands with :func:`add_command`::

    def _add_fit(sub):                      # sub: argparse subparsers action
        p = sub.add_parser("fit", help="...")
        p.add_argument(...)
        return run_fit                      # run_fit(args) -> exit status

    cli.add_command(_add_fit)
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import math
import os
import sys
import textwrap
import threading
import warnings
from pathlib import Path

from cartkin.errors import CartkinError, ScenarioError, SolverError

__all__ = ["add_command", "build_parser", "console", "main"]

#: Registered subcommands: functions ``add(subparsers) -> run(args) -> int``.
_COMMANDS: list = []

#: Values written to the CSV that are negative but within this many absolute tolerances of
#: zero are solver round-off (e.g. -7.7e-17 cells/uL) and are written as 0.0.
_ROUNDOFF_ATOLS = 10.0


def add_command(add) -> None:
    """Register a subcommand: ``add(subparsers)`` adds its parser and returns ``run(args) -> int``."""
    if add not in _COMMANDS:
        _COMMANDS.append(add)


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (so a bad --lloq is a usage error, not a traceback)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number > 0")
    return value


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The argument parser and ``{command: run(args) -> int}`` for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cartkin", description="CAR-T cellular kinetics: simulate scenarios, inspect models."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"cartkin {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="simulate a scenario file and print its metrics")
    sim.add_argument("scenario", type=Path, help="scenario TOML file (see scenarios/)")
    sim.add_argument("--format", choices=("table", "json"), default="table", help="metrics output")
    sim.add_argument(
        "--csv",
        type=Path,
        metavar="PATH",
        help="write the trajectory to this CSV file (its directory must exist); negative "
        "round-off within 10 x atol of zero is written as 0",
    )
    sim.add_argument(
        "--figure",
        type=Path,
        metavar="PATH",
        help="write a figure; the format follows the suffix (.png, .pdf, .svg, ...; the "
        "directory must exist)",
    )
    sim.add_argument(
        "--lloq",
        type=_positive_float,
        default=None,
        metavar="CELLS_PER_UL",
        help="CAR-T lower limit of quantification for persistence metrics (cells/uL)",
    )
    sim.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )

    from cartkin.export.cli import add_parser as add_export_parser
    from cartkin.fit.cli import add_parser as add_fit_parser
    from cartkin.sweep.cli import add_commands as add_sweep_commands

    add_fit_parser(sub)
    add_sweep_commands(sub)
    add_export_parser(sub)
    sub.add_parser("models", help="list the available models")
    show = sub.add_parser("show", help="show a model's states, equations and parameters")
    show.add_argument("model", help="model name (see `cartkin models`) or model file (.py)")
    show.add_argument(
        "--format",
        choices=("table", "markdown", "json"),
        default="table",
        help="table: fits the terminal (100 columns when not attached to one); markdown adds "
        "the parameter sources and outcome rules; json for scripts",
    )
    show.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    runners = {"simulate": _simulate, "models": lambda args: _models(), "show": _show_args}
    for add in _COMMANDS:
        before = set(sub.choices)
        run = add(sub)
        for name in set(sub.choices) - before:
            runners[name] = run
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # a subcommand added in build_parser with set_defaults(run=...) runs through it
            run = runners.get(args.command) or getattr(args, "run", None)
            status = run(args)
        except (CartkinError, OSError, RecursionError, MemoryError) as exc:
            if args.debug:
                raise
            _print_warnings(caught)
            return _report(exc)
        except KeyboardInterrupt as exc:  # Ctrl-C: one line and the shell's 128 + SIGINT
            if args.debug:
                raise
            _print_warnings(caught)
            print(f"cartkin: {exc or 'interrupted'}", file=sys.stderr)
            return 130
    _print_warnings(caught)
    return status


def console(argv: list[str] | None = None) -> int:
    """Entry point of the ``cartkin`` script and ``python -m cartkin.cli``: :func:`main` in a
    process that ends when it returns.

    The objects created by the imports (about 10^5: numba, numpy, the models) live until the
    process ends, so they are moved out of the garbage collector's reach (``gc.freeze``) before
    the command runs (a full collection during the kernel load cost about 50 ms), and again
    when it returns: the collections at interpreter exit then skip the teardown of numba's
    compiled code, which took about 0.2 s of every ``cartkin simulate`` (measured 2026-11-29).
    Objects still alive at exit are not finalized, which CPython does not promise anyway; every
    command closes its files before it returns. Call :func:`main` to run a command in a process
    that goes on (tests, notebooks).
    """
    gc.freeze()
    status = main(argv)
    if status == 130 and threading.active_count() > 1:
        # Ctrl-C while a daemon thread (a sweep's compute) may still be inside numba's compiler:
        # finalizing the interpreter under it can crash the process (SIGSEGV seen in CI), so end
        # here. A command returns 130 only after closing its files and flushing its store.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    gc.freeze()
    return status


def _report(exc) -> int:
    """Print one line for ``exc``; return the exit status (1: solver failure, 2: bad input)."""
    kind = "solver failed" if isinstance(exc, SolverError) else "error"
    if isinstance(exc, RecursionError):
        message = "input nested too deeply to process"
    elif isinstance(exc, MemoryError):
        message = "out of memory; reduce the output grid (t_end_days / output_step_days)"
    elif isinstance(exc, OSError) and exc.filename is not None:
        message = f"{exc.filename}: {exc.strerror or exc}"
    else:
        message = " ".join(str(exc).split())
    print(f"cartkin: {kind}: {message}", file=sys.stderr)
    return 1 if isinstance(exc, SolverError) else 2


def _print_warnings(caught) -> None:
    seen = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if issubclass(w.category, UserWarning) and text not in seen:
            seen.add(text)
            print(f"cartkin: warning: {text}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------


def _models() -> int:
    from cartkin import models

    for name in models.available():
        model = models.get(name)
        first = model.description.strip().split("\n")[0]
        print(f"{name:<14} {len(model.states)} states, {len(model.parameters)} parameters  {first}")
    return 0


def _version() -> str:
    from cartkin import __version__

    return __version__


def _show_args(args) -> int:
    return _show(args.model, getattr(args, "format", "markdown"))


def _show(name: str, fmt: str = "markdown") -> int:
    from cartkin import modeldoc, models

    # a model file (as in a scenario's `model = "file.py"`) or a registered name
    model = models.load(name) if Path(name).suffix in (".py", ".xml", ".sbml") else models.get(name)
    if fmt == "json":
        print(modeldoc.to_json(model))
        return 0
    from cartkin.outcomes import describe, has_outcomes

    rules = describe() if has_outcomes(model) else ""
    if fmt == "table":
        width = modeldoc.terminal_width()
        sys.stdout.write(modeldoc.to_text(model, width))
        if rules:
            print("\nLupus nephritis outcomes (cartkin.outcomes defaults)\n")
            for line in rules.splitlines():
                print("\n".join(textwrap.wrap(line, width, subsequent_indent="    ")))
        return 0
    sys.stdout.write(modeldoc.to_markdown(model))
    if rules:
        print("\n## Lupus nephritis outcomes (cartkin.outcomes defaults)\n")
        print(rules)
    return 0


def _simulate(args) -> int:
    from cartkin import metrics
    from cartkin.scenario import load_scenario

    _check_output(args.csv, "--csv", None)
    # matplotlib (about 0.1 s to import) only when a figure is asked for
    _check_output(args.figure, "--figure", _figure_formats() if args.figure is not None else None)
    scenario = load_scenario(args.scenario)
    try:
        results = scenario.run()
    except SolverError as exc:
        raise SolverError(f"{args.scenario}: {exc}", solution=exc.solution) from exc
    kwargs = {} if args.lloq is None else {"lloq_cells_per_ul": args.lloq}
    outcomes = getattr(scenario, "outcomes", None)
    notes = _model_notes(scenario.model)
    if scenario.has_sweep:
        arms = f" and its {len(scenario.variants)} variants" if scenario.variants else ""
        notes.insert(
            0,
            f"{args.scenario} has a [sweep] table: `cartkin simulate` runs the base patient"
            f"{arms} only; `cartkin sweep {args.scenario}` runs the virtual population",
        )
    tables = [metrics.compute(r, outcomes=outcomes, **kwargs) for r in results]

    if args.format == "json":
        payload = {
            "scenario": scenario.name,
            "file": str(args.scenario),
            "model": scenario.model.name,
            "notes": notes,
            "arms": [
                {"label": r.label, "metrics": [m.as_dict() for m in table]}
                for r, table in zip(results, tables, strict=True)
            ],
        }
        if outcomes is not None and outcomes.case is not None:
            from cartkin.outcomes import case_comparison

            payload["case"] = {
                "source": outcomes.case.source,
                "notes": outcomes.case.notes,
                "caveat": "model values beside one case's reported outcomes: a scenario "
                "consistent with the case, not an estimate",
            }
            for arm, r in zip(payload["arms"], results, strict=True):
                arm["case_comparison"] = case_comparison(r, outcomes)
        print(json.dumps(payload, indent=2, allow_nan=False, default=_json_default))
    else:
        print(f"{scenario.name}\n({args.scenario}, model {scenario.model.name})")
        for note in notes:
            print(f"note: {note}")
        print()
        print(_format_table(results, tables))
        if outcomes is not None and outcomes.case is not None:
            print(_format_case(outcomes, results))

    if args.csv is not None:
        _write_csv(args.csv, results, outcomes, _ROUNDOFF_ATOLS * scenario.solver["atol"])
        print(f"trajectory written to {args.csv}", file=sys.stderr)
    if args.figure is not None:
        _write_figure(args.figure, scenario, results)
        print(f"figure written to {args.figure}", file=sys.stderr)
    return 0


def _figure_formats() -> tuple[str, ...]:
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def _check_output(path: Path | None, option: str, formats) -> None:
    """Refuse an output path that cannot be written, before any simulation runs."""
    if path is None:
        return
    if path.is_dir():
        raise ScenarioError(f"{option} {path}: is a directory; expected a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ScenarioError(
            f"{option} {path}: directory {parent} does not exist; create it first (cartkin "
            "does not create directories)"
        )
    if not os.access(parent, os.W_OK):
        raise ScenarioError(f"{option} {path}: directory {parent} is not writable")
    if formats is not None:
        suffix = path.suffix.lower().lstrip(".")
        if suffix not in formats:
            raise ScenarioError(
                f"{option} {path}: unknown figure format {path.suffix or '(no suffix)'!r}; "
                f"expected a file name ending in one of {', '.join('.' + f for f in formats)}"
            )


def _model_notes(model) -> list[str]:
    """What a model leaves out that a reader of its outputs must know (``Model.ignores``)."""
    ignored = getattr(model, "ignores", ())
    if not ignored:
        return []
    return [
        f"model {model.name} ignores {' and '.join(ignored)}: they are reported but do not "
        "change its curves"
    ]


def _json_default(value):
    raise TypeError(f"not JSON serialisable: {value!r}")


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _format_table(results, tables) -> str:
    """One row per metric, one column per arm, then unit and notes."""
    names = [m.name for m in tables[0]]
    arms = [r.label for r in results] if len(results) > 1 else ["value"]
    headers = ["metric", *arms, "unit", "note"]
    rows = []
    for i, name in enumerate(names):
        values = [_fmt(table[i].value) for table in tables]
        notes = sorted({table[i].note for table in tables if table[i].note})
        rows.append([name, *values, tables[0][i].unit, "; ".join(notes)])
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(headers)]
    widths[-1] = len(headers[-1])  # the notes column is not padded
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _format_case(outcomes, results) -> str:
    """The case's reported values beside each arm's model values at the same days."""
    from cartkin.outcomes import case_comparison

    per_arm = [case_comparison(r, outcomes) for r in results]
    lines = [f"\nreported by the case ({outcomes.case.source}) vs model:"]
    if outcomes.case.notes:
        lines.append(f"  {outcomes.case.notes}")
    arms = [r.label for r in results] if len(results) > 1 else ["model"]
    lines.append("  " + "  ".join(["quantity".ljust(30), "day".rjust(6), "reported".rjust(9)]
                                  + [a.rjust(10) for a in arms]))  # fmt: skip
    for k, row in enumerate(per_arm[0]):
        models = [_fmt(rows[k]["model"]) for rows in per_arm]
        lines.append(
            "  " + "  ".join([row["quantity"].ljust(30), f"{row['day']:g}".rjust(6),
                              f"{row['reported']:g}".rjust(9)] + [m.rjust(10) for m in models])
        )  # fmt: skip
    return "\n".join(lines)


def _write_csv(path: Path, results, outcomes=None, roundoff: float = 0.0) -> None:
    """One row per arm and output time; negatives in [-roundoff, 0) are written as 0.0.

    Derived outcome columns (sessions per week, SLEDAI-2K) follow when the model has the roles.
    """
    import numpy as np

    from cartkin.outcomes import derived_columns

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = None
        for r in results:
            raw = r.to_columns()
            if getattr(r, "model", None) is not None:
                raw.update(derived_columns(r, outcomes))
            columns = {
                name: np.where((v < 0) & (v >= -roundoff), 0.0, v) if v.dtype.kind == "f" else v
                for name, v in ((k, np.asarray(c)) for k, c in raw.items())
            }
            names = ["arm", *columns]
            if writer is None:
                writer = csv.writer(fh)
                writer.writerow(names)
            n = len(r.t_days)
            for k in range(n):
                writer.writerow([r.label, *(_csv_value(columns[c][k]) for c in columns)])


def _csv_value(v) -> str:
    return repr(float(v)) if isinstance(v, float) or hasattr(v, "dtype") else str(v)


def _write_figure(path: Path, scenario, results) -> None:
    from cartkin import plot

    outcomes = getattr(scenario, "outcomes", None)
    if len(results) == 1:
        fig = plot.plot_result(results[0], title=scenario.name, outcomes=outcomes)
    else:
        fig = plot.plot_comparison(results, title=scenario.name)
    notes = _model_notes(scenario.model)
    if notes:
        fig.text(0.01, 0.005, "Note: " + notes[0], fontsize=7, color="0.3", va="bottom")
    fig.savefig(path, dpi=100)
    if len(results) > 1:
        from cartkin.outcomes import has_outcomes

        if has_outcomes(scenario.model):  # the arms' kidney response, beside the figure
            kidney = path.with_name(f"{path.stem}_kidney{path.suffix}")
            plot.plot_kidney_response(results, outcomes, title=scenario.name).savefig(
                kidney, dpi=100
            )
            print(f"kidney-response figure written to {kidney}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console())
