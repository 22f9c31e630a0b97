"""Δ of sweep runs against their Local reference, from the runs' summary.json files.

    python experiments/compare.py SWEEP_DIR REF_RULES...

SWEEP_DIR holds one folder per tag (experiments/sweep.sh); each REF_RULE is
``prefix=local-tag``: a tag starting with ``prefix`` is compared with ``local-tag``
(the longest matching prefix wins). Prints one markdown row per run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def final(folder: Path) -> dict[str, float] | None:
    found = list(folder.glob("*/*/summary.json"))
    if len(found) != 1:  # failed or unfinished run
        return None
    clients = json.loads(found[0].read_text())["clients"]
    return {name: float(c["metric"]) for name, c in clients.items()}


def main(root: Path, rules: dict[str, str]) -> None:
    tags = sorted(p.name for p in root.iterdir() if p.is_dir())
    print("| run | reference | mean Δ % | per client: metric (Δ %) |")
    print("|---|---|---|---|")
    for tag in tags:
        matches = [p for p in rules if tag.startswith(p)]
        if not matches or tag == rules[max(matches, key=len)]:
            continue
        ref = rules[max(matches, key=len)]
        ours, local = final(root / tag), final(root / ref)
        if ours is None or local is None:
            print(f"| {tag} | {ref} | failed | - |")
            continue
        deltas = {c: (ours[c] - local[c]) / local[c] * 100 for c in ours}
        mean = sum(deltas.values()) / len(deltas)
        cells = ", ".join(f"{c} {ours[c]:.3f} ({deltas[c]:+.1f})" for c in sorted(ours))
        print(f"| {tag} | {ref} | {mean:+.1f} | {cells} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), dict(a.split("=", 1) for a in sys.argv[2:]))
