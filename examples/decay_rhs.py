"""A right-hand side in a file of its own, for ``cartkin.models.load_module`` (README example).

First-order decay ``dy/dt = -k y`` with ``k = p[0]`` (1/time unit).
"""

import numba


@numba.njit(error_model="numpy")
def rhs(t, y, p, dydt):
    """dy/dt = -p[0] * y[0]."""
    dydt[0] = -p[0] * y[0]
