"""jaxseq: attention-based sequence-to-sequence translation in JAX and Flax.

The package is laid out by stage, in the order a sentence passes through it:

  data/      corpora, tokenizers and the grain input pipeline
  model/     the recurrent cells, the attentions and the encoder-decoder, for one sentence
  training/  the run's config, the pure train step, the loop, checkpoints and devices
  decoding/  greedy, sampling and beam search, ensembles, scoring a split
  serving/   the commands, the exported translator and the HTTP service

`fields`, `errors`, `quiet` and `cli` are shared by every stage. See docs/architecture.md.
"""
