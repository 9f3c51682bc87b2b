"""The vocabulary in code, in vocab.json and in docs/hid.md are one and the same."""

from __future__ import annotations

import re

from conftest import REPO

from meloformer.hid import Family, HIDConfig, Vocab
from meloformer.hid.vocab import VOCAB_JSON, VOCAB_VERSION, load_vocab_json

ROW = re.compile(r"^\| (\w+) \| (\d+)–(\d+) \| (\d+) \|")


def test_json_matches_code():
    stored = load_vocab_json(VOCAB_JSON)
    vocab = Vocab(HIDConfig())
    assert stored["version"] == VOCAB_VERSION
    assert stored["tokens"] == vocab.tokens
    assert stored["hash"] == vocab.hash
    assert VOCAB_JSON.read_text() == vocab.to_json()


def test_doc_table_matches_code():
    vocab = Vocab(HIDConfig())
    doc = (REPO / "docs" / "hid.md").read_text().splitlines()
    rows = {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in map(ROW.match, doc) if m}
    expected = {f.name: (r.start, r.stop - 1, len(r)) for f, r in vocab.ranges.items()}
    assert rows == expected
    assert f"{len(vocab)} tokens" in "\n".join(doc)


def test_families_are_contiguous_and_disjoint():
    vocab = Vocab(HIDConfig())
    covered = sorted(i for r in vocab.ranges.values() for i in r)
    assert covered == list(range(len(vocab)))
    assert [f.value for f in Family] == list(range(len(Family)))


def test_config_changes_vocab_hash():
    assert Vocab(HIDConfig(resolution=24)).hash != Vocab(HIDConfig()).hash
