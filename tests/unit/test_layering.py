"""Only the edge modules may import flwr (design.md §4.1)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "src" / "fedmuscle_flwr"
EDGE = {
    "codec.py",
    "protocol.py",
    "strategy.py",
    "driver.py",
    "client_app.py",
    "server_app.py",
    "simulation.py",
    "inprocess.py",
    "deployment.py",
}


def imports_flwr(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "flwr" for a in node.names
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").split(".")[0] == "flwr"
        ):
            return True
    return False


def test_flwr_only_at_the_edge():
    offenders = [
        str(p.relative_to(PKG))
        for p in PKG.rglob("*.py")
        if imports_flwr(p) and str(p.relative_to(PKG)) not in EDGE
    ]
    assert offenders == []


def test_no_print_in_library():
    offenders = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print":
                offenders.append(str(path.relative_to(PKG)))
    assert offenders == []
