"""Re-derive sle_cart_v1's tuned parameters (rho_H, K_B) by fitting the published targets.

sle_cart_v1's ``rho_H`` and ``K_B`` (version 1 of sle_cart; version 2 is calibrated by
scripts/calibrate_sle_cart_v2.py) were set by hand so that the Erlangen scenario (adult, 1e6
CAR-T cells/kg after Flu/Cy, normal kidney function; scenarios/erlangen_sle_1e6.toml) gives

- a CAR-T peak between day 7 and 14 (Stein 2019 Table 1: Tmax 9.3 d; SLE peaks in that window,
  Mackensen 2022), and
- B-cell reappearance at 110 +/- 32 days (mean +/- SD, n = 5; Mackensen A et al., Nat Med
  2022;28:2124), read as the first return of B cells to >= 10 cells/uL (cartkin.metrics).

This script fits both with :mod:`cartkin.fit` (ML on the summary targets, 8 starts, seed 0,
profile-likelihood intervals) and writes the result to
``cartkin/models/calibration/sle_cart_v1.json`` so that a rerun reproduces it::

    python scripts/calibrate_sle_cart.py            # fit and write the JSON
    python scripts/calibrate_sle_cart.py --check    # fit and compare with the stored JSON

The fit is a scenario consistent with the published summaries, not an estimate: two summary
targets cannot pin two parameters when one of them is an interval; the JSON lists which
parameters the targets leave unidentified and the range each profile allows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "cartkin" / "models" / "calibration" / "sle_cart_v1.json"
MODEL = "sle_cart_v1"  # the scenario's model is sle_cart (v2); rho_H and K_B are v1's
SCENARIO = ROOT / "scenarios" / "erlangen_sle_1e6.toml"
TARGETS = [
    {"metric": "TMAX", "kind": "interval", "lower": 7.0, "upper": 14.0,
     "source": "Stein 2019 Table 1 (Tmax 9.3 d); SLE peak window, Mackensen 2022"},
    {"metric": "TRECOV", "kind": "normal", "mean": 110.0, "sd": 32.0, "threshold": 10.0,
     "source": "Mackensen 2022: B-cell reappearance 110 +/- 32 d (mean +/- SD, n=5)"},
]  # fmt: skip
FREE = ["rho_H", "K_B"]
STARTS, SEED = 8, 0


def calibrate() -> dict:
    """Fit ``FREE`` to ``TARGETS`` on the Erlangen scenario; the JSON-ready result."""
    sys.path.insert(0, str(ROOT))
    from cartkin import models
    from cartkin.covariates.regimen import build_context
    from cartkin.fit.estimate import fit
    from cartkin.scenario import load_scenario

    scenario = load_scenario(SCENARIO)
    arm = scenario.base
    ctx = build_context(arm.patient, arm.regimen, arm.clearance_model)
    model = models.get(MODEL)
    result = fit(model, {"erlangen": ctx}, None, FREE, targets=TARGETS, theta=arm.theta,
                 starts=STARTS, seed=SEED, horizon_days=float(scenario.t_days[-1]))  # fmt: skip
    out = result.to_dict()
    out.pop("predictions")
    out.pop("elapsed_s")
    defaults = model.parameters.defaults()
    out["table_defaults"] = {name: defaults[name] for name in FREE}
    out["scenario"] = str(SCENARIO.relative_to(ROOT))
    out["command"] = "python scripts/calibrate_sle_cart.py"
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the stored JSON instead of writing it")  # fmt: skip
    args = parser.parse_args(argv)
    out = calibrate()
    for name, e in out["estimates"].items():
        print(f"{name}: {e['value']:.4g} (profile 95% [{e['ci_low']}, {e['ci_high']}]; "
              f"table default {out['table_defaults'][name]:g}) {e['note']}")  # fmt: skip
    for t in out["target_values"]:
        print(f"{t['label']}: fitted {t['fitted']}")
    if args.check:
        stored = json.loads(OUT.read_text())
        worst = max(abs(out["estimates"][n]["value"] / stored["estimates"][n]["value"] - 1)
                    for n in FREE)  # fmt: skip
        print(f"largest relative difference from {OUT.name}: {worst:.2e}")
        return 0 if worst < 1e-3 else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
