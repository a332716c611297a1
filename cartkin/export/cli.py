"""``cartkin export MODEL --sbml FILE [--scenario FILE]``: a model as SBML Level 3.

Added to the main parser by :func:`add_parser` (cartkin/cli.py calls it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cartkin.errors import ScenarioError

__all__ = ["add_parser", "run_export"]


def add_parser(sub) -> None:
    """Add the ``export`` subcommand to the subparsers action ``sub``."""
    p = sub.add_parser(
        "export",
        help="write a model as SBML Level 3 (libRoadRunner, COPASI, ...)",
        description=(
            "Write MODEL as an SBML Level 3 Version 2 file: states as species or parameters "
            "with rate rules, parameters with units and values, observables as assignment "
            "rules. Without --scenario the file starts from a representative patient with "
            "the dose in the initial state; with --scenario it holds that patient's "
            "parameters, initial state and doses (as SBML events)."
        ),
    )
    p.add_argument("model", help="model name (see `cartkin models`) or a model file")
    p.add_argument(
        "--sbml", type=Path, required=True, metavar="FILE", help="SBML file to write (.xml)"
    )
    p.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="scenario TOML: export its patient (first arm, or --arm) with doses as events",
    )
    p.add_argument("--arm", metavar="LABEL", help="variant label of the scenario to export")
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    """Run ``cartkin export``; returns the exit status."""
    from cartkin import models
    from cartkin.export.sbml import export_sbml

    out = Path(args.sbml)
    if out.parent and not out.parent.exists():
        raise ScenarioError(f"--sbml {out}: the directory {out.parent} does not exist")
    if args.arm is not None and args.scenario is None:
        raise ScenarioError("--arm needs --scenario (the arm is a variant of a scenario file)")
    name = args.model
    model = models.load(name) if Path(name).suffix in (".py", ".xml", ".sbml") else models.get(name)
    ir = export_sbml(model, out, scenario=args.scenario, arm=args.arm)
    counts = (
        f"{len(ir.rate_rules)} states, "
        f"{sum(1 for e in ir.entities.values() if e.kind == 'parameter' and e.constant)} "
        f"parameters, {len(ir.assignment_rules)} assignment rules, {len(ir.events)} events"
    )
    print(f"wrote {out} (SBML Level 3 Version 2: {counts})")
    return 0
