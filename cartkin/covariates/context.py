"""Covariates, regimen and fludarabine exposure of many patients, as arrays.

:class:`BatchContext` is what a model's dosing reads (``cartkin.models.assemble``): every array
has the patient on axis 0 (docs/design.md, the data path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from cartkin.errors import ScenarioError

__all__ = ["BatchContext"]


# ---------------------------------------------------------------------------------------------
# Patient contexts with a patient axis
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BatchContext:
    """Patient covariates, regimen and fludarabine exposure of ``n`` patients, as arrays.

    Every array has the patient on axis 0. Ragged lists (doses, sessions) are padded: days with
    NaN, amounts with 0. Units as in :class:`cartkin.covariates.regimen.Context` and
    :mod:`cartkin.covariates.kidney`.

    Attributes
    ----------
    weight_kg, height_cm, age_years, bsa_m2 : numpy.ndarray, shape (n,)
    female : numpy.ndarray of bool, shape (n,)
    egfr_ml_min_173m2 : numpy.ndarray, shape (n,)
        eGFR used by every eGFR-driven effect (``kidney.egfr_for``).
    crcl_ml_min : numpy.ndarray, shape (n,)
        Creatinine clearance (``kidney.creatinine_clearance_ml_min``).
    on_dialysis : numpy.ndarray of bool, shape (n,)
    flu_auc_mg_h_per_l : numpy.ndarray, shape (n,)
        Cumulative fludarabine AUC, mg.h/L (as ``Context.flu_auc_mg_h_per_l``).
    flu_cl_l_h, flu_v1_l, flu_v2_l, flu_v3_l, flu_q2_l_h, flu_q3_l_h : numpy.ndarray, shape (n,)
        3-compartment F-ara-A PK parameters (``kidney.fludarabine_pk_parameters``).
    flu_dose_factor : numpy.ndarray, shape (n,)
        mg entering the PK model per mg fludarabine phosphate (dose basis).
    flu_dose_days, flu_dose_mg : numpy.ndarray, shape (n, m_f)
        Fludarabine phosphate doses after the dose rule (days NaN / mg 0 padded).
    flu_infusion_h : float
        Infusion duration, h.
    cy_days, cy_mg_m2 : numpy.ndarray, shape (n, m_c)
        Cyclophosphamide days and mg/m2 per day (NaN / 0 padded).
    cy_mg_m2_total : numpy.ndarray, shape (n,)
    cart_dose_days, cart_dose_cells : numpy.ndarray, shape (n, m_d)
        CAR-T infusions: day and total cells (NaN / 0 padded).
    dialysis_session_days : numpy.ndarray, shape (n, m_s)
        Dialysis session days (NaN padded; m_s may be 0).
    dialysis_duration_h, flu_removal_fraction : numpy.ndarray, shape (n,)
        Session length (NaN without dialysis) and fraction of body fludarabine removed per
        session (0 without dialysis).
    il6_elimination_per_day : numpy.ndarray, shape (n,)
        ``kidney.il6_elimination_rate_per_day`` with its defaults, 1/day.
    clearance_model : tuple of str, length n
    contexts : list of Context or None
        The scalar contexts (kept for reports and for models without an array-valued
        individualize); None for batches built from covariates.
    """

    weight_kg: np.ndarray
    height_cm: np.ndarray
    age_years: np.ndarray
    female: np.ndarray
    bsa_m2: np.ndarray
    egfr_ml_min_173m2: np.ndarray
    crcl_ml_min: np.ndarray
    on_dialysis: np.ndarray
    flu_auc_mg_h_per_l: np.ndarray
    flu_cl_l_h: np.ndarray
    flu_v1_l: np.ndarray
    flu_v2_l: np.ndarray
    flu_v3_l: np.ndarray
    flu_q2_l_h: np.ndarray
    flu_q3_l_h: np.ndarray
    flu_dose_factor: np.ndarray
    flu_dose_days: np.ndarray
    flu_dose_mg: np.ndarray
    flu_infusion_h: float
    cy_days: np.ndarray
    cy_mg_m2: np.ndarray
    cy_mg_m2_total: np.ndarray
    cart_dose_days: np.ndarray
    cart_dose_cells: np.ndarray
    dialysis_session_days: np.ndarray
    dialysis_duration_h: np.ndarray
    flu_removal_fraction: np.ndarray
    il6_elimination_per_day: np.ndarray
    clearance_model: tuple
    contexts: list | None = None

    @property
    def n(self) -> int:
        """Number of patients."""
        return int(self.weight_kg.shape[0])

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        models_used = sorted(set(self.clearance_model))
        return f"BatchContext(n={self.n}, clearance_model={models_used})"

    @classmethod
    def from_contexts(cls, contexts: Sequence) -> BatchContext:
        """Stack scalar :class:`cartkin.covariates.regimen.Context` objects (exactly the same numbers).

        Parameters
        ----------
        contexts : sequence of Context
            From :func:`cartkin.covariates.regimen.build_context`; at least one.

        Returns
        -------
        BatchContext
        """
        from cartkin.covariates import kidney

        contexts = list(contexts)
        if not contexts:
            raise ScenarioError("BatchContext.from_contexts: expected at least one Context")
        cols: dict[str, list] = {f.name: [] for f in fields(cls)}
        infusion = set()
        for i, c in enumerate(contexts):
            for attr in ("patient", "regimen", "exposure", "clearance_model"):
                if not hasattr(c, attr):
                    raise ScenarioError(
                        f"BatchContext.from_contexts: contexts[{i}] = {c!r} has no {attr!r}; "
                        "expected a cartkin.covariates.regimen.Context"
                    )
            pt, ld, ex = c.patient, c.regimen.lymphodepletion, c.exposure
            pk = kidney.fludarabine_pk_parameters(pt, c.clearance_model)
            dialysis = pt.dialysis
            cols["weight_kg"].append(c.weight_kg)
            cols["height_cm"].append(pt.height_cm)
            cols["age_years"].append(pt.age_years)
            cols["female"].append(pt.sex == "female")
            cols["bsa_m2"].append(c.bsa_m2)
            cols["egfr_ml_min_173m2"].append(c.egfr_ml_min_173m2)
            cols["crcl_ml_min"].append(ex.crcl_ml_min)
            cols["on_dialysis"].append(pt.on_dialysis)
            cols["flu_auc_mg_h_per_l"].append(c.flu_auc_mg_h_per_l)
            cols["flu_cl_l_h"].append(pk.cl_l_h)
            cols["flu_v1_l"].append(pk.v1_l)
            cols["flu_v2_l"].append(pk.v2_l)
            cols["flu_v3_l"].append(pk.v3_l)
            cols["flu_q2_l_h"].append(pk.q2_l_h)
            cols["flu_q3_l_h"].append(pk.q3_l_h)
            cols["flu_dose_factor"].append(pk.dose_factor)
            cols["flu_dose_days"].append(ex.dose_days)
            cols["flu_dose_mg"].append(ex.daily_doses_mg)
            infusion.add(ex.infusion_h)
            cols["cy_days"].append(tuple(ld.cy_days))
            cols["cy_mg_m2"].append((ld.cy_mg_m2,) * len(ld.cy_days))
            cols["cy_mg_m2_total"].append(c.cy_mg_m2_total)
            cols["cart_dose_days"].append(tuple(d for d, _ in c.cart_doses))
            cols["cart_dose_cells"].append(tuple(n for _, n in c.cart_doses))
            cols["dialysis_session_days"].append(dialysis.session_days if dialysis else ())
            cols["dialysis_duration_h"].append(dialysis.duration_h if dialysis else math.nan)
            cols["flu_removal_fraction"].append(dialysis.flu_removal_fraction if dialysis else 0.0)
            cols["il6_elimination_per_day"].append(c.il6_elimination_per_day)
            cols["clearance_model"].append(c.clearance_model)
        if len(infusion) != 1:
            raise ScenarioError(
                f"BatchContext.from_contexts: fludarabine infusion durations differ "
                f"({sorted(infusion)} h); expected one value for the batch"
            )
        out = {}
        for name, values in cols.items():
            if name in ("contexts", "flu_infusion_h"):
                continue
            if name == "clearance_model":
                out[name] = tuple(values)
            elif name in ("female", "on_dialysis"):
                out[name] = np.array(values, dtype=bool)
            elif name in _PADDED_DAYS or name in _PADDED_AMOUNTS:
                out[name] = _pad(values, math.nan if name in _PADDED_DAYS else 0.0)
            else:
                out[name] = np.array(values, dtype=np.float64)
        return cls(**out, flu_infusion_h=infusion.pop(), contexts=contexts)

    @classmethod
    def from_covariates(cls, weight_kg, height_cm, age_years, sex, **kwargs) -> BatchContext:
        """Build ``n`` patients from covariate arrays: the kidney.py functions, vectorized.

        Same numbers as ``from_contexts`` of the equivalent Patient/Regimen objects (fludarabine
        AUC within 1e-10 relative: closed-form PK in both), without per-patient Python.

        Parameters
        ----------
        weight_kg, height_cm, age_years : array_like, shape (n,) or scalar
        sex : str or array of str, shape (n,)
            "female" or "male".
        egfr_ml_min_173m2, crcl_ml_min, serum_creatinine_mg_dl : array_like, optional
            Kidney function, NaN where not given: exactly one per patient; on dialysis none
            (residual eGFR 5, assumption) or a residual eGFR or CrCL.
        on_dialysis : bool or array of bool
        dialysis_session_days : array_like, shape (m_s,) or (n, m_s)
            Session days relative to CAR-T infusion (NaN padded); used for patients on dialysis.
        dialysis_duration_h, flu_removal_fraction : float or array_like
        flu_mg_m2_per_day : float or array_like
            Fludarabine phosphate per day before the dose rule, mg/m2.
        flu_days, cy_days, cart_days : sequence of float
            Shared schedules, days relative to CAR-T infusion.
        flu_rule : str or array of str
            One of ``kidney.FLU_RULES`` per patient.
        flu_target_auc_mg_h_per_l : float or array_like
            Target of the ``auc_target`` rule, mg.h/L.
        cy_mg_m2 : float or array_like
            Cyclophosphamide per listed day, mg/m2.
        cart_cells_per_kg, cart_flat_cells : float or array_like
            CAR-T dose, NaN where not given: exactly one per patient.
        cart_fractions : sequence of float, optional
            Share of the dose on each of ``cart_days`` (default equal).
        clearance_model : str or array of str
            One of ``kidney.CLEARANCE_MODELS`` per patient.
        flu_infusion_h : float
            Infusion duration, h.

        Returns
        -------
        BatchContext
            With ``contexts=None``: models need an array-valued individualize.

        Raises
        ------
        ScenarioError
            Naming the argument, the value and the patient index.
        """
        from cartkin.covariates.kidney_batch import context_arrays

        return cls(**context_arrays(weight_kg, height_cm, age_years, sex, **kwargs))

    def take(self, index) -> BatchContext:
        """Patients ``index`` (integer array, may repeat; or a boolean mask), in that order.

        Fits use it to repeat patients across starts; sweeps to pick a chunk.
        """
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (self.n,):
                raise ScenarioError(
                    f"BatchContext.take: boolean mask of shape {index.shape}; expected ({self.n},)"
                )
            index = np.flatnonzero(index)
        index = index.astype(np.int64, copy=False).reshape(-1)
        if index.size and (index.min() < -self.n or index.max() >= self.n):
            bad = int(index[(index < -self.n) | (index >= self.n)][0])
            raise ScenarioError(
                f"BatchContext.take: index {bad} is out of range for {self.n} patients"
            )
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value[index]
            elif f.name == "clearance_model":
                changes[f.name] = tuple(value[i] for i in index)
            elif f.name == "contexts" and value is not None:
                changes[f.name] = [value[i] for i in index]
        return replace(self, **changes)


_PADDED_DAYS = ("flu_dose_days", "cy_days", "cart_dose_days", "dialysis_session_days")
_PADDED_AMOUNTS = ("flu_dose_mg", "cy_mg_m2", "cart_dose_cells")


def _pad(rows, fill) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), fill, dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
