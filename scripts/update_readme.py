"""Regenerate the README's generated blocks from their single source of truth.

Blocks between ``<!-- BEGIN generated: NAME -->`` and ``<!-- END generated: NAME -->`` are
rewritten: ``params:MODEL`` from ``MODEL.parameters.to_markdown()`` and ``states:MODEL`` from the
model's state list. Run ``python scripts/update_readme.py`` after changing a parameter table;
``tests/test_readme.py`` fails while the README is out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"(<!-- BEGIN generated: (?P<name>[\w:]+) -->\n)(?P<body>.*?)(<!-- END generated: (?P=name) -->)",
    re.S,
)


def render(name: str) -> str:
    """The text of generated block ``name``."""
    from cartkin import models

    kind, _, model_name = name.partition(":")
    model = models.get(model_name)
    if kind == "params":
        return model.parameters.to_markdown()
    if kind == "states":
        rows = ["| state | symbol | unit | description |", "|---|---|---|---|"]
        rows += [f"| {s.name} | `{s.symbol}` | {s.unit} | {s.description} |" for s in model.states]
        return "\n".join(rows) + "\n"
    raise ValueError(f"unknown generated block {name!r}: expected params:MODEL or states:MODEL")


def updated(text: str) -> str:
    """``text`` with every generated block re-rendered."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def main() -> int:
    text = README.read_text(encoding="utf-8")
    new = updated(text)
    if new != text:
        README.write_text(new, encoding="utf-8")
        print(f"updated {README}")
    else:
        print(f"{README} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
