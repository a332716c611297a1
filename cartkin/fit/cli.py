"""``cartkin fit SCENARIO [DATA]``: fit a scenario's free parameters to data and/or targets.

Wiring: :func:`add_parser` adds the subcommand to the main parser and sets ``args.run`` to
:func:`run`; ``cartkin.cli`` calls ``args.run(args)`` for it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cartkin.config import positive_int
from cartkin.errors import DataError, ScenarioError

__all__ = ["EXIT_NOT_CONVERGED", "RUN_RECORD", "add_parser", "run"]

#: Exit status of a fit that ran but did not converge, with ``--require-convergence``.
EXIT_NOT_CONVERGED = 3
#: File name of the run record written with the figures (the role of NONMEM's .ext file).
RUN_RECORD = "run_record.csv"
#: SAEM settings shown in --help (cartkin.fit._saem.SAEMOptions; kept equal by a test)
_SAEM_DEFAULTS = {"n_explore": 200, "n_average": 100, "n_chains": 1}


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
    p.add_argument("data", type=Path, nargs="?", default=None,
                   help="observations (NONMEM-style or long CSV; default: the [data] file)")  # fmt: skip
    p.add_argument("--dvid", action="append", metavar="CODE=OBSERVABLE",
                   help="what a DVID code measures (repeatable; adds to [data.dvid])")  # fmt: skip
    p.add_argument("--unit", action="append", metavar="CODE=UNIT",
                   help="unit of a DVID code, role or observable where the file has no UNIT "
                   "(repeatable; adds to [data.units])")  # fmt: skip
    p.add_argument("--free", default=None, help="comma-separated parameters to estimate "
                   "(default: [fit] free)")  # fmt: skip
    p.add_argument("--population", action="store_true",
                   help="population (mixed-effects) fit via cartkin.fit.population")  # fmt: skip
    p.add_argument("--starts", type=int, default=None, help="number of starts (default 8)")
    p.add_argument("--seed", type=int, default=None, help="seed of the start design (default 0)")
    p.add_argument("--no-profile", action="store_true", help="skip profile-likelihood intervals")
    p.add_argument("--figure", type=Path, metavar="DIR",
                   help=f"write the figures and the run record ({RUN_RECORD}) into this folder")  # fmt: skip
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument("--out", type=Path, metavar="PATH", help="also write the JSON result here")
    p.add_argument("--require-convergence", action="store_true",
                   help=f"exit with status {EXIT_NOT_CONVERGED} when the fit ran but did not "
                   "converge (default: a fit that ran exits 0 and says so in its output)")  # fmt: skip
    p.add_argument("--burn-in", type=int, default=None, metavar="K1",
                   help="--population: SAEM exploratory iterations, step size 1 (Monolix K1, "
                   f"nlmixr2 nBurn; default {_SAEM_DEFAULTS['n_explore']})")  # fmt: skip
    p.add_argument("--iterations", type=int, default=None, metavar="K2",
                   help="--population: SAEM averaging iterations, step size 1/k (Monolix K2, "
                   f"nlmixr2 nEm; default {_SAEM_DEFAULTS['n_average']})")  # fmt: skip
    p.add_argument("--chains", type=int, default=None,
                   help="--population: MCMC chains per subject (default "
                   f"{_SAEM_DEFAULTS['n_chains']})")  # fmt: skip
    p.add_argument(
        "--ids-per-page",
        type=positive_int,
        default=16,
        metavar="N",
        help="subjects per page of the individual-fit figures (default 16)",
    )
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    """Execute ``cartkin fit``; returns the exit status."""
    from cartkin.covariates.regimen import build_context
    from cartkin.fit.estimate import fit
    from cartkin.fit.problem import as_sequence
    from cartkin.fit.spec import load_fit_scenario

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
    has_file = getattr(getattr(scenario, "data", None), "file", None) is not None
    if args.data is None and not has_file:
        if not spec.targets:
            raise DataError(
                f"{args.scenario}: no DATA file, no [data] file and no [[fit.target]]: nothing to fit"
            )
        contexts = {"case": build_context(arm.patient, arm.regimen, arm.clearance_model)}
        observations = None
    else:
        contexts, observations = read_data(args.data, scenario, arm, args.dvid, args.unit)
    options = spec.problem_options()
    options.update(theta=arm.theta)
    if getattr(scenario, "outcomes", None) is not None:
        options.update(outcome_settings=scenario.outcomes)
    saem_flags = [f for f in ("burn_in", "iterations", "chains") if getattr(args, f) is not None]
    if saem_flags and not args.population:
        raise ScenarioError(
            f"--{saem_flags[0].replace('_', '-')} sets the SAEM run of a population fit: "
            "add --population or drop it"
        )
    if args.population:
        try:
            from cartkin.fit import population
        except ImportError:
            raise ScenarioError(
                "--population needs cartkin.fit.population, which this build does not have"
            ) from None
        saem = population.SAEMOptions(seed=int(seed), **_saem_settings(args))
        result = population.fit(scenario.model, contexts, observations, free, starts=starts,
                                seed=seed, options=saem, log_every=LOG_EVERY,
                                **options)  # fmt: skip
    else:
        result = fit(scenario.model, contexts, observations, free, starts=starts, seed=seed,
                     profile=spec.profile and not args.no_profile, progress=True,
                     **options)  # fmt: skip
    outlook = None
    if spec.predict_days and not args.population:
        outlook = outcome_outlook(scenario, spec, contexts, arm, result)
    data = result.to_dict()
    if outlook is not None:
        data["outcome_predictions"] = outlook["rows"]
        data["outcome_predictions_method"] = outlook["method"]
    text = json.dumps(data, indent=1)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if args.format == "json":
        print(text)
    else:
        print(result.to_table())
        if outlook is not None:
            print(outlook["text"])
    if args.figure is not None:
        write_figures(result, args.figure, ids_per_page=args.ids_per_page)
    if not result.converged:
        print(f"cartkin fit: {result.convergence}", file=sys.stderr)
        if args.require_convergence:
            return EXIT_NOT_CONVERGED
    return 0


#: SAEM iterations between two progress lines of a population fit
LOG_EVERY = 25


def _saem_settings(args) -> dict:
    """SAEMOptions fields given on the command line (validated there)."""
    out = {}
    for flag, key in (("burn_in", "n_explore"), ("iterations", "n_average"),
                      ("chains", "n_chains")):  # fmt: skip
        value = getattr(args, flag)
        if value is None:
            continue
        if value < 1:
            raise ScenarioError(f"--{flag.replace('_', '-')} {value}: expected an integer >= 1")
        out[key] = value
    return out


def outcome_outlook(scenario, spec, contexts, arm, result) -> dict | None:
    """Outcomes at the target days and at ``[fit] predict_days`` with their range over the
    profile sets (:mod:`cartkin.fit.outlook`); None for a model without outcome roles."""
    from cartkin import models
    from cartkin.fit import outlook
    from cartkin.outcomes import has_outcomes

    if not has_outcomes(models.get(scenario.model)):
        return None
    target_days = {float(t["day"]) for t in result.targets if t.get("day") is not None}
    days = sorted(target_days | {d for d in spec.predict_days})
    context = next(iter(contexts.values()))
    rows = outlook.predict_outcomes(scenario.model, context, arm.theta, result.profile_sets,
                                    [d for d in days if d > 0],
                                    settings=getattr(scenario, "outcomes", None))  # fmt: skip
    reported = {}
    for t in result.targets:
        name = t.get("quantity") or t.get("observable")
        if t.get("kind") == "normal" and t.get("day") is not None:
            reported[(name, float(t["day"]))] = t["mean"]
    method = (
        f"range: min-max over {len(result.profile_sets)} parameter sets (the estimate and every "
        f"profile point within {result.profile_threshold:.2f} of the optimum), simulated to the "
        "last day in one batch call; "
        "a profile-based envelope, not a predictive interval: no between-patient or residual "
        "variability, no joint combinations off the profile paths"
    )
    head = (
        "outcome predictions: a scenario consistent with one case, not an estimate (the "
        f"model's structure and the priors; beyond day {max(target_days):g} nothing but the "
        "model constrains them)"
    )
    text = "\n".join([head, outlook.predictions_table(rows, reported), method])
    return {"rows": rows, "method": method, "text": text}


def read_data(path, scenario, arm, dvid=None, unit=None):
    """Observations and one context per subject id, through :func:`cartkin.data.read`
    (NONMEM-style or long CSV, validated, units converted; the scenario's ``[data]`` table
    supplies DVID codes and units, and its file when ``path`` is None; ``--dvid`` and ``--unit``
    texts add to its DVID codes and units)."""
    from cartkin import data
    from cartkin.data.spec import parse_assignments

    spec = getattr(scenario, "data", None)  # the [data] table, or None
    dvid_map = {**getattr(spec, "dvid_map", {}),
                **parse_assignments(dvid, "--dvid", "an observable name or role")}  # fmt: skip
    units = {**getattr(spec, "units", {}),
             **parse_assignments(unit, "--unit", "a unit such as cells/uL")}  # fmt: skip
    ds = data.read(path, model=scenario.model, scenario=scenario, dvid_map=dvid_map, units=units)
    contexts = ds.contexts(arm.regimen, base_patient=arm.patient,
                           clearance_model=arm.clearance_model)  # fmt: skip
    return contexts, ds.observations


def write_figures(result, directory: Path, ids_per_page: int = 16) -> list[Path]:
    """The fit's figures (:func:`cartkin.fit.plots.write_figures`) and its run record
    (:data:`RUN_RECORD`, :meth:`run_record`) into ``directory``."""
    from cartkin.fit import plots

    if ids_per_page < 1:
        raise ScenarioError(f"--ids-per-page {ids_per_page}: expected an integer >= 1")
    if getattr(result, "kind", None) == "population":
        # adds VPC, convergence and NPDE figures
        paths = result.write_figures(directory, ids_per_page=ids_per_page)
    else:
        paths = plots.write_figures(result, directory, ids_per_page=ids_per_page)
    record = Path(directory) / RUN_RECORD
    result.run_record().to_csv(record, index=False)
    paths.append(record)
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return paths
