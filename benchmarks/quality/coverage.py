"""Beam search's coverage penalty on a trained workdir: BLEU, under- and over-translation.

    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.coverage \
        --workdir=/tmp/en_de_cgru --split=heldout --coverage_penalties=0,0.1,0.2,0.4 \
        --name=multi30k_en_de_cgru_heldout
    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.coverage \
        --workdir=/tmp/en_de_cgru --split=test2016 --coverage_penalties=0,0.2 \
        --name=multi30k_en_de_cgru_test2016

The sweep is meant for the held-out split (--split=heldout); the penalty it picks is then
scored once on a test split (with 0 next to it, for the comparison). The split's sentences
(its first --num_sentences, or all) are translated by beam search at --beam_size and
--alpha (default: the workdir's config.decode) for every coverage penalty beta of
--coverage_penalties (`jaxseq/decoding/beam_search.py`: a finished hypothesis scores
log P / lp + beta * sum_i log(min(attention received by source token i, 1))), through the
evaluation path of jaxseq-evaluate (`evaluation.evaluate_split`: the same batches, empty
and over-long sources handled the same way). Several --workdir: their ensemble (its
attention is the mean of its members'). Per beta, reported:

- BLEU: sacreBLEU's corpus BLEU, cased, on detokenised text (as every results file), with
  its signature; and `bleu_lc_tok` (`jaxseq/decoding/evaluation.py`).
- Under-translation share: of the real source words of the translated sentences, the
  share whose total attention over the output is below --threshold (0.5). Counted on
  words, not subword pieces: a word's attention at a step is the sum of its pieces'
  (as `jaxseq/decoding/alignment.py` merges pieces into words), and its total is the sum
  over every output step of the best translation, the EOS step included (the steps the
  penalty sums). A word that the decoder never looked at for half a step's worth of
  attention was most likely left untranslated.
- Over-translation share: of the word 3-grams of the hypotheses (whitespace-separated
  words of the detokenised text, cased), the share that are repeats the references do
  not license. Per hypothesis and distinct 3-gram g, with c_h(g) its count in the
  hypothesis and c_r(g) its largest count in one of the sentence's references, the
  unlicensed repeats are max(0, c_h(g) - max(1, c_r(g))): the occurrences beyond the
  first that the reference does not repeat as often. The share is their sum over the
  split divided by the hypotheses' 3-grams (a hypothesis of n words has n - 2).

Writes benchmarks/results/coverage/NAME.json (--out_dir): the command, hardware,
versions, the workdirs and steps, the split, the settings and one row per beta; prints
the table in markdown.
"""

import argparse
import collections
import dataclasses
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from benchmarks import common

MODULE = "benchmarks.quality.coverage"
OUT_DIR = os.path.join(common.RESULTS, "coverage")
COLUMNS = [
  ("coverage_penalty", "coverage penalty", "g"),
  ("bleu", "BLEU", ".2f"),
  ("bleu_lc_tok", "bleu_lc_tok", ".2f"),
  ("under_translation", "under-translated words", ".4f"),
  ("over_translation", "repeated 3-grams", ".4f"),
  ("output_words_per_source_word", "output/source words", ".3f"),
]


def word_coverage(attention: np.ndarray, word_of: Sequence[int]) -> np.ndarray:
  """Each source word's attention summed over the output steps.

  attention: [output steps, source pieces] (columns past the pieces are ignored);
  word_of: each piece's word index (`alignment.word_positions`). Returns [words].
  """
  attention = np.asarray(attention, np.float64)
  pieces = len(word_of)
  per_piece = np.zeros(pieces)
  width = min(pieces, attention.shape[1])
  per_piece[:width] = attention[:, :width].sum(0)
  words = max(word_of) + 1 if pieces else 0
  return np.bincount(np.asarray(word_of, np.int64), weights=per_piece, minlength=words)


def under_translated(coverages: Sequence[np.ndarray], threshold: float = 0.5) -> tuple[int, int]:
  """(source words whose coverage is below threshold, source words) over sentences."""
  low = sum(int(np.sum(np.asarray(c) < threshold)) for c in coverages)
  return low, sum(len(c) for c in coverages)


def trigrams(text: str) -> collections.Counter:
  """The word 3-grams of a text (whitespace-separated words), counted."""
  words = text.split()
  return collections.Counter(zip(words, words[1:], words[2:]))


def repeated_trigrams(hypothesis: str, references: Sequence[str]) -> tuple[int, int]:
  """(unlicensed repeated 3-grams, 3-grams) of one hypothesis (see the module's docstring)."""
  counts = trigrams(hypothesis)
  licensed: collections.Counter = collections.Counter()
  for reference in references:
    licensed |= trigrams(reference)  # the largest count in one reference
  repeats = sum(max(0, n - max(1, licensed[g])) for g, n in counts.items())
  return repeats, sum(counts.values())


