"""A validated dataset: observations, doses, subjects, and the patients and regimens they imply."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cartkin.config import replaced_kidney_keys
from cartkin.errors import DataError, ScenarioError

if TYPE_CHECKING:
    from cartkin.data.spec import ScenarioLike
    from cartkin.models.base import Model

__all__ = ["Dataset"]

_PATIENT_FIELDS = ("weight_kg", "height_cm", "age_years", "sex")
_KIDNEY_FIELDS = ("egfr_ml_min_173m2", "crcl_ml_min", "serum_creatinine_mg_dl")


@dataclass
class Dataset:
    """Observed data matched to a model (returned by :func:`cartkin.data.read`).

    Attributes
    ----------
    observations : pandas.DataFrame
        One row per used observation: ``id`` (str), ``time_days`` (days from the CAR-T
        infusion), ``observable`` (a model observable name; roles and DVID codes resolved),
        ``value`` (float, in the observable's unit; the limit for censored records), ``cens``
        (1 = below ``limit``), ``limit`` (float or NaN, observable's unit), ``unit``, ``dvid``
        (as written), ``row`` (1-based line of the file), ``source`` (file name).
    doses : pandas.DataFrame
        EVID=1 rows: ``id``, ``time_days``, ``cells`` (total CAR-T cells), ``row``.
    subjects : pandas.DataFrame
        Indexed by ``id``: ``weight_kg``, ``height_cm``, ``age_years``, ``sex``,
        ``egfr_ml_min_173m2``, ``crcl_ml_min``, ``serum_creatinine_mg_dl``, ``dialysis``
        (nullable bool); NaN/NA where the file has no value.
    excluded : pandas.DataFrame
        Valid rows not used: ``row``, ``id``, ``time_days``, ``reason``.
    ids : list of str
        Subject IDs in file order.
    model : cartkin.models.Model
    path : Path
    kind : str
        ``"nonmem"`` or ``"long"``.
    ignored_columns : list of str
        Columns cartkin does not read (check for a misspelt covariate).
    header_comments : list of str
        Leading ``#`` lines of the file (provenance, "SYNTHETIC" labels).
    rerouted : dict
        ``(dvid, unit) -> observable`` where CAR-T data went to the observable of their unit's
        dimension (copies/ug to the model's ``cart_copies`` observable, ...).
    scenario : cartkin.Scenario or None
        Supplies the default base patient and regimen.
    """

    observations: pd.DataFrame
    doses: pd.DataFrame
    subjects: pd.DataFrame
    excluded: pd.DataFrame
    ids: list
    model: Model
    path: Path
    kind: str = "nonmem"
    ignored_columns: list = field(default_factory=list)
    header_comments: list = field(default_factory=list)
    rerouted: dict = field(default_factory=dict)
    scenario: ScenarioLike | None = None

    def __repr__(self) -> str:
        return (
            f"Dataset({self.path.name!r}, model={self.model.name!r}, ids={len(self.ids)}, "
            f"observations={len(self.observations)}, doses={len(self.doses)}, "
            f"excluded={len(self.excluded)})"
        )

    # -- patients, regimens, contexts --------------------------------------------------------------
    def patients(self, base_patient=None) -> dict:
        """One :class:`cartkin.Patient` per ID: the base patient with the file's covariates.

        Parameters
        ----------
        base_patient : cartkin.Patient, optional
            Supplies what the file lacks (default: the scenario's patient, if any). A kidney
            covariate in the file (EGFR, CRCL, SCR or DIALYSIS) replaces the base's kidney
            specification; ``DIALYSIS=1`` takes the base patient's dialysis schedule (alone, for
            a base patient on dialysis, it keeps the base's residual kidney function).

        Returns
        -------
        dict of str to cartkin.Patient

        Raises
        ------
        DataError
            Naming every ID whose covariates are incomplete or inconsistent.
        """
        from cartkin.covariates.patient import Patient

        base = base_patient
        if base is None and self.scenario is not None:
            base = self.scenario.base.patient
        out, problems = {}, []
        for pid in self.ids:
            cov = self.subjects.loc[pid] if pid in self.subjects.index else pd.Series(dtype=object)
            kwargs = dataclasses.asdict(base) if base is not None else {}
            if base is not None:
                kwargs["dialysis"] = base.dialysis
            for name in _PATIENT_FIELDS:
                if _given(cov.get(name)):
                    kwargs[name] = cov[name] if name == "sex" else float(cov[name])
            kidney = {k: float(cov[k]) for k in _KIDNEY_FIELDS if _given(cov.get(k))}
            on_dialysis = cov.get("dialysis")
            if kidney or _given(on_dialysis):
                # DIALYSIS=1 alone keeps a dialysis base's residual function (scenario rule)
                given = set(kidney) | ({"dialysis"} if _given(on_dialysis) else set())
                on_base = base is not None and base.dialysis is not None
                for k in replaced_kidney_keys(given, on_base and bool(on_dialysis)):
                    if k != "dialysis":
                        kwargs[k] = kidney.get(k)
                if _given(on_dialysis) and bool(on_dialysis):
                    if base is None or base.dialysis is None:
                        problems.append(
                            f"ID {pid}: DIALYSIS=1 needs a session schedule: give base_patient "
                            "(or the scenario's [patient.dialysis]) with dialysis="
                            "DialysisSchedule(session_days=...)"
                        )
                        continue
                    kwargs["dialysis"] = base.dialysis
                else:
                    kwargs["dialysis"] = None
            missing = [n for n in _PATIENT_FIELDS if kwargs.get(n) is None]
            if missing:
                problems.append(
                    f"ID {pid}: no {', '.join(missing)} (columns WT, HT, AGE, SEX) and no "
                    "base_patient to take them from"
                )
                continue
            try:
                out[pid] = Patient(**kwargs)
            except ScenarioError as exc:
                problems.append(f"ID {pid}: {exc}")
        if problems:
            raise DataError(f"{self.path}: cannot build patients:\n  " + "\n  ".join(problems))
        return out

    def regimens(self, base_regimen=None) -> dict:
        """One :class:`cartkin.Regimen` per ID; the file's dose rows replace the CAR-T dose.

        Parameters
        ----------
        base_regimen : cartkin.Regimen, optional
            Lymphodepletion and the CAR-T dose of IDs without dose rows (default: the
            scenario's regimen). An ID with EVID=1 rows gets those doses as a flat dose
            (``CarTDose(flat_cells=total, days=..., fractions=...)``).

        Returns
        -------
        dict of str to cartkin.Regimen
        """
        from cartkin.covariates.regimen import CarTDose

        base = base_regimen
        if base is None and self.scenario is not None:
            base = self.scenario.base.regimen
        if base is None:
            raise DataError(
                f"{self.path}: regimens() needs base_regimen (lymphodepletion and a default CAR-T "
                "dose) or a scenario"
            )
        out = {}
        for pid in self.ids:
            rows = self.doses[self.doses["id"] == pid].sort_values("time_days")
            if rows.empty:
                out[pid] = base
                continue
            total = float(rows["cells"].sum())
            cart = CarTDose(
                flat_cells=total,
                days=tuple(float(d) for d in rows["time_days"]),
                fractions=tuple(float(c) / total for c in rows["cells"]),
            )
            out[pid] = dataclasses.replace(base, cart=cart)
        return out

    def contexts(self, base_regimen=None, base_patient=None, clearance_model=None) -> dict:
        """One :class:`cartkin.Context` per ID (patients and regimens above, then kidney PK).

        ``clearance_model`` defaults to the scenario's, else ``"langenhorst2019"``.
        """
        from cartkin.covariates.regimen import build_context

        if clearance_model is None:
            clearance_model = (
                self.scenario.base.clearance_model if self.scenario is not None else None
            ) or "langenhorst2019"
        patients = self.patients(base_patient)
        regimens = self.regimens(base_regimen)
        return {
            pid: build_context(patients[pid], regimens[pid], clearance_model) for pid in self.ids
        }

    # -- subsets -----------------------------------------------------------------------------------
    def select(self, ids=None, observables=None) -> Dataset:
        """A dataset with only some subjects and/or observables (roles are accepted).

        Parameters
        ----------
        ids : sequence of str, optional
            Subjects to keep, in the order given.
        observables : sequence of str, optional
            Observable names or roles (``"cart"``) to keep.

        Raises
        ------
        DataError
            For an ID or observable the dataset does not have.
        """
        keep_ids = list(self.ids) if ids is None else [str(i) for i in ids]
        unknown = [i for i in keep_ids if i not in self.ids]
        if unknown:
            raise DataError(f"{self.path.name}: select: no subject(s) {unknown}; ids: {self.ids}")
        obs = self.observations[self.observations["id"].isin(keep_ids)]
        if observables is not None:
            names = [self.model.roles.get(o) or o for o in observables]
            present = set(self.observations["observable"])
            missing = [o for o, n in zip(observables, names, strict=True) if n not in present]
            if missing:
                raise DataError(
                    f"{self.path.name}: select: no observable(s) {missing} in the data; it has "
                    f"{sorted(present)}"
                )
            obs = obs[obs["observable"].isin(names)]
        return dataclasses.replace(
            self,
            observations=obs.reset_index(drop=True),
            doses=self.doses[self.doses["id"].isin(keep_ids)].reset_index(drop=True),
            subjects=self.subjects.reindex(keep_ids),
            excluded=self.excluded[self.excluded["id"].astype(str).isin(keep_ids)],
            ids=keep_ids,
        )

    # -- export ------------------------------------------------------------------------------------
    def to_long(self) -> pd.DataFrame:
        """The dataset in the long format :func:`cartkin.data.read` accepts.

        Columns ``id, time_days, observable, value, unit, lloq, cens`` then the subject
        covariates that are given; CAR-T doses are rows with ``observable = "dose"`` and
        ``value`` in cells; a censored record has an empty ``value`` and ``cens = 1``.
        Observations come in the observables' units (after any conversion on reading).
        Excluded rows are not written. ``frame.to_csv(path, index=False)`` writes the file.
        """
        obs = self.observations
        records = pd.DataFrame(
            {
                "id": obs["id"],
                "time_days": obs["time_days"],
                "observable": obs["observable"],
                "value": obs["value"].where(obs["cens"] == 0),
                "unit": obs["unit"],
                "lloq": obs["limit"],
                "cens": obs["cens"],
                "_order": obs["row"],
            }
        )
        doses = pd.DataFrame(
            {
                "id": self.doses["id"],
                "time_days": self.doses["time_days"],
                "observable": "dose",
                "value": self.doses["cells"],
                "unit": "cells",
                "lloq": float("nan"),
                "cens": 0,
                "_order": self.doses["row"],
            }
        )
        frame = pd.concat([doses, records]) if len(doses) else records
        frame = frame.sort_values("_order", kind="stable").drop(columns="_order")
        given = [c for c in self.subjects.columns if self.subjects[c].notna().any()]
        covariates = self.subjects[given].copy()
        if "dialysis" in covariates:
            covariates["dialysis"] = covariates["dialysis"].map(
                lambda v: "" if v is pd.NA else int(bool(v))
            )
        frame["id"] = frame["id"].astype(str)
        covariates.index = covariates.index.astype(str)
        return frame.join(covariates, on="id").reset_index(drop=True)

    # -- report ------------------------------------------------------------------------------------
    def summary(self) -> str:
        """A short plain-text description: subjects, observations per observable, censoring."""
        obs = self.observations
        lines = [
            f"{self.path.name} ({self.kind} format) for model {self.model.name}: "
            f"{len(self.ids)} subjects, {len(obs)} observations, {len(self.doses)} dose rows, "
            f"{len(self.excluded)} rows excluded"
        ]
        lines += [f"  # {c}" for c in self.header_comments[:3]]
        for name, group in obs.groupby("observable", sort=False):
            n_cens = int(group["cens"].sum())
            lines.append(
                f"  {name} [{group['unit'].iloc[0]}]: {len(group)} records in "
                f"{group['id'].nunique()} subjects, days {group['time_days'].min():g}-"
                f"{group['time_days'].max():g}, {n_cens} below the limit "
                f"({100.0 * n_cens / len(group):.0f}%)"
            )
        below = obs[(obs["cens"] == 0) & (obs["value"] < obs["limit"])]
        if len(below):
            lines.append(
                f"  note: {len(below)} records with CENS=0 lie below their LIMIT (rows "
                f"{', '.join(str(r) for r in below['row'].head(5))}"
                f"{', ...' if len(below) > 5 else ''}): kept as observed values"
            )
        zeros = obs[(obs["cens"] == 0) & (obs["value"] == 0)]
        if len(zeros):
            lines.append(
                f"  note: {len(zeros)} records are 0 with CENS=0 (rows "
                f"{', '.join(str(r) for r in zeros['row'].head(5))}"
                f"{', ...' if len(zeros) > 5 else ''}): a log-scale error model cannot use them; "
                "an undetectable level is CENS=1 with the assay's LIMIT"
            )
        for (code, unit), name in self.rerouted.items():
            lines.append(f"  DVID {code} in {unit} -> {name} (the model's observable in that unit)")
        if len(self.excluded):
            for reason, n in self.excluded["reason"].value_counts().items():
                lines.append(f"  excluded: {n} x {reason}")
        if self.ignored_columns:
            lines.append(f"  columns not read: {', '.join(self.ignored_columns)}")
        return "\n".join(lines)


def _given(value) -> bool:
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return True
