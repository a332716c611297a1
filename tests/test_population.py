"""Population fits by SAEM (cartkin.fit.population).

Oracles:
- a cohort where only ``cmax`` of stein2019 varies and every record lies after the peak: then
  ``log y = log cmax_i + c(t) + eps`` is a linear Gaussian mixed model whose marginal likelihood
  is closed form (Stein's analytic post-peak solution gives ``c(t)``; no ODE). SAEM must find
  its maximum, importance sampling must reproduce it, Louis' standard errors must match the
  inverse Hessian of the exact log-likelihood;
- a synthetic cohort with 4 random effects and LLOQ censoring (the round trip), with
  tolerances from the spread over seeds measured by the slow test (see its docstring).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from cartkin.errors import DataError, ScenarioError
from cartkin.fit._popdiag import _batched_nelder_mead
from cartkin.fit.likelihood import ErrorModel
from cartkin.fit.population import SAEMOptions, Subject, fit_population
from cartkin.fit.synthetic import synthetic_cohort

OBS = "transgene_copies_per_ug"
TYPICAL = {"cmax": 24000.0, "foldx": 3900.0, "tmax": 9.3, "alpha": 0.16}
OMEGA2 = {"cmax": 0.5, "foldx": 0.5, "tmax": 0.1, "alpha": 0.3}
START = {"cmax": 10000.0, "foldx": 1000.0, "tmax": 7.0, "alpha": 0.3}


# -- the linear Gaussian oracle ---------------------------------------------------------------------
POST_PEAK_DAYS = np.array([14.0, 21.0, 28.0, 42.0, 56.0, 90.0])
TMAX, ALPHA, FB, BETA = 9.3, 0.16, 0.0079, 0.0032


def _post_peak_shape(t):
    """log C(t)/cmax after the peak: Stein 2019's closed form (independent of the ODE)."""
    d = t - TMAX
    return np.log((1 - FB) * np.exp(-ALPHA * d) + FB * np.exp(-BETA * d))


def _linear_cohort(n, seed, mu=9.9, omega2=0.4, sigma=0.25):
    from cartkin.covariates.patient import Patient
    from cartkin.covariates.regimen import Regimen, build_context

    rng = np.random.default_rng(seed)
    ctx = build_context(
        Patient(
            weight_kg=60.0, height_cm=165.0, age_years=30.0, sex="female", egfr_ml_min_173m2=90.0
        ),
        Regimen(lymphodepletion={}, cart={"cells_per_kg": 1e6}),
    )
    c = _post_peak_shape(POST_PEAK_DAYS)
    phi = mu + math.sqrt(omega2) * rng.standard_normal(n)
    logy = phi[:, None] + c[None, :] + sigma * rng.standard_normal((n, c.size))
    subjects = [
        Subject(f"P{i}", ctx, POST_PEAK_DAYS, [OBS] * c.size, np.exp(logy[i])) for i in range(n)
    ]
    return subjects, logy - c[None, :], np.exp(logy)


def _exact_loglik(params, z, y):
    """log p(y) of the linear Gaussian mixed model (y scale: minus sum log y)."""
    mu, omega2, sigma = params
    m = z.shape[1]
    cov = omega2 * np.ones((m, m)) + sigma**2 * np.eye(m)
    _, logdet = np.linalg.slogdet(cov)
    r = z - mu
    quad = np.einsum("ia,ab,ib->i", r, np.linalg.inv(cov), r)
    return float(np.sum(-0.5 * (quad + logdet + m * math.log(2 * math.pi))) - np.log(y).sum())


@pytest.fixture(scope="module")
def linear_fit():
    subjects, z, y = _linear_cohort(30, seed=3)
    res = fit_population(
        "stein2019",
        subjects,
        ["cmax"],
        init={"cmax": 5000.0},
        error_model=ErrorModel("log", sigma_add=0.5),
        options=SAEMOptions(n_explore=80, n_average=80, seed=5),
        n_is_samples=1000,
        n_npde_sims=200,
    )

    def neg(x):
        return -_exact_loglik((x[0], math.exp(x[1]), math.exp(x[2])), z, y)

    best = minimize(
        neg,
        [math.log(15000.0), math.log(0.3), math.log(0.3)],
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 5000},
    )
    mle = (best.x[0], math.exp(best.x[1]), math.exp(best.x[2]))
    return res, mle, z, y


