"""Exceptions raised at cartkin's Python boundary.

Compiled code never raises: it returns an integer status that the boundary turns into one of
these, with a message that says what to change.
"""


class CartkinError(Exception):
    """Base class of every cartkin error."""


class SolverError(CartkinError, RuntimeError):
    """The integrator stopped before the last output time.

    ``solution`` holds the partial solution (outputs up to the failure, status, counters).
    """

    def __init__(self, message, solution=None):
        super().__init__(message)
        self.solution = solution


class ScenarioError(CartkinError, ValueError):
    """A scenario file or scenario argument is invalid (names the file, key and expected form)."""


class DataError(CartkinError, ValueError):
    """Observed data are invalid (names the file, row, column and expected form)."""
