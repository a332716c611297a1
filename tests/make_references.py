"""Store reference outputs of the built-in models, for ``tests/test_references.py``.

Run from the repository root: ``python tests/make_references.py`` (``--model NAME``: refresh
only the entries of that model, and of the scenarios and fits that use it). It writes
``tests/data/references.npz``: for every shipped scenario (``scenarios/*.toml``) each arm's
states and observables on the scenario grid thinned to every 8th time (to keep the file small)
and its ``cartkin.metrics.compute`` metrics; the batch engine (``cartkin.batch.solve`` and
``cartkin.batch.metrics``) on a small population of each built-in model; and the objective of the
two fit scenarios at fixed parameter values.

The references were produced by the code before the models became descriptions (issue 14), so
they hold the hand-written models' numbers; rerun this script only when a model's science is
meant to change (then say so in the commit). ``sle_cart`` became version 3 (issue 15): its
entries and those of the scenarios that use it come from v3; ``sle_cart_v2`` keeps the
hand-written v2 numbers (stored as ``sle_cart`` before the rename), as do v1, stein2019 and
cart4.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
OUT = ROOT / "tests" / "data" / "references.npz"
THIN = 8  # keep every 8th output time of a scenario
BATCH_T = np.array([0.0, 1.0, 3.0, 7.0, 14.0, 28.0, 60.0, 120.0])
BATCH_MODELS = ("sle_cart", "sle_cart_v2", "sle_cart_v1", "stein2019", "cart4")
FIT_SCENARIOS = ("synthetic_cohort_fit.toml", "adolescent_hemodialysis_fit.toml")


def model_by_name(name):
    """A built-in model by name (``cart4`` was not registered when the references were made)."""
    import cartkin.models

    if name == "cart4" and "cart4" not in cartkin.models.available():
        from cartkin.models import cart4

        return cart4.MODEL
    return cartkin.models.get(name)


def scenario_outputs(model=None) -> dict[str, np.ndarray]:
    """``scenario/<file stem>/<arm index>/...`` arrays (``model``: only scenarios using it)."""
    from cartkin import metrics
    from cartkin.scenario import load_scenario

    out = {}
    for path in SCENARIOS:
        scenario = load_scenario(path)
        if model is not None and scenario.model.name != model:
            continue
        for k, result in enumerate(scenario.run()):
            key = f"scenario/{path.stem}/{k}"
            out[f"{key}/t_days"] = result.t_days[::THIN]
            out[f"{key}/states"] = result.states[::THIN]
            for name, values in result.observables.items():
                out[f"{key}/obs/{name}"] = np.asarray(values)[::THIN]
            table = metrics.compute(result)
            for name in table.names:
                out[f"{key}/metric/{name}"] = np.float64(table.value(name))
    return out


def population_contexts():
    """Six patients spanning weight, kidney function (dialysis included) and dose."""
    from cartkin.covariates.patient import DialysisSchedule, Patient
    from cartkin.covariates.regimen import CarTDose, Regimen, build_context

    rows = [
        (60.0, 165.0, 22.0, "female", 100.0, None, 1e6, (0.0,)),
        (50.0, 160.0, 16.0, "female", 30.0, None, 1e5, (0.0,)),
        (80.0, 180.0, 45.0, "male", 60.0, None, 3e5, (0.0, 1.0)),
        (50.0, 160.0, 16.0, "female", 2.5, (-12.0, -10.0, -8.0, -5.5, -3.5, 1.0), 1e5, (0.0,)),
        (70.0, 170.0, 30.0, "male", 120.0, None, 3e4, (0.0,)),
        (45.0, 150.0, 12.0, "female", 15.0, None, 1e6, (0.0,)),
    ]
    contexts = []
    for wt, ht, age, sex, egfr, sessions, dose, days in rows:
        dialysis = None
        if sessions is not None:
            dialysis = DialysisSchedule(session_days=sessions, flu_removal_fraction=0.3)
        patient = Patient(weight_kg=wt, height_cm=ht, age_years=age, sex=sex,
                          egfr_ml_min_173m2=egfr, dialysis=dialysis)  # fmt: skip
        regimen = Regimen(cart=CarTDose(cells_per_kg=dose, days=days))
        contexts.append(build_context(patient, regimen))
    return contexts


def batch_outputs(models=BATCH_MODELS) -> dict[str, np.ndarray]:
    """``batch/<model>/...``: solve (y, status) and in-kernel metrics of the population."""
    from cartkin import batch

    bctx = batch.BatchContext.from_contexts(population_contexts())
    out = {}
    for name in models:
        model = model_by_name(name)
        inds = batch.individualize(model, None, bctx)
        for method in ("rodas5", "auto"):
            sol = batch.solve(model, inds, BATCH_T, method=method, rtol=1e-8, atol=1e-10)
            out[f"batch/{name}/{method}/y"] = sol.y
            out[f"batch/{name}/{method}/status"] = sol.status
        values = batch.metrics(model, inds, t_end_days=120.0, bctx=bctx, rtol=1e-8, atol=1e-10)
        for metric, v in values.items():
            out[f"batch/{name}/metric/{metric}"] = np.asarray(v, dtype=np.float64)
        out[f"batch/{name}/p"] = inds.p
        out[f"batch/{name}/y0"] = inds.y0
    return out


def fit_outputs_for(file) -> dict[str, np.ndarray]:
    """``x`` (the start point and two points near it) and the objective there."""
    from cartkin.covariates.regimen import build_context
    from cartkin.fit.cli import read_data
    from cartkin.fit.problem import Problem
    from cartkin.fit.spec import load_fit_scenario

    scenario, spec = load_fit_scenario(ROOT / "scenarios" / file)
    arm = scenario.base
    options = spec.problem_options()
    # Residual SDs fixed at their table values, as when these references were stored (fits now
    # estimate them by default): the objective compared is the model's, not the error model's.
    options.update(theta=arm.theta, free_error=[])
    if scenario.outcomes is not None:
        options.update(outcome_settings=scenario.outcomes)
    if getattr(scenario.data, "file", None) is not None:
        contexts, observations = read_data(None, scenario, arm)
    else:
        contexts = {"case": build_context(arm.patient, arm.regimen, arm.clearance_model)}
        observations = None
    free = spec.free or ["rho", "delta_M"]
    problem = Problem(scenario.model, contexts, observations, free, **options)
    x = problem.x_init[None, :] + np.array([[0.0], [0.1], [-0.1]])
    return {"x": x, "objective": problem.objective(x)}


def fit_outputs(model=None) -> dict[str, np.ndarray]:
    """``fit/<file stem>/{x,objective}`` for each fit scenario (``model``: those using it)."""
    from cartkin.fit.spec import load_fit_scenario

    out = {}
    for file in FIT_SCENARIOS:
        if model is not None and load_fit_scenario(ROOT / "scenarios" / file)[0].model.name != model:
            continue
        for key, value in fit_outputs_for(file).items():
            out[f"fit/{Path(file).stem}/{key}"] = value
    return out


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="refresh only this model's entries (the others are kept)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    data = {}
    if args.model is not None:
        with np.load(OUT) as old:
            data.update({k: old[k] for k in old.files})
    data.update(scenario_outputs(args.model))
    data.update(batch_outputs(BATCH_MODELS if args.model is None else (args.model,)))
    data.update(fit_outputs(args.model))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **data)
    print(f"wrote {len(data)} arrays to {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
