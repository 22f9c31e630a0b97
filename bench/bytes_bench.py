"""Bytes per client per contrastive step: compact vs aggregated downlink, by precision.

    python bench/bytes_bench.py --out bench-out

Compact downlink: the M partners' representations, M x B x d values. Aggregated
downlink (the paper's): S (B^M x d) and log alpha (B^M). Uplink: the client's own
B x d representations (the same in both modes). Precisions: fp32, fp16 and int8
with one float32 scale per row (symmetric, max-abs; log alpha stays fp32 under
int8). Bytes are computed analytically and, where the payload is at most
--max-serialise-mb, measured by encoding the arrays with the project's codec
(fedmuscle_flwr.wire.codec.encode, the wire format of every run; flwr's Array holds
.npy bytes, ~128 B of header per array). Writes bytes_bench.json/.md to --out
(default $OUT or ./bench-out).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import out_dir, write

from fedmuscle_flwr.wire.codec import encode, record_nbytes

PRECISIONS = {"fp32": np.float32, "fp16": np.float16, "int8": np.int8}


def analytic(rows: int, d: int, precision: str) -> int:
    """Payload bytes of a (rows, d) matrix; int8 adds a float32 scale per row."""
    item = np.dtype(PRECISIONS[precision]).itemsize
    return rows * d * item + (4 * rows if precision == "int8" else 0)


def log_alpha_bytes(t: int, precision: str) -> int:
    """log alpha (B^M,) travels at the wire dtype; fp32 under int8 (codec rule)."""
    return t * (2 if precision == "fp16" else 4)


def wire_bytes(arrays: dict[str, np.ndarray], precision: str) -> int:
    """Bytes of the arrays as the codec encodes them (flwr Array = .npy bytes)."""
    return record_nbytes(encode(arrays, precision))


def measure(m: int, b: int, d: int, limit: int, rng: np.random.Generator) -> dict:
    t = b**m
    rec: dict = {"M": m, "B": b, "d": d, "uplink": {}, "compact": {}, "aggregated": {}}
    for p in PRECISIONS:
        rec["uplink"][p] = {"analytic": analytic(b, d, p)}
        rec["compact"][p] = {"analytic": analytic(m * b, d, p)}
        rec["aggregated"][p] = {"analytic": analytic(t, d, p) + log_alpha_bytes(t, p)}
        # shapes as in protocol.py: partners (S=1, M, B, d), z (K=1, B, d)
        z = rng.standard_normal((1, m, b, d)).astype(np.float32)
        rec["compact"][p]["npy"] = wire_bytes({"partners": z}, p)
        rec["uplink"][p]["npy"] = wire_bytes({"z": z[0, :1]}, p)
        if rec["aggregated"][p]["analytic"] <= limit:
            s = rng.standard_normal((1, t, d)).astype(np.float32)
            la = rng.standard_normal((1, t)).astype(np.float32)
            rec["aggregated"][p]["npy"] = wire_bytes(
                {"aggregate": s, "log-alpha": la}, p
            )
    return rec


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def cell(entry: dict) -> str:
    npy = entry.get("npy")
    return human(entry["analytic"]) + (f" ({human(npy)})" if npy else " (analytic)")


def table(recs: list[dict]) -> str:
    cols = [(mode, p) for mode in ("compact", "aggregated") for p in PRECISIONS]
    head = "| M | uplink fp16 | " + " | ".join(f"{mode} {p}" for mode, p in cols)
    head += " | aggregated fp32 / compact fp16 | aggregated fp32 / compact fp32 |\n"
    head += "|---" * (len(cols) + 4) + "|\n"
    lines = []
    for r in recs:
        cells = [cell(r[mode][p]) for mode, p in cols]
        agg = r["aggregated"]["fp32"]["analytic"]
        vs16 = agg / r["compact"]["fp16"]["analytic"]
        vs32 = agg / r["compact"]["fp32"]["analytic"]
        up = cell(r["uplink"]["fp16"])
        lines.append(
            f"| {r['M']} | {up} | "
            + " | ".join(cells)
            + f" | {vs16:,.0f}× | {vs32:,.0f}× |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ms", default="1,2,3,4,5")
    p.add_argument("--b", type=int, default=32)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--max-serialise-mb", type=float, default=256.0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    limit = int(args.max_serialise_mb * 2**20)
    recs = [
        measure(m, args.b, args.d, limit, rng) for m in map(int, args.ms.split(","))
    ]
    md = (
        f"Bytes per client per step, B = {args.b}, d = {args.d}: analytic payload"
        " (bytes as encoded by fedmuscle_flwr.wire.codec in parentheses;"
        " 'analytic': too large to build).\n\n"
    )
    write(
        out_dir(args.out or "bench-out"),
        "bytes_bench",
        {"results": recs},
        md + table(recs),
    )


if __name__ == "__main__":
    main()
