"""Held-out loss, batched translation of a split, and its text metrics (sacreBLEU).

BLEU is sacreBLEU's corpus BLEU on detokenized text, cased, with the signature that
says how it was computed; the lowercased score is reported next to it. `bleu_lc_tok` is
the score most papers on Multi30k report (multi-bleu.perl or MultEval on preprocessed
text): hypotheses and references are punctuation-normalised, lowercased and tokenised
by the Moses rules of the target language (sacremoses, no escaping, no aggressive hyphen
splitting), then scored by sacreBLEU with tokenize="none". chrF uses sacreBLEU's defaults.
Perplexity is exp of the per-token NLL with reference decoder inputs.

References:
  Papineni et al. 2002 (BLEU); Popovic 2015 (chrF); Post 2018, "A Call for Clarity in
    Reporting BLEU Scores" (sacreBLEU and its signature).
"""

import dataclasses
import functools
import os
from typing import Any, NamedTuple

import jax
import numpy as np
import sacrebleu

from jaxseq.data import input_pipeline
from jaxseq.data.tokenizers import Tokenizer
from jaxseq.decoding import alignment, batching, beam_search, decode, ensemble, phrases
from jaxseq.decoding import constraints as constraints_lib
from jaxseq.decoding.batching import Output, SearchResult
from jaxseq.decoding.options import SEARCHES as SEARCHES  # what eval_search takes
from jaxseq.decoding.options import DecodeConfig as DecodeConfig  # config.decode
from jaxseq.decoding.options import DecodeOptions, Search
from jaxseq.training import steps


class Searcher(NamedTuple):
  """What translates: one model, or tuples of models and params (an ensemble), in batches
  of batch_size sources of up to max_length tokens."""

  model: Any
  params: Any
  max_length: int
  batch_size: int


class Vocabularies(NamedTuple):
  """The source and target tokenizers of a model (or of every member of an ensemble)."""

  source: Tokenizer
  target: Tokenizer


class Split(NamedTuple):
  """Sentence pairs to score, and how: references per sentence (multi-reference BLEU;
  default the pairs' targets), whether to count exact matches, the target language
  (for `bleu_lc_tok`), and per sentence the phrases (text) its translation must contain
  (lexically constrained beam search; None: no constraints)."""

  pairs: list[tuple[str, str]]
  references: list[list[str]] | None = None
  exact_match: bool = False
  language: str | None = None
  constraints: list[list[str]] | None = None


class Written(NamedTuple):
  """Where a split's hypothesis, reference and alignment files go: WORKDIR/NAME.*.txt."""

  workdir: str
  name: str


@functools.partial(jax.jit, static_argnames=("model",))
def _eval_sums(params, batch, model):
  if isinstance(model, tuple):  # an ensemble: the loss of its combined distribution
    score = jax.vmap(
      functools.partial(ensemble.teacher_forced_log_probs, model), in_axes=(None, 0, 0)
    )
    return steps.token_sums(score(params, batch["src"], batch["tgt_in"]), batch["tgt_out"])
  return steps.eval_step(params, batch, model=model)


@functools.partial(jax.jit, static_argnames=("model", "max_len"))
def _greedy(params, src, prefix, model, max_len):
  return decode.batch_greedy(model, params, src, max_len=max_len, prefix=prefix)


@functools.partial(jax.jit, static_argnames=("model", "max_len"))
def _sample(params, inputs: decode.Inputs, sampling: decode.Sampling, model, max_len):
  """inputs.key [batch, samples] -> Decoded fields [batch, samples, ...]: independent
  draws, a batched sampling per column of keys."""
  draw = lambda keys: decode.batch_sample(
    model, params, inputs._replace(key=keys), sampling, max_len=max_len
  )
  return jax.vmap(draw, in_axes=1, out_axes=1)(inputs.key)


class _Scoring(NamedTuple):
  """The traced part of a beam search: the length penalty, the output limit and the
  coverage penalty (in `beam_search.Beam`'s order)."""

  alpha: float
  max_length_ratio: float
  max_length_offset: int
  coverage_penalty: float


class _BeamInputs(NamedTuple):
  """What a batched beam search reads: sources [batch, width], the forced prefixes
  ([batch, prefix_width] or None) and the constraints (Constraints with [batch, size]
  fields, or None: the search without constraints)."""

  src: Any
  prefix: Any = None
  constraints: constraints_lib.Constraints | None = None


