"""WordNet 3.0 glosses labelled by supersense (lexicographer file).

Each synset line of ``data.<pos>`` reads
``offset lex_filenum ss_type w_cnt word lex_id ... | gloss``; ``lex_filenum`` is
a 2-digit *decimal* index into :data:`LEXNAMES` (the ``lexnames(5WN)`` table).
Nouns use files 03-28 (26 supersenses), verbs 29-43 (15). The text of a sample is
its gloss (definition plus examples, as written after the ``|``). A seeded
:data:`TEST_FRACTION` of each task is held out as its test split.

The adjective and adverb glosses, used by neither task, are the text-only public
set ``wordnet-adj-adv``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from fedmuscle_flwr.data.base import DatasetInfo, LabelledData, Split
from fedmuscle_flwr.data.sources import WORDNET

#: WordNet 3.0 lexicographer files, by number (``man 5 lexnames``).
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition",
    "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption",
    "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)  # fmt: skip
#: held-out share of each WordNet task, and the seed that picks it
TEST_FRACTION = 0.15
SPLIT_SEED = 0


def _classes(pos: str) -> tuple[str, ...]:
    return tuple(n for n in LEXNAMES if n.startswith(f"{pos}."))


NOUN_INFO = DatasetInfo("wordnet-noun", "text", "class", 26, _classes("noun"))
VERB_INFO = DatasetInfo("wordnet-verb", "text", "class", 15, _classes("verb"))


def parse_data_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Glosses and lexicographer-file numbers of a WordNet ``data.<pos>`` file.

    Parameters
    ----------
    path : Path
        E.g. ``/usr/share/wordnet/data.noun``.

    Returns
    -------
    glosses : list[str]
        One gloss per synset, in file order.
    lex_filenums : np.ndarray
        int64 (N,) indices into :data:`LEXNAMES`.
    """
    glosses: list[str] = []
    numbers: list[int] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("  "):  # licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split(" ", 2)
            glosses.append(gloss.strip())
            numbers.append(int(fields[1]))
    return glosses, np.asarray(numbers, dtype=np.int64)


@cache
def _pos_glosses(folder: Path, pos: str) -> tuple[list[str], np.ndarray]:
    return parse_data_file(folder / f"data.{pos}")


def _split(texts: list[str], labels: np.ndarray, info: DatasetInfo) -> LabelledData:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    n_test = round(TEST_FRACTION * len(labels))
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    whole = Split(texts, labels)
    return LabelledData(info, whole.take(train_idx), whole.take(test_idx))


@cache
def _task(folder: Path, pos: str) -> LabelledData:
    texts, numbers = _pos_glosses(folder, pos)
    info = NOUN_INFO if pos == "noun" else VERB_INFO
    first = LEXNAMES.index(info.class_names[0])
    labels = numbers - first
    if labels.min() < 0 or labels.max() >= info.num_classes:
        raise ValueError(f"data.{pos}: lexicographer file outside {info.name}")
    return _split(texts, labels, info)


def load_wordnet_noun() -> LabelledData:
    """Noun glosses → 26 supersenses (about 69.8k train / 12.3k test)."""
    return _task(WORDNET.require("wordnet-noun"), "noun")


def load_wordnet_verb() -> LabelledData:
    """Verb glosses → 15 supersenses (about 11.7k train / 2.1k test)."""
    return _task(WORDNET.require("wordnet-verb"), "verb")


def wordnet_adj_adv_glosses() -> list[str]:
    """All adjective then adverb glosses (about 21.8k strings)."""
    folder = WORDNET.require("wordnet-adj-adv")
    return _pos_glosses(folder, "adj")[0] + _pos_glosses(folder, "adv")[0]
