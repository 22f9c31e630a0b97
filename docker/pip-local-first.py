"""pip install REQUIREMENTS, taking every wheel a local folder holds from that folder.

Used by docker/Dockerfile while the image builds (the base image's Python and pip):

    python pip-local-first.py [--index-url URL] [--find-links LINKS]
        [--local-only NAME ...] [--constraint FILE] [--report FILE] -- REQUIREMENT ...

Without ``--find-links``: one plain ``pip install``. With it (a folder, or an http URL
of wheels, e.g. served on loopback): pip plans the install against both (a dry run; it
fetches only metadata from the index), then every planned package whose exact version
the local wheels hold is installed from them, the rest from the index, both with
``--no-deps`` (the plan is complete; the Dockerfile runs ``pip check`` after it).
Needed because, with the same file on the index and in ``--find-links``, pip takes
the index's copy (a measured build downloaded 3 GB of CUDA wheels it had locally).
``--local-only NAME``: fail unless NAME comes from the local wheels (torch,
torchvision). The last line printed says what came from where.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

_WHEEL = re.compile(r"^([^-]+)-([^-]+)-.*\.whl$")
_HREF = re.compile(r'href="([^"#?]+\.whl)')


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def local_wheels(links: str) -> set[tuple[str, str]]:
    """``{(project, version)}`` of the wheels in a folder or an http listing."""
    if re.match(r"^https?://", links):
        with urllib.request.urlopen(links, timeout=60) as page:
            names = _HREF.findall(page.read().decode("utf-8", "replace"))
        # http.server quotes the "+" of a local version: torch-2.13.0%2Bcpu-...whl
        files = [Path(urllib.parse.unquote(n)).name for n in names]
    else:
        files = [p.name for p in Path(links.removeprefix("file://")).iterdir()]
    matches = [_WHEEL.match(name) for name in files]
    return {(canonical(m.group(1)), m.group(2)) for m in matches if m}


def pip(*args: str) -> None:
    """``python -m pip ARGS``; exit with its status when it fails."""
    code = subprocess.call([sys.executable, "-m", "pip", *args])
    if code:
        sys.exit(code)


def main() -> None:
    """Plan, then install from the local wheels first; print what came from where."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-url", default="", help="default: pip's own")
    parser.add_argument("--find-links", default="")
    parser.add_argument("--local-only", nargs="*", default=[])
    parser.add_argument("--constraint", action="append", default=[])
    parser.add_argument("--report", default="")
    parser.add_argument("requirements", nargs="+")
    args = parser.parse_args()
    extra = [f"--constraint={c}" for c in args.constraint]
    index = [f"--index-url={args.index_url}"] if args.index_url else []
    source = args.index_url or "the index"
    if not args.find_links:
        report = [f"--report={args.report}"] if args.report else []
        pip("install", *index, *extra, *report, *args.requirements)
        print("local wheels: none given; everything from", source)
        return
    with tempfile.TemporaryDirectory() as tmp:
        plan_file = os.path.join(tmp, "plan.json")
        links = f"--find-links={args.find_links}"
        pip("install", "--dry-run", "--quiet", *index, links, f"--report={plan_file}",
            *extra, *args.requirements)  # fmt: skip
        plan = json.loads(Path(plan_file).read_text())["install"]
    have = local_wheels(args.find_links)
    pins = [(canonical(i["metadata"]["name"]), i["metadata"]["version"]) for i in plan]
    local = sorted(f"{n}=={v}" for n, v in pins if (n, v) in have)
    remote = sorted(f"{n}=={v}" for n, v in pins if (n, v) not in have)
    missing = {canonical(n) for n in args.local_only} - {
        n for n, v in pins if (n, v) in have
    }
    if missing:
        sys.exit(f"not in the local wheels {args.find_links}: {sorted(missing)}")
    if local:  # pip picks the file with a compatible tag among the local ones
        pip("install", "--no-deps", "--no-index", links, *local)
    if remote:
        pip("install", "--no-deps", *index, *remote)
    if args.report:
        rows = {"local": local, "index": remote}
        Path(args.report).write_text(json.dumps(rows))
    print(
        f"local wheels {args.find_links}: {len(local)} of {len(pins)} packages:",
        " ".join(local) or "none",
        f"| from {source}:",
        " ".join(remote) or "none",
    )


if __name__ == "__main__":
    main()
