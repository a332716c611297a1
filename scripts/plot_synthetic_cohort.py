"""Draw the fit figures for the SYNTHETIC example cohort at its true parameters.

    python scripts/plot_synthetic_cohort.py [OUTDIR]      # default docs/figures

No fit is run: IPRED is the model at each patient's true parameters (synthetic_cohort_truth.csv),
PRED at the typical values, and the VPC replicates draw new patients from the generating
distribution (scripts/make_synthetic_cohort.py). The figures show what cartkin.fit.plots draws
from a predictions table, with the censored records of the file; a fit's figures look the same
with estimates in place of the truth.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import cartkin
from cartkin.data import example_path, read
from cartkin.fit import plots

sys.path.insert(0, str(Path(__file__).parent))
from make_synthetic_cohort import OMEGA2, SIGMA_LOG

N_REPLICATES = 100
SEED = 7


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    ds = read(example_path("synthetic_cohort.csv"), model="sle_cart_v1")
    truth = pd.read_csv(example_path("synthetic_cohort_truth.csv"), comment="#", dtype={"ID": str})
    truth = truth.set_index("ID")
    contexts = ds.contexts(cartkin.Regimen())
    model = ds.model
    typical = model.parameters.defaults()
    t_dense = np.linspace(0.0, 180.0, 361)
    rows, curves = [], []
    for pid in ds.ids:
        obs = ds.observations[ds.observations["id"] == pid]
        theta = {k: float(truth.loc[pid, k]) for k in OMEGA2}
        ind = cartkin.simulate_context(model, contexts[pid], t_dense, theta=theta)
        pop = cartkin.simulate_context(model, contexts[pid], t_dense, theta={})
        for name in obs["observable"].unique():
            curves.append(
                pd.DataFrame(
                    {"id": pid, "time": t_dense, "observable": name,
                     "ipred": ind.observables[name], "pred": pop.observables[name]}
                )
            )  # fmt: skip
        for rec in obs.itertuples():
            i = int(np.searchsorted(t_dense, rec.time_days))
            ipred = float(ind.observables[rec.observable][i])
            rows.append(
                {"id": pid, "time": rec.time_days, "observable": rec.observable, "dv": rec.value,
                 "pred": float(pop.observables[rec.observable][i]), "ipred": ipred,
                 "cens": rec.cens, "limit": rec.limit,
                 "res": math.nan if rec.cens else math.log(rec.value / max(ipred, 1e-12))}
            )  # fmt: skip
    pred = pd.DataFrame(rows)
    dense = pd.concat(curves)
    cart = "cart_cells_per_ul"
    figs = {
        "individual_fits": plots.plot_individual_fits(
            pred, curves=dense, observable=cart, ids=ds.ids[:12], unit="cells/uL"
        ),
        "observed_vs_predicted": plots.plot_observed_vs_predicted(pred, observable=cart),
        "residuals_vs_time": plots.plot_residuals_vs_time(pred, observable=cart),
    }
    sims = _replicates(ds, contexts, typical)
    figs["vpc"] = plots.plot_vpc(pred, sims, observable=cart)
    # doses (1e5-1e6/kg) and covariates differ within each time bin: correct for PRED too
    sims = sims.merge(
        pred.loc[pred["observable"] == cart, ["id", "time", "pred"]], on=["id", "time"]
    )
    figs["pcvpc"] = plots.plot_vpc(pred, sims, observable=cart, pred_corrected=True)
    for name, fig in figs.items():
        path = outdir / f"synthetic_{name}.png"
        fig.savefig(path, dpi=90)
        print(f"wrote {path}")


def _replicates(ds, contexts, typical):
    """New patients (same covariates and design) with random effects and residual error."""
    rng = np.random.default_rng(SEED)
    model = ds.model
    obs = ds.observations[ds.observations["observable"] == "cart_cells_per_ul"]
    out = []
    for r in range(N_REPLICATES):
        for pid in ds.ids:
            times = obs.loc[obs["id"] == pid, "time_days"].to_numpy()
            theta = {}
            for k, w in OMEGA2.items():
                par = model.parameters[k]
                v = typical[k] * math.exp(rng.normal(0, math.sqrt(w)))
                theta[k] = min(max(v, par.lower), par.upper)
            res = cartkin.simulate_context(model, contexts[pid], np.r_[0.0, times], theta=theta)
            level = res.observables["cart_cells_per_ul"][1:]
            noisy = level * np.exp(rng.normal(0, SIGMA_LOG["cart"], level.size))
            out.append(pd.DataFrame({"replicate": r, "id": pid, "time": times, "dv": noisy}))
    return pd.concat(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/figures"))
