"""The compiled layer: the integrator template, its instantiation and cache, and code generation.

- :mod:`cartkin.kernel.parts`: the integrator kernel as part files, joined in a fixed order:
  ``control`` (status codes, step-size control), ``tableaus``, ``linalg`` (dense and sparse LU),
  ``erk``, ``rosenbrock``, ``metrics`` (the in-kernel clinical metric accumulators) and
  ``drivers`` (one-patient and batch drivers). The parts are not imported as modules:
  :mod:`cartkin.kernel.build` instantiates their joined text for one model.
- :mod:`cartkin.kernel.build`: one kernel per model right-hand side, in a generated file keyed by
  content hashes (cached across processes), and the static sparse LU plan of a Jacobian pattern.
- :mod:`cartkin.kernel.codegen`: a model's ``rhs``, analytic ``jac``, ``JAC_PATTERN`` and
  ``observe_roles`` generated from its equations (sympy), through the same cache.

Nothing here knows a particular model or imports from the layers above it.
"""
