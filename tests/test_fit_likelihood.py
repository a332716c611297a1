"""Error models, M3 censoring and priors against scipy.stats (independent closed forms)."""

import math

import numpy as np
import pytest
from scipy import stats

from cartkin.errors import DataError, ScenarioError
from cartkin.fit.likelihood import (
    ErrorModel,
    LogNormalPrior,
    error_model_from_spec,
    loglik,
    loglik_total,
    prior_from_spec,
)

RNG = np.random.default_rng(7)
PRED = np.exp(RNG.uniform(-3, 5, 40))
VALUE = PRED * np.exp(RNG.normal(0, 0.6, 40))
ZEROS = np.zeros(40, dtype=int)
NAN = np.full(40, np.nan)


def test_log_kind_is_lognormal_density_of_value():
    em = ErrorModel("log", sigma_add=0.6)
    got = loglik(PRED, VALUE, ZEROS, NAN, em)
    want = stats.lognorm.logpdf(VALUE, s=0.6, scale=PRED)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize(
    ("kind", "a", "b"),
    [("additive", 3.0, None), ("proportional", None, 0.2), ("combined", 1.5, 0.3)],
)
def test_normal_kinds_match_scipy_norm(kind, a, b):
    em = ErrorModel(kind, sigma_add=a, sigma_prop=b)
    sd = np.sqrt((a or 0.0) ** 2 + ((b or 0.0) * PRED) ** 2)
    got = loglik(PRED, VALUE, ZEROS, NAN, em)
    np.testing.assert_allclose(got, stats.norm.logpdf(VALUE, loc=PRED, scale=sd), rtol=1e-12)


def test_m3_below_and_above_limits_match_scipy_cdf():
    lloq = PRED * np.exp(RNG.normal(0, 1.0, 40))
    cens = np.where(np.arange(40) % 2 == 0, 1, -1)
    em = ErrorModel("log", sigma_add=0.5)
    got = loglik(PRED, NAN, cens, lloq, em)
    below = stats.norm.logcdf(np.log(lloq), loc=np.log(PRED), scale=0.5)
    above = stats.norm.logsf(np.log(lloq), loc=np.log(PRED), scale=0.5)
    np.testing.assert_allclose(got, np.where(cens == 1, below, above), rtol=1e-10)
    em = ErrorModel("combined", sigma_add=0.5, sigma_prop=0.1)
    sd = np.sqrt(0.25 + (0.1 * PRED) ** 2)
    got = loglik(PRED, NAN, cens, lloq, em)
    below = stats.norm.logcdf(lloq, loc=PRED, scale=sd)
    above = stats.norm.logsf(lloq, loc=PRED, scale=sd)
    np.testing.assert_allclose(got, np.where(cens == 1, below, above), rtol=1e-10)


def test_m3_far_tail_stays_finite_and_accurate():
    # prediction 1e6 times the LLOQ: P(below) ~ Phi(-27.6) ~ 1e-168, log of it must not be -inf
    em = ErrorModel("log", sigma_add=0.5)
    got = loglik([1e6], [np.nan], [1], [1.0], em)[0]
    assert math.isfinite(got)
    assert got == pytest.approx(stats.norm.logcdf(-math.log(1e6) / 0.5), rel=1e-10)


def test_mixed_records_and_broadcast_over_starts():
    cens = np.where(np.arange(40) < 10, 1, 0)
    limit = np.where(cens == 1, 0.5, np.nan)
    sig = np.array([[0.3], [0.6], [1.2]])  # (n_starts, 1)
    preds = np.vstack([PRED, 2 * PRED, PRED / 3])
    got = loglik(preds, VALUE, cens, limit, ErrorModel("log", sigma_add=sig))
    assert got.shape == (3, 40)
    for k in range(3):
        one = loglik(preds[k], VALUE, cens, limit, ErrorModel("log", sigma_add=float(sig[k, 0])))
        np.testing.assert_allclose(got[k], one, rtol=1e-14)


