"""Synthetic cohorts for simulation-estimation studies (population round trips, benchmarks).

Everything made here is SYNTHETIC: patients drawn from stated ranges, individual parameters
drawn log-normally around chosen typical values, observations with log-normal residual error
and censoring below an LLOQ. Nothing here is patient data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cartkin import models
from cartkin.fit._popdata import CohortData, Predictor, Subject

__all__ = ["STEIN_DESIGN_DAYS", "synthetic_cohort"]

#: Sampling days of a typical CAR-T kinetics schedule (assumption: days 1-28 frequent, then
#: months 2, 3 and 6, as in tisagenlecleucel trials' qPCR schedules).
STEIN_DESIGN_DAYS = (1.0, 4.0, 7.0, 9.0, 11.0, 14.0, 21.0, 28.0, 56.0, 90.0, 180.0)


def synthetic_cohort(
    model,
    n_subjects: int,
    typical: Mapping[str, float],
    omega2: Mapping[str, float],
    *,
    observable: str,
    t_days: Sequence[float] = STEIN_DESIGN_DAYS,
    sigma_log: float = 0.3,
    lloq: float | None = None,
    seed: int = 0,
    weight_range_kg: tuple[float, float] = (20.0, 90.0),
    dose_cells_per_kg: float = 1e6,
):
    """Simulate a cohort: patients, individual parameters and censored noisy observations.

    Parameters
    ----------
    model : str or Model
    n_subjects : int
    typical : mapping of str to float
        Typical values (natural scale) of the parameters that vary; the rest keep the table
        defaults.
    omega2 : mapping of str to float
        Between-patient variance of ``log(theta)`` per parameter of ``typical`` (0 for none).
    observable : str
        Model observable that is "measured".
    t_days : sequence of float
        Sampling days (the same for every patient).
    sigma_log : float
        Residual sd on the log scale (log-normal error, ``ErrorModel("log")``).
    lloq : float, optional
        Records below it are censored (CENS = 1, value = LLOQ).
    seed : int
    weight_range_kg : (float, float)
        Uniform range of body weights (adults and children, as in CAR-T trials).
    dose_cells_per_kg : float
        CAR-T dose, day 0 (default 1e6/kg, assumption).

    Returns
    -------
    subjects : list of Subject
    truth : dict of str to numpy.ndarray
        Individual parameter values, shape (n_subjects,) per name of ``typical``.
    """
    from cartkin.covariates.patient import Patient
    from cartkin.covariates.regimen import Regimen, build_context

    model = models.get(model)
    rng = np.random.default_rng(seed)
    names = list(typical)
    weights = rng.uniform(*weight_range_kg, size=n_subjects)
    contexts = []
    for k in range(n_subjects):
        patient = Patient(
            weight_kg=float(weights[k]),
            height_cm=float(100 + weights[k]),
            age_years=float(8 + weights[k] / 3),
            sex=("female", "male")[k % 2],
            egfr_ml_min_173m2=float(rng.uniform(40, 120)),
        )
        regimen = Regimen(lymphodepletion={}, cart={"cells_per_kg": dose_cells_per_kg})
        contexts.append(build_context(patient, regimen))
    eta = rng.standard_normal((n_subjects, len(names))) * np.sqrt([omega2[n] for n in names])
    values = np.array([typical[n] for n in names]) * np.exp(eta)
    t = np.asarray(t_days, dtype=np.float64)
    placeholder = [
        Subject(str(k + 1), contexts[k], t, [observable] * t.size, np.ones(t.size))
        for k in range(n_subjects)
    ]
    data = CohortData(model, placeholder)
    pred = Predictor(data, names, {}, method="rodas5", rtol=1e-8, atol=1e-10).records(
        values, np.arange(n_subjects)
    )
    y = pred * np.exp(sigma_log * rng.standard_normal(pred.shape))
    subjects = []
    for k in range(n_subjects):
        cens = np.zeros(t.size, dtype=np.int64)
        limit = np.full(t.size, np.nan)
        value = y[k].copy()
        if lloq is not None:
            below = value < lloq
            cens[below] = 1
            limit[:] = lloq
            value[below] = lloq
        subjects.append(
            Subject(f"S{k + 1:03d}", contexts[k], t, [observable] * t.size, value, cens, limit)
        )
    return subjects, {n: values[:, j] for j, n in enumerate(names)}
