"""Cross-check SBML export against libRoadRunner and the export -> import round trip.

For each model: export one patient with two CAR-T doses (day 0 and day 7; doses as SBML
events), simulate the file with libRoadRunner (CVODE, rtol 1e-12, atol 1e-14), and compare with
``cartkin.simulate`` of the original model and with ``model.solve`` of the file imported back
(both rodas5, rtol 1e-10, atol 1e-12; the imported model also at solve's default rtol 1e-8). Prints the largest relative difference per comparison,
``|a - b| / max(|b|, 1e-6 * max_t |b|)`` per state (as tests/test_sbml_models.py).

    python scripts/sbml_crosscheck.py [MODEL ...]     (default: stein2019 sle_cart_v1 cart4)
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cartkin
from cartkin import models
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import CarTDose, Regimen
from cartkin.export.sbml import sbml_text
from tests.sbml_tools import roadrunner_run
from tests.test_sbml_models import rel_diff


def check(name: str, t_days) -> dict[str, float]:
    model = models.load(name) if name.endswith(".py") else models.get(name)
    patient = Patient(weight_kg=62.0, height_cm=165.0, age_years=35.0, sex="female",
                      egfr_ml_min_173m2=85.0)  # fmt: skip
    regimen = Regimen(cart=CarTDose(cells_per_kg=1e6, days=(0.0, 7.0), fractions=(0.6, 0.4)))
    ref = cartkin.simulate(model, patient, regimen, t_days, rtol=1e-10, atol=1e-12)
    text = sbml_text(model, patient, regimen)
    obs = list(ref.observables)
    rr = roadrunner_run(text, t_days, [*model.state_symbols, *obs])
    n = model.n_states
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{model.name}.xml"
        path.write_text(text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imported = models.load(path)
        sol = imported.solve(t_days, rtol=1e-10, atol=1e-12)
        default = imported.solve(t_days)  # rtol 1e-8, atol 1e-10
    ref_obs = np.column_stack([ref.observables[o] for o in obs])
    imp_obs = imported.observe(sol.y, imported.kernel_vector())
    return {
        "roadrunner vs simulate, states": rel_diff(rr[:, :n], ref.states),
        "roadrunner vs simulate, observables": rel_diff(rr[:, n:], ref_obs),
        "roadrunner vs imported solve, states": rel_diff(sol.y, rr[:, :n]),
        "roadrunner vs imported solve at rtol 1e-8, states": rel_diff(default.y, rr[:, :n]),
        "round trip (imported solve vs simulate), states": rel_diff(sol.y, ref.states),
        "round trip, observables": rel_diff(np.column_stack([imp_obs[o] for o in obs]), ref_obs),
        "events in file": float(text.count("<event ")),
    }


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or ["stein2019", "sle_cart_v1", "cart4"]
    t = np.linspace(0.0, 120.0, 121)
    for name in names:
        print(name)
        for label, value in check(name, t).items():
            print(f"  {label:<52} {value:.2e}" if "events" not in label else f"  {label:<52} "
                  f"{int(value)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
