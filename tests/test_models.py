"""The built-in models against their documented equations (oracle in tests/reference.py)."""

import functools
import inspect
import math
import re

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

import cartkin
from cartkin import models
from cartkin.covariates.patient import Patient
from cartkin.covariates.regimen import CarTDose, Lymphodepletion, Regimen, build_context
from cartkin.errors import ScenarioError
from cartkin.models import Individual, Model, Observable, State, sle_cart_v1, stein2019
from cartkin.parameters import Parameter, ParameterTable


def erlangen_context(cells_per_kg=1e6, egfr=100.0, flu_mg_m2=25.0, days=(0.0,)):
    patient = Patient(
        weight_kg=70.0, height_cm=170.0, age_years=22.0, sex="female", egfr_ml_min_173m2=egfr
    )
    regimen = Regimen(
        lymphodepletion=Lymphodepletion(flu_mg_m2_per_day=flu_mg_m2),
        cart=CarTDose(cells_per_kg=cells_per_kg, days=days),
    )
    return build_context(patient, regimen)


# -- registry ---------------------------------------------------------------------------------
def test_registry_lists_builtins_and_suggests_names():
    assert models.available()[:3] == ["sle_cart", "stein2019", "sle_cart_v1"]
    assert models.get("sle_cart_v1") is cartkin.models.get("sle_cart_v1")
    assert models.get("stein2019") is cartkin.models.get("stein2019")
    assert models.get(cartkin.models.get("sle_cart")) is cartkin.models.get("sle_cart")
    with pytest.raises(ValueError, match="Did you mean 'sle_cart'"):
        models.get("sle_car")
    with pytest.raises(ValueError, match="built-in"):
        models.unregister("stein2019")


def test_register_user_model_by_name():
    table = ParameterTable([Parameter("k", 0.2, "1/day", 0.0, 1.0, "decay", "assumption: test")])

    def individualize(values, ctx):
        return Individual(np.array([values["k"]]), np.array([1.0]), np.zeros(0), np.zeros((0, 1)))

    user = Model(
        name="user_decay",
        description="one-state decay",
        states=[State("cart", "C", "cells/uL", "CAR-T")],
        parameters=table,
        observables=[Observable("cart_cells_per_ul", "cells/uL", "C", lambda s, p: s[:, 0])],
        rhs=cartkin.models.get("stein2019").rhs,
        individualize=individualize,
        roles={"cart": "cart_cells_per_ul"},
        equations="dC = -k * C",
    )
    try:
        models.register(user)
        assert models.get("user_decay") is user
        assert "user_decay" in models.available()
        with pytest.raises(ValueError, match="already registered"):
            models.register(user)
        ind = user.individualize({"k": 0.5}, ctx=None)
        assert ind.p.tolist() == [0.5]
    finally:
        models.unregister("user_decay")
    assert "user_decay" not in models.available()


def test_model_rejects_unknown_role_and_missing_observable():
    m = cartkin.models.get("stein2019")
    kwargs = dict(
        name="x",
        description="",
        states=m.states,
        parameters=m.parameters,
        observables=m.observables,
        rhs=m.rhs,
        individualize=lambda v, c: None,
        equations="",
    )
    with pytest.raises(ValueError, match="Did you mean 'b_cells'"):
        Model(**kwargs, roles={"cart": "cart_cells_per_ul", "b_cell": None})
    with pytest.raises(ValueError, match="does not have"):
        Model(**kwargs, roles={"cart": "cart_cells"})


# -- the code is the documented model -----------------------------------------------------------
BUILTIN = ("sle_cart", "sle_cart_v2", "sle_cart_v1", "stein2019", "cart4")


def _generated_rhs(name):
    text = inspect.getsource(cartkin.models.get(name).generated)
    return text[text.index("def rhs(") : text.index("def jac(")]


@pytest.mark.parametrize("name", BUILTIN)
def test_kernel_indices_match_parameter_names(name):
    """Every ``name = _p[k]`` in the generated rhs reads the entry called ``name``."""
    source = _generated_rhs(name)
    reads = re.findall(r"^\s+(\w+) = _p\[(\d+)\]$", source, flags=re.M)
    assert len(reads) >= 2
    names = cartkin.models.get(name).kernel_names
    for var, index in reads:
        assert names[int(index)] == var, f"p[{index}] is {names[int(index)]}, read as {var}"


