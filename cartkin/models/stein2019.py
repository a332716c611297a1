"""stein2019: the empirical tisagenlecleucel cellular-kinetic model of Stein et al. 2019.

Stein AM, Grupp SA, Levine JE et al. Tisagenlecleucel model-based cellular kinetic analysis of
chimeric antigen receptor-T cells. CPT Pharmacometrics Syst Pharmacol 2019;8:285-295.

Transgene levels (copies/ug genomic DNA) grow exponentially at ``rho = ln(foldx)/tmax`` from
``C0 = cmax/foldx`` until ``tmax`` days after infusion; then effector cells decline at ``alpha``
while a fraction ``fb`` of the peak, the memory-like pool, declines at ``beta``. The published
analytical solution after the peak is

    C(t) = cmax * ((1 - fb) * exp(-alpha * (t - tmax)) + fb * exp(-beta * (t - tmax)))

Here it is written as a two-pool ODE with the same solution: both pools expand at ``rho`` from
``E(0) = (1 - fb) * C0`` and ``M(0) = fb * C0``, so at ``tmax`` they hold ``(1 - fb) * cmax`` and
``fb * cmax``; after ``tmax`` each declines at its own rate. The switch is a third state, the
phase flag ``P`` (0 while expanding, 1 after the peak), raised by a jump at the solver stop
``t_infusion + tmax``. The flag, not ``t``, selects the branch: integrators evaluate the
right-hand side at the very end of a segment (the stop time itself), where a test on ``t``
would already pick the post-peak branch and spoil the last step before the peak (measured:
relative error 1e-5 at rtol 1e-10 with rodas5).

Equations (exactly as in :func:`rhs`)
-------------------------------------
::

    if P < 0.5:
        dE = rho * E
        dM = rho * M
    else:
        dE = -alpha * E
        dM = -beta * M
    dP = 0.0

Dosing
------
Stein found no significant effect of dose (or any covariate) on the kinetics, so the curve does
not scale with dose: any positive dose starts it at the first dose day (``t_infusion``); later
doses of a split infusion are not modelled (the model is single-infusion), and a zero dose gives
no CAR-T. The published effects of tocilizumab and corticosteroids (Table 1) are not included.

Kernel parameter vector ``p``: the table entries in table order, then the derived entries
``t_infusion`` (day), ``rho`` (1/day), ``t_switch`` (day, the peak; for reports).
"""

from __future__ import annotations

import textwrap

import numba
import numpy as np

from cartkin.models.base import Model, Observable, State
from cartkin.parameters import Parameter, ParameterTable

PARAMETERS = ParameterTable(
    [
        Parameter("cmax", 24000.0, "copies/ug", 1.0, 1e7,
                  "peak transgene level", "Stein 2019, Table 1"),
        Parameter("foldx", 3900.0, "-", 1.01, 1e7,
                  "fold expansion from C0 to cmax", "Stein 2019, Table 1"),
        Parameter("tmax", 9.3, "day", 0.5, 60.0,
                  "time of the peak after infusion", "Stein 2019, Table 1"),
        Parameter("alpha", 0.16, "1/day", 1e-3, 5.0,
                  "effector (fast) decline rate after the peak", "Stein 2019, Table 1"),
        Parameter("fb", 0.0079, "-", 0.0, 1.0,
                  "fraction of the peak in the slowly declining memory pool",
                  "Stein 2019, Table 1"),
        Parameter("beta", 0.0032, "1/day", 0.0, 1.0,
                  "memory (slow) decline rate after the peak", "Stein 2019, Table 1"),
        Parameter("copies_per_cell", 2000.0, "(copies/ug)/(cells/uL)", 100.0, 1e5,
                  "transgene copies/ug genomic DNA per CAR-T cell/uL",
                  "derived: Singh 2021 (TransC)"),
    ]
)  # fmt: skip

DERIVED = ("t_infusion", "rho", "t_switch")

STATES = (
    State("effector", "E", "copies/ug", "transgene in the effector pool"),
    State("memory", "M", "copies/ug", "transgene in the memory-like pool"),
    State("post_peak", "P", "-", "phase flag: 0 while expanding, 1 after tmax"),
)


