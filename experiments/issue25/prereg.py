"""The sha256 of docs/results.md §7c's pre-registration text (recorded with every run).

    python experiments/issue25/prereg.py docs/results.md

The text runs from the section's heading line up to and including its end marker line;
lines are joined with "\\n" and end with one, so the hash does not depend on the file's
line endings or on anything after the marker (the outcome appended later).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HEADING = "## 7c. "
END = "<!-- end of pre-registration 7c -->"


def section(text: str) -> str:
    """The pre-registration's lines, heading to end marker inclusive."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(HEADING)]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise SystemExit(
            f"expected one '{HEADING}...' heading and one end marker after it"
        )
    return "\n".join(lines[starts[0] : ends[0] + 1]) + "\n"


def digest(path: Path) -> str:
    """sha256 hex digest of the section of ``path``."""
    return hashlib.sha256(
        section(path.read_text(encoding="utf-8")).encode()
    ).hexdigest()


if __name__ == "__main__":
    print(digest(Path(sys.argv[1])))
