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
    table = predictions.assign(wres=predictions["res"] / 0.5)
    result = SimpleNamespace(
        predictions=table.to_dict("records"),
        profiles={"rho": {"value": list(x), "objective": list(10 + (x - 1.2) ** 2 * 20)}},
        estimates=[estimate],
    )
    paths = plots.write_figures(result, tmp_path / "figs", ids_per_page=3)
    names = sorted(p.name for p in paths)
    assert names == [
        "individual_fits_page01.png",  # 5 subjects, 3 per page: every one drawn
        "individual_fits_page02.png",
        "observed_vs_predicted_cart_cells_per_ul.png",
        "profiles.png",
        "residuals_vs_time_cart_cells_per_ul.png",
    ]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)


def _two_observables(predictions):
    b = predictions.assign(observable="b_cells_per_ul", dv=predictions["dv"] * 100,
                           pred=predictions["pred"] * 100, ipred=predictions["ipred"] * 100)  # fmt: skip
    return pd.concat([predictions, b], ignore_index=True)


def test_individual_fit_pages_draw_every_id_faceted_by_observable(predictions):
    table = _two_observables(predictions)
    pages = plots.individual_fit_pages(table, ids_per_page=2, ncols=2)
    assert len(pages) == 3  # 5 subjects, 2 per page
    titles = [ax.get_title() for fig in pages for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 10  # one panel per subject and observable
    for pid in predictions["id"].unique():
        assert f"ID {pid}: cart_cells_per_ul" in titles and f"ID {pid}: b_cells_per_ul" in titles
    assert "page 3 of 3" in pages[-1].get_suptitle()
    # each observable keeps its own y range (CAR-T and B cells never share an axis)
    ax_c, ax_b = pages[0].axes[0], pages[0].axes[2]
    assert "cart" in ax_c.get_title() and "b_cells" in ax_b.get_title()
    assert ax_b.get_ylim()[1] > 10 * ax_c.get_ylim()[1]


def test_write_figures_draws_dense_curves_over_the_whole_time_range(
    predictions, tmp_path, monkeypatch
):
    from types import SimpleNamespace

    t = np.linspace(0.0, 180.0, 241)
    dense = pd.DataFrame([{"id": pid, "time": x, "observable": "cart_cells_per_ul",
                           "pred": curve(x, 50.0, 1.0), "ipred": curve(x, 30.0, 1.0)}
                          for pid in predictions["id"].unique() for x in t])  # fmt: skip
    result = SimpleNamespace(predictions=predictions.to_dict("records"), curves=dense)
    drawn = {}
    original = plots.plot_individual_fits

    def spy(*args, **kwargs):
        fig = original(*args, **kwargs)
        drawn["lines"] = [len(line.get_xdata()) for ax in fig.axes for line in ax.get_lines()]
        return fig

    monkeypatch.setattr(plots, "plot_individual_fits", spy)
    monkeypatch.setattr(Figure, "savefig", lambda self, path, **kw: None)  # drawing only
    plots.write_figures(result, tmp_path, ids_per_page=16)
    assert drawn["lines"] and min(drawn["lines"]) == t.size  # the curves, not 9 visit times


def test_reference_lines_only_on_scaled_residuals(predictions):
    def dashed(fig):
        return [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]

    scaled = predictions.assign(wres=predictions["res"] / 0.5)
    fig = plots.plot_residuals_vs_time(scaled, residual="wres")
    assert sorted(line.get_ydata()[0] for line in dashed(fig)) == [-1.96, 1.96]
    assert "WRES" in fig.axes[0].get_ylabel()
    # an unscaled log residual gets no +/-1.96 lines (they would claim a 95% range it lacks)
    assert dashed(plots.plot_residuals_vs_time(predictions, residual="res")) == []


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


def test_population_gof_is_faceted_by_observable(predictions):
    from types import SimpleNamespace

    from cartkin.fit import popplot

    table = _two_observables(predictions)
    columns = {k: table[k].to_numpy() for k in ("id", "time", "observable", "dv", "pred",
                                                "ipred", "cens")}  # fmt: skip
    columns["iwres"] = (np.log(table["dv"]) - np.log(table["ipred"])).to_numpy() / 0.5
    fig = popplot.plot_gof(SimpleNamespace(columns=columns, model="test"))
    assert len(fig.axes) == 6  # one row of three panels per observable
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels[0] == "DV: cart_cells_per_ul" and labels[3] == "DV: b_cells_per_ul"
    # CAR-T and B cells never share an axis: each row spans its own observable's range
    assert fig.axes[3].get_ylim()[1] > 10 * fig.axes[0].get_ylim()[1]
