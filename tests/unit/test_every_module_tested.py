"""Every module of the package is imported by at least one test (docs/design.md §2).

A module counts as tested when a file under tests/ imports it: ``import a.b``,
``from a.b import x``, ``from a import b`` (``b`` a module) or
``importlib.import_module("a.b")``. A package counts when it or any module in it
is imported (importing a module runs its package's ``__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "fedmuscle_flwr"
NAME = "fedmuscle_flwr"


def package_modules(pkg: Path = PKG) -> dict[str, Path]:
    """Dotted name -> file, for every module and package of ``pkg``."""
    out = {}
    for path in sorted(pkg.rglob("*.py")):
        parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported_names(source: str) -> set[str]:
    """Every dotted name ``source`` imports (``from a import b`` gives a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def untested(modules: dict[str, Path], test_sources: list[str]) -> list[str]:
    """The modules that no test source imports (packages: nor any module inside)."""
    imported: set[str] = set()
    for source in test_sources:
        imported |= imported_names(source)
    covered = set()
    for name in imported:
        parts = name.split(".")
        covered.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    packages = {m for m, p in modules.items() if p.name == "__init__.py"}
    return sorted(
        m for m in modules if m not in imported and not (m in packages and m in covered)
    )


def test_the_import_scan_sees_every_import_form() -> None:
    source = (
        "import fedmuscle_flwr.a\n"
        "from fedmuscle_flwr.b import thing\n"
        "from fedmuscle_flwr.c import d\n"
        "def f():\n"
        "    import importlib\n"
        "    importlib.import_module('fedmuscle_flwr.e')\n"
    )
    modules = {
        name: Path(f"{name}.py")
        for name in [
            "fedmuscle_flwr.a",
            "fedmuscle_flwr.b",
            "fedmuscle_flwr.c.d",
            "fedmuscle_flwr.e",
            "fedmuscle_flwr.f",
        ]
    }
    modules["fedmuscle_flwr.c"] = Path("c/__init__.py")
    modules["fedmuscle_flwr.g"] = Path("g/__init__.py")
    assert untested(modules, [source]) == ["fedmuscle_flwr.f", "fedmuscle_flwr.g"]


def test_every_module_is_imported_by_a_test() -> None:
    sources = [p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py")]
    missing = untested(package_modules(), sources)
    assert missing == [], "no test imports: " + ", ".join(missing)
