"""The compiled layer: the integrator template, its instantiation and cache, and code generation.

- :mod:`cartkin.kernel.template`: the integrator template (tableaus, dense and sparse LU, the
  explicit Runge-Kutta and Rosenbrock steps, segment drivers, batch drivers, in-kernel metric
  accumulators). It is not imported as a module: :mod:`cartkin.kernel.build` instantiates its
  text for one model.
- :mod:`cartkin.kernel.build`: one kernel per model right-hand side, in a generated file keyed by
  content hashes (cached across processes), and the static sparse LU plan of a Jacobian pattern.
- :mod:`cartkin.kernel.codegen`: a model's ``rhs``, analytic ``jac``, ``JAC_PATTERN`` and
  ``observe_roles`` generated from its equations (sympy), through the same cache.

Nothing here knows a particular model or imports from the layers above it.
"""
