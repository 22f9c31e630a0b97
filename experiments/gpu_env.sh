#!/usr/bin/env bash
# Sourced on the GPU machine (device tool): installs .gpu-bundle/wheels into /tmp/fm-site
# (no network: --no-index), points the package at the bundled data, and picks up the
# weights and data of whichever .gpu-assets-* folders are there (experiments/gpu_assets.sh).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SITE=/tmp/fm-site
if [ ! -d "$SITE/flwr" ]; then
  python3 -m pip install -q --no-deps --no-index --target "$SITE" "$ROOT"/.gpu-bundle/wheels/*.whl
fi
if [ -d "$ROOT/.gpu-assets-4/wheels" ] && [ ! -d /tmp/fm-site4/pyarrow ]; then
  python3 -m pip install -q --no-deps --no-index --target /tmp/fm-site4 "$ROOT"/.gpu-assets-4/wheels/*.whl
fi
EXTRA=""
[ -d /tmp/fm-site4 ] && EXTRA=":/tmp/fm-site4"
for a in "$ROOT"/.gpu-assets-*; do [ -d "$a/site" ] && EXTRA="$EXTRA:$a/site"; done
export PYTHONPATH="$ROOT/src:$SITE$EXTRA${PYTHONPATH:+:$PYTHONPATH}"
export FEDMUSCLE_FASHION_MNIST_DIR="$ROOT/.gpu-bundle/fashion-mnist"
export FEDMUSCLE_CACHE=/tmp/fm-cache
mkdir -p "$FEDMUSCLE_CACHE/derived"
for a in "$ROOT"/.gpu-assets-*; do
  if [ -d "$a/mnist5k" ]; then export FEDMUSCLE_MNIST5K_DIR="$a/mnist5k"; fi
done
if [ -d "$ROOT/.gpu-assets-2/wordnet" ]; then
  mkdir -p /tmp/fm-wordnet
  for f in "$ROOT"/.gpu-assets-2/wordnet/*.gz; do
    [ -f "/tmp/fm-wordnet/$(basename "$f" .gz)" ] || gunzip -c "$f" > "/tmp/fm-wordnet/$(basename "$f" .gz)"
  done
  export FEDMUSCLE_WORDNET_DIR=/tmp/fm-wordnet
fi
if [ -d "$ROOT/.gpu-assets-3/cache/derived" ]; then
  cp -n "$ROOT"/.gpu-assets-3/cache/derived/*.npz "$FEDMUSCLE_CACHE/derived/" 2>/dev/null || true
fi
export FLWR_HOME=/tmp/flwr-home FLWR_DISABLE_UPDATE_CHECK=1 FLWR_TELEMETRY_ENABLED=0
export HF_HUB_OFFLINE=1 FEDMUSCLE_STATE_DIR=/tmp/fm-state
fm() { python3 -c "from fedmuscle_flwr.cli import main; main()" "$@"; }
