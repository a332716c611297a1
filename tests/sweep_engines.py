"""Stand-in engines for the sweep tests (same signature as cartkin.sweep.population engines),
and the base scenario those tests sweep over.

They compute cheap closed-form numbers from the population's arrays (parameters, fludarabine
AUC, CAR-T dose) so that the runner, seeds, store and report can be tested without the compiled
batch engine; the real engine is tested in tests/test_sweep_engine.py.
"""

import os
import time

import numpy as np


def base_scenario(name, lymphodepletion=True):
    """The TOML of the sweep tests' base scenario: sle_cart, a 50-kg 16-year-old at eGFR 120,
    CAR-T 1e5 cells/kg, with the usual Flu/Cy (the class defaults) or no lymphodepletion."""
    ld = "[lymphodepletion]  # the usual Flu/Cy (the class defaults)\n" if lymphodepletion else ""
    return f"""
[scenario]
name = "{name}"
model = "sle_cart"
t_end_days = 270.0

[patient]
weight_kg = 50.0
height_cm = 160.0
age_years = 16.0
sex = "female"
egfr_ml_min_173m2 = 120.0

{ld}[cart]
cells_per_kg = 1.0e5
"""


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


_WARMED_UP = []


def compiling_engine(pop, names, threads=None):
    """fake_engine whose first call in a process stands in for numba's first compile: it runs
    Python code inside a C callback (as llvmlite does during a compile) for
    SWEEP_TEST_COMPILE_S seconds, after creating the file SWEEP_TEST_MARK when set. A
    KeyboardInterrupt raised inside such a callback is printed and swallowed by ctypes."""
    if not _WARMED_UP:
        _WARMED_UP.append(True)
        import ctypes

        mark = os.environ.get("SWEEP_TEST_MARK")
        if mark:
            open(mark, "w").close()
        seconds = float(os.environ.get("SWEEP_TEST_COMPILE_S", "1.0"))

        def compile_like():
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                time.sleep(0.01)
            return 0

        ctypes.CFUNCTYPE(ctypes.c_int)(compile_like)()
    return fake_engine(pop, names, threads)


def bias_engine(pop, names, threads=None):
    """The selection bias of issue 15 by construction, on an eGFR axis [120, "dialysis"]
    (grid point 0: eGFR 120, point 1: dialysis), patient k in group k % 100:

    - groups 0-48 reach aplasia in both arms and recover 10 days later on dialysis;
    - groups 49-85 reach aplasia only on dialysis, and recover early (days 40-76);
    - groups 86-99 never reach aplasia;
    - patients 98 + 100 m (never aplastic otherwise) are replaced by patients who stay aplastic
      to the horizon in both arms (censored).

    Every patient recovers at least as late on dialysis as at eGFR 120, yet the median of
    TRECOV over the aplastic patients is earlier on dialysis.
    """
    group = pop.patients % 100
    dialysis = pop.point == 1
    both = group < 49
    only_dialysis = (group >= 49) & (group < 86)
    never_recovers = group == 98
    aplastic = both | never_recovers | (only_dialysis & dialysis)
    trecov = np.full(pop.n, np.nan)
    trecov[both] = 100.0 + 2.0 * group[both] + (10.0 if dialysis else 0.0)
    if dialysis:
        trecov[only_dialysis] = 40.0 + (group[only_dialysis] - 49.0)
    out = fake_engine(pop, names, threads)
    out["TAPLASIA"] = np.where(aplastic, 5.0, np.nan)
    out["TRECOV"] = trecov
    out["status"] = np.zeros(pop.n, dtype=np.int64)
    return out
