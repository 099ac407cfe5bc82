"""The embedded default: English number words -> German, trained from nothing on disk.

    python train.py                                   # this config, workdir ./workdir
    python train.py --config=configs/default.py --workdir=/tmp/numbers \
        --config.model.attention=luong_general --config.data.language=fr

Result (python train.py, 2-core Intel Xeon @ 2.50GHz, CPU only): 100.0% exact match and
BLEU 100.0 on 1,000 held-out numbers (beam search), held-out perplexity 1.0004, 75 s wall
time, 54 s of it training (benchmarks/results/numbers_de.json).
"""

import ml_collections

from jaxseq import fields
from jaxseq.model import seq2seq
from jaxseq.training import configuration


def get_model_config() -> ml_collections.ConfigDict:
  """config.model's defaults (seq2seq.ModelConfig defines each field)."""
  return fields.config_dict(seq2seq.ModelConfig())


def get_config() -> ml_collections.ConfigDict:
  """Every field at its default (configuration.TrainConfig and the parts it nests define
  them; `python -m jaxseq.training.configuration` lists them): generated numbers, English ->
  German."""
  return fields.config_dict(configuration.TrainConfig())
