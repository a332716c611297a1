"""Read an SBML file into an :class:`~cartkin.models.sbml.ir.SbmlModel`.

Read: compartments, species, parameters (with units), initial assignments, assignment and rate
rules, reactions with kinetic laws (local parameters substituted) and constant stoichiometry,
function definitions (expanded), conversion factors, and events without delay or priority.
Level 1 and 2 files are converted to Level 3 Version 2 first.

Refused with a :class:`~cartkin.errors.ScenarioError` naming the file and the element:
algebraic rules, fast reactions, event delays and priorities, stoichiometry that varies,
math using delay(), rateOf(), quotient() or rem(), and required SBML packages (comp, ...).
Constraints do not change a simulation and are ignored.
"""

from __future__ import annotations

from pathlib import Path

import libsbml
import sympy

from cartkin.errors import ScenarioError
from cartkin.models.sbml.ir import Entity, Event, Reaction, SbmlModel
from cartkin.models.sbml.mathml import UnsupportedMath, ast_to_sympy, number
from cartkin.models.sbml.units import unit_text

__all__ = ["NAMESPACE", "read_info", "read_sbml"]

#: XML namespace of cartkin's own annotations (bounds, sources, descriptions, roles).
NAMESPACE = "urn:cartkin:sbml:1"


def read_sbml(source) -> SbmlModel:
    """Parse an SBML file (or an SBML string) into an :class:`SbmlModel`.

    Parameters
    ----------
    source : str or Path
        A path to an ``.xml``/``.sbml`` file, or the SBML text itself (a string that starts
        with ``<``).

    Returns
    -------
    SbmlModel

    Raises
    ------
    ScenarioError
        The file does not exist, is not valid SBML (libSBML's first errors are quoted), or uses
        an element cartkin does not translate (the message names it).
    """
    text = str(source)
    if text.lstrip().startswith("<"):
        where = "<SBML string>"
        doc = libsbml.readSBMLFromString(text)
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise ScenarioError(f"{path}: no such SBML file")
        doc = libsbml.readSBMLFromFile(str(path))
    _check_errors(doc, where)
    model = doc.getModel()
    if model is None:
        raise ScenarioError(f"{where}: the SBML document has no <model>")
    namespaces = doc.getNamespaces()
    for k in range(namespaces.getNumNamespaces()):
        uri = namespaces.getURI(k)
        core = doc.getSBMLNamespaces().getURI()
        if "/level3/" in uri and uri != core and doc.getPackageRequired(uri):
            raise ScenarioError(
                f"{where}: the model requires the SBML package {namespaces.getPrefix(k)!r} "
                f"({uri}), which cartkin does not read (SBML Level 3 Core only)"
            )
    if doc.getLevel() < 3:
        if not doc.setLevelAndVersion(3, 2, False):
            _check_errors(doc, where)
            raise ScenarioError(f"{where}: converting the Level {doc.getLevel()} file to L3 failed")
        model = doc.getModel()
    props = libsbml.ConversionProperties()
    props.addOption("expandFunctionDefinitions", True)
    if (
        model.getNumFunctionDefinitions()
        and doc.convert(props) != libsbml.LIBSBML_OPERATION_SUCCESS
    ):
        raise ScenarioError(f"{where}: expanding the function definitions failed")
    model = doc.getModel()
    return _Reader(model, where).read()


def _check_errors(doc, where: str) -> None:
    errors = [
        doc.getError(k)
        for k in range(doc.getNumErrors())
        if doc.getError(k).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]
    if errors:
        first = "; ".join(
            f"line {e.getLine()}: {' '.join(e.getMessage().split())}" for e in errors[:3]
        )
        raise ScenarioError(f"{where}: not valid SBML ({len(errors)} error(s)): {first}")


def read_info(element) -> dict[str, str]:
    """The attributes of the cartkin annotation of an SBML element (empty dict if none)."""
    if not element.isSetAnnotation():
        return {}
    node = element.getAnnotation()
    for k in range(node.getNumChildren()):
        child = node.getChild(k)
        if child.getURI() == NAMESPACE:
            attrs = child.getAttributes()
            return {attrs.getName(i): attrs.getValue(i) for i in range(attrs.getLength())}
    return {}


