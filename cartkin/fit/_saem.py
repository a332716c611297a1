"""The SAEM algorithm (Kuhn & Lavielle 2005) for :mod:`cartkin.fit.population`.

Model, on the estimation scale (``phi = log(theta)``, or ``logit`` for a parameter bounded by
[0, 1]):

    phi_ij = x_ij' beta_j + eta_ij,   eta_ij ~ N(0, omega2_j)   (diagonal Omega)
    y_ik | phi_i ~ error model of the record's observable (M3 for censored records)

``x_ij`` is ``1`` (the typical value) followed by ``log(cov_i / median cov)`` for each covariate
of parameter ``j`` (a power model on the natural scale).

Each iteration ``k``:

1. Simulation: Metropolis-Hastings kernels move every subject's ``phi_i`` (Kuhn & Lavielle
   2005, section 3; the three kernels Monolix uses): ``n_prior`` draws from the population
   distribution (acceptance ratio = likelihood ratio), ``n_rw`` random-walk moves of the whole
   vector and ``n_rw`` sweeps of one-component random walks (acceptance ratio = posterior
   ratio). Every move of every subject in one sweep is one :meth:`Predictor.records` call.
   The random-walk scales adapt toward 40% acceptance during the exploratory phase.
2. Stochastic approximation of the sufficient statistics ``s1 = E[phi_i]``,
   ``s2 = E[phi_i^2]`` with step ``gamma_k = 1`` (exploratory phase, ``n_explore``
   iterations) then ``1/(k - n_explore + 1)`` (averaging phase, ``n_average`` iterations).
3. M-step: ``beta_j`` by least squares of ``s1_j`` on ``x_j``; ``omega2_j = mean_i(s2_ij -
   2 s1_ij m_ij + m_ij^2)``; residual-error parameters by a 1-D (or 2-D for "combined")
   maximisation of the likelihood of the current sample, averaged with the same
   ``gamma_k``. During the exploratory phase variances may shrink by at most 5% per
   iteration (simulated annealing, as Monolix does), which keeps the chains exploring.

Free parameters without between-patient variability get an annealed variance: it starts at
``omega2_init`` and shrinks by a factor 0.9 per iteration to 1e-6, so their typical value is
estimated by the same statistics (Monolix's approach before its dedicated optimiser).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from cartkin.fit.likelihood import loglik

__all__ = ["SAEMOptions", "SAEMState", "convergence_verdict", "run_saem"]

_NO_IIV_DECAY = 0.9
_NO_IIV_FLOOR = 1e-6
_ANNEAL = 0.95
_TARGET_ACCEPT = 0.4


@dataclass(frozen=True)
class SAEMOptions:
    """Iteration counts and kernel settings of SAEM.

    Parameters
    ----------
    n_burn : int
        Iterations of MCMC only, before any parameter update.
    n_explore : int
        Exploratory (stochastic approximation, ``gamma = 1``) iterations.
    n_average : int
        Averaging (``gamma = 1/k``) iterations.
    n_prior, n_rw : int
        Per iteration: moves from the population distribution; random-walk moves of the whole
        vector and sweeps of one-component random walks.
    seed : int
        Seed of the random generator (the fit is reproducible for a given seed).
    n_chains : int
        Markov chains per subject; the sufficient statistics average over them (Monolix's
        "number of chains", which it raises for small cohorts). Each chain costs a full set of
        model solves.
    """

    n_burn: int = 5
    n_explore: int = 200
    n_average: int = 100
    n_prior: int = 2
    n_rw: int = 2
    seed: int = 0
    n_chains: int = 1

    def __post_init__(self):
        if not isinstance(self.n_chains, (int, np.integer)) or self.n_chains < 1:
            raise ValueError(f"SAEMOptions.n_chains = {self.n_chains!r}; expected an integer >= 1")
        for name in ("n_burn", "n_explore", "n_average", "n_prior", "n_rw"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"SAEMOptions.{name} = {v!r}; expected an integer >= 0")
        if self.n_average < 1 or self.n_explore < 1:
            raise ValueError("SAEMOptions: n_explore and n_average must be at least 1")


class Transform:
    """Per-parameter map between natural values and the estimation scale.

    Parameters
    ----------
    kinds : sequence of {"log", "logit"}
    """

    def __init__(self, kinds):
        self.kinds = tuple(kinds)
        self.logit = np.array([k == "logit" for k in self.kinds])

    def to_phi(self, values):
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.logit, np.log(values / (1.0 - values)), np.log(values))

    def to_value(self, phi):
        phi = np.asarray(phi, dtype=np.float64)
        with np.errstate(over="ignore"):
            return np.where(self.logit, 1.0 / (1.0 + np.exp(-phi)), np.exp(phi))

    def dvalue_dphi(self, phi):
        """Derivative of the natural value w.r.t. phi (delta-method standard errors)."""
        v = self.to_value(phi)
        return np.where(self.logit, v * (1.0 - v), v)


class SAEMState:
    """Population parameters, the current chains and the records' likelihood.

    Holds everything the iterations update; diagnostics read it after the run.
    """

    def __init__(self, data, predictor, transform, design, iiv, beta, omega2, error_models):
        self.data = data
        self.predictor = predictor
        self.transform = transform
        self.design = design  # list of (n, p_j) matrices
        self.iiv = np.asarray(iiv, dtype=bool)
        self.beta = [np.asarray(b, dtype=np.float64) for b in beta]
        self.omega2 = np.asarray(omega2, dtype=np.float64)
        self.error_models = dict(error_models)
        n, m = data.n, int(data.n_obs_per_subject.max())
        slots = _slots(data)
        self.valid = slots >= 0
        safe = np.where(self.valid, slots, 0)
        self.value_pad = np.where(self.valid, data.value[safe], 1.0)
        self.cens_pad = np.where(self.valid, data.cens[safe], 0)
        self.limit_pad = np.where(self.valid, data.limit[safe], 1.0)
        self.obs_pad = np.where(self.valid, data.obs_index[safe], -1)
        self.shape = (n, m)

    # -- population means ------------------------------------------------------------------------
    def mean_phi(self) -> np.ndarray:
        """Population mean of phi per subject (covariates applied), shape (n, d)."""
        return np.column_stack([x @ b for x, b in zip(self.design, self.beta, strict=True)])

    def log_prior(self, phi, subject) -> np.ndarray:
        """log N(phi; mean, Omega) per row, constants included, shape (n_rows,)."""
        mean = self.mean_phi()[subject]
        z2 = (phi - mean) ** 2 / self.omega2
        return -0.5 * np.sum(z2 + np.log(2.0 * np.pi * self.omega2), axis=1)

    # -- likelihood of records --------------------------------------------------------------------
    def record_loglik(self, pred, subject, error_models=None) -> np.ndarray:
        """Per-record log-likelihood, shape (n_rows, m); 0 in padding, -inf for failed solves."""
        error_models = self.error_models if error_models is None else error_models
        out = np.zeros(pred.shape)
        obs = self.obs_pad[subject]
        value, cens, limit = (
            self.value_pad[subject],
            self.cens_pad[subject],
            self.limit_pad[subject],
        )
        for k, name in enumerate(self.data.observables):
            sel = obs == k
            if not sel.any():
                continue
            ll = loglik(np.where(sel, pred, 1.0), value, cens, limit, error_models[name])
            out = np.where(sel, ll, out)
        return out

    def loglik_rows(self, pred, subject, error_models=None) -> np.ndarray:
        """Log-likelihood of each row's records, shape (n_rows,) (-inf for a failed solve)."""
        ll = self.record_loglik(pred, subject, error_models).sum(axis=1)
        return np.where(np.isnan(ll), -np.inf, ll)

    def predict(self, phi, subject) -> np.ndarray:
        """Padded record predictions for rows of phi (n_rows, d), shape (n_rows, m)."""
        return self.predictor.records(self.transform.to_value(phi), subject)


