"""Multi30k English -> German: configs/multi30k_de_en_fast.py in the other direction.

Two seeds side by side, one core each, and their ensemble:

    for s in 0 1; do
      JAX_NUM_CPU_DEVICES=1 JAXSEQ_DATA_DIR=../shared/data taskset -c $s python train.py \
          --config=configs/multi30k_en_de_fast.py --config.seed=$s --workdir=/tmp/en_de/seed$s &
    done; wait
    JAXSEQ_DATA_DIR=../shared/data python benchmarks/ensemble.py \
        --workdir=/tmp/en_de/seed0 --workdir=/tmp/en_de/seed1 --name=multi30k_en_de_fast_ensemble
"""

from configs import multi30k_de_en_fast


def get_config():
  return multi30k_de_en_fast.get_config(source_lang="en", target_lang="de")