def over_translation(
  hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[int, int]:
  """(unlicensed repeated 3-grams, 3-grams) summed over a split."""
  pairs = [repeated_trigrams(h, r) for h, r in zip(hypotheses, references)]
  return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def _numbers(text: str) -> list[float]:
  return [float(v) for v in text.split(",") if v.strip()]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[float]]:
  """The flags and the coverage penalties; exits 2 with one line on a bad flag."""
  parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
  parser.add_argument(
    "--workdir", action="append", required=True, help="a trained workdir (several: an ensemble)"
  )
  parser.add_argument("--split", default="heldout", help="'heldout' or a test split")
  parser.add_argument("--name", required=True, help="the results file: OUT_DIR/NAME.json")
  parser.add_argument("--out_dir", default=OUT_DIR, help="directory of the results file")
  parser.add_argument(
    "--coverage_penalties", default="0,0.1,0.2,0.4", help="comma-separated numbers >= 0"
  )
  parser.add_argument("--beam_size", type=int, help="default: config.decode.beam_size")
  parser.add_argument("--alpha", type=float, help="length penalty; default: config.decode.alpha")
  parser.add_argument("--num_sentences", type=int, default=0, help="the split's first N (0: all)")
  parser.add_argument("--batch_size", type=int, help="default: the workdir's config.batch_size")
  parser.add_argument(
    "--threshold", type=float, default=0.5, help="a word below this attention is under-translated"
  )
  args = parser.parse_args(argv)
  try:
    penalties = _numbers(args.coverage_penalties)
  except ValueError:
    penalties = []
  if not penalties or min(penalties) < 0 or not all(np.isfinite(penalties)):
    parser.error(
      f"--coverage_penalties={args.coverage_penalties!r} is not allowed; expected numbers "
      ">= 0 separated by commas"
    )
  for name in ("beam_size", "batch_size"):
    value = getattr(args, name)
    if value is not None and value < 1:
      parser.error(f"--{name} must be at least 1")
  if args.alpha is not None and not args.alpha >= 0:
    parser.error(f"--alpha={args.alpha} is not allowed; expected a number >= 0")
  if args.num_sentences < 0:
    parser.error("--num_sentences must be at least 0")
  if not args.threshold > 0:
    parser.error("--threshold must be above 0")
  return args, penalties


def main(argv: list[str]) -> int:
  """Scores the split at every coverage penalty; writes the JSON. 0, or 2 after one error
  line."""
  args, penalties = parse(argv)
  from benchmarks.quality import driver
  from jaxseq.data import corpora
  from jaxseq.decoding import alignment, evaluation
  from jaxseq.decoding.options import Search

  found = driver.load_split(args.workdir, args.split, args.num_sentences)
  if found is None:
    return 2
  loaded, config, pairs, references = found
  vocabs = loaded.vocabularies()
  batch_size = args.batch_size or config.batch_size
  searcher = loaded.searcher(batch_size)
  split = evaluation.Split(pairs, references, language=corpora.target_language(config))
  given = {"beam_size": args.beam_size, "alpha": args.alpha}
  base = dataclasses.replace(
    loaded.options, search=Search.BEAM, nbest=1, **{k: v for k, v in given.items() if v is not None}
  )
  # Each source's pieces -> words, and its words (the under-translation share's denominator).
  encoded = [vocabs.source.encode(s)[: searcher.max_length] for s, _ in pairs]
  word_of = [alignment.word_positions(vocabs.source, ids) for ids in encoded]

  rows = []
  for beta in penalties:
    options = dataclasses.replace(base, coverage_penalty=beta)
    started = time.perf_counter()
    result = evaluation.evaluate_split(searcher, vocabs, split, options)
    seconds = time.perf_counter() - started
    coverages = [word_coverage(a, w) for a, w in zip(result.attentions, word_of)]
    low, words = under_translated(coverages, args.threshold)
    repeats, grams = over_translation(result.hypotheses, references)
    output_words = sum(len(h.split()) for h in result.hypotheses)
    metrics = result.metrics
    row = {
      "coverage_penalty": beta,
      "bleu": metrics["bleu"],
      "bleu_lc_tok": metrics.get("bleu_lc_tok"),
      "bleu_signature": metrics["bleu_signature"],
      "under_translation": low / words if words else 0.0,
      "under_translated_words": low,
      "source_words": words,
      "over_translation": repeats / grams if grams else 0.0,
      "repeated_trigrams": repeats,
      "trigrams": grams,
      "output_words_per_source_word": output_words / words if words else 0.0,
      "seconds": seconds,  # compilation included for the first beta
    }
    rows.append(row)
    print({k: row[k] for k in ("coverage_penalty", "bleu", "seconds")}, flush=True)

  record = {
    "command": common.command_line(MODULE, argv),
    "workdirs": args.workdir,
    "steps": [m.step for m in loaded.members],
    "dataset": config.dataset,
    "split": args.split,
    "settings": {
      "sentences": len(pairs),
      "batch_size": batch_size,
      "beam_size": base.beam_size,
      "alpha": base.alpha,
      "max_length_ratio": base.max_length_ratio,
      "max_length_offset": base.max_length_offset,
      "threshold": args.threshold,
      "under_translation_unit": "source words (pieces summed)",
    },
    "rows": rows,
    "hardware": common.hardware(),
    "versions": common.versions(),
  }
  out = os.path.join(args.out_dir, f"{args.name}.json")
  common.write_json(out, record)
  print(f"\n{args.split}, {len(pairs)} sentences, beam {base.beam_size}, alpha {base.alpha}:\n")
  print(common.markdown_table(rows, COLUMNS))
  print(f"\nwrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
