"""Multi30k English -> German with the conditional GRU decoder.

configs/multi30k_en_de_fast.py with one change, the decoder of the published recurrent
baselines on this task (nmtpytorch, Nematus): a first GRU from the previous word,
additive attention asked by its new state, and a second GRU that reads the context and
makes the step's state (`attention="conditional"`, see jaxseq/model/attention.py). The
attention now sits inside the recurrence, so a step costs about 1.3 times the fast
recipe's.

    JAX_NUM_CPU_DEVICES=2 JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.quality \
        --config=configs/multi30k_en_de_cgru.py --name=multi30k_en_de_cgru \
        --workdir=/tmp/en_de_cgru

Result (that command, 2-core AMD EPYC, 48.5 min of training with a test run and an
ensemble evaluation sharing the cores for part of it, 4.16 M parameters;
benchmarks/results/multi30k_en_de_cgru.json), beam 4, one model:
  test2016: BLEU 37.2 (bleu_lc_tok 37.5); the fast recipe's seeds 36.5 and 35.9 (36.8, 36.2)
  test2017: BLEU 29.9 (bleu_lc_tok 30.1); the fast recipe's seeds 28.2 and 27.0 (28.4, 27.1)
  held-out: BLEU 37.5, perplexity 6.91 (fast: 7.76 and 8.28)
"""

from configs import multi30k_en_de_fast


def get_config():
  config = multi30k_en_de_fast.get_config()
  config.model.attention = "conditional"  # GRU, additive attention on its state, GRU
  config.model.attention_size = 256  # the additive score's inner size (= hidden)
  return config
