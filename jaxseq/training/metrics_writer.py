"""TensorBoard event files of a run (tensorboardX): scalars and attention images.

tensorboard --logdir WORKDIR/tensorboard
"""

import os

import numpy as np
from tensorboardX import SummaryWriter

from jaxseq.training import plots

TENSORBOARD_DIR = "tensorboard"


class MetricsWriter:
  """Writes scalars and attention heatmaps under workdir/tensorboard."""

  def __init__(self, workdir: str):
    self.logdir = os.path.join(workdir, TENSORBOARD_DIR)
    self._writer = SummaryWriter(self.logdir)

  def scalars(self, step: int, values: dict, prefix: str = ""):
    """Every int or float in values as `prefix/name` (strings and the like are skipped)."""
    for name, value in values.items():
      if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        self._writer.add_scalar(f"{prefix}/{name}" if prefix else name, float(value), step)

  def attention(
    self, step: int, tag: str, weights: np.ndarray, src_words: list[str], out_words: list[str]
  ):
    """The attention heatmap [out, src] as an image."""
    image = plots.attention_image(weights, src_words, out_words)
    self._writer.add_image(tag, image, step, dataformats="HWC")

  def flush(self):
    self._writer.flush()

  def close(self):
    """Flushes and closes the event file; a write error (a full disk) is raised once."""
    file_writers = list((self._writer.all_writers or {}).values())
    try:
      self._writer.close()
    except OSError:
      # Marked closed, so that tensorboardX's exit hooks do not flush again and print
      # a traceback after the one-line error the run reports.
      for file_writer in file_writers:
        file_writer.event_writer._closed = True
      raise
