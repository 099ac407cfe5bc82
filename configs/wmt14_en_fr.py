"""WMT'14 English -> French from the TFDS catalogue (wmt14_translate/fr-en). NEEDS A NETWORK:
the first run downloads and prepares tens of gigabytes; offline it stops with one message.

    python train.py --config=configs/wmt14_en_fr.py --workdir=/tmp/wmt14_en_fr

Result: not measured (no network where this was written).
"""

from configs import multi30k_de_en


def get_config(pair: str = "fr-en", source_lang: str = "en", target_lang: str = "fr"):
  config = multi30k_de_en.get_config(source_lang, target_lang)
  config.dataset = "wmt14"
  config.data.pair = pair  # wmt14_translate config: fr-en | de-en
  config.data.vocab_size = 32_000  # a larger corpus affords more pieces
  config.model.max_length = 128  # news sentences are longer; buckets 8 ... 128
  config.num_train_steps = 100_000
  return config
