"""Pictures of a run: attention heatmaps and metric curves (matplotlib, no display)."""

import numpy as np


def pyplot():
  """matplotlib's pyplot without a display, imported when the first picture is drawn (it
  takes a second that a run's start-up need not spend)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def attention_figure(weights: np.ndarray, src_words: list[str], out_words: list[str]):
  """Heatmap of weights [len(out_words), len(src_words)]: source along x, output along y.

  The layout of the PyTorch seq2seq tutorial's showAttention; the caller closes the figure.
  """
  weights = np.asarray(weights)[: len(out_words), : len(src_words)]
  fig, ax = pyplot().subplots(
    figsize=(1 + 0.45 * max(len(src_words), 1), 1 + 0.45 * max(len(out_words), 1))
  )
  image = ax.matshow(weights, cmap="bone", vmin=0.0, vmax=1.0)
  fig.colorbar(image, ax=ax, fraction=0.046)
  ax.set_xticks(range(len(src_words)), src_words, rotation=90)
  ax.set_yticks(range(len(out_words)), out_words)
  ax.set_xlabel("source")
  ax.set_ylabel("output")
  fig.tight_layout()
  return fig


def save_attention(path, weights: np.ndarray, src_words: list[str], out_words: list[str]):
  """Writes the attention heatmap (see attention_figure) to path."""
  fig = attention_figure(weights, src_words, out_words)
  fig.savefig(path, dpi=100)
  pyplot().close(fig)


def attention_image(weights: np.ndarray, src_words: list[str], out_words: list[str]) -> np.ndarray:
  """The attention heatmap as an RGB array [height, width, 3] uint8 (for TensorBoard)."""
  fig = attention_figure(weights, src_words, out_words)
  fig.canvas.draw()
  image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  pyplot().close(fig)
  return image


def save_curves(
  path,
  curves: dict[str, tuple[list[int], list[float]]],
  ylabel: str = "loss",
  log_scale: bool = True,
):
  """One line per named curve of (steps, values); nothing is written without points."""
  if not any(steps for steps, _ in curves.values()):
    return
  fig, ax = pyplot().subplots(figsize=(6, 4))
  for name, (steps, values) in curves.items():
    if steps:
      ax.plot(steps, values, label=name, marker="." if len(steps) < 30 else None)
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  if log_scale:
    ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  pyplot().close(fig)