def test_saem_finds_the_exact_maximum_likelihood(linear_fit):
    res, (mu, omega2, sigma), _, _ = linear_fit
    assert abs(math.log(res.estimates["cmax"]["value"]) - mu) < 0.01
    assert res.omega["cmax"]["omega2"] == pytest.approx(omega2, rel=0.05)
    assert res.estimates["sigma_add"]["value"] == pytest.approx(sigma, rel=0.02)


def test_importance_sampling_reproduces_the_exact_likelihood(linear_fit):
    res, _, z, y = linear_fit
    theta = (
        math.log(res.estimates["cmax"]["value"]),
        res.omega["cmax"]["omega2"],
        res.estimates["sigma_add"]["value"],
    )
    exact = -2.0 * _exact_loglik(theta, z, y)
    assert res.loglik_mc_se < 0.5
    assert abs(res.objective - exact) < 0.1 + 4.0 * res.loglik_mc_se


def test_louis_standard_errors_match_the_exact_hessian(linear_fit):
    res, mle, z, y = linear_fit
    # Hessian of the exact log-likelihood in (mu, omega2, sigma) by central differences
    x0 = np.array(mle)
    h = np.array([1e-4, 1e-5, 1e-5])
    hess = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            ea, eb = np.eye(3)[a] * h[a], np.eye(3)[b] * h[b]
            hess[a, b] = (
                _exact_loglik(x0 + ea + eb, z, y)
                - _exact_loglik(x0 + ea - eb, z, y)
                - _exact_loglik(x0 - ea + eb, z, y)
                + _exact_loglik(x0 - ea - eb, z, y)
            ) / (4 * h[a] * h[b])
    se_mu, se_omega2, se_sigma = np.sqrt(np.diag(np.linalg.inv(-hess)))
    cmax = res.estimates["cmax"]
    assert cmax["se"] / cmax["value"] == pytest.approx(se_mu, rel=0.15)
    assert res.omega["cmax"]["se"] == pytest.approx(se_omega2, rel=0.15)
    assert res.estimates["sigma_add"]["se"] == pytest.approx(se_sigma, rel=0.15)


def test_npde_are_standard_normal_under_the_true_model(linear_fit):
    res, _, _, _ = linear_fit
    npde = res.columns["npde"]
    assert npde.size == 180 and np.all(np.isfinite(npde))
    assert abs(npde.mean()) < 0.25
    assert 0.8 < npde.std() < 1.2


# -- round trip with four random effects and censoring ----------------------------------------------
def _round_trip(n, seed, n_explore, n_average, fit_seed=1):
    subjects, truth = synthetic_cohort(
        "stein2019", n, TYPICAL, OMEGA2, observable=OBS, sigma_log=0.3, lloq=50.0, seed=seed
    )
    res = fit_population(
        "stein2019",
        subjects,
        list(TYPICAL),
        init=START,
        options=SAEMOptions(n_explore=n_explore, n_average=n_average, seed=fit_seed),
        n_is_samples=100,
        n_npde_sims=100,
    )
    return subjects, truth, res


def _errors(res, truth):
    """Log-ratio of each typical value to the cohort's geometric mean of the true individual
    values, and ratio of each omega2 to the cohort's variance of the true log values."""
    typical = {k: math.log(res.estimates[k]["value"]) - np.log(v).mean() for k, v in truth.items()}
    omega = {k: res.omega[k]["omega2"] / np.log(v).var() for k, v in truth.items()}
    return typical, omega


@pytest.fixture(scope="module")
def small_round_trip():
    return _round_trip(30, seed=11, n_explore=100, n_average=50)


