"""Patient covariates: body size, age, sex, kidney function and dialysis schedule.

Constructors are keyword-based with unit-suffixed names, so a scenario file key maps 1:1 to a
field (``weight_kg = 50`` in TOML is ``Patient(weight_kg=50, ...)``). Every dataclass checks its
fields in ``__post_init__`` and raises :class:`cartkin.errors.ScenarioError` naming the field, the
value with its unit and the expected range or form.

Kidney function is given in exactly one of three ways (``egfr_ml_min_173m2``, ``crcl_ml_min`` or
``serum_creatinine_mg_dl``), or the patient is dialysis-dependent (``dialysis=DialysisSchedule``),
in which case a residual ``egfr_ml_min_173m2`` or ``crcl_ml_min`` is optional. How these are turned
into the numbers each model needs lives in :mod:`cartkin.covariates.kidney`, one function per effect.

The accepted ranges are plausibility checks meant to catch unit mistakes (pounds for kilograms,
metres for centimetres, umol/L for mg/dL); they are assumptions, not clinical limits.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from numbers import Real

from cartkin.errors import ScenarioError

SEXES = ("female", "male")

#: Largest residual kidney function accepted together with dialysis, in mL/min/1.73m2 (eGFR) or
#: mL/min (creatinine clearance). Source: KDIGO 2012 CKD guideline, Kidney Int Suppl 2013;3:1,
#: Table 5: kidney failure (G5) is GFR < 15 mL/min/1.73m2; a patient above it on maintenance
#: dialysis is almost certainly a unit or key mistake (eGFR 120 with dialysis would silently
#: make dialysis have no effect).
DIALYSIS_MAX_RESIDUAL_ML_MIN = 15.0

#: Body mass index range accepted, kg/m2. Assumption, loose on purpose: the WHO Child Growth
#: Standards (2006) and CDC 2000 BMI-for-age charts put the 0.1st percentile above 11 kg/m2 at
#: every age from birth to 20 years, and adult BMI above 80 is exceptional; a BMI outside
#: [10, 80] is a swapped or mis-scaled weight or height (e.g. 2 kg with 250 cm: BMI 0.3).
BMI_RANGE_KG_M2 = (10.0, 80.0)

#: Largest height accepted below age 1 and age 5, cm. Assumption from the WHO Child Growth
#: Standards (2006) length/height-for-age: the 99.9th percentile is about 80 cm at 12 months and
#: about 123 cm at 5 years (boys); 90 and 135 cm leave a margin. These are the growth
#: references behind the pediatric BSA (Mosteller) and bedside Schwartz inputs.
INFANT_MAX_HEIGHT_CM = {1.0: 90.0, 5.0: 135.0}

#: How many characters of an offending value an error message shows.
_SHOWN_CHARS = 60


# ---------------------------------------------------------------------------------------------
# Validation helpers (shared with cartkin.covariates.regimen)
# ---------------------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def brief(value) -> str:
    """``repr(value)`` cut to a readable length (a 400-digit number or a deep list stays short)."""
    try:
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
            return f"<integer with about {int(value.bit_length() * 0.30103)} digits>"
        text = repr(value)
    except (RecursionError, ValueError):
        return f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def as_float(value) -> float:
    """float(value); an integer too large for a float becomes +-inf (refused by range checks)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _check_number(owner, name, value, unit, lower, upper, *, lower_open=False, upper_open=False):
    """Return ``value`` as float, or raise ScenarioError naming ``owner.name``, value and range."""
    lo_br = "(" if lower_open else "["
    hi_br = ")" if upper_open else "]"
    expected = f"a number in {lo_br}{lower:g}, {upper:g}{hi_br} {unit}".rstrip()
    if not _is_number(value):
        raise ScenarioError(f"{owner}.{name} = {brief(value)}: expected {expected}")
    original, value = value, as_float(value)
    below = value <= lower if lower_open else value < lower
    above = value >= upper if upper_open else value > upper
    if not math.isfinite(value) or below or above:
        huge = isinstance(original, int) and math.isinf(value)
        shown = brief(original) if huge else f"{value:g} {unit}".rstrip()
        raise ScenarioError(f"{owner}.{name} = {shown}: expected {expected}")
    return value


