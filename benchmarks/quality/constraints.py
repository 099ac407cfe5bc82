"""Lexically constrained beam search on a trained workdir: its speed, and what terminology
taken from the reference does to the scores.

    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.constraints \
        --workdir=/tmp/en_de_cgru --split=test2016 \
        --out=benchmarks/results/decode/constraints_multi30k_en_de_cgru.json

Eligible words. A word of a sentence's first reference is eligible when, stripped of the
punctuation around it, it has at least --min_chars characters (4: short function words such
as "a", "the", "ein", "der" are left out), holds a letter and no punctuation other than
hyphens and apostrophes, and the target tokenizer can write it as a constraint
(`jaxseq/decoding/phrases.py`); each word counts once. Each sentence orders its eligible
words by a permutation drawn from a generator seeded with (--seed, sentence number), so the
choice is deterministic and does not depend on the other sentences.

1. Speed. The split's sentences (its first --num_sentences, or all) are decoded by beam
   search at every size of --beam_sizes with N constraints per sentence for every N of
   --constraints: the first N eligible words of the sentence's order (fewer where it has
   fewer, or where more would pass the most constraint tokens a sentence may hold; N = 0 is
   the search without constraints). Every setting decodes the same sentences in the same
   batches; a first call compiles (not timed), then --repeats calls are timed and their
   median gives seconds and sentences/s, and the speed of each N relative to N = 0 at the
   same beam. Each row also gives the cased BLEU of its outputs, the share of its
   constraints met and its unmet sentences (see 2). `speed_target` checks the target:
   2 constraints per sentence at beam 4 at least 0.5x the speed of none at beam 4.
2. Terminology. The split is decoded without constraints at --quality_beam (default: the
   workdir's config.decode.beam_size). Each sentence then takes as constraints up to
   --terms eligible words that its output misses (the word's target ids do not appear in
   the output's ids, as jaxseq-evaluate counts a phrase met), in the sentence's order;
   a sentence whose output holds every eligible word, or that has none, takes none. The
   constrained sentences are decoded again with their constraints, and the split is
   scored twice: with the outputs without constraints, and with those sentences' outputs
   replaced by the constrained ones (a sentence whose constraints the search cannot meet
   scores as an empty translation, as in jaxseq-evaluate). Reported: cased sacreBLEU and
   bleu_lc_tok (`jaxseq/decoding/evaluation.py`) of both, the share of constraints the
   constrained outputs contain, and the sentences constrained and unmet (a constrained
   sentence is unmet when its best output lacks one of its phrases or it has no output;
   the search is meant to give none rather than one that lacks a phrase, and
   `sentences_without_output` counts those).

Writes --out (JSON): the command, hardware, versions, the workdir and its checkpoint step,
the split, the settings and both tables; prints both tables in markdown.
"""

import argparse
import dataclasses
import string
import sys
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from benchmarks import common
from jaxseq.data.tokenizers import Tokenizer
from jaxseq.decoding import phrases

MODULE = "benchmarks.quality.constraints"
INNER_PUNCTUATION = "-'"  # what an eligible word may hold besides letters and digits
OUTER_PUNCTUATION = string.punctuation + "„“”‚‘’«»…"  # stripped around a word


