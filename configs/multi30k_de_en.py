"""Multi30k German -> English: bidirectional GRU encoder, Bahdanau attention, SentencePiece BPE.

    JAXSEQ_DATA_DIR=../shared/data JAX_NUM_CPU_DEVICES=1 python -m benchmarks.quality.quality \
        --config=configs/multi30k_de_en.py --name=multi30k_de_en --workdir=/tmp/m30k_de_en

(`python train.py --config=configs/multi30k_de_en.py --workdir=...` trains the same model;
the benchmark also writes benchmarks/results/multi30k_de_en.json for the results tables.)

Result (one core of a 2-core Intel Xeon, pinned with `taskset` while
configs/multi30k_en_de.py trained on the other; 4,000 steps in 86 min of training,
6.0 M parameters, benchmarks/results/multi30k_de_en.json): test2016 BLEU 39.9 (sacreBLEU,
cased, detokenized, beam 4; lowercased 40.1; bleu_lc_tok 40.1), chrF 59.3, perplexity 7.37;
test2017 BLEU 34.6 (bleu_lc_tok 35.1); validation BLEU 39.8. The mean of the last 3
checkpoints scores about the same (test2016 39.9, test2017 34.9).
"""

from configs import corpus_fields


def get_config(source_lang: str = "de", target_lang: str = "en"):
  config = corpus_fields.get_config("multi30k", source_lang, target_lang)
  m = config.model
  m.embed_size = 256  # subword embedding size
  m.hidden_size = 256  # GRU state size
  m.attention_size = 256  # additive attention inner size
  m.bidirectional = True  # encoder reads both directions
  m.dropout = 0.2  # regularizes the 29k-pair training set
  m.max_length = 64  # subword tokens incl. EOS; buckets 8, 16, 32, 64
  m.tie_embeddings = True  # output layer = target embedding (embed == hidden)
  config.batch_size = 128  # sentence pairs per step
  config.num_train_steps = 4_000  # about 17.7 epochs of 29,000 pairs
  config.learning_rate = 1e-3  # Adam peak, then cosine decay to 1% of it
  config.warmup_steps = 300  # linear warmup
  config.label_smoothing = 0.1  # standard for NMT
  config.log_every_steps = 100
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.average_last_checkpoints = 3  # also score the mean of the newest 3 checkpoints
  return config
