"""The package's layout: imports flow one way, from the command line down to the config, and no module is long."""

from __future__ import annotations

import ast
from pathlib import Path

import pix2pix

PACKAGE = Path(pix2pix.__file__).parent

LAYERS = [
    ["cli"],
    ["demo"],
    ["experiments", "serve", "study"],
    ["training"],
    ["evaluation"],
    ["inference"],
    ["export", "canonical"],
    ["runs"],
    ["models", "losses", "data", "devices"],
    ["config"],
    ["atomic"],
]
"""Each unit (a top-level module or subpackage) may import only itself and the units of the layers below it."""

RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def imported_units(path: Path) -> set[str]:
    """The pix2pix units a module imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pix2pix."):
            found.add(unit_of(node.module))
        elif isinstance(node, ast.Import):
            found.update(unit_of(alias.name) for alias in node.names if alias.name.startswith("pix2pix."))
    return found


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path.name not in ("__init__.py", "__main__.py")
                  or path.parent != PACKAGE)


def test_every_unit_has_a_layer():
    units = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in modules()}
    assert units == set(RANK)


def test_imports_flow_down_the_layers():
    upward = []
    for path in modules():
        unit = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        upward += [f"{path.relative_to(PACKAGE)} imports {other}" for other in imported_units(path)
                   if other != unit and RANK[other] <= RANK[unit]]
    assert not upward


def test_no_module_is_over_400_lines():
    long = {str(path.relative_to(PACKAGE)): n for path in modules() if (n := len(path.read_text().splitlines())) > 400}
    assert not long
