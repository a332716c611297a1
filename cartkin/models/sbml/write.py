"""Write an :class:`~cartkin.models.sbml.ir.SbmlModel` as an SBML Level 3 Version 2 document."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import libsbml

from cartkin.models.sbml.ir import SbmlModel
from cartkin.models.sbml.mathml import math_ast
from cartkin.models.sbml.read import NAMESPACE
from cartkin.models.sbml.units import parse_unit, unit_definition_id

__all__ = ["sbml_string", "write_sbml"]

LEVEL, VERSION = 3, 2


def write_sbml(model: SbmlModel, path) -> Path:
    """Write ``model`` to ``path`` as SBML Level 3 Version 2; returns the path.

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    path = Path(path)
    path.write_text(sbml_string(model), encoding="utf-8")
    return path


def sbml_string(model: SbmlModel) -> str:
    """``model`` as SBML Level 3 Version 2 text.

    Raises
    ------
    ValueError
        If libSBML rejects a value (the message names the element), or the document has
        consistency errors (libSBML's messages quoted).
    """
    return _Writer(model).document()


def _check(status, what: str) -> None:
    if status != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise ValueError(f"libSBML refused {what}: {libsbml.OperationReturnValue_toString(status)}")


class _Writer:
    def __init__(self, ir: SbmlModel):
        self.ir = ir
        self.doc = libsbml.SBMLDocument(LEVEL, VERSION)
        self.model = self.doc.createModel()
        self.unit_ids: dict[str, str] = {}

    def document(self) -> str:
        ir, m = self.ir, self.model
        _check(m.setId(ir.id), f"the model id {ir.id!r}")
        if ir.name:
            m.setName(ir.name)
        if ir.notes:
            _check(m.setNotes(_notes(ir.notes)), "the model notes")
        m.setTimeUnits(self.unit("day") or "dimensionless")
        if ir.info:
            self.annotate(m, ir.info)
        for ent in ir.entities.values():
            self.entity(ent)
        for var, expr in ir.initial_assignments.items():
            ia = m.createInitialAssignment()
            ia.setSymbol(var)
            _check(ia.setMath(math_ast(expr, m)), f"the initial assignment of {var!r}")
        for var, expr in ir.assignment_rules.items():
            rule = m.createAssignmentRule()
            rule.setVariable(var)
            _check(rule.setMath(math_ast(expr, m)), f"the assignment rule of {var!r}")
        for var, expr in ir.rate_rules.items():
            rule = m.createRateRule()
            rule.setVariable(var)
            _check(rule.setMath(math_ast(expr, m)), f"the rate rule of {var!r}")
        for reaction in ir.reactions:
            self.reaction(reaction)
        for event in ir.events:
            self.event(event)
        errors = [
            self.doc.getError(k)
            for k in range(self.doc.checkInternalConsistency())
            if self.doc.getError(k).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
        ]
        if errors:
            first = "; ".join(" ".join(e.getMessage().split()) for e in errors[:3])
            raise ValueError(f"SBML export of {ir.id!r} is inconsistent: {first}")
        return libsbml.writeSBMLToString(self.doc)

    def unit(self, text: str) -> str:
        """The unit definition id of a cartkin unit string ("" if it cannot be expressed)."""
        if not text:
            return ""
        if text in self.unit_ids:
            return self.unit_ids[text]
        factors = parse_unit(text)
        if factors is None:
            self.unit_ids[text] = ""
            return ""
        if not factors:
            self.unit_ids[text] = "dimensionless"
            return "dimensionless"
        uid = unit_definition_id(text)
        while self.model.getUnitDefinition(uid) is not None:
            uid += "_"
        definition = self.model.createUnitDefinition()
        definition.setId(uid)
        definition.setName(text)
        for kind, scale, multiplier, exponent in factors:
            unit = definition.createUnit()
            unit.setKind(kind)
            unit.setScale(scale)
            unit.setMultiplier(multiplier)
            unit.setExponent(exponent)
        self.unit_ids[text] = uid
        return uid

    def annotate(self, element, info: dict[str, str]) -> None:
        attrs = " ".join(f"{k}={quoteattr(str(v))}" for k, v in info.items())
        xml = f'<cartkin:info xmlns:cartkin="{NAMESPACE}" {attrs}/>'
        _check(element.setAnnotation(xml), f"the annotation of {element.getId()!r}")

    def entity(self, ent) -> None:
        m = self.model
        if ent.kind == "compartment":
            el = m.createCompartment()
            el.setSpatialDimensions(3.0)
        elif ent.kind == "species":
            el = m.createSpecies()
            el.setCompartment(ent.compartment)
            el.setHasOnlySubstanceUnits(ent.amount)
            el.setBoundaryCondition(ent.boundary)
            if ent.conversion_factor:
                el.setConversionFactor(ent.conversion_factor)
        else:
            el = m.createParameter()
        _check(el.setId(ent.id), f"the id {ent.id!r}")
        el.setConstant(ent.constant)
        if ent.name:
            el.setName(ent.name)
        if ent.value is not None:
            if ent.kind == "compartment":
                el.setSize(float(ent.value))
            elif ent.kind == "species":
                if ent.amount:
                    el.setInitialAmount(float(ent.value))
                else:
                    el.setInitialConcentration(float(ent.value))
            else:
                el.setValue(float(ent.value))
        info = dict(ent.info)
        if ent.value is not None and repr(float(ent.value)) != f"{float(ent.value):.15g}":
            # libSBML writes 15 significant digits; the exact value rides in the annotation
            info["value"] = repr(float(ent.value))
        uid = self.unit(ent.units) if ent.units else ""
        if ent.units and (not uid or uid == "dimensionless"):
            info.setdefault("unit", ent.units)  # keep a string SBML units cannot express
        if uid:
            if ent.kind == "species":
                el.setSubstanceUnits(uid)  # a species' value unit is substance/size; see docs
            else:
                el.setUnits(uid)
        if info:
            self.annotate(el, info)

    def reaction(self, reaction) -> None:
        r = self.model.createReaction()
        _check(r.setId(reaction.id), f"the reaction id {reaction.id!r}")
        r.setReversible(False)
        for sid, nu in reaction.stoichiometry.items():
            ref = r.createReactant() if nu < 0 else r.createProduct()
            ref.setSpecies(sid)
            ref.setStoichiometry(abs(nu))
            ref.setConstant(True)
        law = r.createKineticLaw()
        _check(law.setMath(math_ast(reaction.rate, self.model)), f"the rate of {reaction.id!r}")

    def event(self, event) -> None:
        e = self.model.createEvent()
        _check(e.setId(event.id), f"the event id {event.id!r}")
        e.setUseValuesFromTriggerTime(event.use_values_from_trigger_time)
        trigger = e.createTrigger()
        trigger.setInitialValue(event.initial_value)
        trigger.setPersistent(event.persistent)
        _check(trigger.setMath(math_ast(event.trigger, self.model)), f"the trigger of {event.id!r}")
        for var, expr in event.assignments.items():
            ea = e.createEventAssignment()
            ea.setVariable(var)
            _check(ea.setMath(math_ast(expr, self.model)), f"event {event.id!r} on {var!r}")


def _notes(text: str) -> str:
    paragraphs = "".join(f"<p>{escape(p.strip())}</p>" for p in text.split("\n\n") if p.strip())
    return f'<body xmlns="http://www.w3.org/1999/xhtml">{paragraphs}</body>'
