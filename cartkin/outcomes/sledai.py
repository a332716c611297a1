"""SLEDAI-2K over time: the items a model can score from its outputs, the others as inputs.

SLEDAI-2K (Gladman DD, Ibanez D, Urowitz MB, J Rheumatol 2002;29:288) [P] sums 24 weighted
items present at the visit or in the preceding 10 days; the maximum is 105 (:data:`ITEMS`).

Scored from model outputs (through the model roles, never its internals):

=======================  ======  ======================  =============================================
item                     weight  role                    present when (threshold, source)
=======================  ======  ======================  =============================================
proteinuria              4       ``proteinuria``         > 0.5 g/24h (Gladman 2002) [P]
low_complement           2       ``complement``          C3 < 0.9 g/L. SLEDAI-2K: below the testing
                                                         laboratory's lower limit of normal [P]; 0.9
                                                         g/L is a common C3 lower limit (reference
                                                         interval about 0.9-1.8 g/L) [A]
increased_dna_binding    2       ``anti_dsdna``          > 15 IU/mL. SLEDAI-2K: above the testing
                                                         laboratory's normal range [P]; 15 IU/mL is
                                                         the positive cut-off of the EliA dsDNA
                                                         fluoroenzyme immunoassay (negative < 10,
                                                         equivocal 10-15) [A: the model's IU/mL is
                                                         taken to be on that assay's scale]
=======================  ======  ======================  =============================================

Every other item is a per-patient input: ``items={"arthritis": True}`` (present throughout the
follow-up) or ``items={"rash": (0.0, 60.0)}`` (present from day 0 to day 60, inclusive: an item
that resolves or appears at a known day); a modelled item cannot also be given as an input. Hematuria, urinary casts and pyuria
are inputs too: no published mapping from a renal activity index to urine sediment was found, so
none is invented.

The window: an item counts at day t if its condition held at any output time in
``[t - window_days, t]`` (10 days, Gladman 2002), so an item switches off ``window_days`` after
its condition ends. ``window_days=0`` scores the condition at t alone.

The anuric caveat [A]: the four urine items (proteinuria, hematuria, urinary casts, pyuria) need
urine. Where the residual kidney function is below ``anuria_below_ml_min_173m2`` (default 1
mL/min/1.73m2, an assumption: below it urine output is taken to be too small for a 24-h
collection or a sediment) they cannot be scored: they score 0 and ``urine_scorable`` is False.
SLEDAI-2K then understates renal activity; the metrics say so in their notes. None disables the
rule (urine always scorable).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from cartkin.errors import ScenarioError
from cartkin.parameters import suggest

__all__ = [
    "ITEMS",
    "MODELLED_ITEMS",
    "URINE_ITEMS",
    "SledaiScore",
    "SledaiSettings",
    "score",
]

#: SLEDAI-2K items and weights (Gladman 2002), in the instrument's order.
ITEMS: dict[str, int] = {
    "seizure": 8,
    "psychosis": 8,
    "organic_brain_syndrome": 8,
    "visual_disturbance": 8,
    "cranial_nerve_disorder": 8,
    "lupus_headache": 8,
    "cva": 8,
    "vasculitis": 8,
    "arthritis": 4,
    "myositis": 4,
    "urinary_casts": 4,
    "hematuria": 4,
    "proteinuria": 4,
    "pyuria": 4,
    "rash": 2,
    "alopecia": 2,
    "mucosal_ulcers": 2,
    "pleurisy": 2,
    "pericarditis": 2,
    "low_complement": 2,
    "increased_dna_binding": 2,
    "fever": 1,
    "thrombocytopenia": 1,
    "leukopenia": 1,
}

#: Items scored from a model role: item -> role.
MODELLED_ITEMS: dict[str, str] = {
    "proteinuria": "proteinuria",
    "low_complement": "complement",
    "increased_dna_binding": "anti_dsdna",
}

#: Items that need urine (unscorable in an anuric patient).
URINE_ITEMS = ("urinary_casts", "hematuria", "proteinuria", "pyuria")


@dataclass(frozen=True)
class SledaiSettings:
    """How SLEDAI-2K is scored from a simulation (see the module docstring for each source).

    Parameters
    ----------
    items : mapping of str to bool or (start_day, end_day)
        Non-modelled items: True (present throughout the follow-up), False, or a pair of days
        between which the item is present (inclusive). Absent when not listed.
    proteinuria_g_per_24h : float
        Proteinuria above this scores 4 (Gladman 2002: > 0.5 g/24h).
    low_c3_g_per_l : float
        C3 below this scores 2 (assumption: a common laboratory lower limit, 0.9 g/L).
    dsdna_iu_per_ml : float
        Anti-dsDNA above this scores 2 (assumption: EliA dsDNA positive cut-off, 15 IU/mL).
    window_days : float
        Look-back window, days (Gladman 2002: 10).
    anuria_below_ml_min_173m2 : float or None
        Urine items unscorable below this kidney function (assumption: 1); None: always scorable.
    """

    items: Mapping[str, bool | tuple[float, float]] = field(default_factory=dict)
    proteinuria_g_per_24h: float = 0.5
    low_c3_g_per_l: float = 0.9
    dsdna_iu_per_ml: float = 15.0
    window_days: float = 10.0
    anuria_below_ml_min_173m2: float | None = 1.0

    def __post_init__(self):
        if not isinstance(self.items, Mapping):
            raise ScenarioError(
                f"SLEDAI-2K items = {self.items!r}: expected a table of item = true/false"
            )
        clean = {}
        for name, present in self.items.items():
            if name not in ITEMS:
                raise ScenarioError(
                    f"SLEDAI-2K item {name!r} is not a SLEDAI-2K item.{suggest(name, ITEMS)} "
                    f"Items: {', '.join(ITEMS)}"
                )
            if isinstance(present, bool):
                clean[name] = present
                continue
            ok = (
                isinstance(present, list | tuple)
                and len(present) == 2
                and all(isinstance(d, int | float) and not isinstance(d, bool) for d in present)
                and all(math.isfinite(d) for d in present)
                and present[0] <= present[1]
            )
            if not ok:
                raise ScenarioError(
                    f"SLEDAI-2K item {name} = {present!r}: expected true or false, or "
                    "[start_day, end_day] with start_day <= end_day"
                )
            clean[name] = (float(present[0]), float(present[1]))
        object.__setattr__(self, "items", clean)
        for name, unit in (
            ("proteinuria_g_per_24h", "g/24h"),
            ("low_c3_g_per_l", "g/L"),
            ("dsdna_iu_per_ml", "IU/mL"),
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (value > 0 and math.isfinite(value))
            ):
                raise ScenarioError(f"SLEDAI-2K {name} = {value!r}: expected a number > 0 {unit}")
        w = self.window_days
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= 30:
            raise ScenarioError(f"SLEDAI-2K window_days = {w!r}: expected a number in [0, 30] days")
        a = self.anuria_below_ml_min_173m2
        if a is not None and (isinstance(a, bool) or not isinstance(a, int | float) or not a >= 0):
            raise ScenarioError(
                f"SLEDAI-2K anuria_below_ml_min_173m2 = {a!r}: expected a number >= 0 "
                "(mL/min/1.73m2) or none"
            )


@dataclass(frozen=True)
class SledaiScore:
    """SLEDAI-2K over time.

    Attributes
    ----------
    t_days : numpy.ndarray, shape (n_t,)
    total : numpy.ndarray, shape (n_t,)
        SLEDAI-2K total (0-105).
    items : dict of str to numpy.ndarray, shape (n_t,)
        Each item's points (0 or its weight), every item of :data:`ITEMS`.
    modelled : tuple of str
        Items scored from model outputs.
    urine_scorable : numpy.ndarray of bool, shape (n_t,)
        False where the urine items could not be scored (anuric).
    """

    t_days: np.ndarray
    total: np.ndarray
    items: dict[str, np.ndarray]
    modelled: tuple[str, ...]
    urine_scorable: np.ndarray

    def at(self, day: float) -> float:
        """Total at ``day`` (the score of the last output time at or before it)."""
        k = int(np.searchsorted(self.t_days, day, side="right")) - 1
        return float(self.total[max(k, 0)])


def _in_window(t, condition, window_days):
    """True at t where ``condition`` held at some output time in [t - window, t] (last axis)."""
    last = np.maximum.accumulate(np.where(condition, t, -np.inf), axis=-1)
    return (t - last) <= window_days


def score(
    t_days,
    *,
    proteinuria_g_per_24h=None,
    complement_c3_g_per_l=None,
    anti_dsdna_iu_per_ml=None,
    kidney_function_ml_min_173m2=None,
    settings: SledaiSettings | None = None,
) -> SledaiScore:
    """SLEDAI-2K at each output time, for one patient or many at once.

    Parameters
    ----------
    t_days : array, shape (n_t,)
        Increasing output times, days.
    proteinuria_g_per_24h, complement_c3_g_per_l, anti_dsdna_iu_per_ml : array, shape (..., n_t), optional
        Model outputs, time on the last axis (a leading patient axis is allowed: batches and
        sweeps score all patients in one call); an item whose output is None is taken from
        ``settings.items``.
    kidney_function_ml_min_173m2 : array, shape (..., n_t), optional
        For the anuric rule; None: urine always scorable.
    settings : SledaiSettings, optional

    Returns
    -------
    SledaiScore
        ``total``, ``items`` and ``urine_scorable`` with the broadcast shape of the inputs.
    """
    s = settings or SledaiSettings()
    t = np.asarray(t_days, dtype=float)
    given = {
        "proteinuria": (proteinuria_g_per_24h, lambda x: x > s.proteinuria_g_per_24h),
        "low_complement": (complement_c3_g_per_l, lambda x: x < s.low_c3_g_per_l),
        "increased_dna_binding": (anti_dsdna_iu_per_ml, lambda x: x > s.dsdna_iu_per_ml),
    }
    modelled = tuple(name for name, (values, _) in given.items() if values is not None)
    clash = sorted(set(modelled) & set(s.items))
    if clash:
        raise ScenarioError(
            f"SLEDAI-2K items {clash} are scored from the model's outputs; remove them from the "
            "items inputs"
        )
    arrays = {name: np.asarray(given[name][0], dtype=float) for name in modelled}
    kf = kidney_function_ml_min_173m2
    kf = None if kf is None else np.asarray(kf, dtype=float)
    for name, values in (*arrays.items(), ("kidney function", kf)):
        if values is not None and (values.ndim == 0 or values.shape[-1] != t.shape[0]):
            raise ScenarioError(
                f"SLEDAI-2K {name}: values of shape {values.shape} for {t.shape[0]} times: "
                "expected time on the last axis"
            )
    shape = np.broadcast_shapes(t.shape, *(a.shape for a in arrays.values()),
                                *(() if kf is None else (kf.shape,)))  # fmt: skip
    if kf is None or s.anuria_below_ml_min_173m2 is None:
        urine = np.ones(shape, dtype=bool)
    else:
        urine = np.broadcast_to(kf >= s.anuria_below_ml_min_173m2, shape)

    items = {}
    total = np.zeros(shape)
    for name, weight in ITEMS.items():
        if name in modelled:
            present = _in_window(t, given[name][1](arrays[name]), s.window_days)
        else:  # an input: a function of time only, broadcast (a view) over patients
            given_item = s.items.get(name, False)
            if isinstance(given_item, tuple):
                present = (t >= given_item[0]) & (t <= given_item[1])
            else:
                present = np.full(t.shape, given_item)
            if not np.any(present):
                items[name] = np.broadcast_to(0.0, shape)
                continue
        if name in URINE_ITEMS:
            present = present & urine
        points = np.broadcast_to(np.where(present, float(weight), 0.0), shape)
        items[name] = points
        total += points
    return SledaiScore(t, total, items, modelled, urine)
