"""``cartkin fit SCENARIO [DATA]``: fit a scenario's free parameters to data and/or targets.

Wiring: :func:`add_parser` adds the subcommand to the main parser and sets ``args.run`` to
:func:`run`; ``cartkin.cli`` calls ``args.run(args)`` for it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from cartkin.errors import DataError, ScenarioError

__all__ = ["add_parser", "run"]


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``fit`` to an argparse subparsers object."""
    p = sub.add_parser(
        "fit",
        help="fit free parameters to observed data and/or the scenario's summary targets",
        description=(
            "Fit a scenario's free parameters (ML, or MAP with the [fit] priors) to a dataset "
            "(NONMEM-style or long CSV) and/or the [fit] summary targets; prints estimates with "
            "Hessian SEs and profile-likelihood 95% intervals."
        ),
    )
    p.add_argument("scenario", type=Path, help="scenario TOML file (with an optional [fit] table)")
    p.add_argument("data", type=Path, nargs="?", default=None, help="observations (CSV)")
    p.add_argument("--free", default=None, help="comma-separated parameters to estimate "
                   "(default: [fit] free)")  # fmt: skip
    p.add_argument("--population", action="store_true",
                   help="population (mixed-effects) fit via cartkin.fit.population")  # fmt: skip
    p.add_argument("--starts", type=int, default=None, help="number of starts (default 8)")
    p.add_argument("--seed", type=int, default=None, help="seed of the start design (default 0)")
    p.add_argument("--no-profile", action="store_true", help="skip profile-likelihood intervals")
    p.add_argument("--figure", type=Path, metavar="DIR", help="write figures into this folder")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument("--out", type=Path, metavar="PATH", help="also write the JSON result here")
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    """Execute ``cartkin fit``; returns the exit status."""
    from cartkin.fit.estimate import fit
    from cartkin.fit.problem import as_sequence
    from cartkin.fit.spec import load_fit_scenario
    from cartkin.regimen import build_context

    scenario, spec = load_fit_scenario(args.scenario)
    arm = scenario.base
    free = as_sequence(args.free) if args.free is not None else spec.free
    if not free:
        raise ScenarioError(
            f"{args.scenario}: no free parameters: give --free rho,delta_M or [fit] free"
        )
    starts = args.starts if args.starts is not None else spec.starts
    if starts < 1:
        raise ScenarioError(f"--starts {starts}: expected an integer >= 1")
    seed = args.seed if args.seed is not None else spec.seed
    if args.data is None:
        if not spec.targets:
            raise DataError(f"{args.scenario}: no DATA file and no [[fit.target]]: nothing to fit")
        contexts = {"case": build_context(arm.patient, arm.regimen, arm.clearance_model)}
        observations = None
    else:
        contexts, observations = read_data(args.data, scenario, arm)
    options = spec.problem_options()
    options.update(theta=arm.theta)
    if args.population:
        try:
            from cartkin.fit import population
        except ImportError:
            raise ScenarioError(
                "--population needs cartkin.fit.population, which this build does not have"
            ) from None
        result = population.fit(scenario.model, contexts, observations, free, starts=starts,
                                seed=seed, **options)  # fmt: skip
    else:
        result = fit(scenario.model, contexts, observations, free, starts=starts, seed=seed,
                     profile=spec.profile and not args.no_profile, **options)  # fmt: skip
    text = result.to_json(indent=1)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(text if args.format == "json" else result.to_table())
    if args.figure is not None:
        write_figures(result, args.figure)
    return 0


def read_data(path: Path, scenario, arm):
    """Observations and one context per subject id.

    Uses :func:`cartkin.data.read` (NONMEM-style datasets, units, covariates) when that module
    exists; otherwise reads the plain long format (``id, time_days, observable, value, cens,
    limit``) and gives every id the scenario's patient and regimen.
    """
    try:
        from cartkin import data as data_module
    except ImportError:
        data_module = None
    if data_module is not None and hasattr(data_module, "read"):
        ds = data_module.read(path, model=scenario.model)
        contexts = ds.contexts(arm.regimen, base_patient=arm.patient,
                               clearance_model=arm.clearance_model)  # fmt: skip
        return contexts, ds.observations
    return _read_long_csv(path, arm)


def _read_long_csv(path: Path, arm):
    import pandas as pd

    from cartkin.regimen import build_context

    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    df = pd.read_csv(path, na_values=["."])
    needed = ["id", "time_days", "observable", "value"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected id, time_days, observable, value "
            "[, cens, limit] (the plain long format)"
        )
    if "cens" not in df:
        df["cens"] = 0
    if "limit" not in df:
        df["limit"] = math.nan
    if df["cens"].isna().any():
        row = int(df.index[df["cens"].isna()][0]) + 2
        raise DataError(f"{path}, row {row}, column cens: empty; expected 0, 1 or -1")
    ctx = build_context(arm.patient, arm.regimen, arm.clearance_model)
    return {i: ctx for i in pd.unique(df["id"])}, df


def write_figures(result, directory: Path) -> list[Path]:
    """Figures of a fit into ``directory``: ``cartkin.fit.plots`` when present, else the
    likelihood profiles and observed-vs-predicted drawn here."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        from cartkin.fit import plots
    except ImportError:
        plots = None
    if plots is not None and hasattr(plots, "write_figures"):
        return plots.write_figures(result, directory)
    from matplotlib.figure import Figure
    from scipy.stats import chi2

    paths = []
    if result.profiles:
        n = len(result.profiles)
        fig = Figure(figsize=(3.2 * n, 3.0), layout="constrained")
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, (name, curve) in zip(axes, result.profiles.items(), strict=True):
            ax.plot(curve["value"], curve["objective"], "o-", ms=3)
            ax.axhline(result.objective + result.objective_prior + chi2.ppf(0.95, 1), color="grey",
                       ls="--", lw=0.8)  # fmt: skip
            ax.set_xscale("log")
            ax.set_xlabel(f"{name} ({result[name].unit})")
            ax.set_ylabel("-2 log posterior")
        paths.append(directory / "profiles.png")
        fig.savefig(paths[-1], dpi=100)
    if result.predictions:
        fig = Figure(figsize=(4.0, 4.0), layout="constrained")
        ax = fig.subplots()
        obs = [r for r in result.predictions if r["cens"] == 0]
        cen = [r for r in result.predictions if r["cens"] != 0]
        ax.loglog([r["ipred"] for r in obs], [r["dv"] for r in obs], "o", label="observed")
        ax.loglog([r["ipred"] for r in cen], [r["limit"] for r in cen], "v", mfc="none",
                  label="censored (at limit)")  # fmt: skip
        lim = [min(r["ipred"] for r in result.predictions if r["ipred"] > 0),
               max(r["ipred"] for r in result.predictions)]  # fmt: skip
        ax.plot(lim, lim, "k-", lw=0.8)
        ax.set_xlabel("IPRED")
        ax.set_ylabel("DV")
        ax.legend(frameon=False)
        paths.append(directory / "observed_vs_predicted.png")
        fig.savefig(paths[-1], dpi=100)
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return paths
