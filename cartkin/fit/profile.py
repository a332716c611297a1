"""Profile-likelihood confidence intervals.

For each free parameter the profile walks out from the optimum on the log scale, on each side,
fixing the parameter and re-optimising all others (warm-started from the previous point), until
the objective rises by ``chi2(1).ppf(level)`` (3.84 for 95%). The interval end is the linear
interpolation of the crossing between the last two points, after bisecting the bracket (at most
8 times) while its upper point lies more than 1 above the threshold (steep walls). A side that reaches the estimation
bound, or does not cross within ``max_points`` steps, has no end (None): the parameter is flagged
as not identifiable from the data, never given an interval it does not have.

Steps start at the Hessian SE of the log parameter (clipped to [0.05, 1]; 0.25 without an SE)
and double while the objective rises by less than 0.5 per step.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy.stats import chi2

__all__ = ["profile_all", "profile_parameter"]

MAX_BISECT = 8


def profile_all(problem, x_hat, f_hat, se_log, names, level=0.95, max_points=12) -> dict:
    """Profiles of the named free parameters: ``{name: dict(ci_low, ci_high, flag, curve,
    notes, sets)}`` with ``curve = {"value": [...], "objective": [...]}`` (natural scale, -2LL)
    and ``sets`` the full log-scale parameter rows of the profile points with their objective,
    ``[(x, objective), ...]`` (for prediction ranges, :mod:`cartkin.fit.outlook`)."""
    from cartkin.fit.lockstep import run_lockstep

    tasks = []
    for name in names:
        k = problem.names.index(name)
        tasks.append(partial(profile_parameter, problem, x_hat, f_hat, k, se_log[k], level,
                             max_points))  # fmt: skip
    # the profiles walk side by side, their simulations merged into shared batch calls
    return dict(zip(names, run_lockstep(problem, tasks), strict=True))


def profile_parameter(problem, x_hat, f_hat, k, se_log=math.nan, level=0.95, max_points=12):
    """Profile of free parameter ``k`` (see the module docstring)."""
    delta = float(chi2.ppf(level, 1))
    mask = np.ones(problem.n_free, bool)
    mask[k] = False
    points = [(x_hat[k], f_hat)]
    sets = []
    ends, notes, flags = {}, [], []
    first = 0.25 if not math.isfinite(se_log) else float(np.clip(se_log, 0.05, 1.0))
    name = problem.names[k]
    for side, bound in ((-1, problem.lower[k]), (+1, problem.upper[k])):
        x_prev, f_prev, step = x_hat.copy(), f_hat, first
        ends[side] = None
        for _ in range(max_points):
            xk = x_prev[k] + side * step
            hit_bound = (xk <= bound) if side < 0 else (xk >= bound)
            xk = bound if hit_bound else xk
            x_new, f_new = _optimize_at(problem, x_prev, k, xk, mask)
            points.append((xk, f_new))
            sets.append((x_new.copy(), f_new))
            if f_new < f_hat - 0.01:
                notes.append(
                    f"profile of {name} found a lower objective ({f_new:.4f} < {f_hat:.4f}) at "
                    f"{math.exp(xk):.4g}: the fit is not at its optimum (try more starts)"
                )
            if f_new - f_hat >= delta:
                # overshoot (a steep wall, e.g. a target leaving its interval): bisect until
                # the bracket's top is within 1 of the threshold, then interpolate linearly
                lo_x, lo_f, hi_k, hi_f = x_prev, f_prev, xk, f_new
                for _ in range(MAX_BISECT):
                    if hi_f - f_hat <= delta + 1.0:
                        break
                    mid = 0.5 * (lo_x[k] + hi_k)
                    x_mid, f_mid = _optimize_at(problem, lo_x, k, mid, mask)
                    points.append((mid, f_mid))
                    sets.append((x_mid.copy(), f_mid))
                    if f_mid - f_hat >= delta:
                        hi_k, hi_f = mid, f_mid
                    else:
                        lo_x, lo_f = x_mid, f_mid
                frac = (f_hat + delta - lo_f) / (hi_f - lo_f)
                ends[side] = math.exp(lo_x[k] + frac * (hi_k - lo_x[k]))
                break
            if hit_bound:
                flags.append(f"profile flat to the {'lower' if side < 0 else 'upper'} bound")
                break
            if f_new - f_prev < 0.5:
                step *= 2.0
            x_prev, f_prev = x_new, f_new
        else:
            flags.append(f"profile did not rise by {delta:.2f} within {max_points} steps")
    points.sort()
    return {
        "ci_low": ends[-1],
        "ci_high": ends[+1],
        "flag": "; ".join(flags),
        "notes": notes,
        "sets": sets,
        "curve": {
            "value": [math.exp(p[0]) for p in points],
            "objective": [p[1] for p in points],
        },
    }


def _optimize_at(problem, x_from, k, xk, mask):
    """Objective with parameter ``k`` fixed at ``xk`` (log scale), the others re-optimised
    from ``x_from``; returns (x, objective)."""
    from cartkin.fit.optimize import minimize_objective

    x0 = x_from.copy()
    x0[k] = xk
    if problem.n_free > 1:
        run = minimize_objective(problem, x0, mask)
        return run["x"], run["objective"]
    return x0, float(problem.objective(x0[None, :])[0])
