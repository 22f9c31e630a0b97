#!/usr/bin/env bash
# Runs a list of `fedmuscle run --engine inprocess` configurations as parallel processes
# (the GPU machine has 16 cores and no Ray), then tars the session folders and logs.
#   bash experiments/sweep.sh SPEC_FILE [PARALLEL]
# SPEC_FILE: one run per line, "tag  fedmuscle-run-arguments..." ('#' starts a comment).
# Results: $OUT/sweep.tar.gz (device tool) or ./sweep-out/ (elsewhere); SWEEP_WORK (the run
# folder, default /tmp/fm-sweep) and SWEEP_TAR (the archive's name) keep sweeps apart.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPEC="$1"; PAR="${2:-8}"
DEST="${OUT:-$ROOT/sweep-out}"; WORK="${SWEEP_WORK:-/tmp/fm-sweep}"
mkdir -p "$WORK" "$DEST"
if [ -d "$ROOT/.gpu-bundle" ]; then source "$ROOT/experiments/gpu_env.sh"; fi
one() {
  local tag="$1"; shift
  local t0=$SECONDS
  if compgen -G "$WORK/$tag/*/*/summary.json" > /dev/null; then
    echo "$tag done before, skipped"; return
  fi
  rm -rf "${WORK:?}/$tag"
  export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
  python3 -c "from fedmuscle_flwr.cli import main; main()" run --engine inprocess \
    --output "$WORK/$tag" "$@" > "$WORK/$tag.log" 2>&1
  echo "$tag rc=$? $((SECONDS - t0)) s" | tee -a "$WORK/status.txt"
}
export -f one; export WORK
# SWEEP_BUDGET_S (optional): stop launching and kill runs after that many seconds, so that
# the finished runs still come back within the device tool's 10-minute command limit.
LIMIT=(); [ -n "${SWEEP_BUDGET_S:-}" ] && LIMIT=(timeout "$SWEEP_BUDGET_S")
# (trailing blanks are stripped: xargs -L would join such a line with the next one)
grep -v '^\s*#' "$SPEC" | grep -v '^\s*$' | sed 's/[[:space:]]*$//' | "${LIMIT[@]}" xargs -P "$PAR" -L 1 bash -c 'one "$@"' _
if [ ${#LIMIT[@]} -gt 0 ]; then pkill -f 'from fedmuscle_flwr.cli import main' && sleep 2; fi
cat "$WORK/status.txt"
tar -czf "$DEST/${SWEEP_TAR:-sweep.tar.gz}" -C "$WORK" .
