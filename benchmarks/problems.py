"""Benchmark problems for ``bench_solvers.py``.

Each problem is written once as a plain-Python right-hand side ``rhs(t, y, p, dydt)`` that
indexes its arguments element by element. The same source is used three ways:

- as is, wrapped in a numpy function, for scipy (``scipy_rhs``);
- compiled with ``numba.njit`` for cartkin (the ``rhs(t, y, p, dydt)`` contract of
  docs/design.md section 1), for scipy with a numba right-hand side, and inside a
  ``numba.cfunc`` for numbalsoda (``methods.py`` builds those);
- re-typed with ``jax.numpy`` for diffrax (``jax_rhs``), because jax needs a functional form.

The CAR-T model is benchmarked through the built-in ``the generated rhs of cart4`` for the cartkin
rows; the copy here (``cart4_rhs``) is for the peers and is checked against the built-in one
before any timing (``check_cart4_against_builtin``).

Problems
--------
cart4
    The 4-state CAR-T benchmark model of the issue (E, M, B, X), days 0..365, outputs daily.
robertson
    Robertson's chemical kinetics (Robertson 1966; Hairer & Wanner, "Solving ODEs II", 2nd ed.,
    section IV.1), t in [0, 1e11], outputs log-spaced. Very stiff.
vdp
    Van der Pol oscillator y1'' - mu (1 - y1^2) y1' + y1 = 0 with mu = 1000 (unscaled form),
    y0 = (2, 0), t in [0, 3000] (about two relaxation periods), outputs every 10.
hires
    HIRES, 8 states (Schaefer 1975; Hairer & Wanner II, section IV.10), t in [0, 321.8122].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------------------------
# CAR-T 4-state model (parameter values from the benchmark issue; they are benchmark settings,
# not fitted values: assumption "benchmark values as specified in the issue")
# --------------------------------------------------------------------------------------------
CART4_PARAMS: dict[str, float] = {
    "rho": 1.2,  # 1/day, maximal expansion rate
    "K_B": 5.0,  # B cells/uL, half-saturation of antigen drive
    "d_E": 0.25,  # 1/day, effector death
    "k_EM": 0.02,  # 1/day, effector -> memory
    "k_EX": 0.05,  # 1/day, antigen-driven exhaustion
    "k_ME": 0.3,  # 1/day, memory -> effector on antigen
    "d_M": 0.01,  # 1/day, memory death
    "r_B": 0.03,  # 1/day, B-cell logistic growth
    "B_max": 250.0,  # B cells/uL, carrying capacity
    "s_B": 0.5,  # B cells/uL/day, B-cell source
    "k_kill": 2.0,  # 1/day per effector, killing
    "K_kill": 10.0,  # B cells/uL, half-saturation of killing
    "d_X": 0.1,  # 1/day, exhausted death
}
CART4_Y0 = np.array([1.2, 0.0, 200.0, 0.0])


def cart4_rhs(t, y, p, dydt):
    """CAR-T 4-state model, written for numba and plain Python alike.

    Parameters
    ----------
    t : float
        Time, days (unused: the model is autonomous).
    y : array of float, shape (4,)
        E, M, B, X in cells/uL.
    p : array of float, shape (13,)
        Parameters in the order of ``CART4_PARAMS``.
    dydt : array of float, shape (4,)
        Output, cells/uL/day.
    """
    rho, K_B, d_E, k_EM, k_EX, k_ME, d_M = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    r_B, B_max, s_B, k_kill, K_kill, d_X = p[7], p[8], p[9], p[10], p[11], p[12]
    E, M, B, X = y[0], y[1], y[2], y[3]
    f = B / (B + K_B)
    dydt[0] = rho * f * E - (d_E + k_EM + k_EX * f) * E + k_ME * f * M
    dydt[1] = k_EM * E - k_ME * f * M - d_M * M
    dydt[2] = r_B * B * (1.0 - B / B_max) + s_B - k_kill * E * B / (B + K_kill)
    dydt[3] = k_EX * f * E - d_X * X


def cart4_jax(t, y, p):
    """``cart4_rhs`` in jax form: returns dy/dt as a jax array, shape (4,)."""
    import jax.numpy as jnp

    rho, K_B, d_E, k_EM, k_EX, k_ME, d_M = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    r_B, B_max, s_B, k_kill, K_kill, d_X = p[7], p[8], p[9], p[10], p[11], p[12]
    E, M, B, X = y[0], y[1], y[2], y[3]
    f = B / (B + K_B)
    dE = rho * f * E - (d_E + k_EM + k_EX * f) * E + k_ME * f * M
    dM = k_EM * E - k_ME * f * M - d_M * M
    dB = r_B * B * (1.0 - B / B_max) + s_B - k_kill * E * B / (B + K_kill)
    dX = k_EX * f * E - d_X * X
    return jnp.stack([dE, dM, dB, dX])


# --------------------------------------------------------------------------------------------
# Robertson
# --------------------------------------------------------------------------------------------
def robertson_rhs(t, y, p, dydt):
    """Robertson kinetics; p = (k1, k2, k3) = (0.04, 1e4, 3e7)."""
    k1, k2, k3 = p[0], p[1], p[2]
    y1, y2, y3 = y[0], y[1], y[2]
    dydt[0] = -k1 * y1 + k2 * y2 * y3
    dydt[1] = k1 * y1 - k2 * y2 * y3 - k3 * y2 * y2
    dydt[2] = k3 * y2 * y2


def robertson_jax(t, y, p):
    """``robertson_rhs`` in jax form."""
    import jax.numpy as jnp

    k1, k2, k3 = p[0], p[1], p[2]
    y1, y2, y3 = y[0], y[1], y[2]
    return jnp.stack([-k1 * y1 + k2 * y2 * y3, k1 * y1 - k2 * y2 * y3 - k3 * y2 * y2, k3 * y2 * y2])


# --------------------------------------------------------------------------------------------
# Van der Pol, mu = 1000
# --------------------------------------------------------------------------------------------
def vdp_rhs(t, y, p, dydt):
    """Van der Pol, first-order form y1' = y2, y2' = mu (1 - y1^2) y2 - y1; p = (mu,)."""
    mu = p[0]
    dydt[0] = y[1]
    dydt[1] = mu * (1.0 - y[0] * y[0]) * y[1] - y[0]


def vdp_jax(t, y, p):
    """``vdp_rhs`` in jax form."""
    import jax.numpy as jnp

    mu = p[0]
    return jnp.stack([y[1], mu * (1.0 - y[0] * y[0]) * y[1] - y[0]])


# --------------------------------------------------------------------------------------------
# HIRES (coefficients as in Hairer & Wanner II, section IV.10)
# --------------------------------------------------------------------------------------------
def hires_rhs(t, y, p, dydt):
    """HIRES; p unused (one dummy entry) because the coefficients are fixed by the problem."""
    y1, y2, y3, y4, y5, y6, y7, y8 = y[0], y[1], y[2], y[3], y[4], y[5], y[6], y[7]
    dydt[0] = -1.71 * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007
    dydt[1] = 1.71 * y1 - 8.75 * y2
    dydt[2] = -10.03 * y3 + 0.43 * y4 + 0.035 * y5
    dydt[3] = 8.32 * y2 + 1.71 * y3 - 1.12 * y4
    dydt[4] = -1.745 * y5 + 0.43 * y6 + 0.43 * y7
    dydt[5] = -280.0 * y6 * y8 + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7
    dydt[6] = 280.0 * y6 * y8 - 1.81 * y7
    dydt[7] = -280.0 * y6 * y8 + 1.81 * y7


def hires_jax(t, y, p):
    """``hires_rhs`` in jax form."""
    import jax.numpy as jnp

    y1, y2, y3, y4, y5, y6, y7, y8 = (y[i] for i in range(8))
    return jnp.stack(
        [
            -1.71 * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007,
            1.71 * y1 - 8.75 * y2,
            -10.03 * y3 + 0.43 * y4 + 0.035 * y5,
            8.32 * y2 + 1.71 * y3 - 1.12 * y4,
            -1.745 * y5 + 0.43 * y6 + 0.43 * y7,
            -280.0 * y6 * y8 + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7,
            280.0 * y6 * y8 - 1.81 * y7,
            -280.0 * y6 * y8 + 1.81 * y7,
        ]
    )


@dataclass
class Problem:
    """One benchmark problem.

    Attributes
    ----------
    name, title : str
        Short key and a one-line description.
    rhs : callable
        Plain-Python ``rhs(t, y, p, dydt)``; compiled by each adapter in its own way.
    jax_rhs : callable
        ``f(t, y, p) -> jax array`` for diffrax.
    y0 : ndarray, shape (n_states,)
        State at ``t_eval[0]``.
    t_eval : ndarray, shape (n_times,)
        Output times (problem units: days for cart4, dimensionless otherwise).
    p : ndarray, shape (n_params,)
        Parameter vector.
    rtol, atol : float
        Headline tolerances (every method gets exactly these).
    ref_rtol : float
        rtol of the scipy reference solution (atol 1e-14).
    stiff : bool
        If true, explicit methods are skipped.
    state_names : tuple of str
    """

    name: str
    title: str
    rhs: Callable
    jax_rhs: Callable
    y0: np.ndarray
    t_eval: np.ndarray
    p: np.ndarray
    rtol: float
    atol: float
    stiff: bool
    state_names: tuple[str, ...]
    notes: str = ""
    ref_rtol: float = 1e-13
    cartkin_rhs: Callable | None = field(default=None, repr=False)
    cartkin_p: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_states(self) -> int:
        return len(self.y0)

    def scipy_rhs(self) -> Callable:
        """Plain numpy ``f(t, y) -> dydt`` for scipy (interpreted Python)."""
        rhs, p, n = self.rhs, self.p, self.n_states

        def f(t, y):
            dydt = np.empty(n)
            rhs(t, y, p, dydt)
            return dydt

        return f


def make_problems() -> dict[str, Problem]:
    """All benchmark problems, keyed by name."""
    return {
        "cart4": Problem(
            name="cart4",
            title="CAR-T 4-state model, days 0..365 (daily outputs)",
            rhs=cart4_rhs,
            jax_rhs=cart4_jax,
            y0=CART4_Y0.copy(),
            t_eval=np.arange(0.0, 366.0),
            p=np.array(list(CART4_PARAMS.values())),
            rtol=1e-6,
            atol=1e-9,
            stiff=False,
            state_names=("E", "M", "B", "X"),
        ),
        "robertson": Problem(
            name="robertson",
            title="Robertson kinetics, t in [0, 1e11] (outputs at 0 and 10^-5..10^11)",
            rhs=robertson_rhs,
            jax_rhs=robertson_jax,
            y0=np.array([1.0, 0.0, 0.0]),
            t_eval=np.concatenate([[0.0], np.logspace(-5, 11, 33)]),
            p=np.array([0.04, 1e4, 3e7]),
            rtol=1e-6,
            atol=1e-10,
            stiff=True,
            state_names=("y1", "y2", "y3"),
            notes="atol 1e-10 because y2 stays below 4e-5",
        ),
        "vdp": Problem(
            name="vdp",
            title="Van der Pol mu=1000, t in [0, 3000] (outputs every 10)",
            rhs=vdp_rhs,
            jax_rhs=vdp_jax,
            y0=np.array([2.0, 0.0]),
            t_eval=np.linspace(0.0, 3000.0, 301),
            p=np.array([1000.0]),
            rtol=1e-6,
            atol=1e-9,
            stiff=True,
            state_names=("y1", "y2"),
        ),
        "hires": Problem(
            name="hires",
            title="HIRES, t in [0, 321.8122] (outputs at 0, 5, 10, ..., 320, 321.8122)",
            rhs=hires_rhs,
            jax_rhs=hires_jax,
            y0=np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057]),
            t_eval=np.append(np.arange(0.0, 321.0, 5.0), 321.8122),
            p=np.zeros(1),
            rtol=1e-6,
            atol=1e-9,
            stiff=True,
            state_names=tuple(f"y{i}" for i in range(1, 9)),
        ),
    }


def cart4_builtin():
    """The built-in cartkin model module ``cartkin.models.cart4`` (with ``MODEL_RHS``, its
    generated right-hand side), or None if it is not there."""
    try:
        import cartkin.models
        from cartkin.models import cart4
    except ImportError:
        return None
    cart4.MODEL_RHS = cartkin.models.get("cart4").rhs
    return cart4


def check_cart4_against_builtin(problem: Problem, module) -> np.ndarray:
    """Map the issue's parameter values onto the built-in model and check both rhs agree.

    Parameters
    ----------
    problem : Problem
        The ``cart4`` problem (its ``p`` is in ``CART4_PARAMS`` order).
    module : module
        ``cartkin.models.cart4`` with ``rhs``, ``DEFAULT_P`` and ``PARAM_NAMES``.

    Returns
    -------
    ndarray
        The parameter vector in the built-in model's order.

    Raises
    ------
    ValueError
        If a parameter name is missing from ``PARAM_NAMES`` or the two right-hand sides differ
        by more than 1e-12 relative at a few test states.
    """
    names = list(module.PARAM_NAMES)
    missing = [k for k in CART4_PARAMS if k not in names]
    if missing or len(names) != len(CART4_PARAMS):
        raise ValueError(
            f"cartkin.models.cart4.PARAM_NAMES={names!r} does not match the benchmark parameters "
            f"{list(CART4_PARAMS)!r} (missing {missing!r})"
        )
    p_builtin = np.array([CART4_PARAMS[k] for k in names])
    rng = np.random.default_rng(0)
    for y in [problem.y0, *rng.uniform(0.0, 100.0, size=(5, 4))]:
        mine, theirs = np.empty(4), np.empty(4)
        cart4_rhs(0.0, y, problem.p, mine)
        module.MODEL_RHS(0.0, np.asarray(y, dtype=float), p_builtin, theirs)
        if not np.allclose(mine, theirs, rtol=1e-12, atol=1e-12):
            raise ValueError(
                f"the cart4 rhs disagrees with the benchmark equations at y={y!r}: "
                f"{theirs!r} vs {mine!r}"
            )
    return p_builtin