@pytest.mark.parametrize("name", BUILTIN)
def test_documented_equations_are_the_code(name):
    """Every equation line of the description is a line of the generated rhs, as written."""
    from cartkin.kernel.codegen import kernel_code

    code_lines = [line.strip() for line in _generated_rhs(name).splitlines()]
    d = cartkin.models.get(name).description_
    for line in d.intermediates:
        assert f"{line.name} = {kernel_code(line.expression)}" in code_lines
    for k, s in enumerate(d.state_symbols):
        assert f"_dydt[{k}] = {kernel_code(d.rates[s].expression)}" in code_lines


@pytest.mark.parametrize("name", BUILTIN)
def test_every_default_names_a_source(name):
    model = cartkin.models.get(name)
    for par in model.parameters:
        src = par.source.lower()
        assert (
            src.startswith("assumption")
            or src.startswith("derived")
            or re.search(r"\b(19|20)\d\d\b", src)
        ), par
        assert par.lower <= par.default <= par.upper
    md = model.parameters.to_markdown()
    assert md.count("\n") == len(model.parameters) + 2


def test_published_values_are_not_labelled_assumptions():
    table = sle_cart_v1.PARAMETERS
    assert table["r_N"].source == "Kimmel 2021" and table["K_N"].source == "Kimmel 2021"
    assert table["k_IL6_ref"].source.startswith("Hardiansyah & Ng 2019")
    assert table["delta_B"].default == pytest.approx(1 / 60)
    assert table["rho"].is_assumption and table["K_B"].is_assumption
    stein = stein2019.PARAMETERS
    assert [stein[n].default for n in ("cmax", "foldx", "tmax", "alpha", "fb", "beta")] == [
        24000.0,
        3900.0,
        9.3,
        0.16,
        0.0079,
        0.0032,
    ]
    assert all(stein[n].source == "Stein 2019, Table 1" for n in ("cmax", "alpha", "beta"))


# -- rhs vs oracle ----------------------------------------------------------------------------
@functools.cache
def _individual_for_rhs():
    return cartkin.models.get("sle_cart_v1").individualize({"K_B": 50.0, "p_IL6": 0.5}, erlangen_context())


