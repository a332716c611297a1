"""``cartkin export``: a model for one patient (a scenario's, or a representative one) as SBML.

:func:`model_ir` builds the patient's covariates and dose schedule and hands them to
:func:`cartkin.models.sbml.export.model_ir`, which keeps the model symbolic (table parameters
stay SBML parameters, derived entries become initial assignments of them). :func:`export_sbml`
writes the file.

Without a scenario the patient is :data:`REPRESENTATIVE` and the doses given at the start of the
simulation are part of the initial state; with one, every dose is an SBML event.
"""

from __future__ import annotations

from cartkin.covariates.context import BatchContext
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import CarTDose, Regimen, build_context
from cartkin.errors import ScenarioError
from cartkin.models.sbml.export import model_ir as patient_ir
from cartkin.models.sbml.ir import SbmlModel
from cartkin.models.sbml.write import sbml_string, write_sbml

__all__ = ["REPRESENTATIVE", "export_sbml", "model_ir", "sbml_text"]

#: The patient of an export without a scenario (assumption: a representative adult with
#: normal kidney function, not a patient of any study) and its regimen: cartkin's default
#: regimen, the Erlangen SLE lymphodepletion (fludarabine 25 mg/m2/day on days -5..-3,
#: cyclophosphamide 1000 mg/m2 on day -3) and 1e6 CAR-T cells/kg on day 0 (Mackensen A et al.,
#: Nat Med 2022;28:2124).
REPRESENTATIVE = {
    "patient": {
        "weight_kg": 70.0,
        "height_cm": 170.0,
        "age_years": 40.0,
        "sex": "female",
        "egfr_ml_min_173m2": 90.0,
    },
    "cart_cells_per_kg": 1e6,
}


def export_sbml(model, path, *, scenario=None, arm=None) -> SbmlModel:
    """Write ``model`` as SBML Level 3 Version 2 (``cartkin export``).

    Parameters
    ----------
    model : cartkin.models.Model
        Built from a Description (every built-in model is).
    path : str or Path
        File to write.
    scenario : str or Path, optional
        Scenario TOML: its patient, regimen and parameter overrides (the base arm, or ``arm``).
        Its model must be ``model``.
    arm : str, optional
        Label of a ``[[variant]]`` of the scenario.

    Returns
    -------
    SbmlModel
        What was written.
    """
    if scenario is None:
        ir = model_ir(model)
    else:
        from cartkin.scenario import load_scenario

        sc = load_scenario(scenario)
        if sc.model.name != model.name:
            raise ScenarioError(
                f"{scenario}: the scenario's model is {sc.model.name!r}, not {model.name!r}; "
                f"export it with `cartkin export {sc.model.name} --scenario {scenario}`"
            )
        chosen = sc.base
        if arm is not None:
            labels = [v.label for v in sc.arms]
            if arm not in labels:
                raise ScenarioError(f"{scenario}: no arm {arm!r}; arms: {', '.join(labels)}")
            chosen = sc.arms[labels.index(arm)]
        ir = model_ir(
            model, chosen.patient, chosen.regimen, chosen.theta, chosen.clearance_model,
            fold_start_doses=False, label=f"{sc.name} ({chosen.label})" if arm else sc.name,
        )  # fmt: skip
    write_sbml(ir, path)
    return ir


def sbml_text(model, *args, **kwargs) -> str:
    """:func:`model_ir` written as SBML text (same arguments)."""
    return sbml_string(model_ir(model, *args, **kwargs))


def _representative():
    patient = Patient(**REPRESENTATIVE["patient"])
    return patient, Regimen(cart=CarTDose(cells_per_kg=REPRESENTATIVE["cart_cells_per_kg"]))


def model_ir(
    model,
    patient=None,
    regimen=None,
    theta=None,
    clearance_model: str = "langenhorst2019",
    *,
    fold_start_doses: bool | None = None,
    label: str = "",
) -> SbmlModel:
    """The SBML intermediate form of ``model`` for one patient.

    Parameters
    ----------
    model : cartkin.models.Model
        Built from a Description.
    patient, regimen : optional
        :class:`cartkin.Patient` and :class:`cartkin.Regimen`; default :data:`REPRESENTATIVE`.
    theta : mapping, optional
        Parameter overrides (checked against the table).
    clearance_model : str
        Fludarabine clearance model for the patient's exposure.
    fold_start_doses : bool, optional
        Put the doses given at the start time into the initial state instead of events
        (default: True for the representative patient, False otherwise).
    label : str
        What the patient is, for the SBML notes.

    Returns
    -------
    SbmlModel
        See :func:`cartkin.models.sbml.export.model_ir`.
    """
    if patient is None and regimen is None:
        patient, regimen = _representative()
        fold = True if fold_start_doses is None else fold_start_doses
        label = label or "a representative adult (cartkin.export.sbml.REPRESENTATIVE)"
    elif patient is None or regimen is None:
        raise ValueError("model_ir: give both patient and regimen, or neither")
    else:
        fold = bool(fold_start_doses)
    bctx = BatchContext.from_contexts([build_context(patient, regimen, clearance_model)])
    return patient_ir(model, bctx, theta, fold_start_doses=fold, label=label)