@functools.partial(jax.jit, static_argnames=("model", "beam_size", "max_len"))
def _beam(params, inputs: _BeamInputs, scoring: _Scoring, model, beam_size, max_len):
  """Every finished hypothesis of the beam (nbest = beam_size): one compilation per beam
  size serves every n-best request, which is cut on the host (and one more per size of
  the constraints, `batching.CONSTRAINT_SIZES`, for batches that have them)."""
  beam = beam_search.Beam(beam_size, max_len, beam_size, *scoring)
  return beam_search.batch_beam_search(
    model, params, inputs.src, beam, inputs.prefix, inputs.constraints
  )


def heldout_loss(model, params, examples, batch_size: int, max_length: int) -> dict:
  """Per-token NLL, perplexity and token accuracy with reference decoder inputs (of one
  model, or of an ensemble's combined distribution when model and params are tuples)."""
  totals = {"nll": 0.0, "tokens": 0.0, "correct": 0.0}
  for batch, _ in input_pipeline.eval_batches(examples, batch_size, max_length):
    sums = jax.device_get(_eval_sums(params, batch, model))
    for k in totals:
      totals[k] += float(sums[k])
  tokens = max(totals["tokens"], 1.0)
  nll = totals["nll"] / tokens
  return {
    "loss": nll,
    "perplexity": float(np.exp(nll)),
    "token_accuracy": totals["correct"] / tokens,
  }


def _search_batch(
  searcher: Searcher, inputs: decode.Inputs, options: DecodeOptions, cons=None
) -> SearchResult:
  """One padded batch through the search of options (inputs.key: [B, nbest] keys when
  sampling; cons: the batch's Constraints, beam search only, or None) -> its
  SearchResult, options.nbest outputs per row at most."""
  model, params, max_length, _ = searcher
  if options.search is Search.GREEDY:
    out = jax.device_get(_greedy(params, inputs.src, inputs.prefix, model, max_length))
    return SearchResult(
      *(x[:, None] for x in (out.tokens, out.length, out.log_prob, out.attention))
    )
  if options.search is Search.SAMPLE:
    sampling = decode.Sampling(options.temperature, options.top_k, options.top_p)
    out = jax.device_get(_sample(params, inputs, sampling, model, max_length))
    order = np.argsort(-out.log_prob, axis=1, kind="stable")  # most likely draw first
    pick = lambda x: np.take_along_axis(x, order.reshape(order.shape + (1,) * (x.ndim - 2)), 1)
    return SearchResult(pick(out.tokens), pick(out.length), pick(out.log_prob), pick(out.attention))
  scoring = _Scoring(
    options.alpha, options.max_length_ratio, options.max_length_offset, options.coverage_penalty
  )
  beam_inputs = _BeamInputs(inputs.src, inputs.prefix, cons)
  out = jax.device_get(_beam(params, beam_inputs, scoring, model, options.beam_size, max_length))
  nbest = options.nbest
  return SearchResult(*(x[:, :nbest] for x in (out.tokens, out.lengths, out.scores, out.attention)))


def translate_ids(
  searcher: Searcher,
  sources: list[np.ndarray],
  options: DecodeOptions,
  *,
  prefixes: list[list[int]] | None = None,
  constraints: list[list[list[int]]] | None = None,
  progress: str | None = None,
) -> list[Output]:
  """Translates source id arrays (each 1..max_length ids) in fixed-shape batches, in order
  (`batching.translate_in_batches`), with the search of options (see `DecodeOptions`).
  prefixes: per source, target ids every output must start with (empty: none).
  constraints: per source, phrases (target id lists) every output must contain, at most
  `batching.MAX_CONSTRAINT_TOKENS` tokens in all (empty: none); beam search only. A
  sentence whose constraints cannot be met gets no output (its Output's `unmet`).
  ValueError for constraints with another search or past the maximum.
  """
  if constraints is not None and any(constraints) and options.search is not Search.BEAM:
    raise ValueError(
      f"constraints need beam search; {options.search.value} search cannot take them"
    )

  def search_batch(batch):  # a batching.Batch
    keys = None  # greedy and beam search draw nothing
    if options.search is Search.SAMPLE:
      seed_key = jax.random.key(options.seed)
      split = lambda i: jax.random.split(jax.random.fold_in(seed_key, i), options.nbest)
      keys = jax.vmap(split)(batch.rows)
    inputs = decode.Inputs(batch.src, keys, batch.prefix)
    return _search_batch(searcher, inputs, options, batch.constraints)

  return batching.translate_in_batches(
    sources,
    search_batch,
    batch_size=searcher.batch_size,
    max_length=searcher.max_length,
    prefixes=prefixes,
    constrained=None if constraints is None else batching.Constrained(constraints),
    progress=progress,
  )


