"""The start of the configs of real corpora (multi30k, tatoeba, wmt14)."""

import ml_collections

from configs import default


def get_config(dataset: str, source_lang: str, target_lang: str) -> ml_collections.ConfigDict:
  """configs/default.py with a real corpus in place of the generated numbers; the corpus
  fields (config.data.tokenizer, vocab_size, ...) keep their defaults (corpora.DataConfig)."""
  config = default.get_config()
  config.dataset = dataset  # multi30k | tatoeba | wmt14
  config.data.source_lang = source_lang  # translate from this side of the corpus
  config.data.target_lang = target_lang  # into this side
  return config
