"""The import graph of ``cartkin/``: no circles, no private names across subpackages.

Every import statement anywhere in a file counts (module level, inside functions, under
``TYPE_CHECKING``); ``importlib.import_module("cartkin....")`` with a literal name counts too.
Run as a script (``python tests/test_import_graph.py``) to print the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cartkin"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(current: str, is_package: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports(path: Path, modules: set[str]):
    """(imported module, imported names) pairs of one file, cartkin modules only."""
    current = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, ()))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(current, is_package, node.level, node.module)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in modules:  # from package import submodule
                    out.append((full, ()))
                else:
                    out.append((base, (alias.name,)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.args[0].value, ()))
    return [(m, names) for m, names in out if m == "cartkin" or m.startswith("cartkin.")]


def graph():
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for f in files:
        src = module_name(f)
        for target, names in imports(f, modules):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target == src or target not in modules:
                continue
            edges[src].add(target)
            if _subpackage(src) != _subpackage(target):
                for n in names:
                    if n.startswith("_") and not n.startswith("__"):
                        private.append(f"{src} imports {target}.{n}")
                if target.rsplit(".", 1)[-1].startswith("_") and not target.endswith("__init__"):
                    private.append(f"{src} imports the private module {target}")
    return edges, private


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _package_parents(edges):
    """Importing ``a.b.c`` runs ``a.b``'s ``__init__``: add those edges too."""
    full = {m: set(t) for m, t in edges.items()}
    for m, targets in edges.items():
        for t in targets:
            parts = t.split(".")
            for k in range(2, len(parts)):
                parent = ".".join(parts[:k])
                if parent in full and parent != m and not m.startswith(parent + "."):
                    full[m].add(parent)
    return full


def test_no_import_cycles():
    edges, _ = graph()
    found = cycles(_package_parents(edges))
    assert found == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_private_names_across_subpackages():
    _, private = graph()
    assert private == [], "\n".join(private)


def test_a_cycle_is_found():
    """The checker itself: a made-up circle is reported."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


if __name__ == "__main__":
    e, p = graph()
    for c in cycles(_package_parents(e)):
        print("CYCLE:", " <-> ".join(c))
    for line in p:
        print("PRIVATE:", line)