def reference_streams(references: list[list[str]]) -> list[list[str | None]]:
  """Per-sentence reference lists -> sacreBLEU's streams (None where a sentence has fewer)."""
  count = max((len(r) for r in references), default=1)
  return [[r[j] if j < len(r) else None for r in references] for j in range(count)]


# ISO 639-3 codes some corpora use -> the two-letter codes of the Moses rules
MOSES_LANGUAGES = {"eng": "en", "fra": "fr", "deu": "de"}


@functools.cache
def _moses(language: str):
  import sacremoses  # here: half a second to import, and only final scores need it

  lang = MOSES_LANGUAGES.get(language, language)
  return sacremoses.MosesPunctNormalizer(lang), sacremoses.MosesTokenizer(lang)


def moses_lc_tok(text: str, language: str) -> str:
  """text as the papers score it: Moses punctuation normalisation, lowercase, Moses
  tokenisation (tokens joined by single spaces)."""
  normalizer, tokenizer = _moses(language)
  return tokenizer.tokenize(normalizer.normalize(text).lower(), escape=False, return_str=True)


def text_metrics(
  hypotheses: list[str], references: list[list[str]], exact_match: bool, language: str | None = None
) -> dict:
  """Corpus BLEU (cased, with signature; and lowercased) and chrF, by sacreBLEU.

  references: one list of reference strings per hypothesis (one or more each).
  exact_match: whether to add the share of hypotheses equal to their first reference.
  language: the target language's code; with it, also `bleu_lc_tok` (see the docstring
  of this module).
  """
  if len(hypotheses) != len(references):
    raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
  # sacreBLEU takes None for a sentence's missing reference, which its annotations omit.
  streams: Any = reference_streams(references)
  bleu = sacrebleu.BLEU()
  bleu_lower = sacrebleu.BLEU(lowercase=True)
  chrf = sacrebleu.CHRF()
  metrics = {
    "bleu": bleu.corpus_score(hypotheses, streams).score,
    "bleu_signature": str(bleu.get_signature()),
    "bleu_lowercase": bleu_lower.corpus_score(hypotheses, streams).score,
    "chrf": chrf.corpus_score(hypotheses, streams).score,
    "chrf_signature": str(chrf.get_signature()),
    "references_per_sentence": len(streams),
  }
  if language:
    tok_bleu = sacrebleu.BLEU(tokenize="none", force=True)
    tok = lambda x: None if x is None else moses_lc_tok(x, language)
    tok_streams: Any = [[tok(r) for r in s] for s in streams]
    metrics["bleu_lc_tok"] = tok_bleu.corpus_score(
      [moses_lc_tok(h, language) for h in hypotheses], tok_streams
    ).score
  if exact_match:
    same = sum(h == r[0] for h, r in zip(hypotheses, references))
    metrics["exact_match"] = same / max(len(references), 1)
  return metrics


class SplitResult(NamedTuple):
  metrics: dict  # BLEU, chrF, (exact match), sentences, truncated sources
  hypotheses: list[str]  # best translation per source, in order
  attentions: list[np.ndarray]  # [output tokens + EOS, source tokens] per source
  alignments: list[str] | None = None  # Pharaoh word alignment per source, when asked


def split_constraints(vocabs: Vocabularies, split: Split) -> list[list[list[int]]] | None:
  """The target ids of each sentence's constraint phrases (`phrases.constraint_ids`), or
  None for a split without constraints; ValueError names the first bad sentence."""
  if split.constraints is None:
    return None
  if len(split.constraints) != len(split.pairs):
    raise ValueError(
      f"{len(split.constraints)} lines of constraints for {len(split.pairs)} sentences; "
      "give one line per sentence"
    )
  wanted = []
  for number, texts in enumerate(split.constraints, 1):
    try:
      wanted.append(phrases.constraint_ids(vocabs.target, texts, batching.MAX_CONSTRAINT_TOKENS))
    except ValueError as e:
      raise ValueError(f"the constraints of sentence {number}: {e}") from None
  return wanted


