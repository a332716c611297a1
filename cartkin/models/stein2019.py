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

Dosing
------
Stein found no significant effect of dose (or any covariate) on the kinetics, so the curve does
not scale with dose: any positive dose starts it at the first dose day (``t_infusion``); later
doses of a split infusion are not modelled (the model is single-infusion), and a zero dose gives
no CAR-T. The published effects of tocilizumab and corticosteroids (Table 1) are not included.

The equations, derived entries (``t_infusion``, ``rho``, ``t_switch``) and dosing are in
:data:`DESCRIPTION` (``cartkin show stein2019``).
"""

from cartkin.models.description import Bolus, Description
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


DESCRIPTION = Description(
    name="stein2019",
    description=(
        "Empirical tisagenlecleucel cellular kinetics (Stein 2019): exponential expansion until "
        "tmax, then a fast effector decline (alpha) and a slow memory decline (beta) of a "
        "fraction fb. Typical values from Stein 2019, Table 1 (pediatric B-ALL)."
    ),
    parameters=PARAMETERS,
    states="""
        E  effector   [copies/ug]  transgene in the effector pool
        M  memory     [copies/ug]  transgene in the memory-like pool
        P  post_peak  [-]          phase flag: 0 while expanding, 1 after tmax
    """,
    derived="""
        t_infusion = where(n_cart > 0, first_cart_day, 0.0)
        rho = log(foldx) / tmax
        t_switch = t_infusion + tmax
    """,
    equations="""
        d/dt(E) = where(P < 0.5, rho * E, -alpha * E)
        d/dt(M) = where(P < 0.5, rho * M, -beta * M)
        d/dt(P) = 0.0
    """,
    observables="""
        transgene_copies_per_ug [copies/ug] = E + M             # CAR transgene by qPCR: E + M
        cart_cells_per_ul [cells/uL] = (E + M) / copies_per_cell  # CAR-T cells/uL
    """,
    roles={"cart": "cart_cells_per_ul", "cart_copies": "transgene_copies_per_ug"},
    inputs=[
        Bolus("cart", into="E", amount="(1.0 - fb) * (cmax / foldx)", first_only=True),
        Bolus("cart", into="M", amount="fb * (cmax / foldx)", first_only=True),
        Bolus("cart", into="P", amount="1.0", first_only=True, delay="tmax"),
    ],
    # Stein 2019 found no significant dose effect, and the model has no lymphodepletion term
    ignores=("the CAR-T dose", "lymphodepletion"),
)
