"""``cartkin export``: models in exchange formats (SBML Level 3: :mod:`cartkin.export.sbml`)."""
