"""Tests of fedmuscle_flwr.data.text on a small file in WordNet's ``data.<pos>`` format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedmuscle_flwr.data import text

HEADER = "  1 This software and database is being provided to you, the LICENSEE\n"


def write_data(folder: Path, pos: str, rows: list[tuple[int, str]]) -> Path:
    """``data.<pos>`` with a licence header and one synset line per (lex number, gloss)."""
    lines = [HEADER, HEADER]
    for i, (number, gloss) in enumerate(rows):
        lines.append(f"{i:08d} {number:02d} n 01 word{i} 0 000 | {gloss}  \n")
    path = folder / f"data.{pos}"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_parse_skips_the_header_and_reads_number_and_gloss(tmp_path: Path) -> None:
    path = write_data(
        tmp_path, "noun", [(3, 'that which is; "a thing"'), (28, "a time")]
    )
    glosses, numbers = text.parse_data_file(path)
    assert glosses == ['that which is; "a thing"', "a time"]
    assert numbers.dtype == np.int64 and numbers.tolist() == [3, 28]


def test_class_tables_match_the_documented_sizes() -> None:
    assert text.NOUN_INFO.num_classes == 26 == len(text.NOUN_INFO.class_names)
    assert text.VERB_INFO.num_classes == 15 == len(text.VERB_INFO.class_names)
    assert text.LEXNAMES[3] == "noun.Tops" and text.LEXNAMES[29] == "verb.body"


def test_a_task_shifts_labels_and_holds_out_a_seeded_share(tmp_path: Path) -> None:
    # Prepare: 40 verb synsets over lexicographer files 29..43
    rows = [(29 + i % 15, f"gloss {i}") for i in range(40)]
    write_data(tmp_path, "verb", rows)
    # Execute
    data = text._task(tmp_path, "verb")
    # Assert: labels are file numbers - 29; 15 % held out; same split every time
    assert len(data.test.y) == round(text.TEST_FRACTION * 40)
    assert len(data.train.y) + len(data.test.y) == 40
    for split in (data.train, data.test):
        for gloss, label in zip(split.x, split.y, strict=True):
            assert label == int(gloss.split()[1]) % 15
    texts, labels = [g for _, g in rows], np.arange(40) % 15
    first = text._split(texts, labels, text.VERB_INFO)
    second = text._split(texts, labels, text.VERB_INFO)
    assert list(first.test.x) == list(second.test.x)
    assert set(first.test.x).isdisjoint(first.train.x)


def test_a_noun_file_with_a_verb_number_is_refused(tmp_path: Path) -> None:
    write_data(tmp_path, "noun", [(3, "a"), (30, "b")])
    with pytest.raises(ValueError, match="outside wordnet-noun"):
        text._task(tmp_path, "noun")
