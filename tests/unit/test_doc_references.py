"""Every reference in the repository points into the repository (docs/design.md §2).

Checked in every tracked text file (code, tests, docs, scripts, configs):

- a ``*.md`` path names a file that exists (relative to the repository root or to
  the citing file's folder);
- ``some.md §N`` names a section that is a numbered heading of that file
  (``## N.`` / ``### N.M`` / ``## 4c.``);
- ``path.py::name`` names a file that exists and defines ``name``; a path
  ``src/...py`` or ``tests/...py`` names a file that exists;
- no path outside the repository: the shared notes folder of the machine the
  project was built on, home or work directories.

Recorded outputs (``experiments/results/``, ``bench/results/``) are exempt: they
are logs of runs and quote whatever paths those runs printed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".yml", ".yaml", ".cfg", ".ini", ".txt"}
TEXT_NAMES = {"Dockerfile", "run"}
EXEMPT = ("experiments/results/", "bench/results/")
#: files the code writes at run time (cited as outputs, not as documents), and
#: ``args.md``, an attribute in experiments/issue16/fairtest.py
GENERATED_MD = {
    "report.md",
    "gpu_bench.md",
    "superlink_registration.md",
    "args.md",
    "gamma_share_live.md",
}
#: pages written on a branch merged together with this one (issue 21): the lead
#: empties this set after the merge
PENDING: set[str] = set()
#: a folder written in capitals is a placeholder (``RUN_DIR/report.md``, ``OUT.md``)
PLACEHOLDER = re.compile(r"(?:^|/)[A-Z][A-Z_]*(?:/|\.md$)")

MD_PATH = re.compile(r"(?<![\w/.\-<])((?:[\w.\-]+/)*[\w\-][\w.\-]*\.md)\b")
SECTION = re.compile(
    r"(?<![\w/.\-<])((?:[\w.\-]+/)*[\w\-][\w.\-]*\.md)`?\)?,?\s*§\s*(\d+(?:\.\d+)*[a-z]?)"
)
#: a path of a code or test file of ours
CODE_PATH = re.compile(r"(?<![\w/.\-<])((?:src|tests)/(?:[\w.\-]+/)*[\w\-]+\.py)\b")
PY_NAME = re.compile(r"(?<![\w/.\-])((?:[\w.\-]+/)*[\w\-]+\.py)::(\w+)")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*[a-z]?)[.\s)]", re.MULTILINE)
OUTSIDE = re.compile(
    "|".join(
        [
            re.escape("../" + "shared"),
            re.escape("shared" + "/docs/"),
            r"(?<![\w.])/" + "work/",
            r"(?<![\w.])/" + "root/",
            r"(?<![\w.])/" + "home/",
        ]
    )
)


def tracked_files(root: Path) -> list[Path]:
    """The tracked text files under ``root`` (git), else every text file there."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
        paths = [root / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        paths = [p for p in root.rglob("*") if ".git" not in p.parts]
    return [
        p
        for p in paths
        if p.is_file()
        and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES)
        and not p.relative_to(root).as_posix().startswith(EXEMPT)
    ]


def _resolve(root: Path, here: Path, ref: str) -> Path | None:
    for base in (root, here.parent, root / "src" / "fedmuscle_flwr"):
        candidate = (base / ref).resolve()
        if candidate.is_file() and candidate.is_relative_to(root):
            return candidate
    return None