def test_failed_prediction_gives_minus_inf_and_zero_prediction_stays_finite():
    em = ErrorModel("log", sigma_add=0.5)
    out = loglik([np.nan, 0.0, 0.0], [1.0, 1.0, np.nan], [0, 0, 1], [np.nan, np.nan, 0.1], em)
    assert out[0] == -np.inf
    assert np.isfinite(out[1]) and out[1] < -1e5  # observed 1 vs predicted 0: very unlikely
    assert out[2] == pytest.approx(0.0)  # predicted 0 is surely below the LLOQ


def test_loglik_total_uses_each_observables_model():
    obs = np.where(np.arange(40) % 2 == 0, "cart", "b")
    models = {
        "cart": ErrorModel("log", sigma_add=0.4),
        "b": ErrorModel("proportional", sigma_prop=0.3),
    }
    got = loglik_total(PRED, VALUE, ZEROS, NAN, obs, models)
    even = stats.lognorm.logpdf(VALUE[::2], s=0.4, scale=PRED[::2]).sum()
    odd = stats.norm.logpdf(VALUE[1::2], loc=PRED[1::2], scale=0.3 * PRED[1::2]).sum()
    assert got == pytest.approx(even + odd, rel=1e-12)
    with pytest.raises(ScenarioError, match="no error model for observable 'b'"):
        loglik_total(PRED, VALUE, ZEROS, NAN, obs, {"cart": models["cart"]})


def test_lognormal_prior_matches_scipy():
    prior = LogNormalPrior(median=1.3, sd_log=math.sqrt(0.91))
    x = np.array([0.1, 1.0, 1.3, 7.0])
    np.testing.assert_allclose(
        prior.logpdf(x), stats.lognorm.logpdf(x, s=math.sqrt(0.91), scale=1.3), rtol=1e-12
    )
    np.testing.assert_allclose(
        prior.logpdf_log(np.log(x)),
        stats.norm.logpdf(np.log(x), loc=math.log(1.3), scale=math.sqrt(0.91)),
        rtol=1e-12,
    )
    lo, hi = prior.interval(0.95)
    assert stats.lognorm.cdf(hi, s=math.sqrt(0.91), scale=1.3) == pytest.approx(0.975)
    assert lo == pytest.approx(1.3**2 / hi)
    assert prior_from_spec("p", {"median": 1.3, "omega2": 0.91}).sd_log == pytest.approx(
        math.sqrt(0.91)
    )


def test_bad_inputs_name_the_problem():
    with pytest.raises(ScenarioError, match="kind 'gamma' is not known"):
        ErrorModel("gamma", sigma_add=1.0)
    with pytest.raises(ScenarioError, match="needs sigma_prop"):
        ErrorModel("combined", sigma_add=1.0)
    with pytest.raises(ScenarioError, match="does not use sigma_prop"):
        ErrorModel("log", sigma_add=1.0, sigma_prop=0.1)
    with pytest.raises(ScenarioError, match=r"sigma_add = -1.0; expected a positive"):
        ErrorModel("log", sigma_add=-1.0)
    em = ErrorModel("log", sigma_add=0.5)
    with pytest.raises(DataError, match=r"record 1: observed value -2.0"):
        loglik([1.0, 1.0], [1.0, -2.0], [0, 0], [np.nan, np.nan], em)
    with pytest.raises(DataError, match=r"record 0: censored \(cens = 1\) but limit = nan"):
        loglik([1.0], [np.nan], [1], [np.nan], em)
    with pytest.raises(DataError, match="cens = 2"):
        loglik([1.0], [1.0], [2], [np.nan], em)
    with pytest.raises(ScenarioError, match=r"fit\.error\.cart: unknown key"):
        error_model_from_spec("fit.error.cart", {"kind": "log", "sd": 1})
    with pytest.raises(ScenarioError, match="exactly one of sd_log and omega2"):
        prior_from_spec("fit.priors.rho", {"median": 1.0})
    with pytest.raises(ScenarioError, match="median = -1"):
        prior_from_spec("fit.priors.rho", {"median": -1, "sd_log": 1.0})
