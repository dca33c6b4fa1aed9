"""The layers of streams/ import only downward (DESIGN's module table): data flows one way,
feed -> broadcast -> storage -> delivery -> browser, and delivery never reaches back into ingest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STREAMS = Path(__file__).resolve().parent.parent / "streams"
# What each layer may import, besides itself and the standard library and packages.
ALLOWED = {
    "core": set(),
    "access": {"core", "models"},
    "storage": {"core", "models"},
    "broadcast": {"core", "storage"},
    "ingest": {"core", "storage", "broadcast", "access", "models"},
    "delivery": {"core", "storage", "broadcast", "access", "models"},
    "config": {"core", "models", "ingest", "access"},
}


def layer_of(module: str) -> str:
    """streams.delivery.hub -> delivery; streams.broadcast -> broadcast."""
    return module.split(".")[1]


def project_imports(path: Path) -> list[tuple[str, int]]:
    """(module, line) of every `streams.*` import in a file, at any depth (lazy ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("streams."):
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("streams.")]
    return found


def layered_modules() -> list[Path]:
    return sorted(
        path
        for path in STREAMS.rglob("*.py")
        if path.relative_to(STREAMS).parts[0].removesuffix(".py") in ALLOWED
    )


def test_every_layer_has_modules():
    layers = {path.relative_to(STREAMS).parts[0].removesuffix(".py") for path in layered_modules()}
    assert layers == set(ALLOWED)


@pytest.mark.parametrize("path", layered_modules(), ids=lambda path: str(path.relative_to(STREAMS)))
def test_a_module_imports_only_its_own_layer_and_those_below(path: Path):
    own = path.relative_to(STREAMS).parts[0].removesuffix(".py")
    allowed = ALLOWED[own] | {own}
    wrong = [
        f"line {line}: {module}" for module, line in project_imports(path) if layer_of(module) not in allowed
    ]
    assert not wrong, f"{own} may import {sorted(allowed)} only"