def _sections(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        cache[path] = set(HEADING.findall(path.read_text(encoding="utf-8")))
    return cache[path]


def problems(root: Path, files: list[Path]) -> list[str]:
    """Every bad reference in ``files``, as ``file:line: what``."""
    out: list[str] = []
    headings: dict[Path, set[str]] = {}
    # a bare test file name (``test_deployment.py::test_x``) names the one file so called
    names = [p.name for p in files]
    by_name = {
        p.name: p for p in files if p.suffix == ".py" and names.count(p.name) == 1
    }
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            where = f"{rel}:{lineno}"
            for m in OUTSIDE.finditer(line):
                out.append(f"{where}: path outside the repository {m.group(0)!r}")
            for ref in MD_PATH.findall(line):
                if ref in GENERATED_MD | PENDING or PLACEHOLDER.search(ref):
                    continue
                if _resolve(root, path, ref) is None:
                    out.append(f"{where}: {ref} is not a file of the repository")
            for ref in CODE_PATH.findall(line):
                if not (root / ref).is_file():
                    out.append(f"{where}: {ref} is not a file of the repository")
            for ref, section in SECTION.findall(line):
                target = _resolve(root, path, ref)
                if target is not None and section not in _sections(target, headings):
                    out.append(f"{where}: {ref} has no section §{section}")
            for ref, name in PY_NAME.findall(line):
                target = _resolve(root, path, ref) or by_name.get(ref)
                if target is None:
                    out.append(f"{where}: {ref} is not a file of the repository")
                    continue
                defined = re.compile(
                    rf"^\s*(?:async\s+def|def|class)\s+{name}\b|^{name}\s*[:=]",
                    re.MULTILINE,
                )
                if not defined.search(target.read_text(encoding="utf-8")):
                    out.append(f"{where}: {ref} defines no {name}")
    return out


def _self_excluded(root: Path) -> list[Path]:
    me = Path(__file__).resolve()
    return [p for p in tracked_files(root) if p.resolve() != me]


def test_every_reference_of_the_repository_resolves() -> None:
    # Prepare
    files = _self_excluded(ROOT)
    assert len(files) > 100, "the file list looks wrong"
    # Execute
    found = problems(ROOT, files)
    # Assert
    assert found == [], "\n".join(found)


def test_the_method_and_design_pages_exist_with_their_sections() -> None:
    method = _sections(ROOT / "docs" / "method.md", {})
    design = _sections(ROOT / "docs" / "design.md", {})
    assert {"1", "2", "3", "4"} <= method
    assert {"2", "3", "4", "4.1", "5"} <= design


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "# Guide\n\n## 1. Setting\n\n### 1.2 Detail\n\n## 4c. Extra\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "def test_real() -> None:\n    pass\n"
    )
    return tmp_path


GOOD = (
    "see docs/guide.md §1, `docs/guide.md` §1.2, docs/guide.md §4c and "
    "tests/test_x.py::test_real; https://example.org/other/README.md is a URL\n"
)


@pytest.mark.parametrize(
    ("planted", "message"),
    [
        ("cites fedmuscle.md §2\n", "fedmuscle.md is not a file"),
        ("cites design.md\n", "design.md is not a file"),
        ("see docs/guide.md §7\n", "has no section §7"),
        ("see docs/guide.md §1.3\n", "has no section §1.3"),
        ("see ../" + "shared/docs/notes.md\n", "path outside the repository"),
        ("open /" + "work/main/docs/guide.md\n", "path outside the repository"),
        ("tests/test_x.py::test_gone\n", "defines no test_gone"),
        ("tests/test_y.py::test_real\n", "test_y.py is not a file"),
        ("checked by ``tests/unit/test_gone.py``\n", "test_gone.py is not a file"),
    ],
)
def test_a_planted_bad_reference_is_found(
    fake_repo: Path, planted: str, message: str
) -> None:
    # Prepare: a good file and a file with one bad reference
    good = fake_repo / "good.py"
    good.write_text(f'"""{GOOD}"""\n')
    bad = fake_repo / "src.md"
    bad.write_text("# Notes\n\n" + planted)
    # Execute
    clean = problems(fake_repo, [good, fake_repo / "docs" / "guide.md"])
    found = problems(fake_repo, [good, bad])
    # Assert: the good references pass, the planted one is named with its line
    assert clean == []
    assert found and all(f.startswith("src.md:3:") for f in found), found
    assert any(message in f for f in found), found


def test_recorded_outputs_are_exempt_and_the_walk_works_without_git(
    fake_repo: Path,
) -> None:
    # Prepare: no git repository here, so the fallback walk is used
    logs = fake_repo / "experiments" / "results"
    logs.mkdir(parents=True)
    (logs / "run.txt").write_text("loaded /" + "work/main/weights.pth\n")
    (fake_repo / "notes.md").write_text("see fedmuscle.md\n")
    # Execute
    files = tracked_files(fake_repo)
    found = problems(fake_repo, files)
    # Assert
    names = {p.relative_to(fake_repo).as_posix() for p in files}
    assert "experiments/results/run.txt" not in names
    assert found == ["notes.md:1: fedmuscle.md is not a file of the repository"]
