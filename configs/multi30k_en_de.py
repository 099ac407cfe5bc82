"""Multi30k English -> German: the same model and training as configs/multi30k_de_en.py.

    JAXSEQ_DATA_DIR=../shared/data python train.py --config=configs/multi30k_en_de.py \
        --workdir=/tmp/multi30k_en_de

Result: not yet measured at the full step count (see README "Results" once it is).
"""

from configs import multi30k_de_en


def get_config():
  return multi30k_de_en.get_config(source_lang="en", target_lang="de")
