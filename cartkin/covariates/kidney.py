"""Kidney function and everything that depends on it: one explicit function per effect.

Every place where kidney function changes a number in cartkin goes through one of these
functions; a modeler can read each one and switch it (call another, or replace it) without
touching the rest:

=================================  ===============================================================
function                           effect
=================================  ===============================================================
``body_surface_area_m2``           BSA (Mosteller), for mg/m2 dosing and eGFR <-> CrCL conversion
``egfr_for``                       the eGFR (mL/min/1.73 m2) every eGFR-driven effect uses
``creatinine_clearance_ml_min``    the CrCL (mL/min) Varela's fludarabine clearance uses
``fludarabine_clearance_l_h``      fludarabine (F-ara-A) clearance, Langenhorst 2019 or Varela 2025
``fludarabine_pk_parameters``      the full 3-compartment parameter set (CL, V1-V3, Q2, Q3)
``fludarabine_dose_adjustment``    the dose factor of a named rule (none, bands, AUC target)
``fludarabine_exposure``           cumulative AUC with optional dialysis removal, against marks
``fludarabine_concentration_mg_per_l``  plasma concentration time course (same PK model)
``il6_elimination_rate_per_day``   IL-6 elimination rate, partly renal
=================================  ===============================================================

Each formula is written once, in the functions of the last section (``bsa_m2``,
``egfr_ml_min``, ``crcl_ml_min``, ``flu_clearance``, ``flu_distribution``, ``flu_dose_factor``,
``flu_rule_factor``, ``il6_rate``). Each takes one number per argument or one array per patient
(NaN = not given); :mod:`cartkin.covariates.kidney_batch` calls them over a population, and the
functions in the table turn one :class:`Patient` into plain numbers and call the same code. With
plain numbers the branches are chosen by ``if`` and powers go through the C library's ``pow``;
over arrays they are ``np.where`` and NumPy's vector ``pow``, which can differ from it in the last
bit (the one-patient and batch paths agree to about 1e-15 relative).

Sources and assumptions
-----------------------
- BSA: Mosteller RD, N Engl J Med 1987;317:1098, ``sqrt(height_cm * weight_kg / 3600)``.
- eGFR from serum creatinine: bedside Schwartz for age < 18 years (Schwartz GJ et al., J Am Soc
  Nephrol 2009;20:629; ``0.413 * height_cm / Scr``); CKD-EPI 2021 race-free for adults (Inker LA
  et al., N Engl J Med 2021;385:1737).
- CrCL from serum creatinine: Cockcroft-Gault with actual body weight for adults (Cockcroft DW,
  Gault MH, Nephron 1976;16:31). For age < 18 (CG not validated) the bedside Schwartz eGFR is
  de-normalised instead (assumption).
- eGFR <-> CrCL when only one is known: scale by BSA/1.73 m2 (assumption: it treats the eGFR as
  a GFR normalised to 1.73 m2 and ignores the creatinine secretion that separates CrCL from GFR).
- Dialysis without a residual value: residual eGFR ``DIALYSIS_RESIDUAL_EGFR_ML_MIN_173M2`` = 5
  (assumption; anuric patients have 0-5).

Fludarabine: what the sources say and what is ours
--------------------------------------------------
Fludarabine is infused as fludarabine phosphate (F-ara-AMP), converted within minutes to the
circulating F-ara-A. Doses in a regimen are always mg of fludarabine *phosphate*.

- Langenhorst JB et al., Clin Pharmacokinet 2019;58:627 (abstract, PMC6451721): three
  compartments; CL = non-renal 3.24 L/h/70 kg + renal ``0.782 x eGFR`` L/h/70 kg, all
  parameters scaled allometrically to body weight (exponent 0.75 for clearances, 1 for volumes);
  V1/V2/V3 = 39/20/50 L/70 kg; Q2/Q3 = 8.6/3.8 L/h/70 kg. Here the 0.782 is a renal
  coefficient applied to eGFR expressed in L/h (mL/min x 0.06): it is *not* the 0.78 molar-mass
  ratio of F-ara-A to fludarabine phosphate, although the two numbers happen to coincide.
  The eGFR cap at 140 mL/min/1.73 m2 is taken from the project brief (MODEL.md section 3); the
  abstract does not state it.
- Varela-Gonzalez-Aller J et al., Pharmaceutics 2025;17:1592 (via MODEL.md section 3; the full
  text was not available to us): CL = (CL_nonrenal + 1.7 x CrCL/96) x (WT/70)^0.75 L/h, with
  CL_nonrenal 4.4 L/h (axi-cel) or 3.9 L/h (tisa-cel), CrCL by Cockcroft-Gault in mL/min.
  Its distribution model was not available: we use Langenhorst's V1-V3, Q2, Q3 (assumption; it
  does not change the cumulative AUC without dialysis, which is dose/CL).
- Dose basis. Neither abstract says whether its model's dose is mg of phosphate or of F-ara-A.
  The project brief's reference numbers (50 kg, BSA 1.45 m2, 25 mg/m2 x 3: about 16 mg.h/L at
  eGFR 120 under both models; about 41 vs 24 at eGFR 5) are reproduced only with the phosphate
  dose for Langenhorst and the F-ara-A dose (phosphate x ``F_ARA_A_MG_PER_PHOSPHATE_MG``) for
  Varela, so that is what ``FLUDARABINE_DOSE_BASIS`` holds. This is unverified against the
  papers' methods sections: check it before relying on a cross-model comparison (a wrong basis
  scales that model's AUC by 0.78 or 1/0.78).
- Infusion: 30 minutes (the usual label administration; assumption for these models).
- Dialysis: no published fludarabine dialysis clearance ("unknown dialysability" in renal
  handbooks); each session removes ``flu_removal_fraction`` of the body amount (all three
  compartments) at its start. Default 0 (assumption).
- Exposure marks: 13.8 mg.h/L (Fabrizio VA et al., Blood Adv 2022;6:1961), 14 mg.h/L (Dekker L
  et al., Blood Adv 2022;6:1969), 20 mg.h/L (Langenhorst JB et al., Blood Adv 2019;3:2179,
  optimal in HCT conditioning).

The linear PK model is solved exactly: between events (infusion start/stop, dialysis session,
output time) the state is advanced in closed form in the eigen-coordinates of the 3-compartment
system (:mod:`cartkin.covariates.flu_pk`: plain floats for one patient, vectorized over patients for
:mod:`cartkin.covariates.kidney_batch`; no BLAS/LAPACK), and the AUC after the
last event is added in closed form. It agrees with the matrix exponential of the augmented
system to about 1e-12 relative (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cartkin.covariates.flu_pk import pk_course_one
from cartkin.covariates.patient import Patient
from cartkin.errors import ScenarioError

# A regimen or lymphodepletion argument is a cartkin.covariates.regimen.Regimen or
# Lymphodepletion; regimen.py imports this module, so they are typed by duck type here.
Lymphodepletion = Regimen = Any

# ---------------------------------------------------------------------------------------------
# Constants (each names its source)
# ---------------------------------------------------------------------------------------------

#: Reference BSA of eGFR normalisation, m2 (definition of the unit mL/min/1.73 m2).
BSA_REF_M2 = 1.73
#: Mass of F-ara-A per mass of fludarabine phosphate: molar-mass ratio 285.23/365.21 g/mol
#: (C10H12FN5O4 / C10H13FN5O7P); MODEL.md quotes 0.78.
F_ARA_A_MG_PER_PHOSPHATE_MG = 285.23 / 365.21
#: Age below which eGFR from creatinine uses bedside Schwartz (validated 1-18 y, Schwartz 2009).
PEDIATRIC_AGE_CUTOFF_YEARS = 18.0
#: Residual eGFR of a dialysis patient given without a residual value (assumption).
DIALYSIS_RESIDUAL_EGFR_ML_MIN_173M2 = 5.0
#: mL/min -> L/h.
ML_MIN_TO_L_H = 0.06

#: Langenhorst 2019 (abstract): non-renal CL, L/h/70 kg.
LANGENHORST_CL_NONRENAL_L_H = 3.24
#: Langenhorst 2019 (abstract): renal CL per unit eGFR, both in L/h (dimensionless).
LANGENHORST_RENAL_COEF = 0.782
#: Langenhorst 2019 eGFR cap, mL/min/1.73 m2 (from MODEL.md section 3; not in the abstract).
LANGENHORST_EGFR_CAP_ML_MIN_173M2 = 140.0
#: Langenhorst 2019 (abstract): V1, V2, V3 in L/70 kg; Q2, Q3 in L/h/70 kg.
LANGENHORST_V_L = (39.0, 20.0, 50.0)
LANGENHORST_Q_L_H = (8.6, 3.8)

#: Varela-Gonzalez-Aller 2025 (via MODEL.md): non-renal CL (L/h/70 kg) by CAR-T product.
VARELA_CL_NONRENAL_L_H = {"axi-cel": 4.4, "tisa-cel": 3.9}
#: Varela 2025 (via MODEL.md): renal CL at the reference CrCL, L/h/70 kg; reference CrCL mL/min.
VARELA_CL_RENAL_L_H = 1.7
VARELA_CRCL_REF_ML_MIN = 96.0

#: Clearance models, and the dose each model's clearance applies to (see module docstring).
CLEARANCE_MODELS = ("langenhorst2019", "varela2025", "varela2025_tisacel")
FLUDARABINE_DOSE_BASIS = {
    "langenhorst2019": "phosphate",
    "varela2025": "f_ara_a",
    "varela2025_tisacel": "f_ara_a",
}

#: Fludarabine infusion duration, h (usual label administration; assumption for the models).
FLU_INFUSION_H = 0.5

#: Cumulative AUC marks, mg.h/L (sources in the module docstring).
AUC_MARKS_MG_H_PER_L = (13.8, 14.0, 20.0)

#: Dose-adjustment rules.
FLU_RULES = ("none", "renal_bands", "label_bands", "auc_target")

_PHOSPHATE_BASIS = np.array([FLUDARABINE_DOSE_BASIS[m] == "phosphate" for m in CLEARANCE_MODELS])


# ---------------------------------------------------------------------------------------------
# Kidney function and body size
# ---------------------------------------------------------------------------------------------


def body_surface_area_m2(patient: Patient) -> float:
    """Body surface area by Mosteller (1987): ``sqrt(height_cm * weight_kg / 3600)``.

    Returns
    -------
    float
        BSA in m2.
    """
    return float(bsa_m2(patient.height_cm, patient.weight_kg))


def _given(value) -> float:
    return math.nan if value is None else value


def _kidney_args(patient: Patient) -> dict:
    """The arguments of ``egfr_ml_min`` for one patient (plain numbers, NaN = not given)."""
    return dict(
        egfr=_given(patient.egfr_ml_min_173m2),
        crcl=_given(patient.crcl_ml_min),
        scr=_given(patient.serum_creatinine_mg_dl),
        age=patient.age_years,
        height_cm=patient.height_cm,
        female=patient.sex == "female",
        bsa=bsa_m2(patient.height_cm, patient.weight_kg),
    )


def egfr_for(patient: Patient) -> float:
    """The eGFR (mL/min/1.73 m2) used by every eGFR-driven effect.

    Rules, in order:

    - dialysis without a residual value: ``DIALYSIS_RESIDUAL_EGFR_ML_MIN_173M2`` (assumption);
    - ``egfr_ml_min_173m2`` given: that value;
    - ``crcl_ml_min`` given: ``crcl * 1.73 / BSA`` (assumption, see module docstring);
    - ``serum_creatinine_mg_dl`` given: bedside Schwartz below 18 years, CKD-EPI 2021 from 18.

    Returns
    -------
    float
        eGFR in mL/min/1.73 m2.
    """
    return float(egfr_ml_min(**_kidney_args(patient)))


def creatinine_clearance_ml_min(patient: Patient) -> float:
    """The creatinine clearance (mL/min, not normalised) used by CrCL-driven effects.

    Rules, in order:

    - ``crcl_ml_min`` given: that value;
    - ``serum_creatinine_mg_dl`` given, adult: Cockcroft-Gault with actual weight,
      ``(140 - age) * WT / (72 * Scr)``, x 0.85 if female;
    - otherwise (eGFR given, a child's creatinine, or dialysis): ``egfr_for(patient) * BSA/1.73``
      (assumption, see module docstring).

    Returns
    -------
    float
        CrCL in mL/min.
    """
    args = _kidney_args(patient)
    return float(_crcl_of(patient, args, egfr_ml_min(**args)))


def _crcl_of(patient: Patient, args: dict, egfr_used) -> float:
    return crcl_ml_min(
        egfr_used, args["crcl"], args["scr"], args["age"], patient.weight_kg, args["female"],
        args["bsa"],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Fludarabine pharmacokinetics
# ---------------------------------------------------------------------------------------------


def _check_model(clearance_model: str) -> None:
    if clearance_model not in CLEARANCE_MODELS:
        raise ScenarioError(
            f"clearance_model = {clearance_model!r}: expected one of {CLEARANCE_MODELS}"
        )


def fludarabine_clearance_l_h(patient: Patient, model: str = "langenhorst2019") -> float:
    """Fludarabine (F-ara-A) clearance of a patient under a published model.

    - ``"langenhorst2019"``: ``(3.24 + 0.782 * 0.06 * min(eGFR, 140)) * (WT/70)^0.75``,
      eGFR from :func:`egfr_for`.
    - ``"varela2025"`` / ``"varela2025_tisacel"``: ``(4.4 or 3.9 + 1.7 * CrCL/96) * (WT/70)^0.75``,
      CrCL from :func:`creatinine_clearance_ml_min`.

    Parameters
    ----------
    patient : Patient
    model : str
        One of ``CLEARANCE_MODELS``.

    Returns
    -------
    float
        Clearance in L/h. Apply it to the dose basis ``FLUDARABINE_DOSE_BASIS[model]``.
    """
    _check_model(model)
    args = _kidney_args(patient)
    egfr = egfr_ml_min(**args)
    code = CLEARANCE_MODELS.index(model)
    return float(flu_clearance(code, patient.weight_kg, egfr, _crcl_of(patient, args, egfr)))


@dataclass(frozen=True)
class FludarabinePK:
    """Individual 3-compartment F-ara-A parameters.

    Attributes
    ----------
    cl_l_h, q2_l_h, q3_l_h : float
        Elimination and inter-compartmental clearances, L/h.
    v1_l, v2_l, v3_l : float
        Central and peripheral volumes, L.
    dose_basis : {"phosphate", "f_ara_a"}
        What the model's dose is: mg fludarabine phosphate, or mg F-ara-A.
    dose_factor : float
        mg entering the model per mg fludarabine phosphate given (1 or 0.781).
    """

    cl_l_h: float
    v1_l: float
    v2_l: float
    v3_l: float
    q2_l_h: float
    q3_l_h: float
    dose_basis: str
    dose_factor: float


def fludarabine_pk_parameters(patient: Patient, model: str = "langenhorst2019") -> FludarabinePK:
    """Individual F-ara-A PK parameters: CL from the chosen model, distribution from Langenhorst.

    Volumes scale with WT/70, inter-compartmental clearances with (WT/70)^0.75 (Langenhorst
    2019). Varela 2025 uses the same distribution parameters (assumption: its own were not
    available).
    """
    _check_model(model)
    v1, v2, v3, q2, q3 = (float(x) for x in flu_distribution(patient.weight_kg))
    return FludarabinePK(
        cl_l_h=fludarabine_clearance_l_h(patient, model),
        v1_l=v1,
        v2_l=v2,
        v3_l=v3,
        q2_l_h=q2,
        q3_l_h=q3,
        dose_basis=FLUDARABINE_DOSE_BASIS[model],
        dose_factor=float(flu_dose_factor(CLEARANCE_MODELS.index(model))),
    )


def _pk_course(pk, dose_times_h, doses_mg, infusion_h, session_times_h, removal_fraction, t_eval_h):
    """Advance the linear model through its events exactly (closed form, :mod:`cartkin.covariates.flu_pk`).

    Returns
    -------
    auc_inf : float
        Cumulative AUC from the first event to infinity, mg.h/L.
    conc : ndarray, shape (len(t_eval_h),)
        Central concentration (mg/L) at each output time, right-continuous at events.
    """
    auc, conc = pk_course_one(
        pk.cl_l_h, pk.v1_l, pk.v2_l, pk.v3_l, pk.q2_l_h, pk.q3_l_h, [float(t) for t in dose_times_h],
        [float(d) for d in doses_mg], infusion_h, [float(t) for t in session_times_h],
        removal_fraction if len(session_times_h) else 0.0, [float(t) for t in t_eval_h],
    )  # fmt: skip
    return float(auc), np.array(conc, dtype=np.float64)


def _dose_schedule_h(lymphodepletion):
    return [24.0 * d for d in lymphodepletion.flu_days]


def _unadjusted_daily_doses_mg(patient: Patient, lymphodepletion) -> np.ndarray:
    return np.full(
        len(lymphodepletion.flu_days),
        lymphodepletion.flu_mg_m2_per_day * body_surface_area_m2(patient),
    )


def _auc_for_doses(patient, lymphodepletion, daily_doses_mg, pk, infusion_h, with_dialysis=True):
    sessions, frac = (), 0.0
    if with_dialysis and patient.dialysis is not None:
        sessions = [24.0 * d for d in patient.dialysis.session_days]
        frac = patient.dialysis.flu_removal_fraction
    modelled = np.asarray(daily_doses_mg) * pk.dose_factor
    auc, _ = _pk_course(
        pk, _dose_schedule_h(lymphodepletion), modelled, infusion_h, sessions, frac, ()
    )
    return auc


def fludarabine_dose_adjustment(
    patient: Patient,
    rule: str,
    *,
    lymphodepletion: Lymphodepletion | None = None,
    clearance_model: str = "langenhorst2019",
    infusion_h: float = FLU_INFUSION_H,
) -> float:
    """Factor applied to every fludarabine dose under a named rule.

    Rules (eGFR from :func:`egfr_for`, mL/min/1.73 m2):

    - ``"none"``: 1.
    - ``"renal_bands"``: 1 at eGFR >= 60; 0.75 at 45 <= eGFR < 60; 0.60 at 10 <= eGFR < 45;
      0.50 below 10 and on dialysis. The -25 % (45-60), -40 % (30-45) and -50 % (< 10) bands
      are the local rules MODEL.md quotes from Varela 2025; that quote leaves 10-30 open, and we
      extend the -40 % band down to 10 (our choice). Every band lies within the Renal Drug
      Handbook ranges (GFR 30-70 and 10-30: 50-75 % of dose; < 10: 50 %; haemodialysis: "dose
      as GFR < 10").
    - ``"label_bands"``: the US fludarabine phosphate tablet label: -20 % for CrCL 30-70
      mL/min/1.73 m2 (inclusive), -50 % below 30; eGFR stands in for that CrCL; dialysis: -50 %.
    - ``"auc_target"``: the factor that makes the cumulative AUC equal
      ``lymphodepletion.flu_target_auc_mg_h_per_l`` under ``clearance_model``, dialysis removal
      included. Exact, because the model is linear in dose. Needs ``lymphodepletion``.

    Returns
    -------
    float
        Dose factor (1 = full dose).
    """
    return _dose_factor(patient, rule, lymphodepletion, clearance_model, infusion_h, None, None)


def _dose_factor(patient, rule, lymphodepletion, clearance_model, infusion_h, egfr, pk) -> float:
    """:func:`fludarabine_dose_adjustment`, reusing the patient's eGFR and PK when known."""
    if rule not in FLU_RULES:
        raise ScenarioError(f"fludarabine rule = {rule!r}: expected one of {FLU_RULES}")
    egfr = egfr_for(patient) if egfr is None else egfr
    if rule != "auc_target":
        code = FLU_RULES.index(rule)
        return float(flu_rule_factor(code, egfr, patient.on_dialysis, math.nan, 1.0))
    if lymphodepletion is None or lymphodepletion.flu_target_auc_mg_h_per_l is None:
        raise ScenarioError(
            "fludarabine rule 'auc_target' needs lymphodepletion.flu_target_auc_mg_h_per_l "
            "(mg.h/L); got none"
        )
    base = _auc_for_doses(
        patient,
        lymphodepletion,
        _unadjusted_daily_doses_mg(patient, lymphodepletion),
        fludarabine_pk_parameters(patient, clearance_model) if pk is None else pk,
        infusion_h,
    )
    if base <= 0.0:
        raise ScenarioError(
            "fludarabine rule 'auc_target' needs a positive unadjusted dose: got "
            f"flu_mg_m2_per_day = {lymphodepletion.flu_mg_m2_per_day:g} mg/m2/day"
        )
    target = lymphodepletion.flu_target_auc_mg_h_per_l
    code = FLU_RULES.index("auc_target")
    return float(flu_rule_factor(code, egfr, patient.on_dialysis, target, base))


@dataclass(frozen=True)
class FludarabineExposure:
    """Cumulative fludarabine exposure of one patient and regimen.

    Attributes
    ----------
    auc_mg_h_per_l : float
        Cumulative F-ara-A AUC from the first dose to infinity, mg.h/L (dialysis included).
    auc_no_dialysis_mg_h_per_l : float
        The same without dialysis removal (= sum of modelled doses / CL).
    daily_doses_mg : tuple of float
        Fludarabine phosphate given on each of ``dose_days``, mg, after adjustment.
    dose_days : tuple of float
        Days of the doses, relative to CAR-T infusion.
    clearance_l_h : float
        F-ara-A clearance, L/h.
    clearance_model : str
    dose_basis : {"phosphate", "f_ara_a"}
        What the clearance model's dose is (see module docstring).
    rule : str
        Dose-adjustment rule applied; ``adjustment_factor`` its factor.
    adjustment_factor : float
    egfr_ml_min_173m2, crcl_ml_min, bsa_m2 : float
        Covariates used.
    marks : dict of float -> bool
        ``{13.8: AUC >= 13.8, 14.0: ..., 20.0: ...}``.
    infusion_h : float
        Infusion duration used, h.
    """

    auc_mg_h_per_l: float
    auc_no_dialysis_mg_h_per_l: float
    daily_doses_mg: tuple[float, ...]
    dose_days: tuple[float, ...]
    clearance_l_h: float
    clearance_model: str
    dose_basis: str
    rule: str
    adjustment_factor: float
    egfr_ml_min_173m2: float
    crcl_ml_min: float
    bsa_m2: float
    infusion_h: float
    marks: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line per fact, for logs and the command line."""
        marks = ", ".join(f">= {m:g}: {'yes' if ok else 'no'}" for m, ok in self.marks.items())
        return (
            f"fludarabine AUC {self.auc_mg_h_per_l:.2f} mg.h/L ({self.clearance_model}, "
            f"CL {self.clearance_l_h:.2f} L/h, dose basis {self.dose_basis}, rule {self.rule} "
            f"x{self.adjustment_factor:.3f}); marks {marks}"
        )


def _lymphodepletion_of(regimen):
    return getattr(regimen, "lymphodepletion", regimen)


def fludarabine_exposure(
    patient: Patient,
    regimen: Regimen | Lymphodepletion,
    clearance_model: str = "langenhorst2019",
    *,
    infusion_h: float = FLU_INFUSION_H,
) -> FludarabineExposure:
    """Cumulative fludarabine AUC for a patient and regimen, against the 13.8/14/20 marks.

    Each dose of ``flu_mg_m2_per_day x BSA`` mg phosphate (times the rule's factor) is infused
    over ``infusion_h`` starting at ``24 * day`` hours; dialysis sessions remove their fraction at
    their start. See the module docstring for sources and assumptions.

    Parameters
    ----------
    patient : Patient
    regimen : Regimen or Lymphodepletion
    clearance_model : str
        One of ``CLEARANCE_MODELS``.
    infusion_h : float
        Infusion duration, h (default 0.5, assumption).

    Returns
    -------
    FludarabineExposure
    """
    _check_model(clearance_model)
    ld = _lymphodepletion_of(regimen)
    pk = fludarabine_pk_parameters(patient, clearance_model)
    args = _kidney_args(patient)
    egfr = egfr_ml_min(**args)
    factor = _dose_factor(patient, ld.flu_rule, ld, clearance_model, infusion_h, egfr, pk)
    doses = _unadjusted_daily_doses_mg(patient, ld) * factor
    auc = _auc_for_doses(patient, ld, doses, pk, infusion_h)
    auc_free = _auc_for_doses(patient, ld, doses, pk, infusion_h, with_dialysis=False)
    return FludarabineExposure(
        auc_mg_h_per_l=auc,
        auc_no_dialysis_mg_h_per_l=auc_free,
        daily_doses_mg=tuple(float(d) for d in doses),
        dose_days=tuple(ld.flu_days),
        clearance_l_h=pk.cl_l_h,
        clearance_model=clearance_model,
        dose_basis=pk.dose_basis,
        rule=ld.flu_rule,
        adjustment_factor=factor,
        egfr_ml_min_173m2=float(egfr),
        crcl_ml_min=float(_crcl_of(patient, args, egfr)),
        bsa_m2=float(args["bsa"]),
        infusion_h=infusion_h,
        marks={m: auc >= m for m in AUC_MARKS_MG_H_PER_L},
    )


def fludarabine_concentration_mg_per_l(
    patient: Patient,
    regimen: Regimen | Lymphodepletion,
    t_days,
    clearance_model: str = "langenhorst2019",
    *,
    infusion_h: float = FLU_INFUSION_H,
) -> np.ndarray:
    """Plasma F-ara-A concentration (on the model's dose basis) at the given times.

    Parameters
    ----------
    t_days : array_like, shape (n,)
        Output times in days relative to CAR-T infusion, non-decreasing.

    Returns
    -------
    ndarray, shape (n,)
        Central concentration in mg/L, right-continuous at dialysis sessions; doses adjusted by
        the regimen's rule as in :func:`fludarabine_exposure`.
    """
    t_h = 24.0 * np.asarray(t_days, dtype=float).ravel()
    exposure = fludarabine_exposure(patient, regimen, clearance_model, infusion_h=infusion_h)
    pk = fludarabine_pk_parameters(patient, clearance_model)
    sessions, frac = (), 0.0
    if patient.dialysis is not None:
        sessions = [24.0 * d for d in patient.dialysis.session_days]
        frac = patient.dialysis.flu_removal_fraction
    modelled = np.asarray(exposure.daily_doses_mg) * pk.dose_factor
    dose_h = [24.0 * d for d in exposure.dose_days]
    _, conc = _pk_course(pk, dose_h, modelled, infusion_h, sessions, frac, list(t_h))
    return conc


# ---------------------------------------------------------------------------------------------
# IL-6
# ---------------------------------------------------------------------------------------------


def il6_elimination_rate_per_day(
    patient: Patient,
    k_total_ref: float = 3.96,
    renal_fraction: float = 0.4,
    egfr_ref: float = 100.0,
) -> float:
    """IL-6 elimination rate with a renal part that scales with eGFR.

    ``k = k_total_ref * ((1 - renal_fraction) + renal_fraction * eGFR / egfr_ref)``, i.e.
    ``k_nonrenal + k_renal * eGFR/eGFR_ref`` with eGFR from :func:`egfr_for` (dialysis patients:
    their residual eGFR). The structure and the renal fraction (0.3-0.5 range, 0.4 default) are
    assumptions (MODEL.md section 3); ``k_total_ref`` = 3.96 /d is Hardiansyah D, Ng CM, Clin
    Transl Sci 2019;12:343, Table S1, taken as the rate at ``egfr_ref``.

    Parameters
    ----------
    patient : Patient
    k_total_ref : float
        Total elimination rate at ``egfr_ref``, 1/day (> 0).
    renal_fraction : float
        Renal share of ``k_total_ref``, in [0, 1].
    egfr_ref : float
        eGFR at which the rate equals ``k_total_ref``, mL/min/1.73 m2 (> 0).

    Returns
    -------
    float
        Elimination rate in 1/day.
    """
    if not (
        isinstance(k_total_ref, (int, float)) and k_total_ref > 0 and math.isfinite(k_total_ref)
    ):
        raise ScenarioError(f"k_total_ref = {k_total_ref!r} 1/day: expected a positive number")
    if not (isinstance(renal_fraction, (int, float)) and 0.0 <= renal_fraction <= 1.0):
        raise ScenarioError(f"renal_fraction = {renal_fraction!r}: expected a number in [0, 1]")
    if not (isinstance(egfr_ref, (int, float)) and egfr_ref > 0 and math.isfinite(egfr_ref)):
        raise ScenarioError(f"egfr_ref = {egfr_ref!r} mL/min/1.73m2: expected a positive number")
    return float(il6_rate(egfr_for(patient), k_total_ref, renal_fraction, egfr_ref))


# ---------------------------------------------------------------------------------------------
# The formulas, once: one number or one array per patient (NaN = not given)
# ---------------------------------------------------------------------------------------------


def _where(condition, if_true, if_false):
    """``np.where`` over patients; for one patient the chosen value itself (plain numbers keep
    plain arithmetic, hence the C library's ``pow``, in what follows)."""
    if not isinstance(condition, np.ndarray):
        return if_true if condition else if_false
    return np.where(condition, if_true, if_false)


def bsa_m2(height_cm, weight_kg):
    """Body surface area by Mosteller (1987), m2; heights in cm, weights in kg."""
    return np.sqrt(height_cm * weight_kg / 3600.0)


def egfr_ml_min(egfr, crcl, scr, age, height_cm, female, bsa):
    """The eGFR, mL/min/1.73 m2, by the rules of :func:`egfr_for`.

    Parameters
    ----------
    egfr, crcl, scr : float or ndarray
        Given eGFR (mL/min/1.73 m2), CrCL (mL/min), serum creatinine (mg/dL); NaN = not given.
        All NaN means dialysis without a residual value.
    age : float or ndarray
        Years.
    height_cm : float or ndarray
    female : bool or ndarray of bool
    bsa : float or ndarray
        Body surface area, m2.
    """
    kappa = _where(female, 0.7, 0.9)
    alpha = _where(female, -0.241, -0.302)
    ratio = scr / kappa
    ckd_epi_2021 = (
        142.0
        * np.minimum(ratio, 1.0) ** alpha
        * np.maximum(ratio, 1.0) ** -1.200
        * 0.9938**age
        * _where(female, 1.012, 1.0)
    )
    bedside_schwartz = 0.413 * height_cm / scr
    from_scr = _where(age < PEDIATRIC_AGE_CUTOFF_YEARS, bedside_schwartz, ckd_epi_2021)
    return _where(
        ~np.isnan(egfr),
        egfr,
        _where(
            ~np.isnan(crcl),
            crcl * BSA_REF_M2 / bsa,
            _where(~np.isnan(scr), from_scr, DIALYSIS_RESIDUAL_EGFR_ML_MIN_173M2),
        ),
    )


def crcl_ml_min(egfr_used, crcl, scr, age, weight_kg, female, bsa):
    """The CrCL, mL/min, by the rules of :func:`creatinine_clearance_ml_min`.

    ``egfr_used`` is :func:`egfr_ml_min`'s result; the others as there (NaN = not given).
    """
    cockcroft_gault = (140.0 - age) * weight_kg / (72.0 * scr)
    cockcroft_gault = cockcroft_gault * _where(female, 0.85, 1.0)
    adult_scr = ~np.isnan(scr) & (age >= PEDIATRIC_AGE_CUTOFF_YEARS)
    return _where(
        ~np.isnan(crcl),
        crcl,
        _where(adult_scr, cockcroft_gault, egfr_used * bsa / BSA_REF_M2),
    )


def flu_clearance(model_code, weight_kg, egfr_used, crcl_used):
    """F-ara-A clearance, L/h, as :func:`fludarabine_clearance_l_h`.

    ``model_code`` indexes ``CLEARANCE_MODELS``; eGFR in mL/min/1.73 m2, CrCL in mL/min.
    """
    size = (weight_kg / 70.0) ** 0.75
    egfr = np.minimum(egfr_used, LANGENHORST_EGFR_CAP_ML_MIN_173M2)
    langenhorst = (
        LANGENHORST_CL_NONRENAL_L_H + LANGENHORST_RENAL_COEF * egfr * ML_MIN_TO_L_H
    ) * size
    nonrenal = _where(
        model_code == CLEARANCE_MODELS.index("varela2025_tisacel"),
        VARELA_CL_NONRENAL_L_H["tisa-cel"],
        VARELA_CL_NONRENAL_L_H["axi-cel"],
    )
    varela = (nonrenal + VARELA_CL_RENAL_L_H * crcl_used / VARELA_CRCL_REF_ML_MIN) * size
    return _where(model_code == CLEARANCE_MODELS.index("langenhorst2019"), langenhorst, varela)


def flu_distribution(weight_kg):
    """V1, V2, V3 (L) and Q2, Q3 (L/h), scaled to body weight (kg) as Langenhorst 2019."""
    wt = weight_kg / 70.0
    v1, v2, v3 = (v * wt for v in LANGENHORST_V_L)
    q2, q3 = (q * wt**0.75 for q in LANGENHORST_Q_L_H)
    return v1, v2, v3, q2, q3


def flu_dose_factor(model_code):
    """mg entering the model per mg phosphate given, per ``CLEARANCE_MODELS`` index."""
    return _where(_PHOSPHATE_BASIS[model_code], 1.0, F_ARA_A_MG_PER_PHOSPHATE_MG)


def flu_rule_factor(rule_code, egfr_used, on_dialysis, auc_target, auc_base):
    """Dose factor per ``FLU_RULES`` index, by the rules of :func:`fludarabine_dose_adjustment`.

    ``auc_target / auc_base`` (both mg.h/L) for ``"auc_target"``; eGFR in mL/min/1.73 m2.
    """
    renal = _where(
        on_dialysis | (egfr_used < 10.0),
        0.50,
        _where(egfr_used < 45.0, 0.60, _where(egfr_used < 60.0, 0.75, 1.0)),
    )
    label = _where(on_dialysis | (egfr_used < 30.0), 0.50, _where(egfr_used <= 70.0, 0.80, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        target = auc_target / auc_base
    return _where(
        rule_code == FLU_RULES.index("renal_bands"),
        renal,
        _where(
            rule_code == FLU_RULES.index("label_bands"),
            label,
            _where(rule_code == FLU_RULES.index("auc_target"), target, 1.0),
        ),
    )


def il6_rate(egfr_used, k_total_ref=3.96, renal_fraction=0.4, egfr_ref=100.0):
    """IL-6 elimination rate, 1/day, as :func:`il6_elimination_rate_per_day` (unchecked)."""
    k_renal = renal_fraction * k_total_ref
    k_nonrenal = k_total_ref - k_renal
    return k_nonrenal + k_renal * egfr_used / egfr_ref
