"""Property-based fuzzing: every mutant of a shipped scenario runs cleanly or fails in one line.

Each example takes a shipped scenario, applies one to three mutations (a value replaced by a
wrong type, a negative, NaN/inf, a huge or nested value; a key deleted or an unknown key added;
the file re-encoded or corrupted) and runs the CLI in-process. The property: exit 0 with finite,
non-negative trajectories in the CSV, or exit 1/2 with one line on stderr that names the file
and no traceback. The same for ``solve_ode`` argument shapes. ``CORPUS`` keeps past failures
(issue 10) as regression cases.

Default run: a few dozen examples (under a minute); ``-m slow`` runs a longer profile.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cartkin
from cartkin.cli import main
from cartkin.models import cart4
from cartkin.ode import Status, solve_ode

ROOT = Path(__file__).parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
BASE = {p.name: tomllib.loads(p.read_text(encoding="utf-8")) for p in SCENARIOS}

FAST = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- a small TOML writer (tomllib only reads) ------------------------------------------------


def _toml_str(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = repr(v)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_str(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(data: dict) -> str:
    """TOML text for ``data``: top-level tables as [sections], everything below inline."""
    lines = [
        f"{_toml_str(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)
    ]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{_toml_str(key)}]")
            lines += [f"{_toml_str(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_writer_round_trips_every_shipped_scenario():
    for data in BASE.values():
        assert tomllib.loads(to_toml(data)) == data


# -- mutations -------------------------------------------------------------------------------


def _slots(data, prefix=()):
    """Paths to every value and table (tables first so that whole sections can be hit)."""
    for key, value in data.items():
        path = (*prefix, key)
        yield path
        if isinstance(value, dict):
            yield from _slots(value, path)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield (*path, i)
                if isinstance(item, dict):
                    yield from _slots(item, (*path, i))


def _parent(data, path):
    node = data
    for key in path[:-1]:
        node = node[key]
    return node


def _nested(depth):
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


WEIRD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 0.0, -0.0, -5.0, 1e300, -1e300, 5e-324, 10**400, -(10**400), 2**63]),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.text(max_size=12),
    st.sampled_from(["50 kg", "Mon/Wed/Fri", "", "rodas5", "sle_cart", "nan", "1e5", "\u00b5L"]),
    st.booleans(),
    st.lists(st.floats(min_value=-400, max_value=400), max_size=4),
    st.lists(st.integers(min_value=-10, max_value=10), max_size=3),
    st.dictionaries(
        st.sampled_from(["a", "weight_kg", "label", "days"]), st.integers(), max_size=2
    ),
    st.integers(min_value=2, max_value=60).map(lambda d: _nested(d)),
    st.just({}),
    st.just([]),
)

MUTATION = st.tuples(
    st.sampled_from(["set", "set", "set", "scale", "delete", "unknown_key"]),
    st.integers(min_value=0, max_value=10_000),
    WEIRD,
    st.sampled_from([-1.0, 0.0, 1e-9, 1e6, 1e12, 1.5]),
)

ENCODING = st.sampled_from(
    ["utf-8", "utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1", "nul", "truncate"]
)


def mutate(data, mutations):
    data = copy.deepcopy(data)
    for kind, index, value, factor in mutations:
        slots = list(_slots(data))
        if not slots:
            data["scenario"] = value
            continue
        path = slots[index % len(slots)]
        parent = _parent(data, path)
        key = path[-1]
        if kind == "delete":
            del parent[key]
        elif kind == "unknown_key":
            target = parent[key] if isinstance(parent[key], dict) else parent
            if isinstance(target, dict):
                target[f"unknown_{index % 7}"] = value
            else:
                parent[key] = value
        elif (
            kind == "scale"
            and isinstance(parent[key], (int, float))
            and not isinstance(parent[key], bool)
        ):
            parent[key] = parent[key] * factor
        else:
            parent[key] = value
    return data


def encode(text: str, encoding: str) -> bytes:
    if encoding == "nul":
        return text.encode("utf-8").replace(b"\n", b"\n\x00", 1)
    if encoding == "truncate":
        raw = text.encode("utf-8")
        return raw[: len(raw) // 2]
    if encoding == "latin-1":
        return (text + "\n# caf\u00e9 \u00b5L\n").encode("latin-1", errors="replace")
    return text.encode(encoding)


# -- the property ----------------------------------------------------------------------------


def check_cli(raw: bytes) -> None:
    """Run ``cartkin simulate`` on ``raw``; assert a clean run or a one-line error."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutant.toml"
        path.write_bytes(raw)
        csv_path = Path(tmp) / "traj.csv"
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["simulate", str(path), "--format", "json", "--csv", str(csv_path)])
        lines = [x for x in err.getvalue().splitlines() if not x.startswith("cartkin: warning:")]
        assert "Traceback" not in err.getvalue()
        if status == 0:
            payload = json.loads(out.getvalue())
            assert payload["arms"]
            _check_trajectory(csv_path)
            return
        assert status in (1, 2), status
        assert len(lines) == 1, err.getvalue()
        assert lines[0].startswith("cartkin: "), lines[0]
        assert str(path) in lines[0], lines[0]
        assert len(lines[0]) < 2_000, "an error message quoting a huge value"


