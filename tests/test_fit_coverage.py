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
# 24 records (with 12 and the chi-square threshold the intervals covered only 83-88%)
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
def test_profile_intervals_with_estimated_sigma_reach_nominal_coverage():
    """With the residual SD estimated too, the chi-square threshold (3.84) gave intervals that
    covered the truth in only 0.88-0.89 of the seeds (ML's small-sample shortfall: the ML
    variance is biased low by about (n - p) / n). The F-calibrated threshold
    (:func:`cartkin.fit.profile.profile_threshold`: about 5 for some 18 uncensored records and
    4 parameters) measured alpha 0.95, fb 0.91, beta 0.92, SD 0.93 over the same 100 seeds, and
    alpha 0.94, fb 0.90, beta 0.91, SD 0.93 after a solver change within its tolerance (rodas5
    keeping its step size across doses) moved profile ends by solver-level amounts and one seed
    of fb across the truth. One seed is within the binomial noise of 100 seeds, so each
    parameter is held to the 99% band of binomial(100, 0.95) as with a known SD, and the mean
    over the four to 0.91. The chi-square threshold fails both on the same seeds (measured
    with the solver change: 0.87-0.89 each, mean 0.88).
    """
    cov, _ = coverage(estimate_sigma=True)
    print("coverage, residual SD estimated:", cov)
    for name, c in cov.items():
        assert 0.89 <= c <= 1.0, (name, c)
    assert np.mean(list(cov.values())) >= 0.91, cov


if __name__ == "__main__":
    print(coverage(estimate_sigma=False))
    print(coverage(estimate_sigma=True))
