"""Patient covariates and regimens: what a model's inputs are computed from.

- :mod:`cartkin.covariates.patient`: :class:`Patient`, :class:`DialysisSchedule`.
- :mod:`cartkin.covariates.regimen`: :class:`Regimen` (lymphodepletion, CAR-T dose) and the
  per-patient :class:`Context` (:func:`build_context`).
- :mod:`cartkin.covariates.kidney`: kidney function (eGFR, CrCL), fludarabine clearance, dose
  rules and exposure; each formula written once over one number or an array of patients, with
  one-patient functions on top; :mod:`cartkin.covariates.kidney_batch` checks per-patient arrays
  and assembles a batch from those formulas; :mod:`cartkin.covariates.flu_pk` the closed-form
  3-compartment PK both use.
- :mod:`cartkin.covariates.context`: :class:`BatchContext`, the covariates, regimen and exposure
  of many patients as arrays (the input of every model's dosing).

Nothing here imports a model, the engine or the applications.
"""
