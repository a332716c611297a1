"""Kernel instantiation and caching (cartkin._compile).

The subprocess tests run with their own empty cache directories (CARTKIN_CACHE_DIR and
NUMBA_CACHE_DIR), so they compile at least once (several seconds each).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import problems as P
import pytest

import cartkin
from cartkin import solve_ode
from cartkin.kernel import build as _compile
from cartkin.models import cart4

REPO = Path(__file__).resolve().parents[1]


def _run_python(code, env_extra, timeout=600):
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# in-process
# ---------------------------------------------------------------------------------------------
def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CARTKIN_CACHE_DIR", str(tmp_path / "a"))
    assert _compile.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("CARTKIN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _compile.cache_dir() == tmp_path / "xdg" / "cartkin"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _compile.cache_dir() == Path.home() / ".cache" / "cartkin"


def test_builtin_model_gets_a_hash_named_file_and_user_rhs_does_not(monkeypatch, tmp_path):
    monkeypatch.setenv("CARTKIN_CACHE_DIR", str(tmp_path))
    path = _compile.kernel_path(cartkin.models.get("cart4").rhs)
    assert path.parent == tmp_path
    assert path.name.startswith("kernel__cartkin_user_model_cart4_") and path.suffix == ".py"
    assert _compile.kernel_path(P.affine) is None  # not under cartkin.models: in-memory kernel


def test_kernels_are_built_once_per_rhs():
    assert _compile.get_kernel(P.affine) is _compile.get_kernel(P.affine)
    assert _compile.get_kernel(P.scalar) is not _compile.get_kernel(P.affine)


def test_source_that_changed_since_import_is_detected():
    func = cartkin.models.get("cart4").rhs.py_func
    path = cartkin.models.get("cart4").generated.__file__
    source = Path(path).read_text()
    assert _compile._same_code(func, source, path)
    edited = source.replace(
        "_dydt[3] = k_EX * f * E - d_X * X", "_dydt[3] = k_EX * f * E - 2 * d_X * X"
    )
    assert edited != source
    assert not _compile._same_code(func, edited, path)


def test_generated_file_is_header_plus_template(monkeypatch, tmp_path):
    monkeypatch.setenv("CARTKIN_CACHE_DIR", str(tmp_path))
    model = cartkin.models.get("cart4")
    info = _compile._builtin_info(model.rhs, None)
    module = _compile._load_generated(*info)
    text = Path(module.__file__).read_text()
    assert f"from {model.generated.__name__} import rhs as rhs" in text
    assert "CACHE = True" in text and text.endswith(_compile.template_text())
    assert not list(tmp_path.glob(".tmp_*"))  # written atomically, nothing left over
    assert module.CACHE is True and module.HAS_JAC is False


# ---------------------------------------------------------------------------------------------
# fresh processes
# ---------------------------------------------------------------------------------------------
CART4_SCRIPT = """
import json, time
t0 = time.perf_counter()
import numpy as np
from cartkin import solve_ode
from cartkin.kernel import build as _compile
import cartkin
from cartkin.models import cart4
sol = solve_ode(cartkin.models.get("cart4").rhs, cart4.Y0, cart4.T_EVAL_DAYS, cart4.DEFAULT_P, method="tsit5")
seconds = time.perf_counter() - t0
kernel = _compile.get_kernel(cartkin.models.get("cart4").rhs, family="erk")  # the tsit5 kernel
print(json.dumps(dict(
    hits=sum(kernel._solve.stats.cache_hits.values()),
    misses=sum(kernel._solve.stats.cache_misses.values()),
    seconds=seconds, last=sol.y[-1].tolist(), file=kernel.__file__)))
"""


def test_fresh_process_loads_builtin_kernel_from_cache(tmp_path):
    env = {"CARTKIN_CACHE_DIR": str(tmp_path / "cartkin"), "NUMBA_CACHE_DIR": str(tmp_path / "nb")}
    cold = _run_python(CART4_SCRIPT, env)
    warm = _run_python(CART4_SCRIPT, env)
    assert cold["hits"] == 0 and cold["misses"] >= 1
    assert warm["hits"] >= 1 and warm["misses"] == 0
    assert warm["last"] == cold["last"] and warm["file"] == cold["file"]
    # import + load + solve; a cold start compiles for several seconds
    assert warm["seconds"] < cold["seconds"] / 3


EDITED_MODEL = """
import numba