def _value(value: float | None, info: dict[str, str]) -> float | None:
    """``value``, or the exact one of the cartkin annotation when it rounds to it (libSBML
    writes 15 significant digits; a value edited since does not match and wins)."""
    if value is None or "value" not in info:
        return value
    exact = float(info["value"])
    return exact if abs(exact - value) <= 1e-13 * abs(value) else value


class _Reader:
    def __init__(self, model, where: str):
        self.model = model
        self.where = where

    def fail(self, message: str) -> ScenarioError:
        return ScenarioError(f"{self.where}: {message}")

    def math(self, math, what: str) -> sympy.Basic:
        if math is None:
            raise self.fail(f"{what} has no math")
        try:
            return ast_to_sympy(math)
        except UnsupportedMath as exc:
            raise self.fail(f"{what} {exc}") from None
        except (TypeError, ValueError) as exc:  # e.g. a piecewise condition that is a number
            text = libsbml.formulaToL3String(math)
            raise self.fail(
                f"{what} ({text}) cannot be read: {' '.join(str(exc).split())}"
            ) from None

    def units(self, element) -> str:
        info = read_info(element)
        if "unit" in info:
            return info["unit"]
        return unit_text(self.model, element.getUnits()) if element.isSetUnits() else ""

    def read(self) -> SbmlModel:
        m = self.model
        out = SbmlModel(
            id=m.getId() or Path(self.where).stem,
            name=m.getName(),
            notes=m.getNotesString() if m.isSetNotes() else "",
            conversion_factor=m.getConversionFactor() if m.isSetConversionFactor() else "",
            info=read_info(m),
            source=self.where,
        )
        for c in m.getListOfCompartments():
            out.entities[c.getId()] = Entity(
                c.getId(), "compartment",
                _value(c.getSize() if c.isSetSize() else None, read_info(c)),
                c.getConstant(), self.units(c), c.getName(), info=read_info(c),
            )  # fmt: skip
        for s in m.getListOfSpecies():
            out.entities[s.getId()] = self.species(s, out)
        for p in m.getListOfParameters():
            out.entities[p.getId()] = Entity(
                p.getId(), "parameter",
                _value(p.getValue() if p.isSetValue() else None, read_info(p)),
                p.getConstant(), self.units(p), p.getName(), info=read_info(p),
            )  # fmt: skip
        for ia in m.getListOfInitialAssignments():
            sym = ia.getSymbol()
            if sym not in out.entities:
                raise self.fail(
                    f"the initial assignment of {sym!r} sets a species reference or an unknown "
                    "id; cartkin supports initial assignments of compartments, species and "
                    "parameters only"
                )
            out.initial_assignments[sym] = self.math(
                ia.getMath(), f"the initial assignment of {sym!r}"
            )
        for k, rule in enumerate(m.getListOfRules()):
            var = rule.getVariable() if not rule.isAlgebraic() else ""
            if rule.isAlgebraic():
                formula = libsbml.formulaToL3String(rule.getMath()) if rule.isSetMath() else ""
                label = rule.getMetaId() or f"number {k + 1}"
                raise self.fail(
                    f"algebraic rule {label} (0 = {formula}) is not supported: cartkin solves "
                    "ordinary differential equations (rate rules, assignment rules, reactions)"
                )
            if var not in out.entities:
                raise self.fail(
                    f"a rule sets {var!r}, which is not a compartment, species or parameter"
                )
            what = f"the {'rate' if rule.isRate() else 'assignment'} rule of {var!r}"
            if var in out.rate_rules or var in out.assignment_rules:
                raise self.fail(f"{var!r} has more than one rule")
            target = out.rate_rules if rule.isRate() else out.assignment_rules
            target[var] = self.math(rule.getMath(), what)
        for r in m.getListOfReactions():
            out.reactions.append(self.reaction(r, out))
        for e in m.getListOfEvents():
            out.events.append(self.event(e, out))
        return out

    def species(self, s, out) -> Entity:
        sid = s.getId()
        comp = s.getCompartment()
        amount = s.getHasOnlySubstanceUnits()
        value = None
        info = read_info(s)
        if s.isSetInitialConcentration():
            value = _value(s.getInitialConcentration(), info)
            if amount:  # stored as amount = concentration * size
                out.initial_assignments.setdefault(sid, number(value) * sympy.Symbol(comp))
                value = None
        elif s.isSetInitialAmount():
            value = _value(s.getInitialAmount(), info)
            if not amount:  # reported as concentration = amount / size
                out.initial_assignments.setdefault(sid, number(value) / sympy.Symbol(comp))
                value = None
        return Entity(
            sid, "species", value, s.getConstant(), self.units(s), s.getName(), compartment=comp,
            amount=amount, boundary=s.getBoundaryCondition(),
            conversion_factor=s.getConversionFactor() if s.isSetConversionFactor() else "",
            info=read_info(s),
        )  # fmt: skip

    def reaction(self, r, out) -> Reaction:
        rid = r.getId()
        if r.isSetFast() and r.getFast():
            raise self.fail(
                f"reaction {rid!r} is fast (fast='true'); cartkin does not support fast reactions"
            )
        law = r.getKineticLaw()
        if law is None or not law.isSetMath():
            raise self.fail(f"reaction {rid!r} has no kinetic law")
        rate = self.math(law.getMath(), f"the kinetic law of reaction {rid!r}")
        local = {
            sympy.Symbol(lp.getId()): number(lp.getValue()) for lp in law.getListOfLocalParameters()
        }
        rate = rate.xreplace(local) if local else rate
        stoich: dict[str, float] = {}
        for sign, refs in ((-1.0, r.getListOfReactants()), (1.0, r.getListOfProducts())):
            for ref in refs:
                sid = ref.getSpecies()
                if sid not in out.entities:
                    raise self.fail(f"reaction {rid!r} refers to an unknown species {sid!r}")
                if ref.isSetId() and (
                    not ref.getConstant()
                    or self.model.getInitialAssignment(ref.getId()) is not None
                    or self.model.getRule(ref.getId()) is not None
                ):
                    raise self.fail(
                        f"reaction {rid!r}: the stoichiometry {ref.getId()!r} of {sid!r} varies "
                        "or is computed; cartkin supports constant stoichiometry only"
                    )
                nu = ref.getStoichiometry() if ref.isSetStoichiometry() else 1.0
                stoich[sid] = stoich.get(sid, 0.0) + sign * nu
        return Reaction(rid, rate, stoich)

    def event(self, e, out) -> Event:
        eid = e.getId() or e.getMetaId() or f"number {self.model.getListOfEvents().index(e) + 1}"
        if e.isSetDelay():
            raise self.fail(f"event {eid!r} has a delay; cartkin maps events without delay only")
        if e.isSetPriority():
            raise self.fail(
                f"event {eid!r} has a priority; cartkin maps events without priority only"
            )
        trigger = e.getTrigger()
        if trigger is None or not trigger.isSetMath():
            raise self.fail(f"event {eid!r} has no trigger")
        assignments = {}
        for ea in e.getListOfEventAssignments():
            var = ea.getVariable()
            if var not in out.entities:
                raise self.fail(
                    f"event {eid!r} assigns {var!r}, which is not a compartment, "
                    "species or parameter"
                )
            assignments[var] = self.math(ea.getMath(), f"event {eid!r} (assignment of {var!r})")
        return Event(
            eid,
            self.math(trigger.getMath(), f"the trigger of event {eid!r}"),
            assignments,
            initial_value=trigger.getInitialValue() if trigger.isSetInitialValue() else True,
            persistent=trigger.getPersistent() if trigger.isSetPersistent() else True,
            use_values_from_trigger_time=e.getUseValuesFromTriggerTime()
            if e.isSetUseValuesFromTriggerTime()
            else True,
        )
