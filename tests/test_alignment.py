"""Word alignments: pieces merged back into words, one Pharaoh link per target word."""

import numpy as np
import pytest

from jaxseq.data import tokenizers
from jaxseq.data.vocab import WordVocab
from jaxseq.decoding import alignment

SENTENCES = [
  "the unbelievable cyclists were overtaking the slower lorries",
  "a remarkable overtaking manoeuvre",
  "unbelievable",
  "the lorries were slower",
  "two cyclists   and  a dog",
] * 4


@pytest.fixture(scope="module")
def pieces():
  # A small vocabulary, so that long words are cut into several pieces.
  return tokenizers.build(
    "sentencepiece", SENTENCES, vocab_size=300
  )  # 256 byte pieces + ~20 merges


def test_word_vocabulary_tokens_are_words():
  vocab = WordVocab.build(SENTENCES)
  ids = vocab.encode("the slower cyclists")
  assert alignment.word_positions(vocab, ids) == [0, 1, 2]


@pytest.mark.parametrize(
  "text",
  [
    "the unbelievable cyclists were overtaking",
    "two cyclists   and  a dog",
    " unbelievable lorries ",
    "zürich überholt",
  ],
)
def test_each_word_is_its_own_pieces(pieces, text):
  ids = pieces.encode(text)
  positions = alignment.word_positions(pieces, ids)
  words = pieces.decode(ids).split()
  assert len(ids) > len(words)  # some word is cut into pieces
  assert positions == sorted(positions) and set(positions) == set(range(len(words)))
  for w, word in enumerate(words):
    own = [i for i, p in zip(ids, positions) if p == w]
    assert pieces.decode(own).strip() == word


def test_source_pieces_add_up_and_target_pieces_average():
  # Source: word 0 = pieces 0 and 1, word 1 = piece 2. Target: word 0 = piece 0,
  # word 1 = pieces 1 and 2; the last row is EOS's.
  attention = np.array(
    [
      [0.3, 0.3, 0.4],  # piece 2 is the largest, word 0 weighs 0.6
      [0.1, 0.1, 0.8],
      [0.5, 0.4, 0.1],  # mean with the row above: words 0.55 / 0.45
      [0.0, 0.0, 1.0],
    ]
  )  # EOS: left out
  links = alignment.word_links(attention, [0, 0, 1], [0, 1, 1])
  assert links == [(0, 0), (0, 1)]
  assert alignment.pharaoh(links) == "0-0 0-1"
  # Without the averaging, the last piece alone would link target word 1 to source word 0,
  # and the first piece alone to source word 1.
  assert alignment.word_links(attention[[0, 1]], [0, 0, 1], [0, 1]) == [(0, 0), (1, 1)]


def test_align_gives_one_link_per_target_word(pieces):
  src = pieces.encode("the unbelievable cyclists")
  out = pieces.encode("the slower lorries were overtaking")
  rng = np.random.default_rng(0)
  attention = rng.dirichlet(np.ones(len(src)), size=len(out) + 1)  # + EOS
  links = [
    tuple(map(int, link.split("-")))
    for link in alignment.align(attention, src, out, pieces, pieces).split()
  ]
  assert [t for _, t in links] == list(range(5))
  assert all(0 <= s < 3 for s, _ in links)
  assert alignment.align(np.zeros((1, 0)), [], [], pieces, pieces) == ""
