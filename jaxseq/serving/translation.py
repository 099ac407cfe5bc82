"""What `translate.Translator` returns for one line of text, and its JSON form.

`jaxseq-translate --json` prints `Translation.to_json()` and `jaxseq-serve` answers with
parts of it, so the keys and their order are the commands' output format: a field that
is None was not asked for (or does not apply) and is left out.
"""

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One of the n-best translations of a sentence, as text."""

  translation: str
  score: float  # beam: log P / length penalty + coverage penalty; greedy, sampling: log P
  alignment: str | None = None  # Pharaoh 'src-tgt' word pairs, when asked

  def to_json(self) -> dict[str, Any]:
    out: dict[str, Any] = {"translation": self.translation, "score": self.score}
    if self.alignment is not None:
      out["alignment"] = self.alignment
    return out


@dataclasses.dataclass(frozen=True)
class Translation:
  """One request's translations, best first, with what was asked to come with them."""

  source: str
  nbest: list[Candidate]  # empty for an empty source
  source_tokens: list[str]
  output_tokens: list[str]  # of the best translation, "</s>" last when it ended
  attention: list | None = None  # [output tokens, source tokens] of the best, when asked
  prefix: str | None = None  # the forced target prefix, when one was given
  alignment: str | None = None  # of the best translation, when asked
  constraints: list[str] | None = None  # the phrases every output must contain, when given
  # With constraints: whether the translations contain them; false when the search found
  # no output that does within the output length limit (then nbest is empty).
  constraints_met: bool | None = None

  @property
  def translation(self) -> str:
    """The best translation ("" for an empty source)."""
    return self.nbest[0].translation if self.nbest else ""

  @property
  def score(self) -> float | None:
    """The best translation's score (None for an empty source)."""
    return self.nbest[0].score if self.nbest else None

  def to_json(self) -> dict[str, Any]:
    """The JSON object of `jaxseq-translate --json`."""
    out: dict[str, Any] = {
      "source": self.source,
      "translation": self.translation,
      "score": self.score,
      "nbest": [c.to_json() for c in self.nbest],
      "source_tokens": self.source_tokens,
      "output_tokens": self.output_tokens,
    }
    for name in ("attention", "prefix", "alignment", "constraints", "constraints_met"):
      if (value := getattr(self, name)) is not None:
        out[name] = value
    return out