def test_round_trip_recovers_typical_values_and_variances(small_round_trip):
    # Tolerances. Measured spread (benchmarks/bench_population.py, seeds 0-4, 40 patients,
    # default 200 + 100 iterations; errors against each cohort's realised values): largest
    # |log error| of a typical value cmax 0.049, foldx 0.117, tmax 0.008, alpha 0.037; omega2
    # ratios cmax 0.95-1.15, foldx 0.72-1.46, tmax 0.84-1.01, alpha 0.98-1.19. foldx is the
    # least identified (its early records are mostly censored; EBE shrinkage ~0.4). This cohort
    # is smaller (30) and the run shorter (100 + 50), so the bounds are ~3x the measured
    # extremes; the slow test below holds the 40-patient runs to ~2x.
    subjects, truth, res = small_round_trip
    assert sum(int((s.cens != 0).sum()) for s in subjects) > 0  # censoring is exercised
    typical, omega = _errors(res, truth)
    for name in ("cmax", "tmax", "alpha"):
        assert abs(typical[name]) < 0.15, (name, typical)
        assert 0.4 < omega[name] < 2.25, (name, omega)
    assert abs(typical["foldx"]) < 0.4
    assert 0.3 < omega["foldx"] < 2.7
    assert res.estimates["sigma_add"]["value"] == pytest.approx(0.3, rel=0.2)


def test_ebes_correlate_with_true_individual_parameters(small_round_trip):
    _, truth, res = small_round_trip
    for name in ("cmax", "tmax", "alpha"):
        r = np.corrcoef(np.log(res.ebes[name]), np.log(truth[name]))[0, 1]
        assert r > 0.9, (name, r)
    assert np.corrcoef(np.log(res.ebes["foldx"]), np.log(truth["foldx"]))[0, 1] > 0.6


def test_npde_of_observed_records_with_censoring(small_round_trip):
    # the fitted model is the true one: NPDE of the observed records are close to N(0, 1)
    # (they lean positive: the records that were observed are the ones above the LLOQ)
    _, _, res = small_round_trip
    c = res.columns
    observed = c["cens"] == 0
    npde = c["npde"][observed]
    assert np.all(np.isfinite(c["npde"]))
    assert abs(npde.mean()) < 0.25 and 0.8 < npde.std() < 1.2, (npde.mean(), npde.std())
    # censored records: uniform below the limit's share, so on the low side
    assert c["npde"][~observed].mean() < 0


def test_result_table_and_json_schema(small_round_trip, tmp_path):
    subjects, _, res = small_round_trip
    data = json.loads(res.to_json(tmp_path / "pop.json"))
    assert data["converged"] in (True, False) and math.isfinite(data["objective"])
    for name in TYPICAL:
        assert set(data["estimates"][name]) == {"value", "unit", "se", "ci_low", "ci_high"}
        e = data["estimates"][name]
        assert e["ci_low"] < e["value"] < e["ci_high"]
        assert set(data["omega"][name]) == {"omega2", "se", "cv_percent", "shrinkage"}
    n_rec = sum(len(s.t_days) for s in subjects)
    assert len(data["predictions"]) == n_rec
    rec = data["predictions"][0]
    assert {"id", "time", "observable", "dv", "pred", "ipred", "cens", "npde"} <= set(rec)
    assert len(data["ebes"]) == len(subjects) and set(TYPICAL) <= set(data["ebes"][0])
    assert len(data["trajectory"]["values"]) == res.trajectory.shape[0]
    assert res.trajectory.shape[0] == 5 + 100 + 50
    assert data["aic"] == pytest.approx(data["objective"] + 2 * data["n_parameters"])
    assert "omega2" in res.summary() and "cmax" in res.summary()
    # censored records: dv is the limit, ipred is finite
    cens = res.columns["cens"] != 0
    assert np.all(res.columns["dv"][cens] == 50.0)
    assert np.all(np.isfinite(res.columns["ipred"]))


