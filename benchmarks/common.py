"""What every benchmark shares: the sizes, the batches, timing, and the record of the machine.

The batches are a synthetic translation task with a learnable answer (the target is the
source reversed and relabelled by a fixed permutation), so losses fall and both
implementations can be seen to learn; sentence lengths vary to exercise padding.
"""

import dataclasses
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from jaxseq.data.vocab import BOS, EOS, PAD

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
RESULTS = os.path.join(ROOT, "benchmarks", "results")
FIRST_WORD = 4  # ids below are PAD, BOS, EOS, UNK


@dataclasses.dataclass(frozen=True)
class Size:
  """One benchmarked model and batch shape."""

  name: str
  hidden_size: int
  embed_size: int
  bidirectional: bool
  batch_size: int
  length: int = 16  # padded source and target length (tokens, EOS included)
  vocab_size: int = 1000  # source and target vocabulary, specials included

  def model_config(self, dtype: str = "float32", scan_unroll: int = 1):
    from configs import default

    m = default.get_model_config()
    m.update(
      cell="gru",
      attention="bahdanau",
      embed_size=self.embed_size,
      hidden_size=self.hidden_size,
      attention_size=self.hidden_size,
      num_layers=1,
      bidirectional=self.bidirectional,
      input_feeding=False,
      dropout=0.0,
      max_length=self.length,
      dtype=dtype,
      scan_unroll=scan_unroll,
    )
    return m


SIZES = {
  # The PyTorch tutorial's scale: one GRU layer each side, batch 32.
  "small": Size("small", hidden_size=128, embed_size=128, bidirectional=False, batch_size=32),
  "medium": Size("medium", hidden_size=256, embed_size=256, bidirectional=False, batch_size=64),
  "large": Size("large", hidden_size=512, embed_size=256, bidirectional=True, batch_size=128),
}


def make_batches(size: Size, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
  """`count` padded int32 batches {src, tgt_in, tgt_out}: [batch, length] each."""
  rng = np.random.default_rng(seed)
  relabel = rng.permutation(np.arange(FIRST_WORD, size.vocab_size))
  batches = []
  for _ in range(count):
    shape = (size.batch_size, size.length)
    src, tgt_in, tgt_out = (np.full(shape, PAD, np.int32) for _ in range(3))
    lengths = rng.integers(size.length // 2, size.length, size.batch_size)  # words, EOS not counted
    for row, n in enumerate(lengths):
      words = rng.integers(FIRST_WORD, size.vocab_size, n)
      target = relabel[words[::-1] - FIRST_WORD]
      src[row, :n] = words
      tgt_in[row, 0] = BOS
      tgt_in[row, 1 : n + 1] = target
      tgt_out[row, :n] = target
      tgt_out[row, n] = EOS
    batches.append({"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out})
  return batches


def target_tokens(batch: dict) -> int:
  """Real target tokens (EOS included) of a batch: what tokens/s counts."""
  return int(np.count_nonzero(batch["tgt_out"]))


def time_calls(fn: Callable[[int], None], count: int) -> list[float]:
  """Seconds per call of fn(i) for i < count; fn must block until its work is done."""
  times = []
  for i in range(count):
    start = time.perf_counter()
    fn(i)
    times.append(time.perf_counter() - start)
  return times


def median(values) -> float:
  return float(statistics.median(values))


def peak_rss_mib() -> float:
  """Peak resident memory of this process so far, in MiB.

  Linux's VmHWM belongs to this program alone; getrusage's ru_maxrss (the fallback)
  keeps the peak of the parent that started it, since it survives fork and exec.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024  # kB
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def hardware() -> dict:
  """The machine the numbers were taken on."""
  import jax

  devices = jax.devices()
  return {
    "cpu_model": cpu_model(),
    "cpu_cores": os.cpu_count(),
    "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    "platform": platform.platform(),
    "device_kind": devices[0].device_kind,
    "device_platform": devices[0].platform,
    "device_count": len(devices),
    "load_average_1min": os.getloadavg()[0],  # > cores means the timings were shared
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def run_hardware() -> dict:
  """The machine of a training, scoring or serving run, in the fields the results tables read."""
  import jax

  return {
    "platform": jax.devices()[0].platform,
    "devices": [d.device_kind for d in jax.devices()],
    "cpu": cpu_model(),
    "cpu_count": os.cpu_count(),
    # the cores this process may run on (taskset), where fewer than cpu_count
    "cpus_used": len(os.sched_getaffinity(0))
    if hasattr(os, "sched_getaffinity")
    else os.cpu_count(),
    "jax": jax.__version__,
    "python": platform.python_version(),
    # other processes on the machine slow a run down: timings are only as good as this
    "load_average_1min_at_end": round(os.getloadavg()[0], 2),
  }


def command_line(module: str, args: list[str]) -> str:
  """The command that reproduces a run: `python -m MODULE ARGS`, after the simulated CPU
  device count where one was set (it is part of a recipe: the batch is split over them)."""
  command = " ".join(["python", "-m", module, *(shlex.quote(a) for a in args)])
  devices = os.environ.get("JAX_NUM_CPU_DEVICES")
  return f"JAX_NUM_CPU_DEVICES={devices} {command}" if devices else command


def invoked_command() -> str | None:
  """The command of this process where it was started as a benchmarks module (python -m)."""
  spec = getattr(sys.modules["__main__"], "__spec__", None)
  if spec is None or not spec.name.startswith("benchmarks."):
    return None
  return command_line(spec.name, sys.argv[1:])


def versions() -> dict:
  found = {"python": platform.python_version()}
  for package in ("jax", "jaxlib", "flax", "optax", "numpy", "torch"):
    try:
      found[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      found[package] = None
  return found


def write_json(path: str, record: dict):
  """Writes record to path, led by the command that made it where the record has none."""
  command = invoked_command()
  if command and "command" not in record:
    record = {"command": command, **record}
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(record, f, indent=1, default=str)


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
  """rows -> a markdown table; columns are (key, header, format spec)."""
  lines = [
    "| " + " | ".join(h for _, h, _ in columns) + " |",
    "|" + "|".join("---" for _ in columns) + "|",
  ]
  for row in rows:
    cells = []
    for key, _, spec in columns:
      value = row.get(key)
      cells.append("-" if value is None else format(value, spec))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