def _slots(data):
    m = int(data.n_obs_per_subject.max())
    slots = np.full((data.n, m), -1, dtype=np.int64)
    start = 0
    for k, count in enumerate(data.n_obs_per_subject):
        slots[k, :count] = np.arange(start, start + count)
        start += count
    return slots


def _error_mstep(state, pred, rows, current):
    """Residual-error parameters maximising the current sample's likelihood, per observable."""
    out = {}
    for k, name in enumerate(state.data.observables):
        em = current[name]
        sel = state.obs_pad[rows] == k
        p = np.where(sel, pred, 1.0)
        v, c, lim = state.value_pad[rows], state.cens_pad[rows], state.limit_pad[rows]
        names = em.parameter_names

        def negll(log_sigmas, em=em, names=names, p=p, v=v, c=c, lim=lim, sel=sel):
            trial = em.with_parameters(**dict(zip(names, np.exp(log_sigmas), strict=True)))
            ll = loglik(p, v, c, lim, trial)
            total = np.sum(np.where(sel, ll, 0.0))
            return -total if np.isfinite(total) else 1e300

        x0 = np.log([em.parameters[n] for n in names])
        if len(names) == 1:
            res = minimize_scalar(
                lambda x: negll([x]),
                bounds=(x0[0] - 4.0, x0[0] + 4.0),
                method="bounded",
                options={"xatol": 1e-5},
            )
            x = np.array([res.x])
        else:
            res = minimize(
                negll,
                x0,
                method="Nelder-Mead",
                options={"xatol": 1e-5, "fatol": 1e-8, "maxiter": 400},
            )
            x = res.x
        out[name] = dict(zip(names, np.exp(x), strict=True))
    return out


