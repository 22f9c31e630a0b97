"""The package's architecture, checked: folders by role, imports only downwards.

docs/design.md §4.1: config ← data ← tasks ← models ← method ← wire | runs ←
clientapp | serverapp ← launch ← cli. A folder imports itself and folders of a
lower floor only (lazy imports inside functions count too); no module-level
import cycle anywhere; flwr only at the edge; the flwr-free core really imports
no flwr; no print in the library.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "src" / "fedmuscle_flwr"
NAME = "fedmuscle_flwr"

#: floor of each top-level entry of the package (lower = more basic)
FLOORS = {
    "config": 0,
    "data": 1,
    "tasks": 2,
    "models": 3,
    "examples": 3,
    "method": 4,
    "wire": 5,
    "runs": 5,
    "clientapp": 6,
    "serverapp": 6,
    "launch": 7,
    "cli": 8,
    "__init__": 9,
}
#: where flwr may be imported (folder, or folder/module)
FLWR_EDGE = (
    "wire/protocol.py",
    "wire/codec.py",
    "wire/flower_compat.py",
    "clientapp/app.py",
    "serverapp/",
)
FLWR_EDGE_FOLDERS = ("launch/", "cli/")
#: the flwr-free core: imported alone, it must not pull in flwr
CORE = [
    "fedmuscle_flwr.method",
    "fedmuscle_flwr.method.algorithms",
    "fedmuscle_flwr.method.planner",
    "fedmuscle_flwr.method.alignment",
    "fedmuscle_flwr.method.robust",
    "fedmuscle_flwr.method.privacy",
    "fedmuscle_flwr.data.registry",
    "fedmuscle_flwr.tasks.registry",
    "fedmuscle_flwr.models.client_model",
    "fedmuscle_flwr.wire.messages",
    "fedmuscle_flwr.clientapp.runtime",
    "fedmuscle_flwr.clientapp.runner",
    "fedmuscle_flwr.method.phases",
    "fedmuscle_flwr.config.registry",
    "fedmuscle_flwr.clientapp.trainer",
    "fedmuscle_flwr.clientapp.state",
    # the client policy (issue 23): decided without Flower
    "fedmuscle_flwr.config.policy",
    "fedmuscle_flwr.wire.refusal",
    "fedmuscle_flwr.clientapp.policy",
    "fedmuscle_flwr.clientapp.guard",
    "fedmuscle_flwr.clientapp.retention",
    "fedmuscle_flwr.clientapp.sanitize",
    "fedmuscle_flwr.clientapp.bundle",
    "fedmuscle_flwr.clientapp.disjoint",
]


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([NAME, *parts])] = path
    return out


def imports_of(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported project module, at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == NAME:
                out.append((name, id(node) in top))
    return out


def floor_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_entry_has_a_floor_and_the_package_is_small() -> None:
    entries = {
        p.stem if p.suffix == ".py" else p.name
        for p in PKG.iterdir()
        if not p.name.startswith(("_", ".")) or p.name == "__init__.py"
    }
    entries.discard("__pycache__")
    assert entries <= set(FLOORS), entries - set(FLOORS)
    assert len(entries) <= 15


def test_folders_import_only_folders_below_them() -> None:
    known = modules()
    offenders = []
    for module, path in known.items():
        here = floor_of(module)
        for target, _ in imports_of(path, module):
            there = floor_of(target)
            if there == here:
                continue
            if FLOORS[there] >= FLOORS[here]:
                offenders.append(f"{module} -> {target}")
    assert offenders == []


def test_no_import_cycles_between_modules() -> None:
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in known.items():
        for target, _ in imports_of(path, module):
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if (
                target in known
                and target != module
                and not module.startswith(target + ".")
            ):
                graph[module].add(target)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in list(known):
        if v not in index:
            visit(v)
    assert cycles == []


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


def test_flwr_only_at_the_edge() -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        edge = rel in FLWR_EDGE or rel.startswith(FLWR_EDGE_FOLDERS + ("serverapp/",))
        if imports_flwr(path) and not edge:
            offenders.append(rel)
    assert offenders == []


def test_the_core_imports_no_flwr() -> None:
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'flwr' or m.startswith('flwr.'))\n"
        "assert not bad, bad[:5]\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_no_print_in_library() -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print":
                offenders.append(str(path.relative_to(PKG)))
    assert offenders == []