def _numbers(text: str) -> list[int]:
  return [int(v) for v in text.split(",") if v.strip()]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[int], list[int]]:
  """The flags, the beam sizes and the constraint counts; exits 2 with one line on a bad
  flag."""
  parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="a trained workdir")
  parser.add_argument("--split", default="test2016", help="'heldout' or a test split")
  parser.add_argument("--out", required=True, help="the results JSON file")
  parser.add_argument("--num_sentences", type=int, default=0, help="the split's first N (0: all)")
  parser.add_argument("--beam_sizes", default="1,4,8", help="speed: comma-separated beam sizes")
  parser.add_argument(
    "--constraints", default="0,1,2,4", help="speed: comma-separated constraints per sentence"
  )
  parser.add_argument("--repeats", type=int, default=3, help="speed: timed calls per setting")
  parser.add_argument("--quality_beam", type=int, help="terminology: beam size (default: config)")
  parser.add_argument("--terms", type=int, default=2, help="terminology: most words per sentence")
  parser.add_argument("--min_chars", type=int, default=4, help="shortest eligible word")
  parser.add_argument("--seed", type=int, default=0, help="seeds each sentence's word order")
  parser.add_argument("--batch_size", type=int, help="default: the workdir's config.batch_size")
  args = parser.parse_args(argv)
  try:
    beams, counts = _numbers(args.beam_sizes), _numbers(args.constraints)
  except ValueError:
    parser.error("--beam_sizes and --constraints take comma-separated integers")
  if not beams or min(beams) < 1 or not counts or min(counts) < 0:
    parser.error("--beam_sizes needs integers >= 1 and --constraints integers >= 0")
  for name in ("repeats", "terms", "min_chars", "quality_beam", "batch_size"):
    value = getattr(args, name)
    if value is not None and value < 1:
      parser.error(f"--{name} must be at least 1")
  if args.num_sentences < 0:
    parser.error("--num_sentences must be at least 0")
  return args, beams, counts


def eligible_words(reference: str, tokenizer: Tokenizer, min_chars: int) -> list[str]:
  """The reference's words that may be constraints (see the module's docstring), in the
  reference's order, each once."""
  found: list[str] = []
  for token in reference.split():
    word = token.strip(OUTER_PUNCTUATION)
    if (
      len(word) < min_chars
      or word in found
      or not any(c.isalpha() for c in word)
      or not all(c.isalnum() or c in INNER_PUNCTUATION for c in word)
    ):
      continue
    try:
      phrases.phrase_ids(tokenizer, word)
    except ValueError:  # a word the target vocabulary cannot write
      continue
    found.append(word)
  return found


def word_order(words: list[str], seed: int, sentence: int) -> list[str]:
  """The sentence's eligible words in its own seeded order."""
  rng = np.random.default_rng([seed, sentence])
  return [words[j] for j in rng.permutation(len(words))]


def take(words: Sequence[str], count: int, tokenizer: Tokenizer, most_tokens: int) -> list[str]:
  """The first words of an order, up to count of them, while their target tokens fit
  most_tokens (a word that would not fit is passed over)."""
  chosen: list[str] = []
  tokens = 0
  for word in words:
    if len(chosen) == count:
      break
    n = len(phrases.phrase_ids(tokenizer, word))
    if tokens + n <= most_tokens:
      chosen.append(word)
      tokens += n
  return chosen


class Met(NamedTuple):
  """How the best outputs met their sentences' constraints."""

  constraints: int  # phrases asked for, in all
  share: float  # of those phrases, the share the best outputs contain (1.0 for none)
  unmet: int  # constrained sentences whose best output lacks a phrase, or that have none
  without_output: int  # constrained sentences the search gave no output


def met(outputs, wanted: Sequence[Sequence[Sequence[int]]]) -> Met:
  """Counts a phrase met where the best output's ids hold its ids, as jaxseq-evaluate
  does (a sentence without output meets none)."""
  best = [out.best.ids if out.best else [] for out in outputs]
  found = [[phrases.contains(ids, p) for p in ps] for ids, ps in zip(best, wanted)]
  flat = [f for fs in found for f in fs]
  return Met(
    len(flat),
    sum(flat) / len(flat) if flat else 1.0,
    sum(not all(fs) for fs in found),
    sum(bool(ps) and out.best is None for out, ps in zip(outputs, wanted)),
  )