@numba.njit(error_model="numpy")
def rhs(t, y, p, dydt):
    dydt[0] = -RATE * y[0]
"""

EDITED_SCRIPT = """
import json, sys
import cartkin.models
cartkin.models.__path__.append(sys.argv[1] if len(sys.argv) > 1 else {pkg!r})
from cartkin.models import tmp_decay
from cartkin import solve_ode
from cartkin.kernel import build as _compile
sol = solve_ode(tmp_decay.rhs, [1.0], [0.0, 2.0], method="tsit5", rtol=1e-10, atol=1e-12)
kernel = _compile.get_kernel(tmp_decay.rhs, family="erk")  # the tsit5 kernel
print(json.dumps(dict(y=sol.y[-1, 0], hits=sum(kernel._solve.stats.cache_hits.values()),
                      file=kernel.__file__)))
"""


@pytest.mark.slow
def test_edited_builtin_model_is_never_stale(tmp_path):
    pkg = tmp_path / "models"
    pkg.mkdir()
    env = {"CARTKIN_CACHE_DIR": str(tmp_path / "cartkin"), "NUMBA_CACHE_DIR": str(tmp_path / "nb")}
    script = EDITED_SCRIPT.format(pkg=str(pkg))
    model = pkg / "tmp_decay.py"

    model.write_text(EDITED_MODEL.replace("RATE", "0.5"))
    first = _run_python(script, env)
    model.write_text(EDITED_MODEL.replace("RATE", "1.5"))
    edited = _run_python(script, env)
    model.write_text(EDITED_MODEL.replace("RATE", "0.5"))
    back = _run_python(script, env)

    assert first["y"] == pytest.approx(np.exp(-1.0), rel=1e-8)
    assert edited["y"] == pytest.approx(np.exp(-3.0), rel=1e-8)  # not the cached old kernel
    assert edited["file"] != first["file"]
    assert back["file"] == first["file"] and back["hits"] >= 1  # old text: old cache entry
    assert back["y"] == first["y"]


def test_same_source_runs_without_jit():
    code = """
    import json
    import numpy as np
    import numba
    from cartkin import solve_ode
    import problems as P
    assert numba.config.DISABLE_JIT
    out = {}
    for method in ("tsit5", "dopri5", "rodas5", "auto"):
        sol = solve_ode(P.affine, [1.0], [0.0, 1.0, 2.0], P.affine_p([[-1.0]]), method=method,
                        rtol=1e-8, atol=1e-10, t_stops=[1.0], jumps=[[2.0]])
        out[method] = sol.y[:, 0].tolist()
    print(json.dumps(out))
    """
    got = _run_python(code, {"NUMBA_DISABLE_JIT": "1"}, timeout=300)
    e = np.exp(-1.0)
    for method, y in got.items():
        np.testing.assert_allclose(y, [1.0, e + 2.0, (e + 2.0) * e], rtol=1e-7, err_msg=method)


@pytest.mark.slow
@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="needs the JIT")
def test_in_memory_kernel_matches_cached_kernel_bit_for_bit():
    """The exec'd template (user rhs path) and the generated file run the same code."""
    user_rhs = numba.njit(cartkin.models.get("cart4").rhs.py_func)
    a = solve_ode(cartkin.models.get("cart4").rhs, cart4.Y0, cart4.T_EVAL_DAYS[:30], cart4.DEFAULT_P, method="dopri5")
    b = solve_ode(user_rhs, cart4.Y0, cart4.T_EVAL_DAYS[:30], cart4.DEFAULT_P, method="dopri5")
    np.testing.assert_array_equal(a.y, b.y)


def test_template_codes_match_the_python_boundary():
    """The compiled template's status and method codes are the ones cartkin.ode decodes."""
    from cartkin import ode

    kernel = _compile.get_kernel(cartkin.models.get("cart4").rhs)
    for status in ode.Status:
        assert getattr(kernel, status.name) == int(status)
    for name, code in ode._METHOD_CODES.items():
        assert getattr(kernel, name.upper()) == code
