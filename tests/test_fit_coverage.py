"""Slow: coverage of the 95% profile-likelihood intervals over 100 simulated data sets."""

import numpy as np
import pytest

from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import Regimen, build_context
from cartkin.fit.estimate import fit
from cartkin.fit.likelihood import ErrorModel
from cartkin.simulate import simulate_context

TRUTH = {"alpha": 0.16, "fb": 0.02, "beta": 0.03}
SIGMA, LLOQ = 0.4, 50.0
# 24 records: with 12 the intervals covered only 83-88% (ML's small-sample shortfall, see below)
T_DAYS = np.array([2.0, 3, 5, 7, 9, 10, 12, 14, 17, 21, 24, 28, 35, 42, 49, 56, 63, 70, 80,
                   90, 105, 120, 135, 150])  # fmt: skip
N_SEEDS = 100


def coverage(n_seeds=N_SEEDS, t_days=T_DAYS, estimate_sigma=True):
    """Fraction of seeds whose profile interval contains the truth, per parameter."""
    patient = Patient(weight_kg=60, height_cm=165, age_years=30, sex="female",
                      egfr_ml_min_173m2=90)  # fmt: skip
    ctx = build_context(patient, Regimen(cart={"cells_per_kg": 1e6}))
    y = simulate_context("stein2019", ctx, t_days, TRUTH).observables["transgene_copies_per_ug"]
    truth = dict(TRUTH)
    if estimate_sigma:
        truth["transgene_copies_per_ug.sigma_add"] = SIGMA
    em = {"transgene_copies_per_ug": ErrorModel("log", sigma_add=SIGMA)}
    hits = {name: 0 for name in truth}
    open_ends = 0
    for seed in range(n_seeds):
        dv = y * np.exp(np.random.default_rng(1000 + seed).normal(0.0, SIGMA, t_days.size))
        cens = (dv < LLOQ).astype(int)
        obs = {"id": np.zeros(t_days.size, int), "time_days": t_days,
               "observable": ["transgene_copies_per_ug"] * t_days.size,
               "value": np.where(cens == 1, np.nan, dv), "cens": cens,
               "limit": np.full(t_days.size, LLOQ)}  # fmt: skip
        res = fit("stein2019", {0: ctx}, obs, list(TRUTH), error_models=em, starts=2, seed=seed,
                  free_error="all" if estimate_sigma else ())  # fmt: skip
        for name, value in truth.items():
            e = res[name]
            lo = 0.0 if e.ci_low is None else e.ci_low
            hi = np.inf if e.ci_high is None else e.ci_high
            open_ends += e.ci_low is None or e.ci_high is None
            hits[name] += lo <= value <= hi
    return {k: v / n_seeds for k, v in hits.items()}, open_ends


@pytest.mark.slow
def test_profile_intervals_cover_the_truth_95_percent_with_known_sigma():
    """Measured (100 seeds, 24 records, 24% below the LLOQ on average): alpha 0.95, fb 0.95,
    beta 0.92. binomial(100, 0.95) falls in [89, 99] in 99% of runs."""
    cov, _ = coverage(estimate_sigma=False)
    print("coverage, residual SD known:", cov)
    for name, c in cov.items():
        assert 0.89 <= c <= 1.0, (name, c)


@pytest.mark.slow
def test_profile_intervals_with_estimated_sigma_show_the_small_sample_shortfall():
    """Measured (100 seeds): 0.88-0.89 for every parameter with 24 records, 0.84-0.88 with 12.

    With the residual SD estimated too, ML profile intervals are too narrow in small samples
    (the ML variance is biased low by about (n - p) / n: with 24 records and 4 parameters the
    intervals are about 9% too narrow, expected coverage about 0.93), so this test guards the
    measured level rather than 0.95: a drop below 0.83 means something broke.
    """
    cov, _ = coverage(estimate_sigma=True)
    print("coverage, residual SD estimated:", cov)
    for name, c in cov.items():
        assert 0.83 <= c <= 1.0, (name, c)


if __name__ == "__main__":
    print(coverage(estimate_sigma=False))
    print(coverage(estimate_sigma=True))
