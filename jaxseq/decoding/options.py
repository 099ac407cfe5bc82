"""How to decode: config.decode (`DecodeConfig`) and the options of one decoding call.

`DecodeOptions` is config.decode's fields (beam size, length and coverage penalties,
n-best, output length limit; each defined once, in `DecodeConfig`) with the search itself
(`Search`) and the sampling settings added. It is what `evaluation.translate_ids`,
`translate.Translator` and the evaluate and serve commands take. Both check themselves
when built, so a flag or request that makes a new one with `dataclasses.replace` is
checked again:

    options = DecodeOptions.from_config(config.decode)          # beam search
    options = dataclasses.replace(options, beam_size=8, nbest=3)
    options = dataclasses.replace(options, search=Search.SAMPLE, top_p=0.9, seed=1)

A bad value is a `ConfigError` with one line naming the field. This module imports no JAX,
so that commands can build options before the model libraries load.
"""

import dataclasses
import enum
from typing import ClassVar

from jaxseq import fields
from jaxseq.errors import ConfigError


class Search(enum.Enum):
  """How outputs are found: the most likely token at each step, beam search, or drawn."""

  GREEDY = "greedy"
  BEAM = "beam"
  SAMPLE = "sample"

  def __str__(self) -> str:
    return self.value


SEARCHES = (Search.GREEDY.value, Search.BEAM.value)  # what config.decode.eval_search takes


@dataclasses.dataclass(frozen=True)
class DecodeConfig(fields.Config):
  """config.decode: beam search, and the search of periodic evaluation
  (`DecodeOptions.from_config` makes the options of a decoding call of it)."""

  section: ClassVar[str] = "decode"

  beam_size: int = fields.field(
    4, "hypotheses kept per step by beam search (1 = greedy)", fields.at_least(1)
  )
  alpha: float = fields.field(
    0.6, "GNMT length penalty ((5 + len) / 6) ** alpha; 0 = none", fields.in_range(0.0)
  )
  coverage_penalty: float = fields.field(
    0.0,
    "GNMT coverage penalty beta: beam search adds beta * sum over source tokens of "
    "log(min(attention received, 1)) to a finished hypothesis's score; 0 = none "
    "(greedy search and sampling ignore it)",
    fields.in_range(0.0),
  )
  nbest: int = fields.field(
    1, "hypotheses returned per sentence (at most beam_size)", fields.at_least(1)
  )
  max_length_ratio: float = fields.field(
    2.0,
    "output length limit: ratio * source tokens + offset, capped by model.max_length",
    fields.in_range(0.0),
  )
  max_length_offset: int = fields.field(4, "the offset of that limit", fields.at_least(1))
  eval_search: str = fields.field(
    "greedy", "search for the BLEU of periodic evaluation", fields.one_of(SEARCHES)
  )

  def check(self):
    """nbest <= beam_size."""
    if self.nbest > self.beam_size:
      raise ConfigError(
        "decode.nbest", self.nbest, f"an integer in [1, decode.beam_size={self.beam_size}]"
      )


@dataclasses.dataclass(frozen=True)
class DecodeOptions(DecodeConfig):
  """The options of one decoding call: config.decode's fields (eval_search is read only by
  training's periodic evaluation), the search, and the sampling settings.

  search: greedy (up to the model's max_length tokens), beam (beam_size, alpha,
  coverage_penalty, the source-relative output limit; the nbest best) or sample
  (temperature, top_k, top_p, seed; nbest draws, the most likely first). Sentence i of a
  call draws with fold_in(key(seed), i), so its outputs do not depend on the batch.
  """

  search: Search = fields.field(Search.BEAM, "greedy, beam or sample", fields.one_of(Search))
  temperature: float = fields.field(
    1.0, "sampling: divides the log-probabilities (0 = greedy)", fields.in_range(0.0)
  )
  top_k: int = fields.field(
    0, "sampling: draw among the k most likely tokens (0 = all)", fields.at_least(0)
  )
  top_p: float = fields.field(
    1.0,
    "sampling: draw among the most likely tokens whose probability reaches p",
    fields.in_range(0.0, 1.0, low_open=True),
  )
  seed: int = fields.field(0, "sampling: the same seed gives the same outputs")

  def check(self):
    """nbest <= beam_size for beam search (sampling draws nbest, whatever the beam)."""
    if self.search is Search.BEAM:
      super().check()

  @classmethod
  def from_config(cls, config: DecodeConfig, search: Search = Search.BEAM) -> "DecodeOptions":
    """The options of a config.decode (every field as it is) for one search."""
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(DecodeConfig)}
    return cls(search=search, **shared)
