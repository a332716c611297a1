"""One local minimisation of a fit objective (step 2 of :mod:`cartkin.fit.estimate`).

Used by the multistart fit (:mod:`cartkin.fit.estimate`) and by the profiles
(:mod:`cartkin.fit.profile`), which re-optimise with one parameter held.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

__all__ = ["GRAD_STEP", "GRAD_TOL", "JAC_STEP", "minimize_objective", "objective_and_gradient"]

GRAD_STEP = 1e-4
JAC_STEP = 1e-5
GRAD_TOL = 1e-2


def objective_and_gradient(problem, x, mask=None):
    """Objective and central finite-difference gradient at ``x`` in one batched call.

    ``mask`` (bool, shape (n_free,)) selects the coordinates to differentiate (profiles fix
    one); the gradient has ``mask.sum()`` entries.
    """
    idx = np.flatnonzero(np.ones(problem.n_free, bool) if mask is None else mask)
    xp = np.repeat(x[None, :], 2 * idx.size + 1, axis=0)
    for j, k in enumerate(idx):
        xp[1 + 2 * j, k] = min(x[k] + GRAD_STEP, problem.upper[k])
        xp[2 + 2 * j, k] = max(x[k] - GRAD_STEP, problem.lower[k])
    f = problem.objective(xp)
    step = xp[1::2, idx].diagonal() - xp[2::2, idx].diagonal()
    return f[0], (f[1::2] - f[2::2]) / step


def minimize_objective(problem, x0, mask=None, maxiter=200) -> dict:
    """Minimise the objective from ``x0`` over the coordinates in ``mask`` (others held).

    Gauss-Newton (:func:`scipy.optimize.least_squares`, trf within bounds) on the model
    parameters when the objective has least-squares form for fixed error parameters
    (:attr:`Problem.least_squares_form`), alternating with an exact minimisation over the error
    parameters on fixed predictions (no simulation); L-BFGS-B on everything otherwise.
    """
    x0 = np.asarray(x0, dtype=np.float64)
    mask = np.ones(problem.n_free, bool) if mask is None else np.asarray(mask, bool)
    n_model = len(problem.model_free)
    if problem.least_squares_form and np.any(mask[:n_model]):
        return _minimize_gauss_newton(problem, x0, mask, maxiter)
    return _minimize_lbfgs(problem, x0, mask, maxiter)


def _minimize_gauss_newton(problem, x0, mask, maxiter):
    from scipy.optimize import least_squares

    n_model = len(problem.model_free)
    mc = np.flatnonzero(mask[:n_model])
    ec = n_model + np.flatnonzero(mask[n_model:])
    lo, hi = problem.lower, problem.upper
    x = x0.copy()
    n_eval, n_iter, f_prev, message = 0, 0, np.inf, ""
    grad = np.zeros(problem.n_free)
    converged = True
    for _ in range(20):
        base = x.copy()
        last = {}

        def fun(z, base=base, last=last):
            nonlocal n_eval
            n_eval += 1
            xz = base.copy()
            xz[mc] = z
            last["z"], last["r"] = z.copy(), problem.residuals(xz[None, :])[0]
            return last["r"]

        def jac(z, base=base, last=last):
            # forward differences from the residuals fun() just computed at z (least_squares
            # always evaluates fun at a point before its Jacobian); backward at an upper bound
            nonlocal n_eval
            n_eval += 1
            r0 = last["r"] if np.array_equal(last.get("z"), z) else fun(z)
            rows = np.repeat(base[None, :], mc.size, axis=0)
            rows[:, mc] = z
            for j, k in enumerate(mc):
                up = z[j] + JAC_STEP <= hi[k]
                rows[j, k] = z[j] + JAC_STEP if up else z[j] - JAC_STEP
            step = rows[:, mc].diagonal() - z
            return ((problem.residuals(rows) - r0[None, :]) / step[:, None]).T

        fit_ = least_squares(fun, np.clip(x[mc], lo[mc], hi[mc]), jac=jac,
                             bounds=(lo[mc], hi[mc]), method="trf", xtol=1e-8, ftol=1e-9,
                             gtol=1e-8, max_nfev=maxiter)  # fmt: skip
        x[mc] = fit_.x
        n_iter += int(fit_.nfev)
        message = str(fit_.message)
        grad[mc] = 2.0 * fit_.grad  # least_squares' gradient is of 0.5 * sum r^2
        converged = fit_.status > 0
        if ec.size:
            curves = problem.simulate(x[None, :])
            n_eval += 1

            def g(z, curves=curves):
                xz = x.copy()
                xz[ec] = z
                return float(sum(t[0] for t in problem.terms(xz[None, :], curves)))

            res = minimize(
                g, x[ec], method="L-BFGS-B", bounds=list(zip(lo[ec], hi[ec], strict=True))
            )
            x[ec] = res.x
            grad[ec] = res.jac
            f = float(res.fun)
        else:
            f = float(2.0 * fit_.cost)
        if f_prev - f < 1e-8 * (1.0 + abs(f)) or not ec.size:
            break
        f_prev = f
    f = float(problem.objective(x[None, :])[0])
    n_eval += 1
    return _result(problem, x, mask, f, grad[mask], converged, n_iter, n_eval, message)


def _minimize_lbfgs(problem, x0, mask, maxiter):
    n_eval = 0

    def fun(z):
        nonlocal n_eval
        n_eval += 1
        x = x0.copy()
        x[mask] = z
        return objective_and_gradient(problem, x, mask)

    bounds = list(zip(problem.lower[mask], problem.upper[mask], strict=True))
    res = minimize(fun, x0[mask], jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-5})  # fmt: skip
    x = x0.copy()
    x[mask] = res.x
    f, g = objective_and_gradient(problem, x, mask)
    return _result(problem, x, mask, f, g, True, int(res.nit), n_eval + 1, str(res.message))


def _result(problem, x, mask, f, g, ok, n_iter, n_eval, message):
    """Converged when the optimizer stopped on a tolerance (``ok``) and every projected
    gradient component (-2LL per log unit) is below GRAD_TOL."""
    z = x[mask]
    at_lo, at_hi = z <= problem.lower[mask] + 1e-8, z >= problem.upper[mask] - 1e-8
    g_proj = np.where((at_lo & (g > 0)) | (at_hi & (g < 0)), 0.0, g)
    # allowance for finite-difference noise, which grows with |f| (rtol 1e-8 / step 1e-5)
    tol = GRAD_TOL + 1e-5 * abs(f)
    converged = bool(ok and np.all(np.abs(g_proj) < tol) and f < 1e10)
    return {"x": x, "objective": float(f), "converged": converged, "n_iter": n_iter,
            "n_eval": n_eval, "message": message, "gradient": g_proj}  # fmt: skip