positive = st.floats(min_value=0.0, max_value=1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(y=st.lists(positive, min_size=7, max_size=7), t=st.floats(0.0, 300.0))
def test_sle_cart_v1_rhs_matches_oracle(y, t):
    ind = _individual_for_rhs()
    q = cartkin.models.get("sle_cart_v1").kernel_values(ind.p)
    dydt = np.empty(7)
    cartkin.models.get("sle_cart_v1").rhs(t, np.array(y), ind.p, dydt)
    expected = ref.sle_cart_derivatives(t, y, q)
    np.testing.assert_allclose(dydt, expected, rtol=1e-12, atol=1e-12)


def test_sle_cart_v1_initial_state_and_dose_match_oracle_algebra():
    ctx = erlangen_context(days=(0.0, 2.0))
    ind = cartkin.models.get("sle_cart_v1").individualize(None, ctx)
    q = sle_cart_v1.PARAMETERS.defaults()
    ld = ref.sle_cart_lymphodepletion(q, ctx.flu_auc_mg_h_per_l, 1000.0)
    assert 0.0 < ld < 1.0
    k_il6 = ind.p[cartkin.models.get("sle_cart_v1").kernel_names.index("k_IL6")]
    assert k_il6 == pytest.approx(3.96)  # eGFR 100 is the reference
    expected_y0 = [0, 0, 500 * (1 - ld), 150 * (1 - ld), ld, 5.0, 100.0]
    np.testing.assert_allclose(ind.y0, expected_y0, rtol=1e-12)
    # half the dose on day 0 and on day 2: 0.5 * 7e7 cells / (0.07 * 70 * 1e6 uL) * 0.011
    assert ind.t_stops.tolist() == [0.0, 2.0]
    np.testing.assert_allclose(ind.jumps[:, 0], 0.5 * 7e7 / 4.9e6 * 0.011, rtol=1e-12)
    assert np.all(ind.jumps[:, 1:] == 0.0)


def test_v1_kidney_failure_raises_baseline_il6_and_slows_its_elimination():
    normal = cartkin.models.get("sle_cart_v1").individualize(None, erlangen_context(egfr=100.0))
    failing = cartkin.models.get("sle_cart_v1").individualize(None, erlangen_context(egfr=10.0))
    k = cartkin.models.get("sle_cart_v1").kernel_names.index("k_IL6")
    assert failing.p[k] == pytest.approx(3.96 * (0.6 + 0.4 * 0.1))
    assert failing.y0[5] > normal.y0[5] == pytest.approx(5.0)
    # lower eGFR -> more fludarabine exposure -> deeper lymphodepletion
    assert failing.y0[4] > normal.y0[4]


def test_stein_rhs_and_individualize():
    ctx = erlangen_context(days=(1.0,))
    ind = cartkin.models.get("stein2019").individualize({"tmax": 10.0}, ctx)
    q = cartkin.models.get("stein2019").kernel_values(ind.p)
    assert q["rho"] == pytest.approx(math.log(3900) / 10.0)
    assert ind.t_stops.tolist() == [1.0, 11.0]
    c0 = 24000 / 3900
    np.testing.assert_allclose(ind.jumps, [[(1 - 0.0079) * c0, 0.0079 * c0, 0], [0, 0, 1]])
    d = np.empty(3)
    cartkin.models.get("stein2019").rhs(5.0, np.array([2.0, 3.0, 0.0]), ind.p, d)
    np.testing.assert_allclose(d, [q["rho"] * 2, q["rho"] * 3, 0])
    # the phase flag, not t, selects the branch
    cartkin.models.get("stein2019").rhs(5.0, np.array([2.0, 3.0, 1.0]), ind.p, d)
    np.testing.assert_allclose(d, [-0.16 * 2, -0.0032 * 3, 0])


def test_overrides_are_validated():
    ctx = erlangen_context()
    with pytest.raises(ScenarioError, match="Did you mean 'delta_M'"):
        cartkin.models.get("sle_cart").individualize({"delta_m": 0.1}, ctx)
    with pytest.raises(ScenarioError, match="outside its plausible bounds"):
        cartkin.models.get("sle_cart").individualize({"rho": 50.0}, ctx)


def test_observables_and_roles():
    m = cartkin.models.get("sle_cart_v1")
    states = np.array([[1.0, 3.0, 36.0, 5.0, 0.1, 7.0, 50.0]])
    p = m.individualize(None, erlangen_context()).p
    obs = m.observe(states, p)
    assert obs["cart_cells_per_ul"][0] == 4.0
    assert obs["cart_percent_of_t_cells"][0] == pytest.approx(10.0)
    assert obs["transgene_copies_per_ug"][0] == pytest.approx(8000.0)
    assert obs["b_cells_per_ul"][0] == 5.0
    for role in ("cart", "b_cells", "il6", "anti_dsdna"):
        assert m.roles[role] in obs
    s = cartkin.models.get("stein2019")
    so = s.observe(np.array([[3000.0, 1000.0, 1.0]]), s.individualize(None, erlangen_context()).p)
    assert so["cart_cells_per_ul"][0] == pytest.approx(2.0)
    assert s.roles["b_cells"] is None


def test_v1_observe_roles_equals_the_observables():
    from cartkin.models import ROLES

    m = cartkin.models.get("sle_cart_v1")
    p = m.individualize(None, erlangen_context()).p
    y = np.array([1.0, 3.0, 36.0, 5.0, 0.1, 7.0, 50.0])
    out = np.empty(len(ROLES))
    cartkin.models.get("sle_cart_v1").observe_roles(y, p, out)
    obs = m.observe(y[None, :], p)
    for j, role in enumerate(ROLES):
        if m.roles[role] is None:
            assert np.isnan(out[j]), role
        else:
            assert out[j] == pytest.approx(obs[m.roles[role]][0], rel=1e-12), role