def evaluate_split(
  searcher: Searcher,
  vocabs: Vocabularies,
  split: Split,
  options: DecodeOptions,
  *,
  progress: str | None = None,
  alignments: bool = False,
) -> SplitResult:
  """Translates every source of a split and scores its best translation against the
  split's references.

  No sentence is left out: a source longer than max_length is cut to its first
  max_length tokens (and counted), an empty one translates to the empty string.
  alignments: also give each best translation's word alignment
  (`jaxseq/decoding/alignment.py`). With the split's constraints, the metrics add the
  share of constraint phrases the best translations contain (`constraints_met`), how
  many there are, and the sentences whose constraints the search could not meet (they
  score as empty translations). ValueError for constraints that do not fit the split.
  """
  pairs, max_length = split.pairs, searcher.max_length
  references = split.references if split.references is not None else [[t] for _, t in pairs]
  encoded = [np.asarray(vocabs.source.encode(s), np.int32) for s, _ in pairs]
  truncated = sum(len(ids) > max_length for ids in encoded)
  kept = [i for i, ids in enumerate(encoded) if len(ids)]
  wanted = split_constraints(vocabs, split)
  outputs = translate_ids(
    searcher,
    [encoded[i][:max_length] for i in kept],
    dataclasses.replace(options, nbest=1),  # one translation per source is scored
    constraints=None if wanted is None else [wanted[i] for i in kept],
    progress=progress,
  )
  hypotheses = [""] * len(pairs)
  attentions = [np.zeros((1, 0), np.float32)] * len(pairs)
  links = [""] * len(pairs)
  for i, out in zip(kept, outputs):
    if out.best:
      hypotheses[i] = vocabs.target.decode(out.best.ids)
      attentions[i] = out.best.attention
      if alignments:
        links[i] = alignment.align(
          out.best.attention, encoded[i][:max_length], out.best.ids, vocabs.source, vocabs.target
        )
  metrics = text_metrics(hypotheses, references, split.exact_match, split.language)
  metrics.update(sentences=len(pairs), truncated_sources=truncated, search=options.search.value)
  if wanted is not None:
    best = {i: out.best.ids for i, out in zip(kept, outputs) if out.best}
    met = [phrases.contains(best.get(i, []), p) for i, ps in enumerate(wanted) for p in ps]
    metrics.update(
      constraints=len(met),
      constraints_met=sum(met) / len(met) if met else 1.0,
      constrained_sentences_unmet=sum(bool(ps) and i not in best for i, ps in enumerate(wanted)),
    )
  return SplitResult(metrics, hypotheses, attentions, links if alignments else None)


def score_split(
  searcher: Searcher,
  vocabs: Vocabularies,
  split: Split,
  options: DecodeOptions,
  *,
  written: Written | None = None,
  progress: str | None = None,
) -> SplitResult:
  """Every score of one split: held-out loss, perplexity and token accuracy of the pairs
  that fit max_length, and BLEU, chrF (and exact match) of every source translated.

  With `written`, NAME.hyp.txt, NAME.ref*.txt and NAME.align.txt (the Pharaoh word
  alignment of each hypothesis) are written to its workdir and the metrics say so under
  "files". The one function behind every evaluation of a run.
  """
  model, params, max_length, batch_size = searcher
  examples, _ = input_pipeline.encode_pairs(split.pairs, vocabs.source, vocabs.target, max_length)
  loss = heldout_loss(model, params, examples, batch_size, max_length)
  result = evaluate_split(
    searcher, vocabs, split, options, progress=progress, alignments=written is not None
  )
  metrics = {**loss, **result.metrics}
  if written is not None:
    references = split.references or [[t] for _, t in split.pairs]
    metrics["files"] = write_outputs(
      written.workdir, written.name, result.hypotheses, references, result.alignments
    )
  return result._replace(metrics=metrics)


def write_outputs(
  workdir: str,
  name: str,
  hypotheses: list[str],
  references: list[list[str]],
  alignments: list[str] | None = None,
) -> dict:
  """Writes NAME.hyp.txt and NAME.ref0.txt ... (one line per sentence) for sacreBLEU's CLI,
  and NAME.align.txt (Pharaoh, one line per hypothesis) when alignments are given.

  sacreBLEU's command line reads an empty line as an empty reference, so a sentence
  with fewer references than others repeats its first one in the later files instead:
  a repeated reference changes neither BLEU's clipped counts and closest reference
  length nor chrF's best reference, so the scores equal those computed here with None.
  Returns the file names, relative to workdir.
  """
  files: dict[str, Any] = {"hypotheses": f"{name}.hyp.txt", "references": []}
  with open(os.path.join(workdir, files["hypotheses"]), "w", encoding="utf-8") as f:
    f.writelines(h + "\n" for h in hypotheses)
  if alignments is not None:
    files["alignments"] = f"{name}.align.txt"
    with open(os.path.join(workdir, files["alignments"]), "w", encoding="utf-8") as f:
      f.writelines(a + "\n" for a in alignments)
  for j, stream in enumerate(reference_streams(references)):
    path = f"{name}.ref{j}.txt"
    files["references"].append(path)
    with open(os.path.join(workdir, path), "w", encoding="utf-8") as f:
      f.writelines((r if r is not None else refs[0]) + "\n" for r, refs in zip(stream, references))
  return files
