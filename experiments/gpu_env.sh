#!/usr/bin/env bash
# Sourced on the GPU machine (device tool): installs .gpu-bundle/wheels into /tmp/fm-site
# (no network: --no-index) and points the package at the bundled data.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SITE=/tmp/fm-site
if [ ! -d "$SITE/flwr" ]; then
  python3 -m pip install -q --no-deps --no-index --target "$SITE" "$ROOT"/.gpu-bundle/wheels/*.whl
fi
export PYTHONPATH="$ROOT/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export FEDMUSCLE_FASHION_MNIST_DIR="$ROOT/.gpu-bundle/fashion-mnist"
export FLWR_HOME=/tmp/flwr-home FLWR_DISABLE_UPDATE_CHECK=1 FLWR_TELEMETRY_ENABLED=0
export HF_HUB_OFFLINE=1 FEDMUSCLE_STATE_DIR=/tmp/fm-state
fm() { python3 -c "from fedmuscle_flwr.cli import main; main()" "$@"; }
