"""SBML as a model format: read, write and import SBML Level 3 (docs/sbml.md).

- :mod:`~cartkin.models.sbml.read`, :mod:`~cartkin.models.sbml.write`: SBML <-> the small
  intermediate form of :mod:`~cartkin.models.sbml.ir` (math as sympy:
  :mod:`~cartkin.models.sbml.mathml`; units: :mod:`~cartkin.models.sbml.units`);
- :mod:`~cartkin.models.sbml.load`: an SBML file as a cartkin model
  (``cartkin.models.load("file.xml")``);
- :mod:`~cartkin.models.sbml.export`, :mod:`~cartkin.models.sbml.parts`: a model description for
  one patient as SBML (the patient side is :mod:`cartkin.export.sbml`, ``cartkin export``).
"""
