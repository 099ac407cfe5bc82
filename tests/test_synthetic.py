import numpy as np
import pytest
from num2words import num2words

from jaxseq.data import synthetic


def test_german_split_rebuilds_the_word_for_many_numbers():
  rng = np.random.default_rng(0)
  for n in list(range(0, 130)) + rng.integers(0, synthetic.MAX_NUMBER + 1, 400).tolist():
    word = num2words(int(n), lang="de")
    parts = synthetic.split_german(word)
    assert "".join(parts) == word


def test_german_puts_units_before_tens():
  assert synthetic.render(742, "de") == (
    "seven hundred and forty two",
    "sieben hundert zwei und vierzig",
  )
  assert synthetic.render(97, "fr")[1] == "quatre vingt dix sept"


def test_splits_are_disjoint_deterministic_and_sized():
  a = synthetic.make_splits(3, 3000, 200, "de")
  b = synthetic.make_splits(3, 3000, 200, "de")
  c = synthetic.make_splits(4, 3000, 200, "de")
  assert a == b and a != c
  assert len(a["train"]) == 3000 and len(a["eval"]) == 200
  held = {s for s, _ in a["eval"]}
  assert len(held) == 200  # distinct held-out sentences
  assert not {s for s, _ in a["train"]} & held


def test_every_small_number_is_in_training():
  train = {s for s, _ in synthetic.make_splits(0, 3000, 200, "de")["train"]}
  small = {synthetic.render(n, "de")[0] for n in range(100)}
  assert small <= train


def test_unknown_language_is_named():
  with pytest.raises(ValueError, match="unknown language 'it'"):
    synthetic.render(5, "it")
