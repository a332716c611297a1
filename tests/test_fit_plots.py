"""cartkin.fit.plots: one smoke test per figure, and censored records drawn as such."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cartkin.fit import plots

LLOQ = 0.05


def curve(t, peak, rate):
    """A rise-and-fall CAR-T-like curve (cells/uL) for test tables; not a model."""
    return peak * (t / 9.0) ** 2 * np.exp(2.0 * (1.0 - t / 9.0)) * np.exp(-rate * t / 50.0) + 1e-4


@pytest.fixture
def predictions():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(5):
        peak = 50.0 * np.exp(rng.normal(0, 0.8))
        for t in (1.0, 3.0, 7.0, 10.0, 14.0, 28.0, 56.0, 90.0, 180.0):
            pred = curve(t, 50.0, 1.0)
            ipred = curve(t, peak, 1.0)
            dv = ipred * np.exp(rng.normal(0, 0.5))
            cens = int(dv < LLOQ)
            rows.append(
                {
                    "id": str(i + 1),
                    "time": t,
                    "observable": "cart_cells_per_ul",
                    "dv": LLOQ if cens else dv,
                    "pred": pred,
                    "ipred": ipred,
                    "cens": cens,
                    "limit": LLOQ,
                    "res": np.nan if cens else np.log(dv) - np.log(ipred),
                }
            )
    frame = pd.DataFrame(rows)
    assert 0 < frame["cens"].sum() < len(frame)
    return frame


def arrows(fig):
    return sum(
        1
        for ax in fig.axes
        for child in ax.get_children()
        if isinstance(child, matplotlib.text.Annotation)
    )


def render(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=50)
    assert path.stat().st_size > 1000
    return fig


def test_individual_fits(predictions, tmp_path):
    dense = pd.DataFrame(
        [
            {"id": pid, "time": t, "observable": "cart_cells_per_ul", "ipred": curve(t, 30, 1)}
            for pid in predictions["id"].unique()
            for t in np.linspace(0.5, 180, 60)
        ]
    )
    fig = render(plots.plot_individual_fits(predictions, curves=dense, ncols=3), tmp_path, "ind")
    assert isinstance(fig, Figure)
    assert sum(ax.get_visible() for ax in fig.axes) == 5
    assert arrows(fig) == predictions["cens"].sum()  # one downward arrow per censored record
    assert fig.axes[0].get_yscale() == "log"


def test_individual_fits_unknown_observable(predictions):
    with pytest.raises(ValueError, match="observable 'b_cells' not in the table"):
        plots.plot_individual_fits(predictions, observable="b_cells")


def test_observed_vs_predicted(predictions, tmp_path):
    fig = render(plots.plot_observed_vs_predicted(predictions), tmp_path, "ovp")
    assert [ax.get_xlabel() for ax in fig.axes] == ["PRED", "IPRED"]
    assert arrows(fig) == 2 * predictions["cens"].sum()


def test_residuals_vs_time(predictions, tmp_path):
    fig = render(plots.plot_residuals_vs_time(predictions), tmp_path, "res")
    assert fig.axes[0].get_xlabel() == "days after CAR-T infusion"
    with pytest.raises(ValueError, match="no column 'cwres'"):
        plots.plot_residuals_vs_time(predictions, residual="cwres")


def test_profiles(tmp_path):
    x = np.linspace(0.5, 2.0, 21)
    profiles = {
        "rho": {"value": x, "objective": 100 + ((x - 1.2) / 0.2) ** 2},
        "delta_M": pd.DataFrame({"value": np.geomspace(1e-3, 1, 15), "objective": 50.0}),
        "k_EM": {
            "ci_low": None,
            "flag": "flat",
            "curve": {"value": [0.1, 1.0], "objective": [3, 3]},
        },
    }
    fig = render(
        plots.plot_profiles(
            profiles,
            estimates={"rho": 1.2},
            intervals={"rho": (0.81, 1.59), "delta_M": (np.nan,) * 2},
        ),
        tmp_path,
        "prof",
    )
    threshold = [
        line.get_ydata()[0] for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"
    ]
    assert threshold == [pytest.approx(3.841, abs=1e-3)]
    assert fig.axes[1].get_xscale() == "log"  # values spanning three decades


def test_vpc(predictions, tmp_path):
    rng = np.random.default_rng(5)
    design = predictions[["time", "pred"]]
    sims = pd.concat(
        [
            design.assign(replicate=r, dv=design["pred"] * np.exp(rng.normal(0, 0.9, len(design))))
            for r in range(50)
        ]
    )
    fig = render(plots.plot_vpc(predictions, sims), tmp_path, "vpc")
    assert len(fig.axes) == 2  # percentiles and the fraction below the limit
    assert "50 replicates" in fig.axes[0].get_title()


def test_vpc_needs_replicates(predictions):
    with pytest.raises(ValueError, match="'replicate' column"):
        plots.plot_vpc(predictions, predictions)


def test_write_figures_from_a_fit_result_like_object(predictions, tmp_path):
    from types import SimpleNamespace

    x = np.linspace(0.5, 2.0, 11)
    estimate = SimpleNamespace(name="rho", value=1.2, ci_low=0.9, ci_high=None)
    result = SimpleNamespace(
        predictions=predictions.to_dict("records"),
        profiles={"rho": {"value": list(x), "objective": list(10 + (x - 1.2) ** 2 * 20)}},
        estimates=[estimate],
    )
    paths = plots.write_figures(result, tmp_path / "figs", max_ids=3)
    names = sorted(p.name for p in paths)
    assert names == [
        "individual_fits_cart_cells_per_ul.png",
        "observed_vs_predicted_cart_cells_per_ul.png",
        "profiles.png",
        "residuals_vs_time_cart_cells_per_ul.png",
    ]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)


def test_pred_corrected_vpc_equals_vpc_when_pred_is_constant_in_each_bin(predictions, tmp_path):
    rng = np.random.default_rng(9)
    obs = predictions.copy()
    obs["pred"] = obs["time"].map(lambda t: curve(t, 50.0, 1.0))  # one PRED per nominal time
    sims = pd.concat(
        [
            obs[["time", "pred"]].assign(
                replicate=r, dv=obs["pred"] * np.exp(rng.normal(0, 0.9, len(obs)))
            )
            for r in range(30)
        ]
    )
    plain = plots.plot_vpc(obs, sims)
    corrected = render(plots.plot_vpc(obs, sims, pred_corrected=True), tmp_path, "pcvpc")
    assert corrected.axes[0].get_title().startswith("pcVPC")

    def observed_lines(fig):
        return [
            line.get_ydata()
            for line in fig.axes[0].get_lines()
            if str(line.get_label()).startswith("observed")
        ]

    for a, b in zip(observed_lines(plain), observed_lines(corrected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(ValueError, match="pred_corrected=True needs a 'pred' column"):
        plots.plot_vpc(obs, sims.drop(columns="pred"), pred_corrected=True)
