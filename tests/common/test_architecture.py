"""The import directions of docs/architecture.md, checked over the source (AST, so imports inside
functions and under ``TYPE_CHECKING`` count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "common", "connectors", "rules", "simulator")

#: package -> project packages it must never import (docs/architecture.md, "Import directions").
FORBIDDEN: dict[str, frozenset[str]] = {
    "common": frozenset({"agent", "connectors", "rules", "simulator"}),
    "rules": frozenset({"agent", "connectors", "simulator"}),
    "connectors": frozenset({"agent", "rules", "simulator"}),
    "simulator": frozenset({"agent", "rules"}),
    "agent": frozenset(),
}

#: third-party protocol libraries -> the only modules allowed to import them (quarantine).
QUARANTINE: dict[str, frozenset[str]] = {
    "pymodbus": frozenset({"connectors/modbus.py", "simulator/modbus_server.py"}),
    "asyncua": frozenset({"connectors/opcua.py", "simulator/opcua_server.py"}),
    "paho": frozenset({"agent/mqtt_wire.py"}),
}

MAX_MODULE_LINES = 800


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module name) of every absolute import in a file."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            out.append((node.lineno, "<dynamic import>"))
    return out


def _violations() -> list[str]:
    found: list[str] = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        pkg = rel.split("/", 1)[0]
        for line, module in _imported(path):
            top = module.split(".", 1)[0]
            if module == "<dynamic import>":
                found.append(f"{rel}:{line}: dynamic import (the import check cannot follow it)")
            elif top in FORBIDDEN[pkg]:
                found.append(f"{rel}:{line}: {pkg}/ must not import {module}")
            elif top in QUARANTINE and rel not in QUARANTINE[top]:
                found.append(f"{rel}:{line}: only {', '.join(sorted(QUARANTINE[top]))} may import {top}")
    return found


def test_imports_point_the_documented_way() -> None:
    assert _violations() == []


def test_the_check_sees_imports_under_type_checking_and_inside_functions(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from agent.config import Config\n"
        "def f():\n    import connectors.modbus\n"
    )
    assert [m for _, m in _imported(probe)] == ["typing", "agent.config", "connectors.modbus"]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_is_a_god_module(path: Path) -> None:
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_MODULE_LINES, f"{n} lines: split it by responsibility (docs/architecture.md)"
