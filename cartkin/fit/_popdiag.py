"""After SAEM: EBEs, -2LL by importance sampling, standard errors (Louis), NPDE.

Every model evaluation here goes through :meth:`SAEMState.predict` in batches covering all
subjects at once (never one subject at a time).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, ndtri
from scipy.stats import t as student_t

__all__ = ["FisherAccumulator", "ebe_modes", "importance_sampling_loglik", "npde"]

_T_DF = 5  # Student-t proposal for importance sampling (heavier tails than the posterior)


# -- conditional modes ----------------------------------------------------------------------------
def _batched_nelder_mead(fun, x0, step, *, max_iter=400, xtol=1e-4, ftol=1e-6):
    """Nelder-Mead run for every row of ``x0`` at once (each row its own problem).

    Parameters
    ----------
    fun : callable
        ``fun(points (k, d), row (k,)) -> values (k,)``: objective of problem ``row`` at each
        point; ``inf`` where undefined. One call per simplex operation covers every problem.
    x0, step : numpy.ndarray, shape (n, d)
        Start and initial simplex edge per problem.

    Returns
    -------
    x : numpy.ndarray, shape (n, d)
    f : numpy.ndarray, shape (n,)
    converged : numpy.ndarray of bool, shape (n,)
    """
    n, d = x0.shape
    rows = np.arange(n)
    simplex = np.repeat(x0[:, None, :], d + 1, axis=1)
    simplex[:, 1:, :] += step[:, None, :] * np.eye(d)[None]
    fs = fun(simplex.reshape(-1, d), np.repeat(rows, d + 1)).reshape(n, d + 1)
    fs = np.where(np.isfinite(fs), fs, np.inf)
    converged = np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        order = np.argsort(fs, axis=1)
        simplex = np.take_along_axis(simplex, order[:, :, None], axis=1)
        fs = np.take_along_axis(fs, order, axis=1)
        spread_x = np.max(np.abs(simplex[:, 1:] - simplex[:, :1]), axis=(1, 2))
        converged = (fs[:, -1] - fs[:, 0] <= ftol) & (spread_x <= xtol)
        act = np.flatnonzero(~converged)
        if act.size == 0:
            break
        s, f = simplex[act], fs[act]
        centroid = s[:, :-1].mean(axis=1)
        worst = s[:, -1]
        xr = 2.0 * centroid - worst
        fr = _finite(fun(xr, act))
        best, second, fworst = f[:, 0], f[:, -2], f[:, -1]
        expand = fr < best
        outside = (fr >= second) & (fr < fworst)
        inside = fr >= fworst
        x2 = np.where(
            expand[:, None],
            3.0 * centroid - 2.0 * worst,
            np.where(outside[:, None], 1.5 * centroid - 0.5 * worst, 0.5 * (centroid + worst)),
        )
        need = expand | outside | inside
        f2 = np.full(act.size, np.inf)
        if need.any():
            f2[need] = _finite(fun(x2[need], act[need]))
        new_x, new_f = xr.copy(), fr.copy()
        take2 = (expand & (f2 < fr)) | (outside & (f2 <= fr)) | (inside & (f2 < fworst))
        new_x[take2], new_f[take2] = x2[take2], f2[take2]
        shrink = (outside | inside) & ~take2
        s[:, -1], f[:, -1] = new_x, new_f
        if shrink.any():
            k = np.flatnonzero(shrink)
            s[k, 1:] = s[k, :1] + 0.5 * (s[k, 1:] - s[k, :1])
            pts = s[k, 1:].reshape(-1, d)
            f[k, 1:] = _finite(fun(pts, np.repeat(act[k], d))).reshape(k.size, d)
        simplex[act], fs[act] = s, f
    best = np.argmin(fs, axis=1)
    return simplex[rows, best], fs[rows, best], converged


def _finite(values):
    return np.where(np.isfinite(values), values, np.inf)


def ebe_modes(state, start, step):
    """Conditional modes of phi (EBEs) for every subject by a batched Nelder-Mead.

    Parameters
    ----------
    state : SAEMState
        Final population parameters.
    start, step : numpy.ndarray, shape (n, d)
        Start (the conditional mean from the averaging phase) and initial simplex edges.

    Returns
    -------
    phi : numpy.ndarray, shape (n, d)
        Modes of ``log p(y_i | phi) + log p(phi)`` over the dimensions with variability; the
        others stay at the population mean.
    objective : numpy.ndarray, shape (n,)
        ``-2 x`` that log density at the mode.
    converged : numpy.ndarray of bool, shape (n,)
    """
    mean = state.mean_phi()
    iiv = state.iiv
    if not iiv.any():
        subjects = np.arange(state.data.n)
        ll = state.loglik_rows(state.predict(mean, subjects), subjects)
        return mean, -2.0 * ll, np.ones(state.data.n, dtype=bool)

    def objective(points, rows):
        phi = mean[rows].copy()
        phi[:, iiv] = points
        ll = state.loglik_rows(state.predict(phi, rows), rows)
        z2 = (phi[:, iiv] - mean[rows][:, iiv]) ** 2 / state.omega2[iiv]
        return -(ll - 0.5 * z2.sum(axis=1))

    x, f, conv = _batched_nelder_mead(objective, start[:, iiv], step[:, iiv])
    phi = mean.copy()
    phi[:, iiv] = x
    return phi, 2.0 * f, conv


# -- -2LL by importance sampling --------------------------------------------------------------------
def importance_sampling_loglik(state, center, scale, rng, n_samples=500, rows_per_call=20_000):
    """Marginal log-likelihood per subject by importance sampling.

    The proposal for subject ``i`` is a Student-t (5 degrees of freedom) per component with
    variability, centred on the conditional mean and scaled by the conditional standard
    deviation from the averaging phase (Monolix's choice); components without variability are
    held at the population mean.

    Parameters
    ----------
    state : SAEMState
    center, scale : numpy.ndarray, shape (n, d)
    rng : numpy.random.Generator
    n_samples : int
        Importance samples per subject.

    Returns
    -------
    loglik : numpy.ndarray, shape (n,)
        log p(y_i) per subject.
    mc_se : numpy.ndarray, shape (n,)
        Monte Carlo standard error of each log p(y_i) (delta method on the weights).
    """
    n = state.data.n
    iiv = state.iiv
    mean = state.mean_phi()
    scale = np.maximum(scale, 0.05 * np.sqrt(state.omega2))
    log_w = np.empty((n, n_samples))
    per_call = max(1, rows_per_call // n)
    for start in range(0, n_samples, per_call):
        k = min(per_call, n_samples - start)
        rows = np.tile(np.arange(n), k)
        z = student_t.rvs(_T_DF, size=(rows.size, int(iiv.sum())), random_state=rng)
        phi = mean[rows].copy()
        phi[:, iiv] = center[rows][:, iiv] + scale[rows][:, iiv] * z
        ll = state.loglik_rows(state.predict(phi, rows), rows)
        z2 = (phi[:, iiv] - mean[rows][:, iiv]) ** 2 / state.omega2[iiv]
        log_prior = -0.5 * np.sum(z2 + np.log(2.0 * np.pi * state.omega2[iiv]), axis=1)
        log_q = np.sum(student_t.logpdf(z, _T_DF) - np.log(scale[rows][:, iiv]), axis=1)
        log_w[:, start : start + k] = (ll + log_prior - log_q).reshape(k, n).T
    lse = logsumexp(log_w, axis=1)
    loglik = lse - np.log(n_samples)
    w = np.exp(log_w - lse[:, None]) * n_samples  # weights / mean weight
    mc_se = np.std(w, axis=1) / np.sqrt(n_samples)
    return loglik, mc_se


# -- standard errors: Louis' formula on the averaging-phase samples ----------------------------------
class FisherAccumulator:
    """Observed Fisher information by Louis' missing-information principle.

    For each subject, ``I_i = E[-H_i] - E[s_i s_i'] + E[s_i] E[s_i]'``, where ``s_i`` and
    ``H_i`` are the score and Hessian of the complete log-likelihood ``log p(y_i, phi_i)`` with
    respect to the population parameters, and ``E`` is over ``phi_i`` given ``y_i`` (averaged
    over the averaging-phase MCMC samples, Kuhn & Lavielle 2005, section 4). Parameters:
    the fixed effects ``beta`` of parameters with variability, their ``omega2``, and the
    residual-error parameters (derivatives of the records' likelihood by central differences,
    no new model solve). Typical values of parameters without variability are not covered.
    """

    def __init__(self, state):
        self.names = []
        d = len(state.beta)
        for j in range(d):
            if state.iiv[j]:
                self.names += [("beta", j, c) for c in range(state.beta[j].size)]
        self.names += [("omega2", j, 0) for j in range(d) if state.iiv[j]]
        for name in state.data.observables:
            self.names += [("error", name, p) for p in state.error_models[name].parameter_names]
        size, n = len(self.names), state.data.n
        self.count = 0
        self.score = np.zeros((n, size))
        self.outer = np.zeros((n, size, size))
        self.neg_hess = np.zeros((n, size, size))

    def __call__(self, state, phi, pred, rows):
        n_rows = rows.size
        size = len(self.names)
        s = np.zeros((n_rows, size))
        h = np.zeros((n_rows, size, size))
        mean = state.mean_phi()[rows]
        index = {key: k for k, key in enumerate(self.names)}
        for j in np.flatnonzero(state.iiv):
            x = state.design[j][rows]
            r = phi[:, j] - mean[:, j]
            w = state.omega2[j]
            kb = [index[("beta", j, c)] for c in range(x.shape[1])]
            ko = index[("omega2", j, 0)]
            s[:, kb] = x * (r / w)[:, None]
            s[:, ko] = -0.5 / w + 0.5 * r * r / w**2
            h[:, kb[0] : kb[-1] + 1, kb[0] : kb[-1] + 1] = -np.einsum("ia,ib->iab", x, x) / w
            h[:, ko, ko] = 0.5 / w**2 - r * r / w**3
            cross = -x * (r / w**2)[:, None]
            h[:, kb, ko] = cross
            h[:, ko, kb] = cross
        self._error_terms(state, pred, rows, s, h, index)
        # each chain's sample is one more draw from each subject's conditional distribution
        n_chains = n_rows // state.data.n
        for c in range(n_chains):
            part = slice(c * state.data.n, (c + 1) * state.data.n)
            self.count += 1
            a = 1.0 / self.count
            sc = s[part]
            self.score += a * (sc - self.score)
            self.outer += a * (np.einsum("ia,ib->iab", sc, sc) - self.outer)
            self.neg_hess += a * (-h[part] - self.neg_hess)

    def _error_terms(self, state, pred, rows, s, h, index):
        for name in state.data.observables:
            em = state.error_models[name]
            pnames = em.parameter_names
            theta = np.array([em.parameters[p] for p in pnames])
            steps = 1e-4 * theta
            k = [index[("error", name, p)] for p in pnames]

            def ll_at(values, em=em, pnames=pnames, name=name):
                models = dict(state.error_models)
                models[name] = em.with_parameters(**dict(zip(pnames, values, strict=True)))
                rec = state.record_loglik(pred, rows, models)
                sel = state.obs_pad[rows] == state.data.observables.index(name)
                return np.sum(np.where(sel, rec, 0.0), axis=1)

            f0 = ll_at(theta)
            for a in range(len(pnames)):
                ea = np.eye(len(pnames))[a] * steps[a]
                fp, fm = ll_at(theta + ea), ll_at(theta - ea)
                s[:, k[a]] = (fp - fm) / (2 * steps[a])
                h[:, k[a], k[a]] = (fp - 2 * f0 + fm) / steps[a] ** 2
                for b in range(a):
                    eb = np.eye(len(pnames))[b] * steps[b]
                    cross = (
                        ll_at(theta + ea + eb)
                        - ll_at(theta + ea - eb)
                        - ll_at(theta - ea + eb)
                        + ll_at(theta - ea - eb)
                    ) / (4 * steps[a] * steps[b])
                    h[:, k[a], k[b]] = cross
                    h[:, k[b], k[a]] = cross

    def information(self) -> np.ndarray:
        """Observed Fisher information summed over subjects, shape (n_par, n_par)."""
        per = self.neg_hess - self.outer + np.einsum("ia,ib->iab", self.score, self.score)
        return per.sum(axis=0)

    def standard_errors(self) -> dict:
        """``{(kind, j, c): se}`` from the inverse information (NaN where it is singular)."""
        info = self.information()
        try:
            cov = np.linalg.inv(info)
            var = np.diag(cov)
        except np.linalg.LinAlgError:
            var = np.full(len(self.names), np.nan)
        se = np.sqrt(np.where(var > 0, var, np.nan))
        return dict(zip(self.names, se, strict=True))


# -- NPDE -----------------------------------------------------------------------------------------
def simulate_records(state, rng, n_sim, rows_per_call=20_000, max_redraws=50):
    """Replicates of every subject's records under the population model.

    Individual parameters are drawn from the population distribution truncated to the
    parameter table's bounds (as in the fit, where the MCMC never accepts a value outside
    them): a draw outside the bounds, or one whose solve fails, is drawn again (up to
    ``max_redraws`` times; replicates still failing stay NaN).

    Returns
    -------
    numpy.ndarray, shape (n, n_sim, m)
        Simulated observations (new eta and residual error per replicate), padded with NaN.
    """
    n = state.data.n
    mean = state.mean_phi()
    sd = np.where(state.iiv, np.sqrt(state.omega2), 0.0)
    out = np.empty((n, n_sim, state.shape[1]))
    per_call = max(1, rows_per_call // n)
    for start in range(0, n_sim, per_call):
        k = min(per_call, n_sim - start)
        rows = np.tile(np.arange(n), k)
        pred = np.full((rows.size, state.shape[1]), np.nan)
        todo = np.arange(rows.size)
        for _ in range(max_redraws + 1):
            r = rows[todo]
            phi = mean[r] + sd * rng.standard_normal((todo.size, mean.shape[1]))
            pred[todo] = state.predict(phi, r)
            failed = np.any(np.isnan(pred[todo]) & state.valid[r], axis=1)
            todo = todo[failed]
            if todo.size == 0:
                break
        y = _add_residual(state, pred, rows, rng)
        out[:, start : start + k, :] = y.reshape(k, n, -1).transpose(1, 0, 2)
    return np.where(state.valid[:, None, :], out, np.nan)


def _add_residual(state, pred, rows, rng):
    eps = rng.standard_normal(pred.shape)
    y = np.full(pred.shape, np.nan)
    obs = state.obs_pad[rows]
    for k, name in enumerate(state.data.observables):
        em = state.error_models[name]
        sel = obs == k
        sd = em.sd(np.where(sel, pred, 1.0))
        noisy = pred * np.exp(sd * eps) if em.kind == "log" else pred + sd * eps
        y = np.where(sel, noisy, y)
    return y


def _scale(state, values):
    """Values on each record's error-model scale (log for the "log" kind)."""
    out = np.array(values, dtype=np.float64)
    for k, name in enumerate(state.data.observables):
        if state.error_models[name].kind == "log":
            sel = np.broadcast_to(state.obs_pad == k, out.shape[:1] + state.obs_pad.shape[1:])
            if out.ndim == 3:
                sel = np.broadcast_to((state.obs_pad == k)[:, None, :], out.shape)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.where(sel, np.log(np.maximum(out, 1e-300)), out)
    return out


def npde(state, rng, n_sim=500):
    """Normalised prediction distribution errors (Brendel et al. 2006; Comets et al. 2008).

    Each subject's observed (uncensored) records and their ``n_sim`` simulated replicates are
    decorrelated with the Cholesky factor of the replicates' covariance (on the log scale for
    "log" error models); ``npde = Phi^-1(fraction of decorrelated replicates below the
    decorrelated observation)``. A censored record gets ``Phi^-1(u)`` with ``u`` uniform on
    the share of replicates below (above) its limit (Nguyen et al. 2012), not decorrelated.

    Returns
    -------
    npde : numpy.ndarray, shape (n_obs,)
        One per record, in data order.
    sims : numpy.ndarray, shape (n, n_sim, m)
        The simulated replicates (NaN padded), for a visual predictive check.
    """
    sims = simulate_records(state, rng, n_sim)  # (n, K, m)
    valid = state.valid
    # a subject with a replicate that could not be simulated gets no NPDE (rather than garbage)
    failed = np.any(np.isnan(sims) & valid[:, None, :], axis=(1, 2))
    observed = np.where(state.valid, state.value_pad, np.nan)
    cens = np.where(state.valid, state.cens_pad, 0)
    # censored records: a probability drawn uniformly below (above) the limit's share of the
    # replicates, as in Nguyen et al. 2012
    below = np.mean(sims <= state.limit_pad[:, None, :], axis=1)
    u = rng.random(observed.shape)
    q = np.where(cens == 1, u * below, np.where(cens == -1, below + u * (1.0 - below), 0.0))

    # observed records: decorrelated jointly. Censored records are left out of the
    # decorrelation (their row and column of the covariance set to the identity): an imputed
    # value is drawn from the replicates' marginal and does not carry the patient's dependence
    # on the other records, which a Cholesky decorrelation would spread into every later record
    # (measured on sle_cart's synthetic cohort, 29% of records censored: NPDE of observed
    # records had sd 1.6-1.8 per observable with imputed values decorrelated, 0.95-1.03 without).
    use = valid & (cens == 0)
    z_sim = _scale(state, sims)
    z_obs = _scale(state, observed)
    z_sim = np.where(use[:, None, :] & np.isfinite(z_sim), z_sim, 0.0)
    mean = z_sim.mean(axis=1)
    centered = z_sim - mean[:, None, :]
    cov = np.einsum("ika,ikb->iab", centered, centered) / (n_sim - 1)
    m = cov.shape[1]
    eye = np.eye(m)[None]
    off = ~use
    cov = np.where(off[:, :, None] | off[:, None, :], 0.0, cov) + eye * off[:, :, None]
    jitter = 1e-12 * np.maximum(np.trace(cov, axis1=1, axis2=2) / m, 1e-300)
    chol = np.linalg.cholesky(cov + eye * jitter[:, None, None])
    dec_obs = np.linalg.solve(chol, np.where(use, z_obs - mean, 0.0)[:, :, None])[:, :, 0]
    dec_sim = np.linalg.solve(chol, centered.transpose(0, 2, 1))  # (n, m, K)
    pde = np.mean(dec_sim < dec_obs[:, :, None], axis=2)
    pde = np.where(cens != 0, q, pde)
    pde[failed] = np.nan
    pde = np.clip(pde, 1.0 / (2 * n_sim), 1.0 - 1.0 / (2 * n_sim))
    out = ndtri(pde)
    return out[valid], sims
