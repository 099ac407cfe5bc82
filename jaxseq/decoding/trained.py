"""A trained workdir, restored for inference; several of them as one ensemble.

`load(workdir)` reads config.json, the tokenizers and the newest good checkpoint, and turns
every way that can fail into a `CheckpointError` with one line. It says on stderr which
checkpoint step it loaded, after a warning (with the path) for each newer checkpoint it
skipped as damaged, so that every command that loads a workdir (translate, evaluate,
export, serve) tells which model answers. `load_ensemble` loads several and checks that
they can decode together (`jaxseq/decoding/ensemble.py`): the same source and target vocabulary,
token for token.
"""

import sys
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxseq.data import tokenizers
from jaxseq.decoding import batching, evaluation
from jaxseq.decoding.options import DecodeOptions
from jaxseq.model import seq2seq
from jaxseq.training import checkpointing, configuration, steps
from jaxseq.training.checkpointing import CheckpointError


class Trained(NamedTuple):
  """One workdir's model, ready to translate."""

  workdir: str
  config: configuration.TrainConfig
  src_vocab: tokenizers.Tokenizer  # vocab.WordVocab or tokenizers.SentencePieceTokenizer
  tgt_vocab: tokenizers.Tokenizer
  model: seq2seq.Seq2Seq
  params: Any
  step: int  # the training step of the restored checkpoint


def announce(command: str, message: str):
  """One line on stderr, led by the command's name (stdout carries the command's output)."""
  print(f"{command}: {message}", file=sys.stderr, flush=True)


def load(workdir: str, command: str = "jaxseq") -> Trained:
  """The workdir's config, tokenizers and newest checkpoint that restores and verifies;
  says on stderr (lines led by command) which step that is and which it skipped."""
  try:
    config = checkpointing.load_config(workdir)
  except ValueError as e:  # json.JSONDecodeError included
    raise CheckpointError(f"config.json in {workdir!r} is not a jaxseq config: {e}") from None
  try:
    src_vocab, tgt_vocab = tokenizers.load_pair(workdir)
  except (OSError, ValueError, KeyError) as e:
    raise CheckpointError(f"tokenizer files in {workdir!r} cannot be read: {e}") from None
  # A field that config.json lacks took its default (checkpointing.load_config).
  model = seq2seq.from_config(config.model, len(src_vocab), len(tgt_vocab))
  create = lambda key: steps.create_train_state(model, config, key)
  abstract = jax.eval_shape(create, jax.random.key(0))
  try:
    state, step = checkpointing.restore_for_inference(
      workdir, abstract, log=lambda message: announce(command, f"warning: {message}")
    )
  except CheckpointError:
    raise
  except (ValueError, KeyError, TypeError, OSError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    first = first.split(". ")[0]  # the mismatch, without the library's advice
    raise CheckpointError(
      f"the checkpoint in {workdir!r} does not fit its config.json and vocabulary files "
      f"(source vocab {len(src_vocab)}, target vocab {len(tgt_vocab)}, "
      f"hidden_size {config.model.hidden_size}): {first}"
    ) from None
  announce(command, f"workdir {workdir}, checkpoint step {step}")
  return Trained(workdir, config, src_vocab, tgt_vocab, model, state.params, step)


def vocabulary_difference(a: tokenizers.Tokenizer, b: tokenizers.Tokenizer) -> str | None:
  """How two tokenizers differ ('N vs M entries', or the first differing id), or None."""
  if type(a) is not type(b):
    return f"{type(a).__name__} vs {type(b).__name__}"
  if len(a.words) != len(b.words):
    return f"{len(a.words)} vs {len(b.words)} entries"
  difference = tokenizers.first_difference(a.words, b.words)
  return None if difference is None else "id {} is {!r} vs {!r}".format(*difference)


def load_ensemble(workdirs: list[str], command: str = "jaxseq") -> list[Trained]:
  """Every workdir loaded (see `load`); CheckpointError when two do not share both
  vocabularies."""
  members = [load(w, command) for w in workdirs]
  first = members[0]
  for other in members[1:]:
    for side in ("target", "source"):
      attr = "tgt_vocab" if side == "target" else "src_vocab"
      difference = vocabulary_difference(getattr(first, attr), getattr(other, attr))
      if difference:
        raise CheckpointError(
          f"an ensemble needs one {side} vocabulary, and {other.workdir!r} differs from "
          f"{first.workdir!r} ({difference}); ensemble models trained with the same "
          f"tokenizers"
        )
  return members


class Loaded:
  """One workdir's model, or several as an ensemble, behind `translate_ids` (the interface
  `artifact.Artifact` shares, `translate.Backend`): the first workdir's tokenizers and
  config.decode (as the options of beam search). command: the name that leads the lines
  saying which checkpoints were loaded (see `load`)."""

  def __init__(self, workdirs: list[str], command: str = "jaxseq"):
    self.members = load_ensemble(workdirs, command)
    first = self.members[0]
    self.src_vocab: tokenizers.Tokenizer = first.src_vocab
    self.tgt_vocab: tokenizers.Tokenizer = first.tgt_vocab
    self.step = first.step
    self.options = DecodeOptions.from_config(first.config.decode)
    self.max_length = min(m.config.model.max_length for m in self.members)
    self.max_constraint_tokens = batching.MAX_CONSTRAINT_TOKENS  # per sentence
    self.model: Any  # one Seq2Seq, or a tuple of them (an ensemble); params alike
    self.params: Any
    if len(self.members) == 1:
      self.model, self.params = first.model, first.params
    else:
      self.model = tuple(m.model for m in self.members)
      self.params = tuple(m.params for m in self.members)

  def searcher(self, batch_size: int) -> evaluation.Searcher:
    """These models as an `evaluation.Searcher` of batches of batch_size sources."""
    return evaluation.Searcher(self.model, self.params, self.max_length, batch_size)

  def vocabularies(self) -> evaluation.Vocabularies:
    """The tokenizers as an `evaluation.Vocabularies`."""
    return evaluation.Vocabularies(self.src_vocab, self.tgt_vocab)

  def translate_ids(
    self,
    sources: list[np.ndarray],
    options: DecodeOptions,
    *,
    batch_size: int,
    prefixes: list[list[int]] | None = None,
    constraints: list[list[list[int]]] | None = None,
    progress: str | None = None,
  ) -> list[batching.Output]:
    """evaluation.translate_ids with these models."""
    return evaluation.translate_ids(
      self.searcher(batch_size),
      sources,
      options,
      prefixes=prefixes,
      constraints=constraints,
      progress=progress,
    )
