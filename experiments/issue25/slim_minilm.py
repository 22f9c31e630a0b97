"""MiniLM's weights with the token-embedding rows issue 25's runs never look up zeroed.

    python experiments/issue25/slim_minilm.py MODEL.safetensors SEEDS ROSTER...

For the GPU machine's carry (zeros compress to almost nothing): a row of
``embeddings.word_embeddings.weight`` is kept when its WordPiece id occurs in a text
some client of ROSTER... reads under SEEDS (experiments/issue25/slim_data.py), in a
caption of the public set (word dropout keeps words whole, so its ids are a subset), or
is a special token; every other row is set to zero. The frozen embedding reads only
the rows of the ids it is given, so the runs compute exactly what they would with the
full matrix; the script checks that on a sample of those texts and exits non-zero
otherwise. Edits MODEL.safetensors in place.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fedmuscle_flwr.data import captions
from fedmuscle_flwr.models.pretrained import load_minilm, minilm_tokenizer

KEY = "embeddings.word_embeddings.weight"
_SPEC = importlib.util.spec_from_file_location(
    "slim_data", Path(__file__).parent / "slim_data.py"
)
assert _SPEC is not None and _SPEC.loader is not None
slim_data = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(slim_data)


def encode(model: torch.nn.Module, tok: object, texts: list[str]) -> torch.Tensor:
    batch = tok(
        texts, padding=True, truncation=True, max_length=32, return_tensors="pt"
    )  # type: ignore[operator]
    with torch.no_grad():
        return model(**batch).last_hidden_state


def main() -> None:
    path, seeds, rosters = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    texts = sorted(slim_data.used_texts([int(s) for s in seeds.split(",")], rosters))
    texts += captions.emoji_pairs()[1] + captions.tuxpaint_pairs()[1]
    tok = minilm_tokenizer()
    ids = set(tok.all_special_ids)
    for i in range(0, len(texts), 4096):
        for row in tok(texts[i : i + 4096], truncation=False)["input_ids"]:
            ids.update(row)
    state = load_file(str(path))
    emb = state[KEY]
    keep = torch.zeros(emb.shape[0], dtype=torch.bool)
    keep[sorted(ids)] = True
    sample = texts[:: max(1, len(texts) // 256)]
    model = load_minilm(6, pretrained=False).eval()
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    before = encode(model, tok, sample)  # the staged (fp16) weights as they are
    state[KEY] = torch.where(keep[:, None], emb, torch.zeros_like(emb))
    save_file(state, str(path))
    model.load_state_dict({KEY: state[KEY].float()}, strict=False)
    after = encode(model, tok, sample)
    if not torch.equal(before, after):
        raise SystemExit("the slim embedding changes the encodings")
    print(f"kept {int(keep.sum())} of {len(keep)} token rows ({len(texts)} texts); "
          f"encodings of {len(sample)} sample texts unchanged")  # fmt: skip


if __name__ == "__main__":
    main()