def run_saem(state: SAEMState, options: SAEMOptions, rng, *, progress=None, hook=None, log=None):
    """Run SAEM in place on ``state``.

    Parameters
    ----------
    state : SAEMState
        Initial population parameters; updated in place.
    options : SAEMOptions
    rng : numpy.random.Generator
    progress : callable, optional
        ``progress(k, n_total)`` after each iteration.
    hook : callable, optional
        ``hook(state, phi, pred, subjects)`` after each averaging-phase M-step (Fisher
        information); rows of ``phi`` and ``pred`` belong to ``subjects`` (chains stacked).
    log : callable, optional
        ``log(k, n_total, phase, objective, snapshot)`` after each iteration: ``phase`` one of
        "mcmc" (the ``n_burn`` MCMC-only iterations), "explore", "average"; ``objective`` the -2 log-likelihood of the data at
        the current MCMC sample (averaged over the chains: the conditional -2LL, not the
        marginal one reported at the end); ``snapshot`` the population parameters
        (:func:`_snapshot`).

    Returns
    -------
    dict
        ``trajectory`` (n_iter, n_pop) array, ``objective`` (n_iter,) the conditional -2LL
        at each iteration (see ``log``), ``acceptance`` per kernel, ``phi`` last sample
        of the first chain (n, d), ``cond_mean`` and ``cond_var`` of phi over the averaging
        phase and the chains (n, d), ``pred`` records of that sample (n, m).
    """
    n_subjects, d = state.data.n, len(state.beta)
    n_chains = options.n_chains
    subjects = np.tile(np.arange(n_subjects), n_chains)  # row r: chain r // n_subjects
    n = subjects.size

    def chain_mean(values):
        return values.reshape(n_chains, n_subjects, *values.shape[1:]).mean(axis=0)

    phi = state.mean_phi()[subjects]
    pred = state.predict(phi, subjects)
    ll = state.loglik_rows(pred, subjects)
    if not np.all(np.isfinite(ll)):
        bad = [state.data.ids[subjects[i]] for i in np.flatnonzero(~np.isfinite(ll))]
        raise ValueError(
            f"population fit: the initial typical values give a failed solve or a zero "
            f"likelihood for subject(s) {bad[:5]}; give other initial values (init=...)"
        )
    scale_rw = np.full(d, 0.8)  # whole-vector random walk: per-component scale x omega
    scale_1d = np.full(d, 1.0)
    accepted = {"prior": [0, 0], "rw": [0, 0], "rw1": [0, 0]}
    s1, s2 = chain_mean(phi), chain_mean(phi**2)
    n_total = options.n_burn + options.n_explore + options.n_average
    traj, objective = [], []

    def record(k, phase):
        traj.append(_snapshot(state))
        objective.append(-2.0 * float(np.sum(ll)) / n_chains)
        if log is not None:
            log(k, n_total, phase, objective[-1], traj[-1])

    def mh(proposal, use_prior_ratio, key):
        nonlocal phi, pred, ll
        new_pred = state.predict(proposal, subjects)
        new_ll = state.loglik_rows(new_pred, subjects)
        log_ratio = new_ll - ll
        if use_prior_ratio:
            log_ratio += state.log_prior(proposal, subjects) - state.log_prior(phi, subjects)
        with np.errstate(invalid="ignore"):
            accept = np.log(rng.random(n)) < log_ratio
        accept &= np.isfinite(new_ll)
        phi = np.where(accept[:, None], proposal, phi)
        pred = np.where(accept[:, None], new_pred, pred)
        ll = np.where(accept, new_ll, ll)
        accepted[key][0] += int(accept.sum())
        accepted[key][1] += n
        return accept.mean()

    for k in range(n_total):
        exploring = k < options.n_burn + options.n_explore
        sd = np.sqrt(state.omega2)
        mean = state.mean_phi()[subjects]
        for _ in range(options.n_prior):
            mh(mean + sd * rng.standard_normal((n, d)), False, "prior")
        for _ in range(options.n_rw):
            rate = mh(phi + scale_rw * sd * rng.standard_normal((n, d)), True, "rw")
            if exploring:
                scale_rw *= 1.0 + 0.4 * (rate - _TARGET_ACCEPT)
        for _ in range(options.n_rw):
            for j in range(d):
                proposal = phi.copy()
                proposal[:, j] += scale_1d[j] * sd[j] * rng.standard_normal(n)
                rate = mh(proposal, True, "rw1")
                if exploring:
                    scale_1d[j] *= 1.0 + 0.4 * (rate - _TARGET_ACCEPT)
        if k < options.n_burn:
            record(k, "mcmc")
            continue
        # stochastic approximation
        gamma = 1.0 if exploring else 1.0 / (k - options.n_burn - options.n_explore + 1)
        s1 += gamma * (chain_mean(phi) - s1)
        s2 += gamma * (chain_mean(phi**2) - s2)
        # M-step: fixed effects and variances
        old_omega2 = state.omega2.copy()
        for j in range(d):
            x = state.design[j]
            state.beta[j] = (
                np.linalg.lstsq(x, s1[:, j], rcond=None)[0]
                if x.shape[1] > 1
                else (np.array([s1[:, j].mean()]))
            )
        m = state.mean_phi()
        omega2 = np.maximum(np.mean(s2 - 2.0 * s1 * m + m * m, axis=0), 1e-10)
        if exploring:
            omega2 = np.maximum(omega2, _ANNEAL * old_omega2)
        omega2 = np.where(state.iiv, omega2, np.maximum(old_omega2 * _NO_IIV_DECAY, _NO_IIV_FLOOR))
        state.omega2 = omega2
        # residual error
        best = _error_mstep(state, pred, subjects, state.error_models)
        new_models = {}
        for name, em in state.error_models.items():
            values = {}
            for pname, target in best[name].items():
                old = em.parameters[pname]
                value = old + gamma * (target - old)
                if exploring:
                    value = max(value, _ANNEAL * old)
                values[pname] = value
            new_models[name] = em.with_parameters(**values)
        state.error_models = new_models
        ll = state.loglik_rows(pred, subjects)
        if not exploring and hook is not None:
            hook(state, phi, pred, subjects)
        record(k, "explore" if exploring else "average")
        if progress is not None:
            progress(k, n_total)

    cond_var = np.maximum(s2 - s1 * s1, 0.0)
    return {
        "trajectory": np.array(traj),
        "objective": np.array(objective),
        "acceptance": {key: a / max(t, 1) for key, (a, t) in accepted.items()},
        "phi": phi[:n_subjects],
        "pred": pred[:n_subjects],
        "cond_mean": s1,
        "cond_var": cond_var,
        "n_iterations": n_total,
    }