def _check_days(owner, name, values, *, allow_empty=False, lower=-365.0, upper=3650.0):
    """Return ``values`` as a tuple of floats, strictly increasing, each in [lower, upper] days."""
    if _is_number(values):
        values = (values,)
    if not isinstance(values, (list, tuple)):
        raise ScenarioError(
            f"{owner}.{name} = {brief(values)}: expected a sequence of days (numbers, strictly "
            "increasing), e.g. [-5, -4, -3]"
        )
    out = []
    for v in values:
        if not _is_number(v) or not math.isfinite(as_float(v)):
            raise ScenarioError(
                f"{owner}.{name} = {brief(values)}: entry {brief(v)} is not a finite number (days)"
            )
        if not lower <= float(v) <= upper:
            raise ScenarioError(
                f"{owner}.{name} = {brief(values)}: day {float(v):g} outside "
                f"[{lower:g}, {upper:g}] days relative to CAR-T infusion"
            )
        out.append(float(v))
    if not out and not allow_empty:
        raise ScenarioError(f"{owner}.{name} = {brief(values)}: expected at least one day")
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise ScenarioError(
            f"{owner}.{name} = {tuple(out)!r} days: expected strictly increasing days "
            "(sorted, no duplicates)"
        )
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Dataclasses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DialysisSchedule:
    """Haemodialysis sessions of a dialysis-dependent patient.

    Parameters
    ----------
    session_days : tuple of float
        Start of each session in days relative to CAR-T infusion (day 0); may be negative and
        fractional (``-4.5`` is noon of day -5). Strictly increasing. Only the listed sessions
        are applied: list every session that falls in the window of interest.
    duration_h : float, default 4.0
        Session length in hours, in (0, 24]. Default: a standard 4-hour session (assumption).
        Reported for the record; the fludarabine removal is applied at the session start.
    flu_removal_fraction : float, default 0.0
        Fraction of the fludarabine (F-ara-A) body amount removed by one session, in [0, 1).
        No published value exists (renal handbooks: "unknown dialysability"), so the default
        is 0 (assumption): a sensitivity dimension, not an estimate.
    """

    session_days: tuple[float, ...]
    duration_h: float = 4.0
    flu_removal_fraction: float = 0.0

    def __post_init__(self):
        owner = "DialysisSchedule"
        days = _check_days(owner, "session_days", self.session_days)
        object.__setattr__(self, "session_days", days)
        object.__setattr__(
            self,
            "duration_h",
            _check_number(owner, "duration_h", self.duration_h, "h", 0, 24, lower_open=True),
        )
        object.__setattr__(
            self,
            "flu_removal_fraction",
            _check_number(
                owner, "flu_removal_fraction", self.flu_removal_fraction, "", 0, 1, upper_open=True
            ),
        )


