"""mkdocs hooks: regenerate the pages that restate code, and refuse undocumented public names.

``mkdocs build --strict`` fails on any warning, so a public function, class or method without
a docstring (:func:`undocumented`) breaks the build, as does a generated page that cannot be
built from the current code.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("mkdocs.plugins.cartkin")

#: The public modules: every name in their ``__all__`` (and its public methods) needs a docstring.
PUBLIC_MODULES = (
    "cartkin",
    "cartkin.models",
    "cartkin.models.base",
    "cartkin.parameters",
    "cartkin.scenario",
    "cartkin.simulate",
    "cartkin.ode",
    "cartkin.metrics",
    "cartkin.batch",
    "cartkin.modeldoc",
    "cartkin.data",
    "cartkin.fit",
    "cartkin.sweep",
    "cartkin.outcomes",
)


def _members(cls):
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        func = value.fget if isinstance(value, property) else value
        if isinstance(func, (staticmethod, classmethod)):
            func = func.__func__
        if inspect.isfunction(func):
            yield name, func


def undocumented(modules=PUBLIC_MODULES) -> list[str]:
    """Public functions, classes and methods (names in ``__all__``) without a docstring."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    missing = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if inspect.ismodule(obj) or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not (obj.__doc__ or "").strip():
                missing.append(f"{module_name}.{name}")
            if inspect.isclass(obj):
                for member, func in _members(obj):
                    if not (func.__doc__ or "").strip():
                        missing.append(f"{module_name}.{name}.{member}")
    return sorted(set(missing))


def _gen_pages():
    spec = importlib.util.spec_from_file_location("gen_pages", ROOT / "docs" / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_config(config, **kwargs):
    """The Models section of the navigation lists every registered model (one page each), and
    pages the nav does not name join their section."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from cartkin import models

    for section in config["nav"] or []:
        if isinstance(section, dict) and "Models" in section:
            names = list(models.available())
            # other pages in docs/models (e.g. a model's science notes) follow the model pages
            others = sorted(
                p.name
                for p in (ROOT / "docs" / "models").glob("*.md")
                if p.stem not in names and p.name != "index.md"
            )
            section["Models"] = (
                ["models/index.md"]
                + [{name: f"models/{name}.md"} for name in names]
                + [f"models/{other}" for other in others]
            )
    _add_unlisted_guides(config)
    return config


def _nav_paths(items) -> set[str]:
    out = set()
    for item in items or []:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            out |= _nav_paths(value)
        elif isinstance(value, str):
            out.add(value)
    return out


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("_", " ")


def _add_unlisted_guides(config) -> None:
    """Pages at the top of docs/ or in docs/guides/ that the nav does not name join Guides."""
    listed = _nav_paths(config["nav"])
    docs = ROOT / "docs"
    pages = sorted(docs.glob("*.md")) + sorted((docs / "guides").glob("*.md"))
    missing = [p for p in pages if p.relative_to(docs).as_posix() not in listed]
    for section in config["nav"] or []:
        if isinstance(section, dict) and "Guides" in section:
            section["Guides"] += [{_title(p): p.relative_to(docs).as_posix()} for p in missing]


def on_pre_build(config, **kwargs):
    """Regenerate the model, scenario and benchmark pages; warn about undocumented names."""
    _gen_pages().main([])
    for name in undocumented():
        log.warning(f"public name without a docstring: {name}")