# The speed target: N constraints per sentence at beam B decode at least X times as fast as
# no constraints at beam B (B, N, X); None where the run has not both settings.
TARGET = (4, 2, 0.5)
SPEED_COLUMNS = [
  ("beam_size", "beam", "d"),
  ("constraints_per_sentence", "constraints", "d"),
  ("constraints", "in all", "d"),
  ("seconds", "seconds", ".3f"),
  ("sentences_per_second", "sent/s", ".1f"),
  ("speed_vs_unconstrained", "x unconstrained", ".2f"),
  ("constraints_met", "met", ".3f"),
  ("unmet_sentences", "unmet", "d"),
  ("bleu", "BLEU", ".2f"),
]
QUALITY_COLUMNS = [
  ("outputs", "outputs", "s"),
  ("bleu", "BLEU", ".2f"),
  ("bleu_lc_tok", "bleu_lc_tok", ".2f"),
  ("constraints_met", "met", ".3f"),
]


def main(argv: list[str]) -> int:
  """Measures both tables on the workdir's split; writes --out. 0, or 2 after one error line."""
  args, beams, counts = parse(argv)
  from benchmarks.quality import driver
  from jaxseq.data import corpora
  from jaxseq.decoding import batching, evaluation

  found = driver.load_split([args.workdir], args.split, args.num_sentences)
  if found is None:
    return 2
  loaded, config, pairs, references = found
  vocabs = loaded.vocabularies()
  target = vocabs.target
  language = corpora.target_language(config)
  batch_size = args.batch_size or config.batch_size
  searcher = loaded.searcher(batch_size)
  most = batching.MAX_CONSTRAINT_TOKENS
  encoded = [np.asarray(vocabs.source.encode(s), np.int32) for s, _ in pairs]
  kept = [i for i, ids in enumerate(encoded) if len(ids)]  # an empty source is not decoded
  sources = [encoded[i][: searcher.max_length] for i in kept]
  orders = [
    word_order(eligible_words(references[i][0], target, args.min_chars), args.seed, i) for i in kept
  ]

  def options(beam_size: int):
    return dataclasses.replace(loaded.options, beam_size=beam_size, nbest=1)

  def texts(outputs) -> list[str]:
    """Per sentence of the split, its best output's text ('' where none)."""
    hypotheses = [""] * len(pairs)
    for i, out in zip(kept, outputs):
      hypotheses[i] = target.decode(out.best.ids) if out.best else ""
    return hypotheses

  speed = []
  for beam_size in beams:
    for n in counts:
      words = [take(order, n, target, most) for order in orders]
      wanted = [[phrases.phrase_ids(target, w) for w in ws] for ws in words]
      given = wanted if n else None

      def decode(_, beam_size=beam_size, given=given):
        return evaluation.translate_ids(searcher, sources, options(beam_size), constraints=given)

      outputs = decode(0)  # compiles every shape this setting needs
      seconds = common.median(common.time_calls(decode, args.repeats))
      counted = met(outputs, wanted)
      row = {
        "beam_size": beam_size,
        "constraints_per_sentence": n,
        "constraints": counted.constraints,
        "sentences_short_of_n": sum(len(ws) < n for ws in words),
        "seconds": seconds,
        "sentences_per_second": len(sources) / seconds,
        "constraints_met": counted.share,
        "unmet_sentences": counted.unmet,
        "sentences_without_output": counted.without_output,
        "bleu": evaluation.text_metrics(texts(outputs), references, False)["bleu"],
      }
      speed.append(row)
      print({k: row[k] for k in ("beam_size", "constraints_per_sentence", "seconds")}, flush=True)
  unconstrained = {r["beam_size"]: r["seconds"] for r in speed if not r["constraints_per_sentence"]}
  for row in speed:  # None where --constraints has no 0
    base = unconstrained.get(row["beam_size"])
    row["speed_vs_unconstrained"] = base / row["seconds"] if base else None

  target_row = next(
    (r for r in speed if (r["beam_size"], r["constraints_per_sentence"]) == TARGET[:2]), None
  )
  verdict: dict = {
    "beam_size": TARGET[0],
    "constraints_per_sentence": TARGET[1],
    "least_speed_vs_unconstrained": TARGET[2],
    "speed_vs_unconstrained": target_row and target_row["speed_vs_unconstrained"],
  }
  verdict["passed"] = (
    verdict["speed_vs_unconstrained"] >= TARGET[2] if verdict["speed_vs_unconstrained"] else None
  )

  quality_beam = args.quality_beam or loaded.options.beam_size
  started = time.perf_counter()
  plain = evaluation.translate_ids(searcher, sources, options(quality_beam))
  terms: list[list[str]] = []
  for out, order in zip(plain, orders):
    ids = out.best.ids if out.best else []
    missed = [w for w in order if not phrases.contains(ids, phrases.phrase_ids(target, w))]
    terms.append(take(missed, args.terms, target, most))
  picked = [k for k, ws in enumerate(terms) if ws]
  wanted_terms = [[phrases.phrase_ids(target, w) for w in terms[k]] for k in picked]
  constrained = evaluation.translate_ids(
    searcher, [sources[k] for k in picked], options(quality_beam), constraints=wanted_terms
  )
  replaced = list(plain)
  for k, out in zip(picked, constrained):
    replaced[k] = out
  after = met(constrained, wanted_terms)
  before = met([plain[k] for k in picked], wanted_terms)

  def scored(outputs, label: str, met: float) -> dict:
    metrics = evaluation.text_metrics(texts(outputs), references, False, language)
    keep = ("bleu", "bleu_lowercase", "bleu_lc_tok", "chrf", "bleu_signature")
    return {"outputs": label, **{k: metrics[k] for k in keep}, "constraints_met": met}

  quality = {
    "beam_size": quality_beam,
    "sentences": len(pairs),
    "sentences_constrained": len(picked),
    "sentences_unmet": after.unmet,
    "sentences_without_output": after.without_output,
    "constraints": after.constraints,
    "rows": [
      scored(plain, "unconstrained", before.share),
      scored(replaced, "constrained", after.share),
    ],
    "seconds": time.perf_counter() - started,  # both decodings, compilation included
    # the first sentences' terms, to see what was asked
    "examples": [
      {"sentence": kept[k], "terms": terms[k], "reference": references[kept[k]][0]}
      for k in picked[:5]
    ],
  }
  record = {
    "command": common.command_line(MODULE, argv),
    "workdir": args.workdir,
    "step": loaded.step,
    "dataset": config.dataset,
    "split": args.split,
    "settings": {
      "sentences": len(pairs),
      "batch_size": batch_size,
      "beam_sizes": beams,
      "constraints_per_sentence": counts,
      "repeats": args.repeats,
      "quality_beam": quality_beam,
      "terms": args.terms,
      "min_chars": args.min_chars,
      "seed": args.seed,
      "alpha": loaded.options.alpha,
      "max_length_ratio": loaded.options.max_length_ratio,
      "max_length_offset": loaded.options.max_length_offset,
      "max_constraint_tokens": most,
    },
    "speed": speed,
    "speed_target": verdict,
    "quality": quality,
    "hardware": common.hardware(),
    "versions": common.versions(),
  }
  common.write_json(args.out, record)
  print(f"\nspeed ({len(sources)} sentences, median of {args.repeats}):\n")
  print(common.markdown_table(speed, SPEED_COLUMNS))
  if verdict["passed"] is not None:
    print(
      f"\ntarget: {TARGET[1]} constraints at beam {TARGET[0]} at least {TARGET[2]}x the speed "
      f"without: {verdict['speed_vs_unconstrained']:.2f}x, "
      + ("met" if verdict["passed"] else "missed")
    )
  print(
    f"\nterminology (beam {quality_beam}; {len(picked)} of {len(pairs)} sentences constrained,"
    f" {after.unmet} unmet):\n"
  )
  print(common.markdown_table(quality["rows"], QUALITY_COLUMNS))
  print(f"\nwrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
