"""Early stopping: end training once the validation metric stops improving."""

import dataclasses
import math


@dataclasses.dataclass
class EarlyStopping:
  """Counts evaluations since the best score; `update` says when to stop.

  The count starts afresh when a run is resumed (it is not checkpointed).
  """

  patience: int  # evaluations without improvement before stopping; 0 = never
  best: float = -math.inf  # best score so far (larger is better)
  best_step: int = 0  # step at which it was reached
  since_best: int = 0  # evaluations since then

  def update(self, step: int, score: float) -> bool:
    """Records one evaluation; True when training should stop now."""
    if score > self.best:
      self.best, self.best_step, self.since_best = score, step, 0
    else:
      self.since_best += 1
    return self.patience > 0 and self.since_best >= self.patience
