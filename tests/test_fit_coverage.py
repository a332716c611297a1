"""Slow: coverage of the 95% profile-likelihood intervals over 100 simulated data sets."""

import numpy as np
import pytest

from cartkin.fit.estimate import fit
from cartkin.patient import Patient
from cartkin.regimen import Regimen, build_context
from cartkin.simulate import simulate_context

TRUTH = {"alpha": 0.16, "fb": 0.02, "beta": 0.03}
SIGMA, LLOQ = 0.4, 50.0
# 24 records: with 12 the intervals covered only 83-88% (ML's small-sample shortfall, see below)
T_DAYS = np.array([2.0, 3, 5, 7, 9, 10, 12, 14, 17, 21, 24, 28, 35, 42, 49, 56, 63, 70, 80,
                   90, 105, 120, 135, 150])  # fmt: skip
N_SEEDS = 100


def coverage(n_seeds=N_SEEDS, t_days=T_DAYS):
    """Fraction of seeds whose profile interval contains the truth, per parameter."""
    patient = Patient(weight_kg=60, height_cm=165, age_years=30, sex="female",
                      egfr_ml_min_173m2=90)  # fmt: skip
    ctx = build_context(patient, Regimen(cart={"cells_per_kg": 1e6}))
    y = simulate_context("stein2019", ctx, t_days, TRUTH).observables["transgene_copies_per_ug"]
    truth = {**TRUTH, "transgene_copies_per_ug.sigma_add": SIGMA}
    hits = {name: 0 for name in truth}
    open_ends = 0
    for seed in range(n_seeds):
        dv = y * np.exp(np.random.default_rng(1000 + seed).normal(0.0, SIGMA, t_days.size))
        cens = (dv < LLOQ).astype(int)
        obs = {"id": np.zeros(t_days.size, int), "time_days": t_days,
               "observable": ["transgene_copies_per_ug"] * t_days.size,
               "value": np.where(cens == 1, np.nan, dv), "cens": cens,
               "limit": np.full(t_days.size, LLOQ)}  # fmt: skip
        res = fit("stein2019", {0: ctx}, obs, list(TRUTH), free_error="all", starts=2, seed=seed)
        for name, value in truth.items():
            e = res[name]
            lo = 0.0 if e.ci_low is None else e.ci_low
            hi = np.inf if e.ci_high is None else e.ci_high
            open_ends += e.ci_low is None or e.ci_high is None
            hits[name] += lo <= value <= hi
    return {k: v / n_seeds for k, v in hits.items()}, open_ends


@pytest.mark.slow
def test_profile_intervals_cover_the_truth_about_95_percent():
    cov, open_ends = coverage()
    print("coverage over", N_SEEDS, "seeds:", cov, "open interval ends:", open_ends)
    # binomial(100, 0.95): 99% of runs fall in [89, 99]; profile intervals are asymptotic, so
    # allow the small-sample shortfall of ML variance estimates down to 85% for sigma
    for name, c in cov.items():
        assert c >= (0.85 if name.endswith("sigma_add") else 0.89), (name, c)
        assert c <= 1.0


if __name__ == "__main__":
    print(coverage())
