"""The sha256 of a pre-registration's text in docs/results.md (recorded with every run).

    python experiments/issue25/prereg.py docs/results.md [SECTION]

SECTION is the section's number, ``7c`` (the default), ``7d`` or ``7e``: its text
starts at the heading ``## SECTION. `` and ends with the marker
``<!-- end of pre-registration SECTION -->``.

The text runs from the section's heading line up to and including its end marker line;
lines are joined with "\\n" and end with one, so the hash does not depend on the file's
line endings or on anything after the marker (the outcome appended later).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

DEFAULT = "7c"


def section(text: str, number: str = DEFAULT) -> str:
    """The pre-registration's lines, heading to end marker inclusive."""
    heading, end = f"## {number}. ", f"<!-- end of pre-registration {number} -->"
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise SystemExit(
            f"expected one '{heading}...' heading and one end marker after it"
        )
    return "\n".join(lines[starts[0] : ends[0] + 1]) + "\n"


def digest(path: Path, number: str = DEFAULT) -> str:
    """sha256 hex digest of the section ``number`` of ``path``."""
    return hashlib.sha256(
        section(path.read_text(encoding="utf-8"), number).encode()
    ).hexdigest()


if __name__ == "__main__":
    print(digest(Path(sys.argv[1]), *sys.argv[2:3]))
