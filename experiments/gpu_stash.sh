#!/usr/bin/env bash
# On the GPU machine (device tool): keeps the pieces of experiments/gpu_pack.sh that this
# command carried in /tmp/fm-pack (the machine stays warm between commands, /tmp with it),
# unpacks every pack whose pieces have all arrived into /tmp/fm-root (once) and links its
# top-level folders (.gpu-bundle, .gpu-assets-N) into the checkout, where
# experiments/gpu_env.sh finds them. FM_PACK_STASH and FM_PACK_ROOT move the two /tmp folders.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STASH="${FM_PACK_STASH:-/tmp/fm-pack}"; DEST="${FM_PACK_ROOT:-/tmp/fm-root}"
mkdir -p "$STASH" "$DEST"
if [ -d "$ROOT/.gpu-pack" ]; then cp -r "$ROOT"/.gpu-pack/*/ "$STASH/" 2>/dev/null || true; fi
for count in "$STASH"/*/*.count; do
  [ -e "$count" ] || continue
  name="$(basename "$count" .count)"; n="$(cat "$count")"
  [ -e "$DEST/.unpacked-$name" ] && continue
  have=$(find "$STASH" -name "$name.[0-9][0-9]" | wc -l)
  if [ "$have" -lt "$n" ]; then echo "pack $name: $have of $n pieces here"; continue; fi
  find "$STASH" -name "$name.[0-9][0-9]" | sort | xargs cat | tar -xz -C "$DEST"
  touch "$DEST/.unpacked-$name"; echo "pack $name: unpacked"
done
for d in "$DEST"/.gpu-*; do [ -e "$d" ] && ln -sfn "$d" "$ROOT/$(basename "$d")"; done
ls -d "$ROOT"/.gpu-* 2>/dev/null || true
