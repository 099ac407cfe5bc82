"""Multi30k English -> German: the same model and training as configs/multi30k_de_en.py.

    JAXSEQ_DATA_DIR=../shared/data JAX_NUM_CPU_DEVICES=1 python -m benchmarks.quality.quality \
        --config=configs/multi30k_en_de.py --name=multi30k_en_de --workdir=/tmp/m30k_en_de

(`python train.py --config=configs/multi30k_en_de.py --workdir=...` trains the same model.)

Result (one core of a 2-core Intel Xeon, pinned with `taskset` while
configs/multi30k_de_en.py trained on the other; 4,000 steps in 87 min of training,
6.0 M parameters, benchmarks/results/multi30k_en_de.json): test2016 BLEU 34.8 (sacreBLEU,
cased, detokenized, beam 4; lowercased 35.2; bleu_lc_tok 35.2), chrF 60.5, perplexity 9.04;
test2017 BLEU 26.4 (bleu_lc_tok 26.5); validation BLEU 35.6. The mean of the last 3
checkpoints scores about the same (test2016 34.7, test2017 26.4).
"""

from configs import multi30k_de_en


def get_config():
  return multi30k_de_en.get_config(source_lang="en", target_lang="de")
