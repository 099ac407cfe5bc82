"""Word alignments from attention weights, in the Pharaoh format ("0-0 1-2 ...").

The decoder attends from output tokens to source tokens; with SentencePiece these are
pieces of words. Alignment tools and annotation projects read links between the
whitespace-separated words of the source line and of the translation, so the pieces are
merged back into words:

  * a token belongs to the word of `decode(ids[:i + 1])` that holds its last character;
    a token that adds only whitespace belongs to the word after it (for the word
    vocabulary every token is one word);
  * a source word's weight is the sum of its pieces' weights (the probability mass the
    decoder put on that word), and a target word's row is the mean of its pieces' rows;
  * each target word is linked to the source word with the largest weight (the first on
    a tie), and the EOS row is left out. So every target word has exactly one link.

Pharaoh pairs are `source-target`, 0-based word indices, ordered by target word.

References:
  Koehn et al. 2003 / the Pharaoh decoder (the "i-j" alignment format); Bahdanau et al.
    2015, Sec. 5.2.1 (attention weights read as soft alignments).
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
  from jaxseq.data.tokenizers import Tokenizer

Ids = Sequence[int] | np.ndarray  # token ids of one sentence


def word_positions(tokenizer: "Tokenizer", ids: Ids) -> list[int]:
  """For each token id, the index of the whitespace-separated word of decode(ids) it is in."""
  ids = [int(i) for i in ids]
  total = len(tokenizer.decode(ids).split())
  positions = []
  for i in range(len(ids)):
    text = tokenizer.decode(ids[: i + 1])
    words = len(text.split())
    word = words if (not text or text[-1].isspace()) else words - 1
    positions.append(min(word, max(total - 1, 0)))
  return positions


def word_links(
  attention: np.ndarray, src_words: Sequence[int], tgt_words: Sequence[int]
) -> list[tuple[int, int]]:
  """(source word, target word) links from piece-level attention.

  attention: [target pieces (EOS row allowed after them), source pieces];
  src_words / tgt_words: `word_positions` of the source and the target pieces.
  """
  if not len(src_words) or not len(tgt_words):
    return []
  attention = np.asarray(attention, np.float64)[: len(tgt_words), : len(src_words)]
  src_count, tgt_count = max(src_words) + 1, max(tgt_words) + 1
  to_src_words = np.zeros((len(src_words), src_count))
  to_src_words[np.arange(len(src_words)), src_words] = 1.0  # piece -> its word, summed
  to_tgt_words = np.zeros((tgt_count, len(tgt_words)))
  to_tgt_words[tgt_words, np.arange(len(tgt_words))] = 1.0
  to_tgt_words /= np.maximum(to_tgt_words.sum(1, keepdims=True), 1.0)  # mean of pieces
  words = to_tgt_words @ attention @ to_src_words  # --> [target words, source words]
  return [(int(np.argmax(row)), t) for t, row in enumerate(words)]


def pharaoh(links: Sequence[tuple[int, int]]) -> str:
  """'s-t s-t ...' for (source, target) word links."""
  return " ".join(f"{s}-{t}" for s, t in links)


def align(
  attention: np.ndarray, src_ids: Ids, out_ids: Ids, src_vocab: "Tokenizer", tgt_vocab: "Tokenizer"
) -> str:
  """The Pharaoh word alignment of one translation (out_ids without EOS) of src_ids."""
  return pharaoh(
    word_links(attention, word_positions(src_vocab, src_ids), word_positions(tgt_vocab, out_ids))
  )
