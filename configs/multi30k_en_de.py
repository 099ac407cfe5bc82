"""Multi30k English -> German: the same model and training as configs/multi30k_de_en.py.

    JAXSEQ_DATA_DIR=../shared/data python benchmarks/quality.py \
        --config=configs/multi30k_en_de.py --name=multi30k_en_de --workdir=/tmp/m30k_en_de

(`python train.py --config=configs/multi30k_en_de.py --workdir=...` trains the same model.)

Result (2-core Intel Xeon @ 2.50GHz, 4,000 steps in 100 min of training, 6.0 M parameters,
benchmarks/results/multi30k_en_de.json): test2016 BLEU 34.8 (sacreBLEU, cased, detokenized,
beam 4; lowercased 35.1), chrF 60.7, perplexity 8.90; test2017 BLEU 27.2; validation BLEU
36.7. The mean of the last 3 checkpoints scores the same (test2016 34.8).
"""

from configs import multi30k_de_en


def get_config():
  return multi30k_de_en.get_config(source_lang="en", target_lang="de")
