"""The integrator kernel, in part files joined into one source text per model.

The part files (:data:`PARTS`, in this order) are not imported as modules:
:func:`cartkin.kernel.build.template_text` joins their text into one kernel source, and
`cartkin.kernel.build` instantiates that text once per right-hand side:

- for a built-in model (``rhs`` defined in a module under ``cartkin.models``) it writes a
  generated file = a header that imports that ``rhs`` + the joined text, and imports it with
  ``CACHE = True``: numba caches the compiled kernel on disk, keyed by that file;
- for any other ``rhs`` it executes each part's text, in order, in one fresh namespace with
  ``CACHE = False``.

The header defines the free names the parts use: ``rhs(t, y, p, dydt)``, ``jac(t, y, p, J)``,
``HAS_JAC`` (bool: call ``jac`` instead of finite differences), ``observe_roles(y, p, out)``
(the model's role values for in-kernel metrics, or a placeholder writing NaN), ``HAS_ROLES``
(bool), ``CACHE`` (bool), ``WITH_ERK`` / ``WITH_ROS`` (bool: compile the explicit /
Rosenbrock methods), ``WITH_METRICS`` (bool: compile the in-kernel metrics) and the sparse LU
plan of the model's ``JAC_PATTERN`` (``SPARSE_LU`` and the ``SP_*`` index arrays of
``cartkin.kernel.build.lu_plan``; ``SPARSE_LU = False`` without a pattern; ``SP_CHECK`` False
where the Jacobian is generated, hence zero outside the pattern by construction; ``SP_UNROLLED``
with ``_sp_lu_factor_gen`` / ``_sp_lu_solve_gen``, the plan's factorization and solve written
out as straight-line code in a generated kernel file), and ``ROLE_SUBSET`` / ``ROLE_STATES``
(the states ``observe_roles`` reads, where the code generator says so). Because the
right-hand side is a module global (never a function argument) the kernel can be cached.

Everything here returns integer status codes; nothing raises. The same text runs as plain
Python under ``NUMBA_DISABLE_JIT=1``.

Methods
-------
- ``TSIT5``: Tsitouras 5(4), 7 stages, FSAL, 4th-order continuous extension.
  Ch. Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying
  assumption", Comput. Math. Appl. 62 (2011) 770-775 (coefficients as tabulated in
  OrdinaryDiffEq.jl ``tsit_tableaus.jl``).
- ``DOPRI5``: Dormand-Prince 5(4), J. Comput. Appl. Math. 6 (1980) 19-26, with Shampine's
  (1986) 4th-order dense output as in Hairer, Norsett, Wanner, "Solving ODEs I", II.6.
- ``RODAS5``: L-stable Rosenbrock 5(4) of G. Di Marzo (1993), 8 stages, stiffly accurate, in the
  transformed ("u") form of Hairer & Wanner "Solving ODEs II", IV.7, with the 4th-order dense
  output tabulated in OrdinaryDiffEq.jl ``rosenbrock_tableaus.jl`` (Steinebach).
- ``AUTO``: TSIT5 that switches to RODAS5 for the rest of the current segment (until the next
  stop time) once Hairer's stiffness test fires ``STIFF_SWITCH_COUNT`` times.

Stiffness test (Hairer & Wanner, "Solving ODEs I", IV.2 / ``dopri5.f``): after each accepted
step, ``h*|lambda| ~ h*||k7 - k6|| / ||y1 - y6||`` (both stages are evaluated at ``t + h``). It
counts as stiff when above ``0.98 x`` the method's stability boundary on the negative real axis;
6 non-stiff steps in a row reset the count.

Step size: explicit methods use the PI controller of Hairer's ``dopri5`` (beta = 0.04, factors in
[0.2, 10]); RODAS5 uses Gustafsson's predictive controller as in Hairer's ``rodas`` (factors in
[0.2, 6]). Safety factor 0.9; no increase right after a rejection. Error norm: root mean
square of ``err_i / (atol_i + rtol * max(|y_i|, |y1_i|))``. The first step of every segment is
Hairer's starting-step algorithm unless ``first_step`` is given; RODAS5 after the first segment
takes the larger of that and the step the previous segment proposed (the step-size history is
kept across stops; the fewer steps were measured on sle_cart, see
``cartkin/kernel/parts/drivers.py``).

Parts
-----
- ``control``: status, method and counter codes; step-size control constants; error norm,
  starting step, step factor, finiteness checks.
- ``tableaus``: TSIT5 / DOPRI5 tableaus and dense-output weights; Rodas5 coefficients.
- ``linalg``: dense LU with partial pivoting, the sparse LU of the model's ``JAC_PATTERN``,
  the Rosenbrock matrix and its solve.
- ``erk``: explicit Runge-Kutta step, dense output, segment loop (stiffness test).
- ``rosenbrock``: Jacobian (analytic or differences), Rodas5 step, dense output, segment loop.
- ``metrics``: the in-kernel clinical metrics (the one place they are computed in the kernel;
  thresholds come from :mod:`cartkin.measures` through the ``cfg`` array).
- ``drivers``: ``_integrate`` (stops, jumps, method switching), ``_solve`` (one patient) and the
  batch kernels ``_solve_batch`` / ``_metrics_batch`` (many patients, ``prange``).

The order matters only for module-level names (each part's constants are defined before a later
part's module-level code reads them); a compiled function may call one defined in a later part.
"""

#: Part files (``<name>.py`` in this directory), in the order they are joined.
PARTS = ("control", "tableaus", "linalg", "erk", "rosenbrock", "metrics", "drivers")
