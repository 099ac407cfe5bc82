"""Pictures of a run: attention heatmaps and the loss curve (matplotlib, no display)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_attention(path, weights: np.ndarray, src_words: list[str], out_words: list[str]):
  """Heatmap of weights [len(out_words), len(src_words)]: source along x, output along y."""
  weights = np.asarray(weights)[:len(out_words), :len(src_words)]
  fig, ax = plt.subplots(figsize=(1 + 0.45 * len(src_words), 1 + 0.45 * len(out_words)))
  image = ax.matshow(weights, cmap="bone", vmin=0.0, vmax=1.0)
  fig.colorbar(image, ax=ax, fraction=0.046)
  ax.set_xticks(range(len(src_words)), src_words, rotation=90)
  ax.set_yticks(range(len(out_words)), out_words)
  ax.set_xlabel("source")
  ax.set_ylabel("output")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_curves(path, curves: dict[str, tuple[list[int], list[float]]], ylabel: str = "loss"):
  """One line per named curve of (steps, values)."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, (steps, values) in curves.items():
    if steps:
      ax.plot(steps, values, label=name, marker="." if len(steps) < 30 else None)
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
