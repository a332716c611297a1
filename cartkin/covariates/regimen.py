"""Treatment regimen (lymphodepletion, CAR-T dose) and the Context the models read.

Constructors are keyword-based with unit-suffixed names, so a scenario file key maps 1:1 to a
field. Days are relative to CAR-T infusion (day 0). Every dataclass checks its fields in
``__post_init__`` and raises :class:`cartkin.errors.ScenarioError` naming the field, the value
with its unit and the expected range or form. The numeric ranges are plausibility checks against
unit mistakes (assumptions), not clinical limits.

:func:`build_context` turns a Patient and a Regimen into the plain numbers a model needs
(:class:`Context`), with the fludarabine exposure computed by :mod:`cartkin.covariates.kidney`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

from cartkin.covariates import kidney
from cartkin.covariates.patient import Patient, _check_days, _check_number, _is_number, brief
from cartkin.errors import ScenarioError

#: Default lymphodepletion: fludarabine 25 mg/m2/day on days -5..-3 and cyclophosphamide
#: 1000 mg/m2 on day -3, the Erlangen SLE regimen (Mackensen A et al., Nat Med 2022;28:2124;
#: MODEL.md section 2 marks it "commonly reported; verify").
_DEFAULT_FLU_DAYS = (-5.0, -4.0, -3.0)
_DEFAULT_CY_DAYS = (-3.0,)

_FRACTION_SUM_TOL = 1e-6

#: Largest CAR-T dose accepted, cells per kg body weight, for both dose forms (a flat dose is
#: checked per kg once the patient's weight is known). Assumption: a plausibility limit against
#: unit mistakes, about 100x the highest weight-based doses in CAR-T trials (1x10^7 cells/kg),
#: not a clinical limit.
MAX_CELLS_PER_KG = 1e9

#: Lymphodepletion that ends more than this many days before the first CAR-T infusion is
#: refused. cartkin's models treat lymphodepletion as the conditioning of this infusion;
#: protocols give it on days -7..-2 (MODEL.md section 2), and fludarabine (F-ara-A half-life
#: about 20 h) is gone within days. Assumption: 30 days separates conditioning from an earlier,
#: unrelated treatment course.
MAX_LD_GAP_DAYS = 30.0

#: A gap above this many days (last lymphodepletion day to first infusion) is accepted with a
#: warning (assumption: twice the usual 7-day window).
LONG_LD_GAP_DAYS = 14.0


class RegimenWarning(UserWarning):
    """A regimen that runs but rests on an assumption the user should know about."""


@dataclass(frozen=True)
class Lymphodepletion:
    """Fludarabine and cyclophosphamide lymphodepletion.

    Parameters
    ----------
    flu_mg_m2_per_day : float, default 25.0
        Fludarabine phosphate per dose day before adjustment, mg/m2, in [0, 100].
    flu_days : tuple of float, default (-5, -4, -3)
        Fludarabine days (strictly increasing; may be empty when ``flu_mg_m2_per_day`` is 0).
    cy_mg_m2 : float, default 1000.0
        Cyclophosphamide per listed day, mg/m2, in [0, 3000].
    cy_days : tuple of float, default (-3,)
        Cyclophosphamide days (strictly increasing; may be empty when ``cy_mg_m2`` is 0).
    flu_rule : {"none", "renal_bands", "label_bands", "auc_target"}, default "none"
        Fludarabine dose-adjustment rule (see :func:`cartkin.covariates.kidney.fludarabine_dose_adjustment`).
    flu_target_auc_mg_h_per_l : float, optional
        Target cumulative AUC, mg.h/L in (0, 100]; required with ``"auc_target"``, refused
        otherwise.

    Notes
    -----
    The defaults are Flu/Cy conditioning as in the Erlangen SLE regimen (fludarabine 25
    mg/m2/day on days -5..-3, cyclophosphamide 1000 mg/m2 on day -3; Mackensen A et al., Nat Med
    2022;28:2124). :meth:`none` is no lymphodepletion at all, what a scenario without a
    ``[lymphodepletion]`` table simulates.
    """

    flu_mg_m2_per_day: float = 25.0
    flu_days: tuple[float, ...] = _DEFAULT_FLU_DAYS
    cy_mg_m2: float = 1000.0
    cy_days: tuple[float, ...] = _DEFAULT_CY_DAYS
    flu_rule: str = "none"
    flu_target_auc_mg_h_per_l: float | None = None

    def __post_init__(self):
        owner = "Lymphodepletion"
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_(
            "flu_mg_m2_per_day",
            _check_number(owner, "flu_mg_m2_per_day", self.flu_mg_m2_per_day, "mg/m2/day", 0, 100),
        )
        set_(
            "flu_days",
            _check_days(owner, "flu_days", self.flu_days, allow_empty=self.flu_mg_m2_per_day == 0),
        )
        set_("cy_mg_m2", _check_number(owner, "cy_mg_m2", self.cy_mg_m2, "mg/m2", 0, 3000))
        set_("cy_days", _check_days(owner, "cy_days", self.cy_days, allow_empty=True))
        if self.cy_mg_m2 > 0 and not self.cy_days:
            raise ScenarioError(
                f"Lymphodepletion.cy_days = (): cy_mg_m2 = {self.cy_mg_m2:g} mg/m2 needs at least "
                "one day (or set cy_mg_m2 = 0)"
            )
        if self.flu_rule not in kidney.FLU_RULES:
            raise ScenarioError(
                f"Lymphodepletion.flu_rule = {self.flu_rule!r}: expected one of {kidney.FLU_RULES}"
            )
        target = self.flu_target_auc_mg_h_per_l
        if self.flu_rule == "auc_target":
            if target is None:
                raise ScenarioError(
                    "Lymphodepletion.flu_target_auc_mg_h_per_l = None: flu_rule 'auc_target' "
                    "needs a target in (0, 100] mg.h/L"
                )
            set_(
                "flu_target_auc_mg_h_per_l",
                _check_number(
                    owner, "flu_target_auc_mg_h_per_l", target, "mg.h/L", 0, 100, lower_open=True
                ),
            )
            if self.flu_mg_m2_per_day == 0:
                raise ScenarioError(
                    "Lymphodepletion.flu_mg_m2_per_day = 0 mg/m2/day: flu_rule 'auc_target' "
                    "scales a positive starting dose"
                )
        elif target is not None:
            raise ScenarioError(
                f"Lymphodepletion.flu_target_auc_mg_h_per_l = {target!r} mg.h/L with flu_rule "
                f"{self.flu_rule!r}: a target is used only with flu_rule 'auc_target'"
            )

    @classmethod
    def none(cls) -> Lymphodepletion:
        """No lymphodepletion: no fludarabine, no cyclophosphamide, no days."""
        return cls(flu_mg_m2_per_day=0.0, flu_days=(), cy_mg_m2=0.0, cy_days=())

    @property
    def given(self) -> bool:
        """True when any fludarabine or cyclophosphamide is given."""
        return self.flu_mg_m2_per_day > 0 or self.cy_mg_m2 > 0

    @property
    def cy_mg_m2_total(self) -> float:
        """Total cyclophosphamide, mg/m2 (``cy_mg_m2`` on each of ``cy_days``)."""
        return self.cy_mg_m2 * len(self.cy_days)


@dataclass(frozen=True)
class CarTDose:
    """CAR-T cell dose, weight-based or flat, optionally split over days.

    Parameters
    ----------
    cells_per_kg : float, optional
        Total dose in CAR-T cells per kg body weight, in (0, 1e9] (``MAX_CELLS_PER_KG``).
    flat_cells : float, optional
        Total dose in CAR-T cells, > 0 and at most ``MAX_CELLS_PER_KG`` per kg of the patient's
        weight (checked by :func:`build_context`). Exactly one of the two must be given.
    days : tuple of float, default (0.0,)
        Infusion days (strictly increasing, >= 0: day 0 is the first infusion by definition).
    fractions : tuple of float, optional
        Share of the total dose given on each day: same length as ``days``, each in (0, 1],
        summing to 1. Default: equal shares.
    """

    cells_per_kg: float | None = None
    flat_cells: float | None = None
    days: tuple[float, ...] = (0.0,)
    fractions: tuple[float, ...] | None = None

    def __post_init__(self):
        owner = "CarTDose"
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if (self.cells_per_kg is None) == (self.flat_cells is None):
            raise ScenarioError(
                f"CarTDose: got cells_per_kg = {self.cells_per_kg!r} and flat_cells = "
                f"{self.flat_cells!r}; expected exactly one of them"
            )
        if self.cells_per_kg is not None:
            set_(
                "cells_per_kg",
                _check_number(
                    owner,
                    "cells_per_kg",
                    self.cells_per_kg,
                    "cells/kg",
                    0,
                    MAX_CELLS_PER_KG,
                    lower_open=True,
                ),
            )
        else:
            set_(
                "flat_cells",
                _check_number(
                    owner,
                    "flat_cells",
                    self.flat_cells,
                    "cells",
                    0,
                    300 * MAX_CELLS_PER_KG,
                    lower_open=True,
                ),  # the per-kg cap is checked with the weight, in build_context
            )
        set_("days", _check_days(owner, "days", self.days, lower=0.0))
        n = len(self.days)
        if self.fractions is None:
            set_("fractions", tuple(1.0 / n for _ in range(n)))
            return
        fr = self.fractions
        if _is_number(fr):
            fr = (fr,)
        if not isinstance(fr, (list, tuple)) or len(fr) != n:
            raise ScenarioError(
                f"CarTDose.fractions = {brief(self.fractions)}: expected {n} fraction(s), one per day "
                f"in days = {self.days!r}"
            )
        fr = tuple(
            _check_number(owner, f"fractions[{i}]", f, "", 0, 1, lower_open=True)
            for i, f in enumerate(fr)
        )
        if abs(math.fsum(fr) - 1.0) > _FRACTION_SUM_TOL:
            raise ScenarioError(
                f"CarTDose.fractions = {fr!r}: sum {math.fsum(fr):.6g}; expected fractions summing "
                "to 1"
            )
        set_("fractions", fr)

    def total_cells(self, weight_kg: float) -> float:
        """Total CAR-T cells for a patient of ``weight_kg`` kg."""
        if self.cells_per_kg is not None:
            return self.cells_per_kg * weight_kg
        assert self.flat_cells is not None  # __post_init__ requires one of the two
        return self.flat_cells

    def expand(self, weight_kg: float) -> list[tuple[float, float]]:
        """Doses as ``[(day, cells), ...]`` for a patient of ``weight_kg`` kg."""
        total = self.total_cells(weight_kg)
        fractions = self.fractions or (1.0,)  # __post_init__ fills them in
        return [(d, total * f) for d, f in zip(self.days, fractions, strict=True)]


@dataclass(frozen=True)
class Regimen:
    """Lymphodepletion plus CAR-T dose. Dicts are converted to the dataclasses."""

    lymphodepletion: Lymphodepletion = field(default_factory=Lymphodepletion)
    cart: CarTDose = field(default_factory=lambda: CarTDose(cells_per_kg=1e6))

    def __post_init__(self):
        for name, cls in (("lymphodepletion", Lymphodepletion), ("cart", CarTDose)):
            value = getattr(self, name)
            if isinstance(value, dict):
                try:
                    value = cls(**value)
                except TypeError as exc:
                    raise ScenarioError(f"Regimen.{name} = {brief(value)}: {exc}") from None
                object.__setattr__(self, name, value)
            if not isinstance(value, cls):
                raise ScenarioError(
                    f"Regimen.{name} = {brief(value)}: expected a {cls.__name__} or a dict of its "
                    "fields"
                )
        self._check_timing()

    def _check_timing(self):
        """Lymphodepletion must come before the first CAR-T infusion, and not long before."""
        ld = self.lymphodepletion
        first_cart = self.cart.days[0]
        given = [("flu_days", ld.flu_days)] if ld.flu_mg_m2_per_day > 0 else []
        if ld.cy_mg_m2 > 0:
            given.append(("cy_days", ld.cy_days))
        for name, days in given:
            if days and days[-1] >= first_cart:
                raise ScenarioError(
                    f"Lymphodepletion.{name} = {list(days)}: day {days[-1]:g} is on or after the "
                    f"first CAR-T infusion (day {first_cart:g}); expected lymphodepletion before "
                    "the infusion (days < first CAR-T day, usually -7..-2)"
                )
        last = max((days[-1] for _, days in given if days), default=None)
        if last is None:
            return
        gap = first_cart - last
        if gap > MAX_LD_GAP_DAYS:
            raise ScenarioError(
                f"Lymphodepletion ends on day {last:g}, {gap:g} days before the first CAR-T "
                f"infusion (day {first_cart:g}); expected at most {MAX_LD_GAP_DAYS:g} days: cartkin "
                "treats lymphodepletion as the conditioning of this infusion, and one given more "
                "than a month earlier is a different treatment course"
            )
        if gap > LONG_LD_GAP_DAYS:
            warnings.warn(
                f"Lymphodepletion ends on day {last:g}, {gap:g} days before the first CAR-T "
                "infusion: cartkin assumes it still conditions this infusion (fludarabine AUC and "
                "the lymphodepletion effect count in full); usual protocols end it 2-7 days before",
                RegimenWarning,
                stacklevel=3,
            )


@dataclass(frozen=True)
class Context:
    """Plain numbers a model's ``individualize`` needs, built by :func:`build_context`.

    Attributes
    ----------
    patient : Patient
    regimen : Regimen
    exposure : cartkin.covariates.kidney.FludarabineExposure
    weight_kg : float
    egfr_ml_min_173m2 : float
        eGFR used for every eGFR-driven effect (``kidney.egfr_for``).
    cart_doses : list of (float, float)
        ``(day, cells)`` pairs, total cells per infusion.
    cy_mg_m2_total : float
        Total cyclophosphamide, mg/m2.
    flu_auc_mg_h_per_l : float
        Cumulative fludarabine AUC, mg.h/L (= ``exposure.auc_mg_h_per_l``).
    bsa_m2 : float
        Body surface area, m2.
    il6_elimination_per_day : float
        IL-6 elimination rate from ``kidney.il6_elimination_rate_per_day`` with its defaults,
        1/day.
    clearance_model : str
        Fludarabine clearance model used.
    """

    patient: Patient
    regimen: Regimen
    exposure: kidney.FludarabineExposure
    weight_kg: float
    egfr_ml_min_173m2: float
    cart_doses: list
    cy_mg_m2_total: float
    flu_auc_mg_h_per_l: float
    bsa_m2: float
    il6_elimination_per_day: float
    clearance_model: str


def check_dose_for(patient: Patient, cart: CarTDose) -> None:
    """Refuse a flat dose above ``MAX_CELLS_PER_KG`` per kg of this patient (the cells_per_kg cap).

    Raises
    ------
    ScenarioError
        Naming ``CarTDose.flat_cells``, the dose, the weight and the cap.
    """
    flat = cart.flat_cells
    if flat is not None and flat / patient.weight_kg > MAX_CELLS_PER_KG:
        raise ScenarioError(
            f"CarTDose.flat_cells = {flat:g} cells for a {patient.weight_kg:g} kg patient is "
            f"{flat / patient.weight_kg:.3g} cells/kg; expected at most {MAX_CELLS_PER_KG:g} "
            "cells/kg (the same cap as cells_per_kg)"
        )


def build_context(
    patient: Patient, regimen: Regimen, clearance_model: str = "langenhorst2019"
) -> Context:
    """Compute the fludarabine exposure and expand the CAR-T dose into a :class:`Context`.

    Parameters
    ----------
    patient : Patient
    regimen : Regimen
    clearance_model : str
        One of ``cartkin.covariates.kidney.CLEARANCE_MODELS``.

    Returns
    -------
    Context
    """
    if not isinstance(patient, Patient):
        raise ScenarioError(f"build_context: patient = {patient!r}; expected a Patient")
    if not isinstance(regimen, Regimen):
        raise ScenarioError(f"build_context: regimen = {regimen!r}; expected a Regimen")
    check_dose_for(patient, regimen.cart)
    exposure = kidney.fludarabine_exposure(patient, regimen, clearance_model)
    return Context(
        patient=patient,
        regimen=regimen,
        exposure=exposure,
        weight_kg=patient.weight_kg,
        egfr_ml_min_173m2=exposure.egfr_ml_min_173m2,
        cart_doses=regimen.cart.expand(patient.weight_kg),
        cy_mg_m2_total=regimen.lymphodepletion.cy_mg_m2_total,
        flu_auc_mg_h_per_l=exposure.auc_mg_h_per_l,
        bsa_m2=exposure.bsa_m2,
        il6_elimination_per_day=kidney.il6_rate(exposure.egfr_ml_min_173m2),
        clearance_model=clearance_model,
    )