def test_figures_are_written(small_round_trip, tmp_path):
    from cartkin.fit.popplot import write_figures

    _, _, res = small_round_trip
    paths = write_figures(res, tmp_path / "fig")
    assert [p.name for p in paths] == ["convergence.png", "gof.png", "npde.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_same_seed_same_fit_and_other_seed_other_chains():
    subjects, _ = synthetic_cohort(
        "stein2019", 6, TYPICAL, OMEGA2, observable=OBS, lloq=50.0, seed=2
    )
    kw = dict(init=START, n_is_samples=20, n_npde_sims=20, standard_errors=False)

    def fit(seed):
        opts = SAEMOptions(n_burn=2, n_explore=6, n_average=4, seed=seed)
        return fit_population("stein2019", subjects, list(TYPICAL), options=opts, **kw)

    a, b, c = fit(7), fit(7), fit(8)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    assert a.objective == b.objective
    np.testing.assert_array_equal(a.columns["npde"], b.columns["npde"])
    assert not np.array_equal(a.trajectory, c.trajectory)


def test_batch_engine_and_reference_loop_give_the_same_fit():
    subjects, _ = synthetic_cohort(
        "stein2019", 5, TYPICAL, OMEGA2, observable=OBS, lloq=50.0, seed=3
    )
    kw = dict(
        init=START,
        n_is_samples=10,
        n_npde_sims=10,
        standard_errors=False,
        options=SAEMOptions(n_burn=1, n_explore=4, n_average=3, seed=0),
    )
    a = fit_population("stein2019", subjects, list(TYPICAL), engine="batch", **kw)
    b = fit_population("stein2019", subjects, list(TYPICAL), engine="loop", **kw)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    np.testing.assert_array_equal(a.columns["ipred"], b.columns["ipred"])


def test_cli_entry_takes_contexts_and_a_table(tiny_cohort):
    import pandas as pd

    from cartkin.fit import population

    rows = [
        {"id": s.id, "time_days": t, "observable": o, "value": v, "cens": c, "limit": lim}
        for s in tiny_cohort
        for t, o, v, c, lim in zip(s.t_days, s.observable, s.value, s.cens, s.limit, strict=True)
    ]
    contexts = {s.id: s.context for s in tiny_cohort}
    res = population.fit(
        "stein2019",
        contexts,
        pd.DataFrame(rows),
        ["cmax", "alpha"],
        starts=8,
        seed=3,
        theta={"tmax": 9.0, "cmax": 1.0},
        priors={"cmax": object()},
        n_is_samples=10,
        n_npde_sims=0,
        options=SAEMOptions(n_burn=1, n_explore=5, n_average=5, seed=3),
    )
    assert res.options["fixed"] == {"tmax": 9.0}
    assert any("starts = 8 ignored" in n for n in res.notes)
    assert any("priors on ['cmax'] not used" in n for n in res.notes)
    assert len(res.predictions) == len(rows)
    assert res.to_table() == res.summary()
    with pytest.raises(ScenarioError, match="summary targets are not used"):
        population.fit("stein2019", contexts, pd.DataFrame(rows), ["cmax"], targets=[object()])
    with pytest.raises(DataError, match=r"ids \['Z'\] have no patient context"):
        bad = pd.DataFrame([*rows, {**rows[0], "id": "Z"}])
        population.fit("stein2019", contexts, bad, ["cmax"])


def test_free_parameter_without_variability_gets_one_typical_value():
    subjects, _ = synthetic_cohort(
        "stein2019",
        20,
        {"cmax": 24000.0, "tmax": 9.3},
        {"cmax": 0.3, "tmax": 0.0},
        observable=OBS,
        seed=6,
    )
    res = fit_population(
        "stein2019",
        subjects,
        ["cmax"],
        free=["cmax", "tmax"],
        init={"tmax": 6.0},
        options=SAEMOptions(n_explore=80, n_average=40, seed=2),
        n_is_samples=50,
        n_npde_sims=0,
    )
    assert set(res.omega) == {"cmax"}
    assert res.estimates["tmax"]["value"] == pytest.approx(9.3, rel=0.05)
    assert res.estimates["tmax"]["se"] is None
    assert np.ptp(res.ebes["tmax"]) == 0.0


def test_two_chains_per_subject(linear_fit):
    subjects, _, _ = _linear_cohort(30, seed=3)
    res = fit_population(
        "stein2019",
        subjects,
        ["cmax"],
        init={"cmax": 5000.0},
        error_model=ErrorModel("log", sigma_add=0.5),
        n_is_samples=200,
        n_npde_sims=0,
        options=SAEMOptions(n_explore=60, n_average=60, seed=5, n_chains=2),
    )
    one_chain = linear_fit[0]
    # the same maximum within Monte Carlo error, and standard errors from both chains
    assert res.estimates["cmax"]["value"] == pytest.approx(
        one_chain.estimates["cmax"]["value"], rel=0.02
    )
    assert res.omega["cmax"]["omega2"] == pytest.approx(one_chain.omega["cmax"]["omega2"], rel=0.1)
    assert res.omega["cmax"]["se"] == pytest.approx(one_chain.omega["cmax"]["se"], rel=0.15)
    assert res.n_solves > 2 * 30 * 120


def test_covariate_power_model_recovers_weight_exponent():
    # cmax_i = 20000 (WT/median)^1.0 with small variability: the exponent is estimated
    subjects, truth = synthetic_cohort(
        "stein2019",
        30,
        {"cmax": 20000.0},
        {"cmax": 0.05},
        observable=OBS,
        seed=4,
        t_days=POST_PEAK_DAYS,
    )
    weights = np.array([s.context.weight_kg for s in subjects])
    scaled = []
    for s, w in zip(subjects, weights, strict=True):
        factor = (w / np.median(weights)) ** 1.0
        scaled.append(Subject(s.id, s.context, s.t_days, s.observable, s.value * factor))
    res = fit_population(
        "stein2019",
        scaled,
        ["cmax"],
        covariates={"cmax": "weight_kg"},
        options=SAEMOptions(n_explore=60, n_average=40, seed=0),
        n_is_samples=50,
        n_npde_sims=0,
    )
    beta = res.estimates["cmax~weight_kg"]
    assert beta["ci_low"] < 1.0 < beta["ci_high"]
    assert 0.05 < beta["se"] < 0.3
    assert res.omega["cmax"]["omega2"] < 0.15
    del truth


# -- building blocks -----------------------------------------------------------------------------------
def test_batched_nelder_mead_solves_independent_problems():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(7, 3))
    scales = rng.uniform(0.5, 3.0, size=(7, 3))

    def fun(points, rows):
        return np.sum(scales[rows] * (points - centers[rows]) ** 2, axis=1) + rows

    x, f, conv = _batched_nelder_mead(
        fun, np.zeros((7, 3)), np.full((7, 3), 0.5), xtol=1e-7, ftol=1e-12
    )
    assert conv.all()
    np.testing.assert_allclose(x, centers, atol=1e-5)
    np.testing.assert_allclose(f, np.arange(7), atol=1e-9)


