#!/usr/bin/env bash
# Packs a staging folder for the GPU machine into numbered carry parts (the device tool carries
# 64 MiB per command, the checkout's ~22 MiB included; folders carried by earlier commands stay
# on a warm machine, so a large set of weights and data travels over several commands):
#   bash experiments/gpu_pack.sh NAME CHUNK_MIB STAGE_DIR      (GPU_PACK_LEVEL: gzip level, default 1)
# STAGE_DIR holds the folders as they should appear in the checkout on the device
# (.gpu-bundle/..., .gpu-assets-N/...). Writes .gpu-pack/NAME-00/, NAME-01/, ... (ignored
# folders; carry one or more of them per command), each with one piece of NAME.tar.gz and a
# file saying how many pieces there are. On the device, start every command with
# `bash experiments/gpu_stash.sh &&`: it keeps the pieces that came in /tmp and unpacks
# NAME once all of them are there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="$1"; CHUNK="$2"; STAGE="$3"
PACK="$ROOT/.gpu-pack"
grep -qx '/.gpu-pack' "$ROOT/.gitignore" || { echo "add /.gpu-pack to .gitignore" >&2; exit 2; }
rm -rf "$PACK/$NAME"-[0-9][0-9] && mkdir -p "$PACK"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
tar -C "$STAGE" -cf - . | gzip -"${GPU_PACK_LEVEL:-1}" > "$tmp/$NAME.tar.gz"
split -b "${CHUNK}M" -d -a 2 "$tmp/$NAME.tar.gz" "$tmp/piece-"
n=$(find "$tmp" -name 'piece-*' | wc -l)
for piece in "$tmp"/piece-*; do
  i="${piece##*-}"
  mkdir -p "$PACK/$NAME-$i"
  mv "$piece" "$PACK/$NAME-$i/$NAME.$i"
  echo "$n" > "$PACK/$NAME-$i/$NAME.count"
done
du -sh "$PACK/$NAME"-[0-9][0-9]