@numba.njit(cache=True)
def rhs(t, y, p, dydt):
    """stein2019 dy/dt (per day); ``p`` in kernel order (module docstring)."""
    alpha = p[3]
    beta = p[5]
    rho = p[8]

    E = y[0]
    M = y[1]
    P = y[2]

    if P < 0.5:
        dE = rho * E
        dM = rho * M
    else:
        dE = -alpha * E
        dM = -beta * M
    dP = 0.0

    dydt[0] = dE
    dydt[1] = dM
    dydt[2] = dP


@numba.njit(cache=True)
def observe_roles(y, p, out):
    """Role values (cartkin.models.ROLES order) from one state vector, for in-kernel metrics."""
    copies = y[0] + y[1]
    out[0] = copies / p[6]  # cart, cells/uL
    out[1] = copies  # cart_copies, copies/ug
    out[2] = np.nan  # cart_percent_t
    out[3] = np.nan  # b_cells
    out[4] = np.nan  # il6
    out[5] = np.nan  # anti_dsdna
    for k in range(6, out.shape[0]):  # complement, ln_activity, proteinuria, kidney_function
        out[k] = np.nan


def individualize(values, bctx):
    """Kernel inputs of n patients: start the curve at the first positive dose (module docstring).

    Parameters
    ----------
    values : dict of str to numpy.ndarray, shape (n,)
        Table values per patient.
    bctx : cartkin.batch.BatchContext
        Uses ``cart_dose_days`` and ``cart_dose_cells`` (n, m_d).

    Returns
    -------
    cartkin.batch.BatchIndividuals
        Two stops per dosed patient (infusion, peak), none for an undosed one.
    """
    from cartkin.batch import BatchIndividuals

    n = bctx.n
    dosed_days = np.where(bctx.cart_dose_cells > 0, bctx.cart_dose_days, np.inf)
    t_first = dosed_days.min(axis=1, initial=np.inf)
    dosed = np.isfinite(t_first)
    t_inf = np.where(dosed, t_first, 0.0)
    rho = np.log(values["foldx"]) / values["tmax"]
    c0 = values["cmax"] / values["foldx"]
    t_switch = t_inf + values["tmax"]
    t_stops = np.where(dosed[:, None], np.stack([t_inf, t_switch], axis=1), np.inf)
    jumps = np.zeros((n, 2, 3))
    jumps[:, 0, 0] = np.where(dosed, (1.0 - values["fb"]) * c0, 0.0)
    jumps[:, 0, 1] = np.where(dosed, values["fb"] * c0, 0.0)
    jumps[:, 1, 2] = np.where(dosed, 1.0, 0.0)
    p = np.column_stack([*values.values(), t_inf, rho, t_switch])
    return BatchIndividuals(
        p=p, y0=np.zeros((n, 3)), t0=np.zeros(n), t_stops=t_stops, jumps=jumps,
        n_stops=np.where(dosed, 2, 0).astype(np.int64),
    )  # fmt: skip


_COPIES = PARAMETERS.index("copies_per_cell")

OBSERVABLES = (
    Observable(
        "transgene_copies_per_ug",
        "copies/ug",
        "CAR transgene by qPCR: E + M",
        lambda s, p: s[:, 0] + s[:, 1],
    ),
    Observable(
        "cart_cells_per_ul",
        "cells/uL",
        "CAR-T cells/uL: (E + M) / copies_per_cell",
        lambda s, p: (s[:, 0] + s[:, 1]) / p[_COPIES],
    ),
)

EQUATIONS = textwrap.dedent(__doc__.split("::", 1)[1].split("Dosing", 1)[0]).strip()

MODEL = Model(
    name="stein2019",
    description=(
        "Empirical tisagenlecleucel cellular kinetics (Stein 2019): exponential expansion until "
        "tmax, then a fast effector decline (alpha) and a slow memory decline (beta) of a "
        "fraction fb. Typical values from Stein 2019, Table 1 (pediatric B-ALL)."
    ),
    states=STATES,
    parameters=PARAMETERS,
    observables=OBSERVABLES,
    rhs=rhs,
    individualize=individualize,
    roles={"cart": "cart_cells_per_ul", "cart_copies": "transgene_copies_per_ug"},
    equations=EQUATIONS,
    derived=DERIVED,
    batch=True,
    observe_roles=observe_roles,
)