# -- errors --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_cohort():
    subjects, _ = synthetic_cohort(
        "stein2019", 3, TYPICAL, OMEGA2, observable=OBS, lloq=50.0, seed=1
    )
    return subjects


def test_random_effect_must_be_free(tiny_cohort):
    with pytest.raises(ScenarioError, match=r"random_effects \['tmax'\] are not in free"):
        fit_population("stein2019", tiny_cohort, ["tmax"], free=["cmax"])


def test_unknown_parameter_is_named(tiny_cohort):
    with pytest.raises(ScenarioError, match=r"Unknown parameter 'cmx'.*cmax"):
        fit_population("stein2019", tiny_cohort, ["cmx"])


def test_free_and_fixed_clash(tiny_cohort):
    with pytest.raises(ScenarioError, match=r"\['cmax'\] are both free and fixed"):
        fit_population("stein2019", tiny_cohort, ["cmax"], fixed={"cmax": 1e4})


def test_missing_error_model_for_an_observable(tiny_cohort):
    with pytest.raises(ScenarioError, match="no error model for observable 'transgene"):
        fit_population(
            "stein2019",
            tiny_cohort,
            ["cmax"],
            error_model={"cart_cells_per_ul": ErrorModel("log", 0.3)},
        )


def test_bad_records_are_named(tiny_cohort):
    s = tiny_cohort[0]
    bad_obs = Subject("X1", s.context, [1.0], ["cd4_count"], [3.0])
    with pytest.raises(DataError, match="subject X1, record 0: observable 'cd4_count'"):
        fit_population("stein2019", [bad_obs], ["cmax"])
    no_limit = Subject("X2", s.context, [1.0, 2.0], [OBS, OBS], [3.0, 4.0], cens=[0, 1])
    with pytest.raises(DataError, match="subject X2, record 1: CENS = 1 needs a positive LIMIT"):
        fit_population("stein2019", [no_limit], ["cmax"])
    negative_t = Subject("X3", s.context, [-1.0], [OBS], [3.0])
    with pytest.raises(DataError, match=r"subject X3, record 0: time -1\.0 days"):
        fit_population("stein2019", [negative_t], ["cmax"])
    with pytest.raises(DataError, match="duplicate subject ids"):
        fit_population("stein2019", [s, s], ["cmax"])


