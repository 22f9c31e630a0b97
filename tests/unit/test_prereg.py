"""experiments/issue25/prereg.py: the pre-registrations of docs/results.md stay as committed.

Every run of the §7c, §7d and §7e tests recorded the sha256 of its section's text in its
config (``provenance``). If any of the texts changes, these hashes stop matching and the
recorded runs no longer point at the protocol they ran under.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.scripts import load

ROOT = Path(__file__).parents[2]
RESULTS = ROOT / "docs/results.md"
prereg = load("experiments/issue25/prereg.py", "prereg")

#: as recorded in the runs' provenance (experiments/results/issue25/*/)
RECORDED = {
    "7c": "433de254f75d01587f0bd6bd2af6468ab7d0df56b2b644736ae0ad34ef5a6a72",
    "7d": "46ca41e7ff78f4ea56eecc77c1b681d6c0c0738b91290e3ccbd41c38ce29d00a",
    "7e": "2ae8c59ffd85b20adf191eb460e2992d56209b88e64dd7e8af34b99919e54293",
}


@pytest.mark.parametrize("number", sorted(RECORDED))
def test_the_pre_registered_text_is_unchanged(number: str) -> None:
    assert prereg.digest(RESULTS, number) == RECORDED[number]


def test_the_default_section_is_7c() -> None:
    assert prereg.digest(RESULTS) == RECORDED["7c"]


def test_the_section_runs_from_heading_to_marker_and_ignores_the_rest() -> None:
    text = (
        "intro\n## 7d. Title\nbody\n<!-- end of pre-registration 7d -->\n"
        "### Outcome\nappended later\n"
    )
    want = "## 7d. Title\nbody\n<!-- end of pre-registration 7d -->\n"
    assert prereg.section(text, "7d") == want
    assert prereg.section(text.replace("\n", "\r\n"), "7d") == want
    assert prereg.section(text + "more outcome\n", "7d") == want


@pytest.mark.parametrize(
    "text",
    [
        "## 7d. a\nno marker\n",
        "<!-- end of pre-registration 7d -->\n## 7d. marker before heading\n",
        "## 7d. a\n## 7d. twice\n<!-- end of pre-registration 7d -->\n",
        "## 7c. other section\n<!-- end of pre-registration 7c -->\n",
    ],
)
def test_a_missing_or_ambiguous_section_is_refused(text: str) -> None:
    with pytest.raises(SystemExit, match="expected one"):
        prereg.section(text, "7d")
