"""Follow-up of gpu_bench.py on the same warm GPU: the fused kernel's warps per program.

    cd bench && python gpu_followup.py      # writes $OUT/quick2.json

Times muscle_loss (auto) fwd+bwd at the issue-26 sizes with 4, 8 or the default
warps per program, then interleaves muscle with pairwise (M = 1 and the two large
sizes). Raw output of the recorded run: bench/results/gpu_bench_h200_i26_bf16.json.
"""

import json
import os

import torch
from _common import loss_fns, make_inputs, time_fwd_bwd
from gpu_bench import paired_ratio

from fedmuscle_flwr.method.kernels import muscle_triton as mt

out = {"device": torch.cuda.get_device_name(), "prec": mt.PRECISION}
fns = loss_fns()
for m, b in [(5, 64), (4, 128), (5, 32), (4, 64)]:
    for w in (None, 4, 8):
        mt.WARPS = w
        a, p = make_inputs(m, b, 256, "cuda")
        try:
            r = time_fwd_bwd(fns["muscle"], a, p, "cuda", 15, 3, 3.0)
        except Exception as exc:
            r = {"error": str(exc)[:80]}
        out[f"M{m}B{b}w{w}"] = r
        print(m, b, w, r.get("median_ms", r), flush=True)
mt.WARPS = None
out["paired"] = [
    paired_ratio(m, b, 40) for m, b in [(1, 32), (1, 64), (1, 128), (5, 64), (4, 128)]
]
print(json.dumps(out["paired"]))
with open(os.path.join(os.environ["OUT"], "quick2.json"), "w") as fh:
    fh.write(json.dumps(out, indent=1))
