"""Tableau of Rodas5P, a 5(4) stiffly accurate Rosenbrock method, in the kernel's form.

G. Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and numerical benchmarks within
the Julia Differential Equations package", BIT Numerical Mathematics 63, 27 (2023),
doi 10.1007/s10543-023-00967-x. Rodas5P has the stage structure of Di Marzo's Rodas5 (8 stages,
gamma about 0.212, stages 6-8 at t + h, stiffly accurate, error estimate u_8) but coefficients
chosen for a smaller error at moderate tolerances and for order 4 of the dense output (Rodas5's
is order 3) and order 4 for index-1 DAEs; its benchmarks report it ahead of Rodas5 on most
problems. The values are the paper's, in the transformed ("u") form of Hairer-Wanner section
IV.7 that the kernel's Rodas5 uses (``ROS_*`` in ``cartkin/kernel/parts/tableaus.py``):

    (I/(h gamma) - J) u_i = f(t + c_i h, y + sum_j A_ij u_j) + sum_j (C_ij / h) u_j + h d_i f_t

y1 = y + sum_j A_8j u_j + u_8, where rows 7 and 8 of A are row 6 plus ones (all three last
stages sit at t + h), and the error estimate is u_8. Dense output: y(theta) = (1 - theta) y0 +
theta (y1 + (1 - theta) (D0 + theta (D1 + theta D2))), D_r = sum_j H_rj u_j.

Used by ``benchmarks/bench_rosenbrock.py`` (work-precision against Rodas5 and Rodas4 on
sle_cart) and checked by ``tests/test_rosenbrock_order.py`` (convergence order 5, dense output
order 4).
"""

import numpy as np

__all__ = ["ROD5P_A", "ROD5P_C", "ROD5P_CT", "ROD5P_D", "ROD5P_GAMMA", "ROD5P_H"]

ROD5P_GAMMA = 0.21193756319429014
ROD5P_A = np.zeros((8, 8))
ROD5P_C = np.zeros((8, 8))
ROD5P_A[1, :1] = [3.0]
ROD5P_A[2, :2] = [2.849394379747939, 0.45842242204463923]
ROD5P_A[3, :3] = [-6.954028509809101, 2.489845061869568, -10.358996098473584]
ROD5P_A[4, :4] = [2.8029986275628964, 0.5072464736228206, -0.3988312541770524,
                  -0.04721187230404641]  # fmt: skip
ROD5P_A[5, :5] = [-7.502846399306121, 2.561846144803919, -11.627539656261098,
                  -0.18268767659942256, 0.030198172008377946]  # fmt: skip
ROD5P_A[6, :6] = [*ROD5P_A[5, :5], 1.0]
ROD5P_A[7, :7] = [*ROD5P_A[5, :5], 1.0, 1.0]
ROD5P_C[1, :1] = [-14.155112264123755]
ROD5P_C[2, :2] = [-17.97296035885952, -2.859693295451294]
ROD5P_C[3, :3] = [147.12150275711716, -1.41221402718213, 71.68940251302358]
ROD5P_C[4, :4] = [165.43517024871676, -0.4592823456491126, 42.90938336958603,
                  -5.961986721573306]  # fmt: skip
ROD5P_C[5, :5] = [24.854864614690072, -3.0009227002832186, 47.4931110020768,
                  5.5814197821558125, -0.6610691825249471]  # fmt: skip
ROD5P_C[6, :6] = [30.91273214028599, -3.1208243349937974, 77.79954646070892,
                  34.28646028294783, -19.097331116725623, -28.087943162872662]  # fmt: skip
ROD5P_C[7, :7] = [37.80277123390563, -3.2571969029072276, 112.26918849496327,
                  66.9347231244047, -40.06618937091002, -54.66780262877968,
                  -9.48861652309627]  # fmt: skip
ROD5P_CT = np.array([0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716,
                     0.4288403609558664, 1.0, 1.0, 1.0])  # fmt: skip
ROD5P_D = np.array([0.21193756319429014, -0.42387512638858027, -0.3384627126235924,
                    1.8046452872882734, 2.325825639765069, 0.0, 0.0, 0.0])  # fmt: skip
ROD5P_H = np.array(
    [
        [25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204,
         0.524948541321073, 1.1241088310450404, 0.4272876194431874, -0.17202221070155493],
        [-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796,
         20.176138334709044, 15.98066361424651, -6.789040303419874, -6.710236069923372],
        [11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643,
         -52.072871366152654, -59.78993625266729, -0.15582684282751913, 4.883087185713722],
    ]
)  # fmt: skip
