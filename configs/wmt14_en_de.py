"""WMT'14 English -> German from the TFDS catalogue (wmt14_translate/de-en). NEEDS A NETWORK:
the first run downloads and prepares several gigabytes; offline it stops with one message.

    python train.py --config=configs/wmt14_en_de.py --workdir=/tmp/wmt14_en_de

Result: not measured (no network where this was written).
"""

from configs import wmt14_en_fr


def get_config():
  return wmt14_en_fr.get_config(pair="de-en", source_lang="en", target_lang="de")