def test_init_for_a_parameter_that_is_not_free(tiny_cohort):
    with pytest.raises(ScenarioError, match=r"init gives \['tmax'\], which are not free"):
        fit_population("stein2019", tiny_cohort, ["cmax"], init={"tmax": 5.0})
    with pytest.raises(ScenarioError, match="tmax"):
        fit_population("stein2019", tiny_cohort, ["tmax"], init={"tmax": 500.0})


def test_covariate_for_a_parameter_that_is_not_free(tiny_cohort):
    with pytest.raises(ScenarioError, match=r"covariates given for \['alpha'\]"):
        fit_population("stein2019", tiny_cohort, ["cmax"], covariates={"alpha": "weight_kg"})


# -- slow: spread over seeds and the full-size cohort ----------------------------------------------------
@pytest.mark.slow
def test_round_trip_spread_over_seeds():
    """40 patients, 4 random effects, 5 cohorts (seeds 0-4), default iterations.

    Prints the errors (run with -s to see them); the default-suite tolerances above come from
    this spread. Asserts the spread stays within those tolerances' 40-patient version.
    """
    rows = []
    for seed in range(5):
        _, truth, res = _round_trip(40, seed=seed, n_explore=200, n_average=100)
        typical, omega = _errors(res, truth)
        rows.append((seed, typical, omega, res.elapsed_s, res.converged))
        print(
            f"seed {seed}: typical log-error "
            + " ".join(f"{k} {v:+.3f}" for k, v in typical.items())
            + " | omega2 ratio "
            + " ".join(f"{k} {v:.2f}" for k, v in omega.items())
            + f" | {res.elapsed_s:.1f} s, converged {res.converged}"
        )
    for _, typical, omega, _, _ in rows:
        for name in ("cmax", "tmax", "alpha"):
            assert abs(typical[name]) < 0.1
            assert 0.6 < omega[name] < 1.5
        assert abs(typical["foldx"]) < 0.25
        assert 0.45 < omega["foldx"] < 1.8


@pytest.mark.slow
def test_sle_cart_cohort_from_a_nonmem_dataset():
    """sle_cart on the shipped synthetic NONMEM-style cohort (2 observables, censoring)."""
    import pandas as pd

    import cartkin
    import cartkin.data

    ds = cartkin.data.read(cartkin.data.example_path("synthetic_cohort.csv"), model="sle_cart_v1")
    names = ["rho", "delta_E", "k_EM", "delta_M"]
    res = fit_population(
        "sle_cart_v1",
        ds,
        names,
        base_regimen=cartkin.Regimen(),
        error_model={
            "cart_cells_per_ul": ErrorModel("log", 0.5),
            "b_cells_per_ul": ErrorModel("log", 0.5),
        },
        options=SAEMOptions(n_explore=100, n_average=50, seed=1),
        n_is_samples=100,
        n_npde_sims=100,
    )
    truth = pd.read_csv(cartkin.data.example_path("synthetic_cohort_truth.csv"), comment="#")
    assert math.isfinite(res.objective)
    for name in names:
        true_log = np.log(truth[name].to_numpy())
        assert abs(math.log(res.estimates[name]["value"]) - true_log.mean()) < 0.25, name
    r = np.corrcoef(np.log(res.ebes["rho"]), np.log(truth["rho"].to_numpy()))[0, 1]
    assert r > 0.9
    # residual sd used to simulate the file: 0.748 (CAR-T), 0.30 (B cells) on the log scale
    assert res.estimates["sigma_add:cart_cells_per_ul"]["value"] == pytest.approx(0.748, rel=0.15)
    assert res.estimates["sigma_add:b_cells_per_ul"]["value"] == pytest.approx(0.30, rel=0.15)


