"""Checks a config before anything runs, with one message per mistake."""

import ml_collections

from jaxseq import attention, cells, data, evaluation, input_pipeline, steps, synthetic
from jaxseq import tokenizers
from jaxseq import model as model_lib
from jaxseq.datasets import tatoeba, wmt14
from jaxseq.errors import ConfigError  # noqa: F401  (raised here; cli.py reports it)

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


def validate(config: ml_collections.ConfigDict, *, num_devices: int = 1):
  """Raises ConfigError naming the first field whose value is not allowed.

  Allowed names come from the library's own tables (attention.ATTENTIONS, cells.CELLS,
  model.READOUTS, steps.SCHEDULES, data.LOADERS, ...), so a new table row is allowed
  here without an edit.
  """
  _int(config, "seed", 0)
  _bool(config, "distributed")
  _choice(config, "dataset", tuple(data.LOADERS))
  validate_model_fields(config)
  _int(config, "batch_size", 1)
  if config.batch_size % num_devices:
    raise ConfigError("batch_size", config.batch_size,
                      f"a multiple of the device count ({num_devices})")
  try:
    input_pipeline.train_lengths(config.bucket_lengths, config.model.max_length)
  except ValueError as e:
    raise ConfigError("bucket_lengths", config.bucket_lengths, str(e)) from None
  _int(config, "num_train_steps", 0)
  _float(config, "learning_rate", 0.0, low_open=True)
  _choice(config, "lr_schedule", tuple(steps.SCHEDULES))
  _int(config, "warmup_steps", 0)
  _float(config, "grad_clip_norm", 0.0)
  _float(config, "label_smoothing", 0.0, 1.0)
  if config.label_smoothing >= 1.0:
    raise ConfigError("label_smoothing", config.label_smoothing, "a number in [0, 1)")
  _float(config, "teacher_forcing_ratio", 0.0, 1.0)
  _int(config, "max_bad_steps", 1)
  _int(config, "checkpoint_every_steps", 1)
  _int(config, "keep_checkpoints", 1)
  validate_quality_fields(config)
  _bool(config, "step_log")
  _int(config, "log_every_steps", 1)
  _int(config, "eval_every_steps", 1)
  _int(config, "num_samples", 0)
  _int(config, "num_attention_plots", 0)
  validate_decode_fields(config)
  if config.dataset == "numbers":
    _choice(config, "data.language", synthetic.LANGUAGES)
    _int(config, "data.num_train", 1)
    _int(config, "data.num_eval", 1)
  else:
    validate_corpus_fields(config)


def validate_model_fields(config):
  """Checks config.model: names from the library's tables, sizes, and that the attention,
  readout and input feeding fit together (model.wiring_problem)."""
  _choice(config, "model.cell", tuple(cells.CELLS))
  _choice(config, "model.attention", tuple(attention.ATTENTIONS))
  _choice(config, "model.readout", tuple(model_lib.READOUTS))
  for field in ("embed_size", "hidden_size", "attention_size", "num_layers", "max_length",
                "scan_unroll"):
    _int(config, f"model.{field}", 1)
  for field in ("bidirectional", "input_feeding", "tie_embeddings"):
    _bool(config, f"model.{field}")
  _choice(config, "model.dtype", model_lib.DTYPES)
  _float(config, "model.dropout", 0.0, 1.0)
  if config.model.dropout >= 1.0:
    raise ConfigError("model.dropout", config.model.dropout, "a number in [0, 1)")
  m = config.model
  if problem := model_lib.wiring_problem(m.attention, m.readout, m.input_feeding):
    field, allowed = problem
    raise ConfigError(field, _get(config, field), allowed)
  if m.tie_embeddings and m.embed_size != m.hidden_size:
    raise ConfigError("model.tie_embeddings", True,
                      f"False unless model.embed_size ({m.embed_size}) equals "
                      f"model.hidden_size ({m.hidden_size}), the size of the "
                      "vector the output layer reads")


def validate_decode_fields(config):
  """Checks config.decode (beam search and the search of periodic evaluation)."""
  _int(config, "decode.beam_size", 1)
  _float(config, "decode.alpha", 0.0)
  _int(config, "decode.nbest", 1)
  if config.decode.nbest > config.decode.beam_size:
    raise ConfigError("decode.nbest", config.decode.nbest,
                      f"an integer in [1, decode.beam_size={config.decode.beam_size}]")
  _float(config, "decode.max_length_ratio", 0.0)
  _int(config, "decode.max_length_offset", 1)
  _choice(config, "decode.eval_search", evaluation.SEARCHES)


def validate_corpus_fields(config):
  """Checks config.data of a real corpus (configs/corpus_fields.py)."""
  langs = data.LANGUAGES[config.dataset]
  _choice(config, "data.source_lang", langs)
  _choice(config, "data.target_lang", tuple(x for x in langs if x != config.data.source_lang))
  _choice(config, "data.tokenizer", tuple(tokenizers.TOKENIZERS))
  _int(config, "data.tokenizer_pairs", 1)
  if config.data.tokenizer == "sentencepiece":
    _int(config, "data.vocab_size", 300)
    _choice(config, "data.spm_model_type", tokenizers.MODEL_TYPES)
  if config.dataset == "tatoeba":
    _choice(config, "data.variant", tuple(c.name for c in tatoeba.TatoebaEngFra.BUILDER_CONFIGS))
  if config.dataset == "wmt14":
    _choice(config, "data.pair", wmt14.PAIRS)
    if {config.data.source_lang, config.data.target_lang} != set(config.data.pair.split("-")):
      raise ConfigError("data.pair", config.data.pair,
                        "the pair of data.source_lang and data.target_lang")


def validate_quality_fields(config):
  """Checks the reduce-on-plateau, early-stopping and checkpoint-averaging fields."""
  _float(config, "lr_plateau_factor", 0.0, 1.0)
  if config.lr_plateau_factor >= 1.0:
    raise ConfigError("lr_plateau_factor", config.lr_plateau_factor,
                      "a number in [0, 1) (0 turns reduce-on-plateau off)")
  _int(config, "lr_plateau_patience", 1)
  _int(config, "early_stopping_patience", 0)
  _int(config, "average_last_checkpoints", 0)
  k = config.average_last_checkpoints
  if k == 1 or k > config.keep_checkpoints:
    raise ConfigError("average_last_checkpoints", k,
                      f"0 (off) or an integer in [2, keep_checkpoints="
                      f"{config.keep_checkpoints}] (only that many are kept)")
