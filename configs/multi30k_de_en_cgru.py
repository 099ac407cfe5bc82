"""Multi30k German -> English with the conditional GRU decoder.

configs/multi30k_de_en_fast.py with the decoder of configs/multi30k_en_de_cgru.py: a first
GRU from the previous word, additive attention asked by its new state, and a second GRU
that reads the context and makes the step's state (`attention="conditional"`). Trained on
one core while another run used the other:

    JAX_NUM_CPU_DEVICES=1 JAXSEQ_DATA_DIR=../shared/data taskset -c 0 python -m \
        benchmarks.quality.quality --config=configs/multi30k_de_en_cgru.py \
        --name=multi30k_de_en_cgru --workdir=/tmp/de_en_cgru

Result (that command, 2-core Intel Xeon, the other core training
configs/multi30k_en_de_cgru_long.py; benchmarks/results/multi30k_de_en_cgru.json): test2016
BLEU 41.4 (sacreBLEU, cased, detokenized, beam 4; bleu_lc_tok 41.6), test2017 35.9 (36.5),
held-out 40.7, after 28.6 min of training (30.7 min from the start), 4.16 M parameters. One
model above the five-run ensemble of configs/multi30k_de_en_fast.py (40.6 and 35.8).

Time to quality on both cores (data parallel, after the loop rewrite):

    JAX_NUM_CPU_DEVICES=2 JAXSEQ_DATA_DIR=../shared/data \
        python -m benchmarks.quality.time_to_quality --config=configs/multi30k_de_en_cgru.py \
        --name=multi30k_de_en_cgru --workdir=/tmp/ttq_m30k_cgru --thresholds=35,38,40

Result (idle 2-core AMD EPYC, load 2.0 from the run itself; benchmarks/results/
time_to_quality/multi30k_de_en_cgru.json): test2016 BLEU 41.5 (bleu_lc_tok 41.7),
test2017 35.9, held-out 40.8, after 19.5 min of training (22.4 min from the start);
held-out greedy BLEU 35 at 10.1 min, 38 at 12.4 min.

Seed 1 on one core (`JAX_NUM_CPU_DEVICES=1 taskset -c 0 python -m benchmarks.quality.quality
--config=configs/multi30k_de_en_cgru.py --config.seed=1 --name=multi30k_de_en_cgru_s1
--workdir=/tmp/q32/multi30k_de_en_cgru_s1`, the other core training): test2016 40.9,
test2017 35.0, held-out 40.7. An ensemble of the five de->en runs with held-out BLEU >= 40
(seeds 0 and 1 of this recipe, and the time-to-quality runs of multi30k_de_en_fast,
multi30k_de_en_quick and its 1,650-step, dropout 0.1 variant; their commands are in
benchmarks/results/time_to_quality/):

    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.ensemble \
        --workdir=/tmp/ttq_m30k_cgru --workdir=/tmp/q32/multi30k_de_en_cgru_s1 \
        --workdir=/tmp/ttq_m30k_fast5 --workdir=/tmp/ttq_m30k_quick --workdir=/tmp/ttq_q3 \
        --name=multi30k_de_en_cgru_ensemble

scores test2016 BLEU 42.1 (42.05; bleu_lc_tok 42.3), test2017 36.5, held-out 42.1
(benchmarks/results/multi30k_de_en_cgru_ensemble.json, 2-core AMD EPYC). Beam 8 and length
penalty 0.6, chosen on the held-out split by benchmarks/quality/decode_sweep.py (same
--workdir flags, --metric=bleu --beam_sizes=4,8 --alphas=0.6,1.0,1.4): test2016 42.2
(42.17), test2017 36.9 (benchmarks/results/decode/multi30k_de_en_cgru_ensemble.json).

Seeds 2 and 3 (held-out 40.8 and 40.6) joined those seven runs in a pool whose members
benchmarks/quality/ensemble_select.py chose on the held-out split alone (--workdir for each
of the nine, --name=multi30k_de_en_cgru_selected --metric=bleu --max_size=7): the best six
by their own held-out BLEU, held-out 42.5 (select/multi30k_de_en_cgru_selected.json). Scored with
benchmarks/quality/ensemble.py on those six: test2016 42.3 (42.35; bleu_lc_tok 42.6),
test2017 36.8 (multi30k_de_en_cgru_selected.json). Beam 12 and penalty 0.6, chosen on
held-out by decode_sweep.py (--beam_sizes=8,12 --alphas=0.4,0.6; held-out 42.9): test2016
42.3 (42.28), test2017 37.6 (decode/multi30k_de_en_cgru_selected.json). Seeds 4 and 5
(held-out 40.4 and 41.2) do not improve on the six: in a pool of eleven
(select/multi30k_de_en_cgru_pool11.json) the best size scores held-out 42.3, and either seed
added to the six lowers their held-out score to 42.1 (the last row of
select/multi30k_de_en_cgru_six_plus_s5.json and _s4.json: the six and that seed as a pool).
"""

from configs import multi30k_de_en_fast


def get_config(source_lang: str = "de", target_lang: str = "en"):
  config = multi30k_de_en_fast.get_config(source_lang, target_lang)
  config.model.attention = "conditional"  # GRU, additive attention on its state, GRU
  config.model.attention_size = 256  # the additive score's inner size (= hidden)
  return config
