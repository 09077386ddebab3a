"""The package's modules form layers: config → data → preprocessing and persistence → models (a package, one
module per family) → training (a package: loops, searches, the result they return) → report / tracking →
redshift (the seed-003 facade) and the notebook runner → experiments (tracked runs) and verify → cli;
provenance sits beside training (report records it). A module imports only from layers below it, at
module level or inside functions, so there is no import cycle; inside a subpackage a module may import its
siblings."""

import ast
from pathlib import Path

from casebook import config

SRC = config.PACKAGE_DIR
LAYER = {
    "config": 0,
    "data": 1,
    "cluster": 1,
    "preprocessing": 2,
    "persistence": 2,
    "models": 3,
    "training": 4,
    "provenance": 4,
    "report": 5,
    "tracking": 5,
    "redshift": 6,
    "notebooks": 6,
    "experiments": 7,
    "verify": 7,
    "cli": 8,
}
KNOWN: set = set()  # upward imports still to remove (none)


def _module(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> set[str]:
    """casebook modules imported anywhere in ``path`` (relative or absolute, top level or in functions)."""
    found = set()
    depth = len(path.relative_to(SRC).parts) if path.is_relative_to(SRC) else 1  # 1: casebook/x.py
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.split(".")[0] == "casebook":
                parts = node.module.split(".")[1:]
                found |= {parts[0]} if parts else {a.name for a in node.names}
            elif node.level == depth:  # relative to the package casebook itself
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif 0 < node.level < depth:  # inside the same subpackage: the module's own layer
                found.add(path.relative_to(SRC).parts[0])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("casebook.")}
    return {m for m in found if m in LAYER}


def test_every_module_imports_only_from_layers_below_it():
    upward = set()
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == SRC:
            continue
        me = _module(path)
        if path.parent.name == "cli" and path.name == "__init__.py":
            me = "cli"
        for other in _imports(path) - {me}:
            if LAYER[other] >= LAYER[me]:
                upward.add((me, other))
    assert upward == KNOWN, sorted(upward - KNOWN) or f"fixed: {sorted(KNOWN - upward)} (remove from KNOWN)"


def test_the_layer_check_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "models.py"
    probe.write_text("from . import config\ndef f():\n    from .training import torch_fit\n")
    assert _imports(probe) == {"config", "training"}


def test_the_subpackages_re_export_nothing_and_no_module_keeps_a_shim():
    """``models/`` and ``training/`` hold families in their modules; their ``__init__`` imports nothing, and no
    module imports a name only to hand it on (the ``# noqa: F401`` of a re-export)."""
    for package in ("models", "training"):
        tree = ast.parse((SRC / package / "__init__.py").read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))], package
    shims = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "noqa: F401" in p.read_text()]
    assert shims == []


def test_the_layer_check_resolves_imports_inside_a_subpackage():
    assert _imports(SRC / "training" / "xray.py") >= {"models", "training"}
    assert "training" not in _imports(SRC / "models" / "transfer.py")
