"""Fields shared by the configs of real corpora (multi30k, tatoeba, wmt14)."""

import ml_collections

from configs import default


def get_config(dataset: str, source_lang: str, target_lang: str) -> ml_collections.ConfigDict:
  """configs/default.py with a real corpus in place of the generated numbers."""
  config = default.get_config()
  config.dataset = dataset              # multi30k | tatoeba | wmt14
  config.data_dir = ""                  # raw corpora; "" = $JAXSEQ_DATA_DIR or <repo>/../shared/data
  config.tfds_dir = ""                  # prepared TFDS data; "" = $JAXSEQ_TFDS_DIR or ~/.cache/jaxseq/tfds
  config.data = ml_collections.ConfigDict()
  config.data.source_lang = source_lang  # translate from this side of the corpus
  config.data.target_lang = target_lang  # into this side
  config.data.tokenizer = "sentencepiece"  # sentencepiece | word (trained on the training split)
  config.data.tokenizer_pairs = 100_000  # tokenizers learn from at most this many training
                                        # pairs: all of a smaller split, else a fixed sample
  config.data.vocab_size = 8000         # sentencepiece: pieces per language, ids 0-3 reserved
  config.data.spm_model_type = "bpe"    # sentencepiece: bpe | unigram
  return config
