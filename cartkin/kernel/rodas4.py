"""Tableau of Rodas4, a 4(3) stiffly accurate L-stable Rosenbrock method, for the kernel.

E. Hairer, G. Wanner, "Solving Ordinary Differential Equations II: Stiff and
Differential-Algebraic Problems", 2nd ed., Springer 1996, section IV.7 (the method of the RODAS
code: 6 stages, order 4 with an embedded order-3 solution, gamma = 1/4), in the transformed
("u") form of that section, which the kernel's Rodas5 uses (``ROS_*`` in
``cartkin/kernel/parts/tableaus.py``):

    (I/(h gamma) - J) u_i = f(t + c_i h, y + sum_j A_ij u_j) + sum_j (C_ij / h) u_j + h d_i f_t

y1 = y + sum_j A_6j u_j + u_6, where row 6 of A is row 5 plus e_5 (both last stages sit at t + h:
stiffly accurate), and the error estimate is u_6 (the difference to the embedded solution).
Dense output (the same section, 3rd order): y(theta) = (1 - theta) y0 + theta (y1 + (1 - theta)
(D0 + theta D1)), D_r = sum_j H_rj u_j.

Not yet wired into the compiled kernel: ``benchmarks/bench_rosenbrock.py`` runs it through a
tableau-driven stepper for the work-precision comparison with Rodas5 on sle_cart, and
``tests/test_rosenbrock_order.py`` checks its convergence order (4, dense output 3).
"""

import numpy as np

__all__ = ["ROD4_A", "ROD4_C", "ROD4_CT", "ROD4_D", "ROD4_GAMMA", "ROD4_H"]

ROD4_GAMMA = 0.25
ROD4_A = np.zeros((6, 6))
ROD4_C = np.zeros((6, 6))
ROD4_A[1, :1] = [1.544]
ROD4_A[2, :2] = [0.9466785280815826, 0.2557011698983284]
ROD4_A[3, :3] = [3.314825187068521, 2.896124015972201, 0.9986419139977817]
ROD4_A[4, :4] = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950]
ROD4_A[5, :5] = [*ROD4_A[4, :4], 1.0]
ROD4_C[1, :1] = [-5.6688]
ROD4_C[2, :2] = [-2.430093356833875, -0.2063599157091915]
ROD4_C[3, :3] = [-0.1073529058151375, -9.594562251023355, -20.47028614809616]
ROD4_C[4, :4] = [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160]
ROD4_C[5, :5] = [
    8.083246795921522,
    -7.981132988064893,
    -31.52159432874371,
    16.31930543123136,
    -6.058818238834054,
]
ROD4_CT = np.array([0.0, 0.386, 0.21, 0.63, 1.0, 1.0])
ROD4_D = np.array([0.25, -0.1043, 0.1035, -0.3620000000000023e-01, 0.0, 0.0])
ROD4_H = np.array(
    [
        [
            10.12623508344586,
            -7.487995877610167,
            -34.80091861555747,
            -7.992771707568823,
            1.025137723295662,
            0.0,
        ],
        [
            -0.6762803392801253,
            6.087714651680015,
            16.43084320892478,
            24.76722511418386,
            -6.594389125716872,
            0.0,
        ],
    ]
)
