"""Checks a config before anything runs, with one message per mistake."""

import ml_collections

from jaxseq.attention import ATTENTIONS
from jaxseq.cells import CELLS

DTYPES = ("float32", "bfloat16")
LR_SCHEDULES = ("constant", "warmup_cosine", "warmup_rsqrt")


class ConfigError(ValueError):
  """A config field holds a value that is not allowed."""

  def __init__(self, field: str, value, allowed: str):
    super().__init__(f"config.{field}={value!r} is not allowed; expected {allowed}")
    self.field = field


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def _choice(config, field: str, allowed):
  value = _get(config, field)
  if value not in allowed:
    raise ConfigError(field, value, "one of " + ", ".join(map(str, allowed)))


def _int(config, field: str, minimum: int):
  value = _get(config, field)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ConfigError(field, value, f"an integer >= {minimum}")


def _float(config, field: str, low: float, high: float | None = None, *,
           low_open: bool = False):
  value = _get(config, field)
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  if ok:
    ok = (value > low if low_open else value >= low) and (high is None or value <= high)
  if not ok:
    bracket = "(" if low_open else "["
    upper = f"{high}]" if high is not None else "inf)"
    raise ConfigError(field, value, f"a number in {bracket}{low}, {upper}")


def _bool(config, field: str):
  value = _get(config, field)
  if not isinstance(value, bool):
    raise ConfigError(field, value, "True or False")


def validate(config: ml_collections.ConfigDict, *, num_devices: int = 1,
             datasets=("numbers",)):
  """Raises ConfigError naming the first field whose value is not allowed."""
  _int(config, "seed", 0)
  if "distributed" in config:
    _bool(config, "distributed")
  _choice(config, "dataset", datasets)
  _choice(config, "model.cell", CELLS)
  _choice(config, "model.attention", ATTENTIONS)
  for field in ("embed_size", "hidden_size", "attention_size", "num_layers", "max_length"):
    _int(config, f"model.{field}", 1)
  _bool(config, "model.bidirectional")
  if "dtype" in config.model:
    _choice(config, "model.dtype", DTYPES)
  if "scan_unroll" in config.model:
    _int(config, "model.scan_unroll", 1)
  _bool(config, "model.input_feeding")
  _float(config, "model.dropout", 0.0, 1.0)
  if config.model.dropout >= 1.0:
    raise ConfigError("model.dropout", config.model.dropout, "a number in [0, 1)")
  if config.model.input_feeding and config.model.attention in ("none", "tutorial"):
    raise ConfigError("model.input_feeding", True,
                      "False with attention 'none' or 'tutorial' (it feeds h~, which they lack)")
  _int(config, "batch_size", 1)
  if config.batch_size % num_devices:
    raise ConfigError("batch_size", config.batch_size,
                      f"a multiple of the device count ({num_devices})")
  _int(config, "num_train_steps", 0)
  _float(config, "learning_rate", 0.0, low_open=True)
  _choice(config, "lr_schedule", LR_SCHEDULES)
  _int(config, "warmup_steps", 0)
  _float(config, "grad_clip_norm", 0.0)
  _float(config, "label_smoothing", 0.0, 1.0)
  if config.label_smoothing >= 1.0:
    raise ConfigError("label_smoothing", config.label_smoothing, "a number in [0, 1)")
  _float(config, "teacher_forcing_ratio", 0.0, 1.0)
  _int(config, "max_bad_steps", 1)
  _int(config, "log_every_steps", 1)
  _int(config, "eval_every_steps", 1)
  _int(config, "num_samples", 0)
  _int(config, "num_attention_plots", 0)
  if config.dataset == "numbers":
    _choice(config, "data.language", ("de", "fr"))
    _int(config, "data.num_train", 1)
    _int(config, "data.num_eval", 1)
