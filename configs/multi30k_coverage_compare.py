"""Multi30k, one short recipe for comparing attentions, in either direction.

configs/multi30k_de_en_fast.py (4,000 SentencePiece pieces per language, fine length
buckets, Adam at 2e-3 with cosine decay, no input feeding) cut to 800 steps, so that every
row of the attention table can be trained in both directions on one core each and
compared at the same budget: the same data, batches, steps and seed, only
`model.attention` (and the fields that row reads) changes. The direction is the
config's argument, `de-en` (default) or `en-de`:

    JAX_NUM_CPU_DEVICES=1 JAXSEQ_DATA_DIR=../shared/data taskset -c 0 \
        python -m benchmarks.quality.quality \
        --config=configs/multi30k_coverage_compare.py:de-en \
        --config.model.attention=bahdanau \
        --name=compare_de_en_bahdanau --workdir=/tmp/compare_de_en_bahdanau

docs/results.md gives the rows' results and their commands.
"""

from configs import multi30k_de_en_fast


def get_config(direction: str = "de-en"):
  source, _, target = direction.partition("-")
  if {source, target} != {"de", "en"}:
    raise ValueError(f"direction {direction!r}: allowed 'de-en' or 'en-de'")
  config = multi30k_de_en_fast.get_config(source, target)
  config.model.attention = "bahdanau"  # overridden per row
  config.model.attention_size = 256  # the additive score's inner size (= hidden)
  config.num_train_steps = 800  # about 3.5 epochs of 29,000 pairs
  config.warmup_steps = 100
  config.eval_every_steps = 400
  config.checkpoint_every_steps = 400
  return config