def _check_trajectory(csv_path: Path) -> None:
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [row[1:] for row in reader]
    values = np.array(rows, dtype=float)
    assert values.size
    assert np.isfinite(values).all(), "non-finite values in a successful trajectory"
    assert (values[:, 1:] >= 0).all(), (
        f"negative values in {[h for h, ok in zip(header[2:], (values[:, 1:] >= 0).all(0), strict=True) if not ok]}"
    )


@FAST
@given(
    name=st.sampled_from(sorted(BASE)),
    mutations=st.lists(MUTATION, min_size=1, max_size=3),
    encoding=ENCODING,
)
def test_mutated_scenarios_run_or_fail_in_one_line(name, mutations, encoding):
    check_cli(encode(to_toml(mutate(BASE[name], mutations)), encoding))


@pytest.mark.slow
@LONG
@given(
    name=st.sampled_from(sorted(BASE)),
    mutations=st.lists(MUTATION, min_size=1, max_size=4),
    encoding=ENCODING,
)
def test_mutated_scenarios_long(name, mutations, encoding):
    check_cli(encode(to_toml(mutate(BASE[name], mutations)), encoding))


# -- past failures (issue 10): each gave a traceback or a wrong answer in silence ------------

CORPUS = [
    ("erlangen_sle_1e6.toml", "flu_days = [-5.0, -4.0, -3.0]", "flu_days = [5.0, 6.0, 7.0]"),
    (
        "erlangen_sle_1e6.toml",
        "flu_days = [-5.0, -4.0, -3.0]",
        "flu_days = [-300.0, -299.0, -298.0]",
    ),
    ("erlangen_sle_1e6.toml", "[cart]\n", "[cart]\ndays = [400.0]\n"),
    ("erlangen_sle_1e6.toml", "[cart]\n", "[cart]\ndays = [-10.0]\n"),
    (
        "erlangen_sle_1e6.toml",
        "egfr_ml_min_173m2 = 100.0",
        "egfr_ml_min_173m2 = 120.0\ndialysis = { session_days = [-2.0] }",
    ),
    ("erlangen_sle_1e6.toml", "weight_kg = 60.0", "weight_kg = 2.0"),
    ("erlangen_sle_1e6.toml", "cells_per_kg = 1.0e6", "flat_cells = 1e11"),
    ("erlangen_sle_1e6.toml", "weight_kg = 60.0", "weight_kg = " + "9" * 400),
    ("erlangen_sle_1e6.toml", "t_end_days = 365.0", "t_end_days = " + "9" * 400),
    ("erlangen_sle_1e6.toml", "t_end_days = 365.0", "t_end_days = 1e6"),
    ("erlangen_sle_1e6.toml", "output_step_days = 0.25", "output_step_days = 1e-5"),
    ("erlangen_sle_1e6.toml", "[cart]\n", "[solver]\nrtol = 1e-15\n\n[cart]\n"),
    ("erlangen_sle_1e6.toml", "weight_kg = 60.0", "weight_kg = " + "[" * 20_000 + "]" * 20_000),
    (
        "erlangen_sle_1e6.toml",
        "weight_kg = 60.0",
        "weight_kg = " + "{a = " * 5_000 + "1" + "}" * 5_000,
    ),
    ("adolescent_hemodialysis_1e5.toml", "duration_h = 4.0", 'session_days = "Mon/Wed/Fri"'),
]


@pytest.mark.parametrize(("name", "old", "new"), CORPUS)
def test_corpus_of_past_failures(name, old, new):
    text = (ROOT / "scenarios" / name).read_text(encoding="utf-8")
    assert old in text, old
    check_cli(text.replace(old, new, 1).encode("utf-8"))


def test_binary_file_is_one_line():
    check_cli(bytes(range(256)) * 8)


# -- solve_ode shapes ------------------------------------------------------------------------

N_STATES, N_P = cart4.Y0.size, cart4.DEFAULT_P.size


@FAST
@given(
    n_y=st.integers(min_value=0, max_value=N_STATES + 2),
    n_p=st.integers(min_value=0, max_value=N_P + 2),
    method=st.sampled_from(["rodas5", "tsit5"]),
)
def test_solve_ode_shapes_are_checked(n_y, n_p, method):
    y0 = np.resize(cart4.Y0, n_y)
    p = np.resize(cart4.DEFAULT_P, n_p)
    t = np.linspace(0.0, 5.0, 6)
    if n_y == N_STATES and n_p >= N_P:
        sol = solve_ode(cartkin.models.get("cart4").rhs, y0, t, p, method=method)
        assert sol.status == Status.SUCCESS and np.isfinite(sol.y).all()
        return
    with pytest.raises(ValueError) as info:
        solve_ode(cartkin.models.get("cart4").rhs, y0, t, p, method=method)
    message = str(info.value)
    if n_y == 0:
        assert "y0 must hold at least one state" in message
    else:
        assert f"y0 has {n_y}" in message and f"p has {n_p}" in message, message
