"""Input pipeline throughput next to what the train step consumes, at the Multi30k config size.

    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.data.input_pipeline \
        --out=benchmarks/results/data/input_pipeline.json

Measures (1) the bucketed grain pipeline alone, streaming the prepared array_record files
as training does: batches, examples and target tokens per second; (2) the jitted train step
of configs/multi30k_de_en.py on the same batches, after every bucket was compiled (warm-up
excluded, each step synchronised); and reports the ratio of (1) to (2) in target tokens/s,
measured in this one run. Target: >= 10.
"""

import argparse
import functools
import json
import os
import platform
import time

import jax
import numpy as np

from benchmarks import common
from configs import multi30k_de_en
from jaxseq.data import corpora, input_pipeline
from jaxseq.model import seq2seq
from jaxseq.training import steps


def pipeline_rate(examples, config, num_batches: int, num_threads: int) -> dict:
  it = input_pipeline.TrainIterator(
    examples, config.batch_size, config.model.max_length, seed=config.seed, num_threads=num_threads
  )
  for _ in range(20):  # warm-up: threads started, buffers filled
    next(it)
  start = time.perf_counter()
  rows = tokens = 0
  for _ in range(num_batches):
    batch = next(it)
    rows += int(np.count_nonzero(batch["src"][:, 0]))
    tokens += int(np.count_nonzero(batch["tgt_out"]))
  seconds = time.perf_counter() - start
  return {
    "batches_per_s": num_batches / seconds,
    "examples_per_s": rows / seconds,
    "target_tokens_per_s": tokens / seconds,
    "num_threads": num_threads,
  }


def train_rate(examples, config, src_size, tgt_size, num_steps: int) -> dict:
  model = seq2seq.from_config(config.model, src_size, tgt_size)
  state = steps.create_train_state(model, config, jax.random.key(0))
  step = jax.jit(
    functools.partial(
      steps.train_step,
      model=model,
      teacher_forcing_ratio=1.0,
      label_smoothing=config.label_smoothing,
    ),
    donate_argnums=0,
  )
  it = input_pipeline.TrainIterator(
    examples, config.batch_size, config.model.max_length, seed=config.seed
  )
  batches = [next(it) for _ in range(num_steps)]
  compiled = set()
  for batch in batches:  # warm-up: compile every bucket that the timed steps use
    if batch["src"].shape not in compiled:
      compiled.add(batch["src"].shape)
      state, metrics = step(state, batch)
      jax.block_until_ready(metrics)
  start = time.perf_counter()
  tokens = 0
  for batch in batches:
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    tokens += int(np.count_nonzero(batch["tgt_out"]))
  seconds = time.perf_counter() - start
  return {
    "steps_per_s": num_steps / seconds,
    "target_tokens_per_s": tokens / seconds,
    "buckets_compiled": sorted(s[1] for s in compiled),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pipeline_batches", type=int, default=300)
  parser.add_argument("--train_steps", type=int, default=20)
  parser.add_argument("--num_threads", type=int, default=2)
  parser.add_argument("--out", default=os.path.join(common.RESULTS, "data", "input_pipeline.json"))
  args = parser.parse_args()

  config = multi30k_de_en.get_config()
  corpus = corpora.load_corpus(config)
  # what training reads: the array_record files, encoded as they are read
  streamed = input_pipeline.EncodedPairs(corpus.train, corpus.src_vocab, corpus.tgt_vocab)
  pipeline = pipeline_rate(streamed, config, args.pipeline_batches, args.num_threads)
  examples, dropped = input_pipeline.encode_pairs(
    corpus.train, corpus.src_vocab, corpus.tgt_vocab, config.model.max_length
  )
  train = train_rate(
    examples, config, len(corpus.src_vocab), len(corpus.tgt_vocab), args.train_steps
  )
  result = {
    "config": "configs/multi30k_de_en.py",
    "batch_size": config.batch_size,
    "max_length": config.model.max_length,
    "training_examples": len(examples),
    "dropped": dropped,
    "pipeline": pipeline,
    "train_step": train,
    "ratio_pipeline_to_train": pipeline["target_tokens_per_s"] / train["target_tokens_per_s"],
    "hardware": {
      "platform": platform.platform(),
      "processor": platform.processor(),
      "cpu_count": os.cpu_count(),
      "jax_backend": jax.default_backend(),
      "devices": [str(d) for d in jax.devices()],
      "jax": jax.__version__,
    },
  }
  common.write_json(args.out, result)
  print(
    json.dumps(
      {k: result[k] for k in ("pipeline", "train_step", "ratio_pipeline_to_train")}, indent=2
    )
  )


if __name__ == "__main__":
  main()
