"""The package rooms and their allowed import directions (DESIGN.md, "Package rooms").

Every module under ``xalign/`` and ``dashboards/`` is parsed (not imported) and each of its
imports is checked, wherever it stands: at the top, inside a function, under
``TYPE_CHECKING``, or as a module name in a lazy-import table (``_LAZY``/``_WHERE``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Top-level modules of ``xalign`` that every room may use (no room of their own).
HELPERS = frozenset({"__init__", "errors", "_io", "_validate", "_cli", "_lazy"})

ROOMS = ("data", "models", "extract", "store", "metrics", "project", "train", "results",
         "figures", "report", "neurons", "dashboards")  # fmt: skip

#: Room → the rooms it may import (DESIGN.md). Helpers are always allowed.
ALLOWED: dict[str, frozenset[str]] = {
    "data": frozenset(),
    "models": frozenset(),
    "store": frozenset(),
    "results": frozenset(),
    "extract": frozenset({"models", "data", "store"}),
    # the Ray engine's former home: extract's names (and the types of their signatures)
    "scale": frozenset({"extract", "models", "data", "store"}),
    "metrics": frozenset({"store", "results", "data"}),
    "project": frozenset({"store"}),
    "train": frozenset({"models", "data", "extract", "results", "metrics"}),
    # the ablation check re-extracts (extract, models) and measures (metrics)
    "neurons": frozenset({"models", "data", "extract", "store", "metrics", "results"}),
    "figures": frozenset({"results", "data"}),
    "report": frozenset({"figures", "results", "store", "project", "metrics", "data"}),
    "dashboards": frozenset({"figures", "results", "project", "store", "data", "metrics"}),
    # ``python -m xalign``: lists the verbs and runs the demo pipeline through them
    "__main__": frozenset(set(ROOMS) - {"dashboards"}),
}

_MODULE_NAME = re.compile(r"^(xalign|dashboards)(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class Import:
    where: str  # path:line
    room: str  # the importing module's room
    target: str  # the imported module (or module.name)


def _room_of_file(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("").parts
    if rel[0] == "dashboards":
        return "dashboards"
    return rel[1]  # a room's folder, or a top-level module (a helper, __main__)


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # names are listed too: ``from xalign.store import _pairs`` imports a private module
        return [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    if isinstance(node, ast.Dict):  # lazy-import tables: {"name": "xalign.room._module"}
        return [
            v.value
            for v in node.values
            if isinstance(v, ast.Constant)
            and isinstance(v.value, str)
            and _MODULE_NAME.match(v.value)
        ]
    return []


def _imports() -> list[Import]:
    out = []
    for top in ("xalign", "dashboards"):
        for path in sorted((ROOT / top).rglob("*.py")):
            room = _room_of_file(path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                for target in _targets(node):
                    if target.split(".")[0] in ("xalign", "dashboards"):
                        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                        out.append(Import(where, room, target))
    return out


def _target_room(target: str) -> str | None:
    """The room an import lands in; None for the ``xalign`` package and its helpers."""
    parts = target.split(".")
    if parts[0] == "dashboards":
        return "dashboards"
    if len(parts) == 1 or parts[1] in HELPERS or parts[1].startswith("__"):
        return None if len(parts) == 1 or parts[1] != "__main__" else "__main__"
    return parts[1]


def _private_part(target: str) -> str | None:
    """The first private component below the room (``_store`` in ``xalign.store._store``)."""
    parts = target.split(".")
    below = parts[1:] if parts[0] == "dashboards" else parts[2:]
    for p in below:
        if p.startswith("_") and not (p.startswith("__") and p.endswith("__")):
            return p
    return None


IMPORTS = _imports()


def _fail(bad: list[Import], what: str) -> None:
    if bad:
        lines = "\n".join(f"  {i.where}: {i.room} imports {i.target}" for i in bad)
        pytest.fail(f"{len(bad)} import(s) {what}:\n{lines}", pytrace=False)


def test_the_scan_finds_imports():
    assert len(IMPORTS) > 200
    assert {i.room for i in IMPORTS} >= {"extract", "metrics", "store", "dashboards"}


def test_every_room_is_in_the_table():
    rooms = {p.name for p in (ROOT / "xalign").iterdir() if (p / "__init__.py").exists()}
    missing = (rooms | {"dashboards"}) - set(ALLOWED)
    assert not missing, f"rooms without allowed directions (add them to DESIGN.md): {missing}"


def test_xalign_never_imports_dashboards():
    _fail(
        [i for i in IMPORTS if i.room != "dashboards" and _target_room(i.target) == "dashboards"],
        "from the library into the web app (dashboards/)",
    )


def test_store_imports_no_other_room():
    _fail(
        [i for i in IMPORTS if i.room == "store" and _target_room(i.target) not in (None, "store")],
        "from store/ into another room (the store knows no producer and no reader)",
    )


def test_no_room_imports_another_rooms_private_module():
    bad = []
    for i in IMPORTS:
        target = _target_room(i.target)
        if target is not None and target != i.room and _private_part(i.target):
            bad.append(i)
    _fail(bad, "of another room's private module or name (use its public __init__ names)")


def test_imports_follow_the_allowed_directions():
    bad = []
    for i in IMPORTS:
        target = _target_room(i.target)
        if target is None or target == i.room:
            continue
        if target not in ALLOWED.get(i.room, frozenset()):
            bad.append(i)
    _fail(bad, "against the allowed directions of DESIGN.md")


@pytest.mark.parametrize(
    ("target", "room", "private"),
    [
        ("xalign.store._pairs", "store", "_pairs"),
        ("xalign.store.parse_layers", "store", None),
        ("xalign._io", None, None),
        ("xalign.__version__", None, None),
        ("xalign.metrics.__main__", "metrics", None),
        ("dashboards.figures", "dashboards", None),
        ("xalign", None, None),
    ],
)
def test_classification(target, room, private):
    assert _target_room(target) == room
    assert (_private_part(target) if room else None) == private
