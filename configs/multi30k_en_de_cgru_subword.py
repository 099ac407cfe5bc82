"""Multi30k English -> German: configs/multi30k_en_de_cgru_long.py with subword regularisation.

A unigram SentencePiece model in place of BPE, and every training pair segmented anew each time
it is read: one of its 8 best segmentations, drawn with probability proportional to P ** 0.1
(Kudo 2018, "Subword Regularization", whose gains were largest on small corpora; alpha 0.1 to
0.2 and l = 8 to 64 are the settings it reports for small data). Evaluation and translation use
the best segmentation. Everything else as multi30k_en_de_cgru_long.

    JAX_NUM_CPU_DEVICES=1 JAXSEQ_DATA_DIR=../shared/data taskset -c 1 python -m \
        benchmarks.quality.quality --config=configs/multi30k_en_de_cgru_subword.py \
        --name=multi30k_en_de_cgru_subword --workdir=/tmp/en_de_cgru_subword
"""

from configs import multi30k_en_de_cgru_long


def get_config():
  config = multi30k_en_de_cgru_long.get_config()
  config.data.spm_model_type = "unigram"  # sampling needs the unigram model's n-best
  config.data.subword_alpha = 0.1
  config.data.subword_nbest = 8
  return config
