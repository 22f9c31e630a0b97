#!/usr/bin/env bash
# Issue 25 (docs/results.md §7c, §7d) on the GPU machine: runs the queue's lines as parallel
# `fedmuscle run --engine inprocess` processes, in order, within a time budget.
#   bash experiments/issue25/run.sh QUEUE PARALLEL
# QUEUE: "tag  fedmuscle-run-arguments..." per line ('#' starts a comment). Every run gets
# `--set provenance=prereg-sha256:<hash>,code:<revision>` (the hash of the section that
# QUEUE_PREREG names, default 7c, as experiments/issue25/prereg.py prints it; REVISION file of the
# carried tree, else git). A `SELECTED:<method>` argument is replaced by the options that
# `fairtest.py select` chose for that method; such lines wait until every tune- run of the
# queue has finished (a watcher writes $QUEUE_WORK/select.txt then). A finished run (its
# summary.json) is skipped; a run with a checkpoint but no summary (stopped by the end of
# an earlier command on this warm machine) continues with `fedmuscle run --resume`.
# Environment: QUEUE_BUDGET_S (default 540): no run starts after it and the running ones
# are stopped at it; QUEUE_WORK (default /tmp/fm-th): the run folders; QUEUE_TAR (default
# taskhet.tar.gz): the archive of QUEUE_WORK (logs, configs, metrics) written to $OUT.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
QUEUE="$1"; PAR="${2:-16}"
export WORK="${QUEUE_WORK:-/tmp/fm-th}"; DEST="${OUT:-$ROOT/queue-out}"
export END=$(($(date +%s) + ${QUEUE_BUDGET_S:-540}))
mkdir -p "$WORK" "$DEST"
if [ -d "$ROOT/.gpu-bundle" ]; then source "$ROOT/experiments/gpu_env.sh"; fi
REV="$(cat "$ROOT/REVISION" 2>/dev/null || git -C "$ROOT" rev-parse --short=12 HEAD)"
PROV="prereg-sha256:$(python3 experiments/issue25/prereg.py docs/results.md "${QUEUE_PREREG:-7c}"),code:$REV"
export PROV
echo "provenance: $PROV"
LINES="$(grep -v '^\s*#' "$QUEUE" | grep -v '^\s*$' | sed 's/[[:space:]]*$//')"
TUNES="$(awk '$1 ~ /^tune-/ {print $1}' <<< "$LINES")"

finished() { compgen -G "$WORK/$1/*/*/summary.json" > /dev/null; }
failed() { grep -Eq "^$1 rc=([1-9]|[1-9][0-9]|1[0-2][0-9]|13[0-6]|14[0-2]) " "$WORK/status.txt" 2> /dev/null; }
export -f finished

watch_select() {  # select.txt once every tuning run has finished (or failed outright)
  while [ ! -f "$WORK/select.txt" ] && [ "$(date +%s)" -lt "$END" ]; do
    local left=0 t
    for t in $TUNES; do finished "$t" || failed "$t" || left=1; done
    if [ "$left" = 0 ]; then
      python3 experiments/issue25/fairtest.py select "$WORK" > "$WORK/select.tmp" \
        && mv "$WORK/select.tmp" "$WORK/select.txt" && cat "$WORK/select.txt"
      return
    fi
    sleep 5
  done
}

one() {
  local tag="$1" t0 rc a sel session; shift
  t0=$(date +%s)
  if finished "$tag"; then echo "$tag done before, skipped"; return; fi
  local args=()
  for a in "$@"; do
    if [[ "$a" != SELECTED:* ]]; then args+=("$a"); continue; fi
    while [ ! -f "$WORK/select.txt" ]; do
      [ "$(date +%s)" -lt "$END" ] || return 0
      sleep 5
    done
    sel="$(awk -v m="${a#SELECTED:}" '$1 == "SELECTED" && $2 == m {for (i = 3; i < NF; i++) printf "%s ", $i}' "$WORK/select.txt")"
    if [ -z "$sel" ]; then echo "$tag rc=no-selection 0 s" | tee -a "$WORK/status.txt"; return; fi
    read -ra parts <<< "$sel"; args+=("${parts[@]}")
  done
  [ "$(date +%s)" -lt "$END" ] || return 0
  session="$(find "$WORK/$tag" -mindepth 3 -maxdepth 3 -name checkpoint.json 2> /dev/null | head -1)"
  local where=(--output "$WORK/$tag") how=fresh
  if [ -n "$session" ]; then
    where=(--resume "$(dirname "$(dirname "$session")")"); how=resumed
  else
    rm -rf "${WORK:?}/$tag"
  fi
  export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
  python3 -c "from fedmuscle_flwr.cli import main; main()" run --engine inprocess \
    "${where[@]}" "${args[@]}" --set "provenance=$PROV" >> "$WORK/$tag.log" 2>&1 &
  echo $! > "$WORK/$tag.pid"
  wait $!; rc=$?
  rm -f "$WORK/$tag.pid"
  echo "$tag rc=$rc $(($(date +%s) - t0)) s $how" | tee -a "$WORK/status.txt"
}
export -f one

watch_select &
WATCHER=$!
left=$((END - $(date +%s)))
timeout --foreground "$left" xargs -P "$PAR" -L 1 bash -c 'one "$@"' _ <<< "$LINES"
for f in "$WORK"/*.pid; do [ -e "$f" ] && kill -TERM "$(cat "$f")" 2> /dev/null; done
sleep 3
for f in "$WORK"/*.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")" 2> /dev/null && rm -f "$f"; done
kill "$WATCHER" 2> /dev/null
echo "--- status"; cat "$WORK/status.txt" 2> /dev/null
tar -czf "$DEST/${QUEUE_TAR:-taskhet.tar.gz}" --exclude='*.png' -C "$WORK" .
