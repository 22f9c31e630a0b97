#!/usr/bin/env bash
# The main job: the embedded default federation (Flower simulation, 4 heterogeneous
# clients on real data), FedMuscle vs Local, ending with the Δ table.
# Extra arguments go to `fedmuscle run` (e.g. --rounds 3, --preset setup1-images).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
exec fedmuscle run "$@"
