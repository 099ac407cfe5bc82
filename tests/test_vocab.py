import pytest

from jaxseq.data.tokenizers import load_pair, save_pair
from jaxseq.data.vocab import BOS, EOS, PAD, UNK, WordVocab


def test_round_trip_and_reserved_ids(tmp_path):
  v = WordVocab.build(["a b c", "b c", "c"])
  assert v.words[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
  assert v.words[4:] == ["c", "b", "a"]  # most frequent first
  ids = v.encode("a c b")
  assert v.decode([BOS] + ids + [EOS, 7, 7]) == "a c b"  # stops at EOS, drops BOS
  assert v.encode("a zebra") == [v.index["a"], UNK]
  assert v.decode([PAD, v.index["b"], PAD]) == "b"
  save_pair(str(tmp_path), v, WordVocab.build(["x y"]))
  src, tgt = load_pair(str(tmp_path))
  assert src.words == v.words and len(tgt) == 6


def test_a_vocabulary_must_reserve_the_specials():
  with pytest.raises(ValueError, match="must start with"):
    WordVocab(["a", "b"])


def test_unknown_tokenizer_type_is_named(tmp_path):
  (tmp_path / "src_vocab.json").write_text('{"type": "bytes"}')
  (tmp_path / "tgt_vocab.json").write_text('{"type": "bytes"}')
  with pytest.raises(ValueError, match="unknown tokenizer type 'bytes'"):
    load_pair(str(tmp_path))
