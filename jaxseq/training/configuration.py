"""The run's config: `TrainConfig`, its top-level fields, and the parts it nests.

Every field is defined once, with its type, default, meaning and check (jaxseq/fields.py):
the top-level ones here, config.model in `seq2seq.ModelConfig`, config.data in
`corpora.DataConfig`, config.decode in `options.DecodeConfig`. Config files under configs/
start from `fields.config_dict(TrainConfig())` and only set values; `validate` turns what
they give (with the `--config.FIELD=VALUE` overrides) into a checked TrainConfig.

    python -m jaxseq.training.configuration      # every field, its type, default and meaning
"""

import dataclasses
import sys
from typing import ClassVar

from jaxseq import fields
from jaxseq.data import corpora, input_pipeline
from jaxseq.decoding import options
from jaxseq.errors import ConfigError  # noqa: F401  (raised here; the commands report it)
from jaxseq.model import attention, seq2seq
from jaxseq.training import steps

_field = fields.field


@dataclasses.dataclass(frozen=True)
class TrainConfig(fields.Config):
  """The whole config of a training run, as config.json saves it."""

  section: ClassVar[str] = ""

  seed: int = _field(
    0, "root of every random stream (data order, init, dropout)", fields.at_least(0)
  )
  dataset: str = _field(
    "numbers",
    "a row of data.LOADERS: numbers (generated in-process), multi30k, tatoeba, wmt14",
    fields.one_of(corpora.LOADERS),
  )
  distributed: bool = _field(False, "start jax.distributed first (or JAXSEQ_DISTRIBUTED=1)")
  data_dir: str = _field("", 'raw corpora; "" = $JAXSEQ_DATA_DIR or <repo>/../shared/data')
  tfds_dir: str = _field("", 'prepared TFDS data; "" = $JAXSEQ_TFDS_DIR or ~/.cache/jaxseq/tfds')
  data: corpora.DataConfig = _field(corpora.DataConfig(), "the corpus (config.data)")
  model: seq2seq.ModelConfig = _field(seq2seq.ModelConfig(), "the model (config.model)")

  batch_size: int = _field(
    64, "sentence pairs per step (global, over all devices)", fields.at_least(1)
  )
  bucket_lengths: str = _field(
    "",
    "padded lengths of training batches, e.g. "
    '"8,12,16,24,32"; "" = 8, 16, 32, ... up to '
    "model.max_length",
  )
  num_train_steps: int = _field(1_000, "optimizer steps", fields.at_least(0))
  learning_rate: float = _field(3e-3, "peak learning rate", fields.in_range(0.0, low_open=True))
  lr_schedule: str = _field(
    "warmup_cosine", "a row of steps.SCHEDULES", fields.one_of(steps.SCHEDULES)
  )
  warmup_steps: int = _field(100, "linear warmup from 0 to the peak", fields.at_least(0))
  grad_clip_norm: float = _field(
    1.0, "clip gradients to this global norm (0 disables)", fields.in_range(0.0)
  )
  label_smoothing: float = _field(
    0.0, "mass spread uniformly over the target vocabulary", fields.in_range(0, 1, high_open=True)
  )
  coverage_loss_weight: float = _field(
    0.0,
    "weight of the coverage loss (See et al. 2017, Eq. 12) in the training loss; 0 = off",
    fields.in_range(0.0, note="0 turns it off; a positive weight needs a coverage attention"),
  )
  coverage_loss_from_step: int = _field(
    0,
    "the coverage loss joins the objective at this step (a final phase); 0 = from the start",
    fields.at_least(0),
  )
  teacher_forcing_ratio: float = _field(
    1.0, "chance per step to feed the reference token (else own argmax)", fields.in_range(0.0, 1.0)
  )
  max_bad_steps: int = _field(
    20, "stop after this many non-finite steps in a row", fields.at_least(1)
  )
  lr_plateau_factor: float = _field(
    0.0,
    "rate *= this when held-out loss stalls; 0 = off",
    fields.in_range(0, 1, high_open=True, note="0 turns reduce-on-plateau off"),
  )
  lr_plateau_patience: int = _field(
    2, "... after this many evaluations without improvement", fields.at_least(1)
  )
  early_stopping_patience: int = _field(
    0, "stop after N evals without better BLEU; 0 = off", fields.at_least(0)
  )
  average_last_checkpoints: int = _field(
    0,
    "also score the mean params of the newest K (2 <= K <= keep_checkpoints); 0 = off",
    fields.at_least(0),
  )

  checkpoint_every_steps: int = _field(
    250, "save train state and data position this often", fields.at_least(1)
  )
  keep_checkpoints: int = _field(
    3, "newest checkpoints kept, plus the best by held-out loss", fields.at_least(1)
  )
  step_log: bool = _field(False, "append each step's loss to <workdir>/steps.jsonl")

  log_every_steps: int = _field(
    100, "loss / tokens-per-second reporting interval", fields.at_least(1)
  )
  eval_every_steps: int = _field(500, "held-out loss and BLEU interval", fields.at_least(1))
  num_samples: int = _field(5, "translations printed at the end", fields.at_least(0))
  num_attention_plots: int = _field(3, "attention_*.png written at the end", fields.at_least(0))

  decode: options.DecodeConfig = _field(options.DecodeConfig(), "decoding (config.decode)")

  def check(self):
    """The rules between fields: data for the dataset, buckets, checkpoint averaging,
    the coverage loss."""
    self.data.check_for(self.dataset)
    try:
      input_pipeline.train_lengths(self.bucket_lengths, self.model.max_length)
    except ValueError as e:
      raise ConfigError("bucket_lengths", self.bucket_lengths, str(e)) from None
    k = self.average_last_checkpoints
    if k == 1 or k > self.keep_checkpoints:
      raise ConfigError(
        "average_last_checkpoints",
        k,
        f"0 (off) or an integer in [2, keep_checkpoints="
        f"{self.keep_checkpoints}] (only that many are kept)",
      )
    model = self.model
    if self.coverage_loss_weight and not attention.has_coverage(
      attention.entry(model.attention).build(model)
    ):
      raise ConfigError(
        "coverage_loss_weight",
        self.coverage_loss_weight,
        f"0 (off) with model.attention={model.attention!r}, which keeps no coverage vector "
        f"(a positive weight needs one of: {', '.join(attention.coverage_rows(model))})",
      )
    start = self.coverage_loss_from_step
    if start and (not self.coverage_loss_weight or start >= self.num_train_steps):
      raise ConfigError(
        "coverage_loss_from_step",
        start,
        f"0 (from the start) or a step below num_train_steps={self.num_train_steps}, "
        f"with a positive coverage_loss_weight (now {self.coverage_loss_weight}): "
        "otherwise the coverage loss never joins the objective",
      )


def validate(config, *, num_devices: int = 1) -> TrainConfig:
  """The checked TrainConfig of a config (a ConfigDict from a config file, a mapping, or a
  TrainConfig); ConfigError names the first field whose value is not allowed, an unknown
  field included. batch_size must split evenly over num_devices."""
  if not isinstance(config, TrainConfig):
    config = TrainConfig.from_dict(config)
  if config.batch_size % num_devices:
    raise ConfigError(
      "batch_size", config.batch_size, f"a multiple of the device count ({num_devices})"
    )
  return config


def main(argv: list[str]) -> int:
  """python -m jaxseq.training.configuration: every field with its type, default and meaning."""
  del argv
  print("\n".join(fields.describe(TrainConfig)))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