@dataclass(frozen=True)
class Patient:
    """Patient covariates.

    Parameters
    ----------
    weight_kg : float
        Actual body weight in kg, in [2, 300].
    height_cm : float
        Height in cm, in [40, 250] (for body surface area and the bedside Schwartz eGFR).
    age_years : float
        Age in years, in [0, 120].
    sex : {"female", "male"}
        Sex (Cockcroft-Gault and CKD-EPI 2021 depend on it).
    egfr_ml_min_173m2 : float, optional
        Estimated GFR in mL/min/1.73 m2, in [0, 200].
    crcl_ml_min : float, optional
        Creatinine clearance in mL/min (not normalised to body surface area), in [0, 300].
    serum_creatinine_mg_dl : float, optional
        IDMS-traceable serum creatinine in mg/dL, in [0.1, 20] (divide umol/L by 88.4).
    dialysis : DialysisSchedule or dict, optional
        Dialysis-dependent patient. A dict is converted with ``DialysisSchedule(**dialysis)``.

    Exactly one of ``egfr_ml_min_173m2``, ``crcl_ml_min`` and ``serum_creatinine_mg_dl`` must be
    given, unless the patient is on dialysis: then at most one of ``egfr_ml_min_173m2`` and
    ``crcl_ml_min`` (residual function) may be given, and serum creatinine is refused (it is not
    at steady state between sessions).
    """

    weight_kg: float
    height_cm: float
    age_years: float
    sex: str
    egfr_ml_min_173m2: float | None = None
    crcl_ml_min: float | None = None
    serum_creatinine_mg_dl: float | None = None
    dialysis: DialysisSchedule | None = None

    def __post_init__(self):
        owner = "Patient"
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("weight_kg", _check_number(owner, "weight_kg", self.weight_kg, "kg", 2, 300))
        set_("height_cm", _check_number(owner, "height_cm", self.height_cm, "cm", 40, 250))
        set_("age_years", _check_number(owner, "age_years", self.age_years, "years", 0, 120))
        if self.sex not in SEXES:
            raise ScenarioError(f"Patient.sex = {brief(self.sex)}: expected one of {SEXES}")

        if isinstance(self.dialysis, dict):
            try:
                set_("dialysis", DialysisSchedule(**self.dialysis))
            except TypeError as exc:
                raise ScenarioError(
                    f"Patient.dialysis = {brief(self.dialysis)}: {exc}; expected keys session_days, "
                    "duration_h, flu_removal_fraction"
                ) from None
        if self.dialysis is not None and not isinstance(self.dialysis, DialysisSchedule):
            raise ScenarioError(
                f"Patient.dialysis = {brief(self.dialysis)}: expected a DialysisSchedule, a dict of its "
                "fields, or None"
            )

        if self.egfr_ml_min_173m2 is not None:
            set_(
                "egfr_ml_min_173m2",
                _check_number(
                    owner, "egfr_ml_min_173m2", self.egfr_ml_min_173m2, "mL/min/1.73m2", 0, 200
                ),
            )
        if self.crcl_ml_min is not None:
            set_(
                "crcl_ml_min",
                _check_number(owner, "crcl_ml_min", self.crcl_ml_min, "mL/min", 0, 300),
            )
        if self.serum_creatinine_mg_dl is not None:
            set_(
                "serum_creatinine_mg_dl",
                _check_number(
                    owner, "serum_creatinine_mg_dl", self.serum_creatinine_mg_dl, "mg/dL", 0.1, 20
                ),
            )

        given = [
            name
            for name in ("egfr_ml_min_173m2", "crcl_ml_min", "serum_creatinine_mg_dl")
            if getattr(self, name) is not None
        ]
        if self.dialysis is None:
            if len(given) != 1:
                raise ScenarioError(
                    f"Patient kidney function: got {given or 'none'}; expected exactly one of "
                    "egfr_ml_min_173m2, crcl_ml_min, serum_creatinine_mg_dl (or dialysis=...)"
                )
        else:
            if self.serum_creatinine_mg_dl is not None:
                raise ScenarioError(
                    f"Patient.serum_creatinine_mg_dl = {self.serum_creatinine_mg_dl:g} mg/dL with "
                    "dialysis: serum creatinine is not at steady state on dialysis; give a residual "
                    "egfr_ml_min_173m2 or crcl_ml_min instead, or nothing"
                )
            if len(given) > 1:
                raise ScenarioError(
                    f"Patient kidney function on dialysis: got {given}; expected at most one "
                    "residual value (egfr_ml_min_173m2 or crcl_ml_min)"
                )
            for name in given:
                residual = getattr(self, name)
                if residual > DIALYSIS_MAX_RESIDUAL_ML_MIN:
                    unit = "mL/min/1.73m2" if name == "egfr_ml_min_173m2" else "mL/min"
                    raise ScenarioError(
                        f"Patient.{name} = {residual:g} {unit} with dialysis: a residual kidney "
                        f"function above {DIALYSIS_MAX_RESIDUAL_ML_MIN:g} {unit} (KDIGO G5 kidney "
                        "failure is < 15) contradicts dialysis dependence; give the residual "
                        f"value (<= {DIALYSIS_MAX_RESIDUAL_ML_MIN:g}), or drop the dialysis table "
                        "for a patient not on dialysis"
                    )
        self._check_body_size()

    def _check_body_size(self):
        """Refuse weight, height and age that no child or adult has together (unit mistakes)."""
        bmi = self.weight_kg / (self.height_cm / 100.0) ** 2
        lo, hi = BMI_RANGE_KG_M2
        if not lo <= bmi <= hi:
            raise ScenarioError(
                f"Patient body size: weight_kg = {self.weight_kg:g} kg with height_cm = "
                f"{self.height_cm:g} cm gives a body mass index of {bmi:.3g} kg/m2; expected "
                f"{lo:g}-{hi:g} kg/m2 (check the units: kg and cm)"
            )
        for age_limit, max_height in INFANT_MAX_HEIGHT_CM.items():
            if self.age_years < age_limit and self.height_cm > max_height:
                raise ScenarioError(
                    f"Patient body size: height_cm = {self.height_cm:g} cm at age_years = "
                    f"{self.age_years:g}; expected at most {max_height:g} cm below age "
                    f"{age_limit:g} (WHO growth standards; check height and age)"
                )

    @property
    def kidney_function_given(self) -> str | None:
        """Name of the kidney-function field given, or None (dialysis without residual)."""
        for name in ("egfr_ml_min_173m2", "crcl_ml_min", "serum_creatinine_mg_dl"):
            if getattr(self, name) is not None:
                return name
        return None

    @property
    def on_dialysis(self) -> bool:
        """True when the patient is dialysis-dependent."""
        return self.dialysis is not None