def _snapshot(state) -> np.ndarray:
    typical = state.transform.to_value(np.array([b[0] for b in state.beta]))
    cov = [c for b in state.beta for c in b[1:]]
    err = [
        v for name in state.data.observables for v in state.error_models[name].parameters.values()
    ]
    return np.concatenate([typical, cov, state.omega2, err])


def convergence_verdict(traj, options, names, check, n_batches=5):
    """Drift test on the second half of the exploratory phase, by batch means.

    The second half of the exploratory phase is cut into ``n_batches`` batches; for each
    population parameter (``check`` selects them: the annealed variances of parameters without
    variability trend down by design and are left out) a straight line is fitted to its batch
    means. Batch means absorb most of the strong autocorrelation of SAEM iterates, which a
    per-iteration standard error ignores. The phase has converged when, for every parameter,
    the drift along that line over the window is below 5% of the parameter's mean or within
    the 95% t interval of zero (``n_batches - 2`` degrees of freedom). Measured on 5 synthetic
    40-patient stein2019 cohorts with default settings: 4 judged converged; the fifth flagged
    foldx, the least identified parameter.

    For a drifting parameter the verdict estimates how many more exploratory iterations it
    needs (:func:`_more_iterations`).

    Returns
    -------
    (bool, str, dict)
        Converged, the verdict in words, and ``{name: more exploratory iterations}`` of the
        drifting parameters.
    """
    from scipy.stats import t as student_t

    start = options.n_burn
    explore = traj[start : start + options.n_explore]
    half = explore[len(explore) // 2 :]
    size = len(half) // n_batches
    if size < 2 or not np.all(np.isfinite(traj)):
        return False, "too few exploratory iterations (< 20) or non-finite values", {}
    means = half[: size * n_batches].reshape(n_batches, size, -1).mean(axis=1)
    x = np.arange(n_batches) - (n_batches - 1) / 2.0
    centred = means - means.mean(axis=0)
    slope = (x @ centred) / (x @ x)
    resid = centred - np.outer(x, slope)
    se = np.sqrt(np.sum(resid**2, axis=0) / (n_batches - 2) / (x @ x))
    drift = np.abs(slope) * n_batches
    scale = np.maximum(np.abs(half.mean(axis=0)), 1e-300)
    rel = drift / scale
    t_crit = student_t.ppf(0.975, n_batches - 2)
    ok = (rel < 0.05) | (drift <= t_crit * se * n_batches)
    ok |= ~check
    z = drift / np.maximum(se * n_batches, 1e-300)
    worst = int(np.argmax(np.where(check, z, -np.inf)))
    more = {
        names[k]: _more_iterations(means[:, k], size, max(0.05 * scale[k], t_crit * se[k]))
        for k in np.flatnonzero(~ok)
    }
    total = options.n_explore + max(more.values(), default=0)
    verdict = (
        "converged"
        if ok.all()
        else f"NOT converged: run about {total} exploratory iterations (--burn-in {total})"
    )
    bad = [f"{name} (about {n} more)" for name, n in more.items()]
    note = (
        f"drift test over the second half of the exploratory phase ({n_batches} batch means): "
        f"largest drift {z[worst]:.1f} SE ({names[worst]}, {rel[worst]:.1%} of its mean; "
        f"limit {t_crit:.2f} SE unless < 5%); {verdict}"
        + (f" (drifting: {', '.join(bad)})" if bad else "")
    )
    return bool(ok.all()), note, more


def _more_iterations(means, size, allowed) -> int:
    """More exploratory iterations a drifting parameter needs, from its batch means.

    A parameter settling toward its stationary value moves by a shrinking amount per batch;
    the ratio ``q`` of its movement over the last two batch steps to that over the first two
    (per step: its square root) gives a geometric rate, and the batches until the drift over
    a window of ``len(means)`` batches falls below ``allowed`` follow from it. When the
    movement does not shrink (``q >= 0.95``: a trend, not a settling) the estimate is the
    length of the whole exploratory window observed so far doubled, a floor rather than a
    forecast. Rounded up to 50 iterations.
    """
    steps = np.abs(np.diff(means))
    first, last = steps[:2].sum(), steps[-2:].sum()
    drift = abs(means[-1] - means[0])
    n = len(means)
    if first > 0 and drift > allowed:
        q = math.sqrt(last / first)
        if q < 0.95:
            batches = math.log(allowed / drift) / math.log(q)
            return int(50 * math.ceil(max(batches, 1.0) * size / 50))
    return int(50 * math.ceil(4 * n * size / 50))
