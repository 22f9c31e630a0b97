#!/usr/bin/env bash
# Issue 16 on the GPU machine (device tool), from a copy of this tree carried as an ignored
# folder of the session's checkout, beside the asset folders carried by the same or earlier
# commands (they stay on a warm machine):
#   .gpu-assets-h16t/  this tree (src, clients, server, experiments without results)
#   .gpu-assets-h16a/.gpu-bundle     (experiments/gpu_bundle.sh)
#   .gpu-assets-h16b/.gpu-assets-{1,3}  (experiments/gpu_assets.sh: EfficientNet-Lite0/1/2)
#   .gpu-assets-h16c/.gpu-assets-2      (MiniLM, WordNet)
# Usage (in .gpu-assets-h16t): bash experiments/issue16/run.sh SPEC PAR [LR_FM LR_PW]
#   SPEC = default | phase1 | phase2 (experiments/issue16/SPEC.txt); phase2 needs the two
#   learning rates that `fairtest.py select` printed at the end of phase1.
#   SPEC = all: phase1, the selection, then phase2 with the selected rates, within
#   ALL_BUDGET_S seconds (default 570); runs finished by an earlier call are skipped.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
for d in ../.gpu-assets-h16a/.gpu-bundle ../.gpu-assets-h16[bc]/.gpu-assets-*; do
  [ -e "$d" ] && ln -sfn "$(cd "$d" && pwd)" "$ROOT/$(basename "$d")"
done
if [ "$1" = all ]; then
  T0=$SECONDS; BUDGET="${ALL_BUDGET_S:-570}"
  SWEEP_BUDGET_S=$((BUDGET - 60)) bash "$0" phase1 "${2:-16}"
  sel="${OUT:-.}/select.txt"
  LR_FM="$(awk '/^SELECTED fedmuscle/{print $3}' "$sel")"; LR_PW="$(awk '/^SELECTED pairwise/{print $3}' "$sel")"
  [ -n "$LR_FM" ] && [ -n "$LR_PW" ] || { echo "no selection: tuning runs unfinished"; exit 1; }
  SWEEP_BUDGET_S=$((BUDGET - (SECONDS - T0) - 20)) bash "$0" phase2 "${2:-16}" "${LR_FM#lr}" "${LR_PW#lr}"
  exit
fi
SPEC="experiments/issue16/$1.txt"; PAR="${2:-16}"
if [ "$1" = phase2 ]; then
  sed "s/LR_FM/$3/g; s/LR_PW/$4/g" "$SPEC" > /tmp/phase2.txt && SPEC=/tmp/phase2.txt
fi
export SWEEP_WORK="/tmp/fm-$1" SWEEP_TAR="$1.tar.gz"
bash experiments/sweep.sh "$SPEC" "$PAR"
if [ "$1" = phase1 ]; then
  python3 experiments/issue16/fairtest.py select "$SWEEP_WORK" | tee "${OUT:-.}/select.txt"
fi
