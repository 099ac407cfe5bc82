"""Multi30k English -> German: configs/multi30k_de_en_fast.py in the other direction.

Two seeds side by side, one core each, and their ensemble:

    for s in 0 1; do
      JAX_NUM_CPU_DEVICES=1 JAXSEQ_DATA_DIR=../shared/data taskset -c $s python train.py \
          --config=configs/multi30k_en_de_fast.py --config.seed=$s --workdir=/tmp/en_de/seed$s &
    done; wait
    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.ensemble \
        --workdir=/tmp/en_de/seed0 --workdir=/tmp/en_de/seed1 --name=multi30k_en_de_fast_ensemble

Result (those commands, 2-core AMD EPYC, 59.6 and 58.6 min of training side by side while
development work shared the machine, 3.70 M parameters each; benchmarks/results/
multi30k_en_de_fast_ensemble.json), beam 4:
  test2016: BLEU 36.5 and 35.9 (bleu_lc_tok 36.8 and 36.2); the ensemble 37.1 (37.5)
  test2017: BLEU 28.2 and 27.0 (bleu_lc_tok 28.4 and 27.1); the ensemble 28.3 (28.5)
configs/multi30k_en_de.py reaches test2016 34.8 and test2017 26.4 after 87 min on one core.
"""

from configs import multi30k_de_en_fast


def get_config():
  return multi30k_de_en_fast.get_config(source_lang="en", target_lang="de")
