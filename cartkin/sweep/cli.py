"""``cartkin sweep`` and ``cartkin report``: added to the main parser by :func:`add_commands`.

``cartkin sweep SCENARIO --out STORE.zarr [--n-patients N] [--plot DIR] [--workers N]
[--scheduler ADDR] [--chunk-size K] [--threads T]`` runs (or resumes) a sweep; ``cartkin report STORE [--plot DIR]
[--format table|json|csv] [--paired AXIS[=VALUE]] [--width COLUMNS]`` summarises a store (the
table fits the terminal, 100 columns when not a terminal; csv and json hold every column).
Ctrl-C exits with status 130 after the finished chunks are written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from cartkin.config import positive_int

__all__ = ["COMMANDS", "add_commands", "run_command"]

COMMANDS = ("sweep", "report")


def add_commands(sub):
    """Add the ``sweep`` and ``report`` subcommands to an argparse subparsers object.

    Each parser carries ``run=run_command`` in its defaults, and the function returns
    :func:`run_command`, so it fits both ``args.run(args)`` dispatch and a registry of
    ``add(subparsers) -> run`` functions.
    """
    hidden = {"action": "store_true", "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
    sw = sub.add_parser(
        "sweep", help="run a [sweep] scenario over many virtual patients into a Zarr store"
    )
    sw.add_argument("scenario", type=Path, help="scenario TOML file with a [sweep] table")
    sw.add_argument("--out", type=Path, required=True, metavar="STORE.zarr",
                    help="result store; rerunning the same command resumes it")  # fmt: skip
    sw.add_argument("--plot", type=Path, metavar="DIR", help="write the figures into DIR")
    sw.add_argument("--workers", type=positive_int, metavar="N",
                    help="run on a local Dask cluster of N worker processes")  # fmt: skip
    sw.add_argument("--scheduler", metavar="ADDR",
                    help="run on a running Dask cluster (tcp://host:8786)")  # fmt: skip
    sw.add_argument("--n-patients", type=positive_int, metavar="N",
                    help="virtual patients per grid point (default: the scenario's n_patients)")  # fmt: skip
    sw.add_argument("--chunk-size", type=positive_int, metavar="K",
                    help="virtual patients per chunk (default 10000)")  # fmt: skip
    sw.add_argument("--threads", type=positive_int, metavar="T", help="numba threads per chunk")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.add_argument("--debug", **hidden)

    rp = sub.add_parser("report", help="summarise a sweep store (table or JSON, figures)")
    rp.add_argument("store", type=Path, help="store written by `cartkin sweep`")
    rp.add_argument("--format", choices=("table", "json", "csv"), default="table",
                    help="table (text), json (schema in the README) or csv (one row per point)")  # fmt: skip
    rp.add_argument("--paired", metavar="AXIS[=VALUE]",
                    help="compare B-cell recovery patient by patient with the same patients at "
                    "VALUE of AXIS (default its first value), e.g. "
                    "patient.egfr_ml_min_173m2=120")  # fmt: skip
    rp.add_argument("--width", type=positive_int, metavar="COLUMNS",
                    help="widest table line (default: the terminal's width, 100 when not a "
                    "terminal)")  # fmt: skip
    rp.add_argument("--plot", type=Path, metavar="DIR", help="write the figures into DIR")
    rp.add_argument("--debug", **hidden)
    sw.set_defaults(run=run_command)
    rp.set_defaults(run=run_command)
    return run_command


def run_command(args) -> int:
    """Run ``args.command`` (one of :data:`COMMANDS`); returns the exit status.

    cartkin errors propagate to the main CLI, which prints them in one line.
    """
    if args.command == "sweep":
        return _sweep(args)
    return _report(args)


def _sweep(args) -> int:
    from cartkin.sweep.runner import SweepInterrupted, run_sweep

    if args.workers and args.scheduler:
        print("cartkin: error: give --workers or --scheduler, not both", file=sys.stderr)
        return 2
    try:
        run = run_sweep(
            args.scenario, args.out, chunk_size=args.chunk_size, n_patients=args.n_patients,
            workers=args.workers,
            scheduler=args.scheduler, threads=args.threads,
            progress=False if args.quiet else None,
        )  # fmt: skip
    except SweepInterrupted as exc:
        print(f"cartkin sweep: {exc}", file=sys.stderr)
        return 130
    print(
        f"cartkin sweep: {run.n_total} virtual patients in {run.store}; computed "
        f"{run.n_computed} now in {run.seconds:.1f} s ({run.patients_per_s:.0f} patients/s, "
        f"after {run.compile_seconds:.1f} s of kernel compile or load), {run.n_failed} failed",
        file=sys.stderr,
    )
    if args.plot is not None:
        _plots(run.store, args.plot)
    return 0


def _report(args) -> int:
    from cartkin.errors import ScenarioError
    from cartkin.sweep.report import DEFAULT_WIDTH, summarize

    summary = summarize(args.store)
    paired = None
    if args.paired:
        axis, _, value = args.paired.partition("=")
        try:
            paired = summary.paired(axis, _number_or_text(value) if value else None)
        except ValueError as exc:
            raise ScenarioError(f"--paired {args.paired}: {exc}") from None
    if args.format == "json":
        print(json.dumps(summary.to_dict(paired), indent=2, allow_nan=False))
    elif args.format == "csv":
        sys.stdout.write(summary.to_csv(paired))
    else:
        width = args.width
        if width is None:
            width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns if sys.stdout.isatty() \
                else DEFAULT_WIDTH  # fmt: skip
        print(summary.to_table(width=width, paired=paired))
    if args.plot is not None:
        _plots(args.store, args.plot, summary)
    return 0


def _number_or_text(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _plots(store, directory, summary=None) -> None:
    from cartkin.sweep.plots import plot_all
    from cartkin.sweep.report import summarize

    paths = plot_all(summary or summarize(store), directory)
    print(f"cartkin: {len(paths)} figures written to {directory}", file=sys.stderr)
