"""Packaged text sets: WordNet glosses (nouns, verbs; adjectives + adverbs public)."""

from __future__ import annotations

from fedmuscle_flwr.data import text
from fedmuscle_flwr.data.base import LabelledData
from fedmuscle_flwr.data.catalog.base import TEXT, private, public
from fedmuscle_flwr.data.public import InMemoryPublicData
from fedmuscle_flwr.data.sources import WORDNET


@private(
    "wordnet-noun",
    text.NOUN_INFO,
    "WordNet 3.0 noun glosses -> supersense, 69.8k/12.3k",
    WORDNET,
)
def _noun() -> LabelledData:
    return text.load_wordnet_noun()


@private(
    "wordnet-verb",
    text.VERB_INFO,
    "WordNet 3.0 verb glosses -> supersense, 11.7k/2.1k",
    WORDNET,
)
def _verb() -> LabelledData:
    return text.load_wordnet_verb()


@public(
    "wordnet-adj-adv",
    TEXT,
    "21.8k WordNet adjective and adverb glosses (text only)",
    WORDNET,
)
def _wordnet_adj_adv() -> InMemoryPublicData:
    return InMemoryPublicData("wordnet-adj-adv", texts=text.wordnet_adj_adv_glosses())
