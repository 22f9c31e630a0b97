#!/usr/bin/env bash
# Builds .gpu-bundle/ (git-ignored): what the GPU machine lacks to run the in-process engine
# (`fedmuscle run --engine inprocess`), small enough for the device tool's 64 MiB carry:
#   wheels/   cp312 wheels of flwr 1.39.0 and the few of its imports the machine lacks
#             (pydantic, cryptography, pycryptodome, ...; Ray is not needed in-process)
#   fashion-mnist/  the Debian package's IDX files (sklearn digits are on the machine)
# On the device, experiments/gpu_env.sh installs the wheels into a folder and sets paths.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.gpu-bundle"
PKGS=(flwr==1.39.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection cryptography==46.0.7
      pycryptodome==3.24.1 grpcio-health-checking iterators==0.0.2 platformdirs tomli tomli-w pathspec cffi pycparser)
rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/fashion-mnist"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$OUT/wheels" "${PKGS[@]}"
FM="${FEDMUSCLE_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
cp "$FM"/*-ubyte.gz "$OUT/fashion-mnist/"
du -sh "$OUT"
