"""Kernel part: status, method and counter codes, step-size control constants, small helpers.

The error norm, Hairer's starting step, the PI / predictive step-size factor and the finiteness
checks shared by every method. See :mod:`cartkin.kernel.parts` for how the parts become one
kernel module and which free names (``rhs``, ``CACHE``, ...) the header defines.
"""

import math

from numba import njit

# ---- status codes: keep equal to cartkin.ode.Status -------------------------------------------
SUCCESS = 0
MAX_STEPS = -1
STEP_UNDERFLOW = -2
NON_FINITE = -3
STIFF = -4
SINGULAR = -5
NOT_BUILT = -6  # the kernel was built without this method family (cartkin.kernel.build picks it)

# ---- method codes: keep equal to cartkin.ode._METHOD_CODES ------------------------------------
TSIT5 = 0
DOPRI5 = 1
RODAS5 = 2
AUTO = 3

# ---- counters (int64 array returned by _solve) -----------------------------------------------
I_STEPS = 0  # accepted steps
I_REJECTED = 1  # rejected steps (error too large, non-finite values, singular matrix)
I_RHS = 2  # right-hand side evaluations
I_JAC = 3  # Jacobian evaluations (user jac or finite differences)
I_LU = 4  # LU factorizations
I_SWITCHES = 5  # segments where AUTO switched to RODAS5
N_COUNTERS = 6

EPS = 2.220446049250313e-16
SQRT_EPS = 1.4901161193847656e-08
SAFETY = 0.9
FAC_MIN = 0.2  # smallest step-size factor
FAC_MAX = 10.0  # largest step-size factor, explicit methods (Hairer's dopri5)
FAC_MAX_ROS = 6.0  # largest step-size factor, Rosenbrock (Hairer's rodas)
PI_BETA_RK = 0.04  # Hairer's dopri5 default
NONFINITE_SHRINK = 0.25  # step factor after a step that produced NaN/inf
STIFF_SWITCH_COUNT = 15  # AUTO: stiff steps before switching (Hairer's dopri5 uses 15)
STIFF_FAIL_COUNT = 500  # TSIT5/DOPRI5 alone: stiff steps before giving up with STIFF
NONSTIFF_RESET = 6  # non-stiff steps in a row that reset the stiffness count (Hairer)
MAX_SINGULAR = 5  # consecutive singular Rosenbrock matrices before SINGULAR


# ================================================================================================
# small helpers
# ================================================================================================
@njit(cache=CACHE, error_model="numpy")
def _error_norm(err, y, ynew, rtol, atol):
    """RMS of err_i / (atol_i + rtol*max(|y_i|, |ynew_i|)); NaN/inf propagate."""
    n = err.size
    acc = 0.0
    for j in range(n):
        sc = atol[j] + rtol * max(abs(y[j]), abs(ynew[j]))
        r = err[j] / sc
        acc += r * r
    return math.sqrt(acc / n)


@njit(cache=CACHE, error_model="numpy")
def _initial_step(t, t_end, y, f0, p, rtol, atol, order, max_step, y1, f1):
    """Hairer's starting step size (Solving ODEs I, II.4). Uses one rhs evaluation."""
    n = y.size
    d0 = 0.0
    d1 = 0.0
    for j in range(n):
        sc = atol[j] + rtol * abs(y[j])
        d0 += (y[j] / sc) ** 2
        d1 += (f0[j] / sc) ** 2
    d0 = math.sqrt(d0 / n)
    d1 = math.sqrt(d1 / n)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    span = t_end - t
    h0 = min(h0, span, max_step)
    for j in range(n):
        y1[j] = y[j] + h0 * f0[j]
    rhs(t + h0, y1, p, f1)
    d2 = 0.0
    for j in range(n):
        sc = atol[j] + rtol * abs(y[j])
        d2 += ((f1[j] - f0[j]) / sc) ** 2
    d2 = math.sqrt(d2 / n) / h0
    dmax = max(d1, d2)
    if dmax <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / dmax) ** (1.0 / (order + 1))
    h = min(100.0 * h0, h1, span, max_step)
    if not (h > 0.0):  # NaN from a non-finite rhs: let the step loop report it
        h = h0
    return h


@njit(cache=CACHE, error_model="numpy")
def _step_factor(log_err, log_err_old, beta, rejected):
    """PI step-size factor, Hairer's dopri5 form: err^-(1/5 - 0.75 beta) * err_old^beta / 0.9.

    Takes logarithms (one log + one exp per step instead of two powers). The error
    estimators of TSIT5, DOPRI5 and RODAS5 are all O(h^5).
    """
    fac = SAFETY * math.exp(-(0.2 - 0.75 * beta) * log_err + beta * log_err_old)
    fac = max(FAC_MIN, min(FAC_MAX, fac))
    if rejected:
        fac = min(fac, 1.0)
    return fac


@njit(cache=CACHE, error_model="numpy")
def _too_small(h, t):
    """Step too small to advance t in floating point (or below 1e-280 near t = 0)."""
    return h <= 16.0 * EPS * abs(t) or h < 1e-280


@njit(cache=CACHE, error_model="numpy")
def _after_rejection(err, h, t):
    """The step after one rejected with error ``err`` (both methods are order 5), and the status
    that ends the segment when that step is too small (``SUCCESS``: try again)."""
    if err != err or err == math.inf:  # NaN/inf in the stages
        h *= NONFINITE_SHRINK
        return h, NON_FINITE if _too_small(h, t) else SUCCESS
    h *= max(FAC_MIN, SAFETY * math.exp(-0.2 * math.log(err)))
    return h, STEP_UNDERFLOW if _too_small(h, t) else SUCCESS


@njit(cache=CACHE, error_model="numpy")
def _all_finite(x):
    for j in range(x.size):
        if not math.isfinite(x[j]):
            return False
    return True
