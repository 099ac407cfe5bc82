"""SentencePiece and word tokenizers: reserved ids, exact round trip, save/load, determinism."""

from jaxseq.data import tokenizers, vocab
from jaxseq.data.vocab import BOS, EOS, PAD, UNK

SENTENCES = [
  f"Ein {w} Hund läuft über die Wiese, {i} Mal!"
  for i, w in enumerate(["kleiner", "großer", "brauner", "weißer", "schneller"] * 8)
]


def test_sentencepiece_round_trip_is_exact_even_for_unseen_text():
  tok = tokenizers.SentencePieceTokenizer.train(SENTENCES, vocab_size=320, model_type="bpe")
  for text in SENTENCES[:5] + ["Unbekannt: 日本語 ✓  zwei  Leerzeichen", " führend"]:
    ids = tok.encode(text)
    assert min(ids) > UNK  # reserved ids never come out of encode
    assert tok.decode(ids) == text


def test_sentencepiece_reserves_ids_and_stops_at_eos():
  tok = tokenizers.SentencePieceTokenizer.train(SENTENCES, vocab_size=320, model_type="unigram")
  ids = tok.encode("Ein Hund")
  assert tok.decode([BOS] + ids + [EOS] + tok.encode("Wiese") + [PAD]) == "Ein Hund"
  assert [tok.processor.id_to_piece(i) for i in (PAD, BOS, EOS, UNK)] == list(vocab.SPECIALS)


def test_sentencepiece_training_is_deterministic():
  a = tokenizers.SentencePieceTokenizer.train(SENTENCES, vocab_size=320)
  b = tokenizers.SentencePieceTokenizer.train(SENTENCES, vocab_size=320)
  assert a.model_proto == b.model_proto


def test_saved_tokenizers_are_found_by_type_in_a_workdir(tmp_path):
  pairs = [(s, s.upper()) for s in SENTENCES]
  src, tgt = tokenizers.build_or_load("sentencepiece", pairs, str(tmp_path), vocab_size=320)
  tokenizers.save_pair(str(tmp_path), src, tgt)
  loaded_src, loaded_tgt = tokenizers.load_pair(str(tmp_path))
  assert isinstance(loaded_src, tokenizers.SentencePieceTokenizer)
  assert loaded_tgt.encode(pairs[3][1]) == tgt.encode(pairs[3][1])
  # a second build in the same workdir reuses the saved files even for other data
  again, _ = tokenizers.build_or_load("sentencepiece", [("x", "y")] * 3, str(tmp_path))
  assert again.model_proto == src.model_proto


def test_word_vocab_round_trips_normalized_text():
  tok = tokenizers.build("word", ["i am cold .", "he is tall !"])
  assert tok.decode(tok.encode("he is cold !")) == "he is cold !"
  assert tok.encode("she is")[0] == UNK


class CountingPairs(list):
  """A list of pairs that counts what `take` reads (as datasets.PairSource offers it)."""

  read = 0

  def take(self, indices):
    self.read += len(indices)
    return [self[i] for i in indices]


def test_tokenizers_learn_from_a_bounded_reproducible_sample():
  pairs = CountingPairs((f"quelle {i}", f"ziel {i}") for i in range(1000))
  sample = tokenizers.training_sample(pairs, 100)
  assert len(sample) == 100 == pairs.read and len(set(sample)) == 100
  assert sample == sorted(sample, key=pairs.index)  # drawn without replacement, corpus order
  assert tokenizers.training_sample(pairs, 100) == sample  # the same for every run
  assert tokenizers.training_sample(pairs, 100, seed=1) != sample
  assert tokenizers.training_sample(pairs[:50], 100) == pairs[:50]  # a small split: all of it
  src, tgt = tokenizers.build_or_load("word", pairs, None, max_pairs=100)
  assert set(src.words) - set(vocab.SPECIALS) == {"quelle"} | {s.split()[1] for s, _ in sample}
  assert len(tgt) == len(src)


def test_nul_control_and_combining_characters_encode_with_both_kinds():
  # What jaxseq-translate passes on from a plain or --json line (only text that is not
  # valid Unicode is refused before it reaches a tokenizer).
  text = "Ein\x00 Hund\x1b[31m läuft\u0301\u200b"
  tok = tokenizers.SentencePieceTokenizer.train(SENTENCES, vocab_size=320, model_type="bpe")
  ids = tok.encode(text)
  assert min(ids) > UNK and tok.decode(ids) == text  # byte fallback: exact
  words = vocab.WordVocab.build(SENTENCES)
  assert UNK not in words.encode("Ein Hund läuft")
  assert words.encode(text) == [UNK, UNK, UNK]  # each word with such a character is unknown