def test_cli_population_fit_json_and_figures(tmp_path, capsys, monkeypatch):
    from cartkin.cli import main
    from cartkin.fit import population

    # the command line runs the default 300 iterations; a short run keeps this test fast
    full = population.fit
    short = SAEMOptions(n_burn=2, n_explore=20, n_average=10, seed=0)
    monkeypatch.setattr(
        population,
        "fit",
        lambda *a, **k: full(*a, options=short, n_is_samples=50, n_npde_sims=50, **k),
    )

    subjects, _ = synthetic_cohort(
        "stein2019",
        6,
        TYPICAL,
        OMEGA2,
        observable=OBS,
        lloq=50.0,
        seed=9,
        t_days=(1.0, 4.0, 9.0, 14.0, 28.0, 90.0),
    )
    lines = ["id,time_days,observable,value,cens,limit,unit"]
    for s in subjects:
        for t, v, c in zip(s.t_days, s.value, s.cens, strict=True):
            lines.append(f"{s.id},{t},{OBS},{v:.6g},{c},50,copies/ug")
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "scen.toml").write_text(
        '[scenario]\nname = "pop"\nmodel = "stein2019"\nt_end_days = 90.0\n'
        "output_step_days = 1.0\n[patient]\nweight_kg = 40.0\nheight_cm = 148.0\n"
        'age_years = 12.0\nsex = "male"\negfr_ml_min_173m2 = 110.0\n[cart]\n'
        "cells_per_kg = 1e6\n"
    )
    out = tmp_path / "fig"
    argv = [
        "fit",
        str(tmp_path / "scen.toml"),
        str(tmp_path / "data.csv"),
        "--free",
        "cmax,alpha",
        "--population",
        "--format",
        "json",
        "--figure",
        str(out),
    ]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "population" and set(data["omega"]) == {"cmax", "alpha"}
    assert len(data["predictions"]) == 36
    names = {p.name for p in out.iterdir()}
    assert {"convergence.png", "gof.png", "npde.png"} <= names
    assert any(n.startswith("vpc") for n in names)


def test_benchmark_quick_run(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_population.py"
    spec = importlib.util.spec_from_file_location("bench_population", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--quick", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "quick" / "population.json").read_text())
    row = data["rows"][0]
    assert row["n_subjects"] == 12 and row["cartkin"]["solves"] > 0
    assert set(row["cartkin"]["typical_log_error"]) == set(TYPICAL)
    assert (tmp_path / "quick" / "population.md").read_text().startswith("Population fit")


def test_npde_replicates_respect_the_parameter_bounds(small_round_trip):
    """Wide variances put draws outside the table's bounds (tmax <= 60 days): they are drawn
    again, so every replicate is simulated and every NPDE is finite."""
    from scipy.stats import norm

    import cartkin
    from cartkin.fit import _popdiag
    from cartkin.fit._popdata import CohortData, Predictor
    from cartkin.fit._saem import SAEMState, Transform

    subjects, _, _ = small_round_trip
    data = CohortData(cartkin.models.get("stein2019"), subjects)
    names = list(TYPICAL)
    state = SAEMState(
        data,
        Predictor(data, names, {}),
        Transform(["log"] * 4),
        [np.ones((data.n, 1))] * 4,
        np.ones(4, bool),
        [np.array([math.log(TYPICAL[k])]) for k in names],
        np.array([0.5, 0.5, 4.0, 0.3]),
        {OBS: ErrorModel("log", 0.3)},
    )
    tmax_sd = 2.0
    assert norm.sf(math.log(60 / 9.3) / tmax_sd) > 0.15  # share of draws above the bound
    rng = np.random.default_rng(0)
    sims = _popdiag.simulate_records(state, rng, 50)
    assert not np.any(np.isnan(sims[np.broadcast_to(state.valid[:, None, :], sims.shape)]))
    values, _ = _popdiag.npde(state, rng, 50)
    assert np.all(np.isfinite(values))
