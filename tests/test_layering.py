"""The import graph of ``pyspice_rram`` follows its layers (issue 10, acceptance).

Every module of the package is parsed with :mod:`ast` (no third-party tool, nothing is
imported) and every ``import`` / ``from ... import`` in it -- at module level or inside a
function -- is checked against two rules:

1. **Layering.** A layer imports only the layers below it (:data:`ALLOWED`): ``errors`` and
   ``spice`` (the simulator layer) at the bottom; ``device`` <- ``calibration``;
   ``device`` <- ``circuit`` <- ``surrogate``; ``network`` defines the tile backend protocol
   and imports no backend implementation (neither ``circuit`` nor ``surrogate``); ``paper``,
   ``pipeline``, ``cli`` and every layer's ``cli`` module are the top and may import any
   layer.
2. **Privacy.** Nothing imports another package's private names: a ``_``-prefixed name, a
   ``_``-prefixed module, or a module listed in :data:`INTERNAL_MODULES` (the packages'
   numba internals that only their own package may use).

Violations that exist today and are being removed elsewhere are listed, one by one, in
:data:`KNOWN_VIOLATIONS`; the test fails on any other violation and on any listed one that no
longer exists, so the list cannot go stale.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "pyspice_rram"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Top of the graph: may import any layer (public names only).
TOP = "top"

#: Which layers each layer may import (besides itself). ``spice`` may not exist yet.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "spice": {"errors"},
    "device": {"errors", "spice"},
    "calibration": {"errors", "spice", "device"},
    "circuit": {"errors", "spice", "device"},
    "surrogate": {"errors", "spice", "device", "circuit", "network"},
    # the network defines the backend protocol; backends (surrogate, circuit) plug into it
    "network": {"errors", "device"},
}

#: Modules private to their own package although their names carry no underscore.
INTERNAL_MODULES = {
    f"{PACKAGE}.network.sgd",          # the one SGD loop: backends plug in via network.backend
}

#: Violations that exist today and are being removed elsewhere (none: the tile-backend work
#: of issue 10 removed the network -> surrogate import and the surrogate's use of the
#: network's kernels).
KNOWN_VIOLATIONS: set[tuple[str, str, str]] = set()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def layer_of(module: str) -> str:
    """The layer of a module name: its package below ``pyspice_rram``, or :data:`TOP`."""
    parts = module.split(".")
    if len(parts) == 1:                                  # pyspice_rram/__init__.py
        return TOP
    if parts[1] in ("paper", "pipeline", "cli") or parts[-1] == "cli":
        return TOP
    return parts[1]


def package_of(module: str) -> str:
    """The package that owns a module's private names (``pyspice_rram.<package>``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` of every import in a file."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for alias in node.names:
                # "from pkg import mod" imports a module when pkg/mod(.py) exists
                sub = f"{target}.{alias.name}"
                rel = Path(*sub.split("."))
                if (ROOT.parent / rel).is_dir() or (ROOT.parent / rel).with_suffix(".py").is_file():
                    out.append((sub, None, node.lineno))
                else:
                    out.append((target, alias.name, node.lineno))
    return [(m, n, line) for m, n, line in out if m == PACKAGE or m.startswith(PACKAGE + ".")]


def violations() -> dict[tuple[str, str, str], str]:
    """``{(importer, imported module, "layer" | "private"): where}`` over the package."""
    found: dict[tuple[str, str, str], str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        importer = module_name(path)
        mine = layer_of(importer)
        for target, name, line in imports_of(path):
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            if target == PACKAGE and name == "__version__":
                continue       # the root package loads its public names lazily (PEP 562)
            theirs = layer_of(target)
            if mine != TOP and theirs != mine and (theirs == TOP or theirs not in ALLOWED[mine]):
                found.setdefault((importer, target, "layer"), where)
            if package_of(target) == package_of(importer):
                continue
            private_module = (target in INTERNAL_MODULES
                              or any(_private(p) for p in target.split(".")[1:]))
            if private_module or (name is not None and _private(name)):
                found.setdefault((importer, target, "private"), where + (f" ({name})" if name else ""))
    return found


def test_every_module_is_in_a_known_layer():
    for path in ROOT.rglob("*.py"):
        layer = layer_of(module_name(path))
        assert layer == TOP or layer in ALLOWED, f"{path}: layer {layer!r} missing from ALLOWED"


def test_no_layer_imports_a_higher_layer_or_a_private_name():
    found = violations()
    new = {k: v for k, v in found.items() if k not in KNOWN_VIOLATIONS}
    assert not new, "import-graph violations:\n" + "\n".join(
        f"  {where}: {imp} imports {tgt} ({kind})" for (imp, tgt, kind), where in sorted(new.items()))
    gone = KNOWN_VIOLATIONS - set(found)
    assert not gone, f"fixed, remove from KNOWN_VIOLATIONS: {sorted(gone)}"


def test_the_checker_sees_a_violation():
    """The rules themselves: an upward import, a private name and an internal module."""
    assert layer_of("pyspice_rram.network.cli") == TOP and layer_of("pyspice_rram") == TOP
    assert layer_of("pyspice_rram.paper.experiments") == TOP
    assert "surrogate" not in ALLOWED["network"] and "circuit" not in ALLOWED["network"]
    assert "calibration" not in ALLOWED["circuit"] and "surrogate" not in ALLOWED["circuit"]
    assert _private("_ladder") and not _private("__version__") and not _private("ladder")
    node = ast.parse("from ..surrogate.model import _ladder").body[0]
    assert _resolve("pyspice_rram.network.backend", False, node) == "pyspice_rram.surrogate.model"
    node = ast.parse("from . import kernels as K").body[0]
    assert _resolve("pyspice_rram.network", True, node) == "pyspice_rram.network"
    # a real file: the network's cells import its layer state (same package) and errors
    cells = {m for m, _, _ in imports_of(ROOT / "network" / "cells.py")}
    assert {"pyspice_rram.network.layer", "pyspice_rram.errors"} <= cells
