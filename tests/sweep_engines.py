"""Stand-in engines for the sweep tests (same signature as cartkin.sweep.population engines).

They compute cheap closed-form numbers from the population's arrays (parameters, fludarabine
AUC, CAR-T dose) so that the runner, seeds, store and report can be tested without the compiled
batch engine; the real engine is tested in tests/test_sweep_engine.py.
"""

import os
import time

import numpy as np


def fake_engine(pop, names, threads=None):
    """Deterministic metrics from the drawn parameters; status -1 for patients with k % 7 == 3
    at the first grid point (a 'failed solve')."""
    dose = pop.context.cart_doses[0][1]
    rho = pop.theta["rho"]
    auc = pop.flu_auc_mg_h_per_l
    out = {}
    for m in names:
        if m == "FLU_AUC":
            out[m] = auc.copy()
        elif m == "TAPLASIA":  # even patients never reach aplasia
            out[m] = np.where(pop.patients % 2 == 0, np.nan, 20.0)
        elif m == "TRECOV":
            out[m] = 60.0 + 40.0 * rho + np.log10(dose) + 0.5 * auc
        else:
            out[m] = rho * np.log(dose) * (1.0 + len(m) / 10.0) + pop.theta["delta_E"]
    status = np.zeros(pop.n, dtype=np.int64)
    if pop.point == 0:
        status[pop.patients % 7 == 3] = -1
        for m in names:
            out[m][status != 0] = np.nan
    out["status"] = status
    return out


def slow_engine(pop, names, threads=None):
    """fake_engine that takes SWEEP_TEST_DELAY_S seconds per chunk (for the kill test)."""
    time.sleep(float(os.environ.get("SWEEP_TEST_DELAY_S", "0.2")))
    return fake_engine(pop, names, threads)


def raising_engine(pop, names, threads=None):
    """fake_engine, except that it raises for grid point 1."""
    if pop.point == 1:
        raise RuntimeError("engine exploded on purpose")
    return fake_engine(pop, names, threads)


def broken_engine(pop, names, threads=None):
    """An engine that always raises (a systematic problem, e.g. a model without a kernel)."""
    raise RuntimeError("no kernel for this model")
