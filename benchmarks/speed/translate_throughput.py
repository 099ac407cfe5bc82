"""Translation throughput: batched greedy and beam search against one sentence at a time.

    python -m benchmarks.speed.translate_throughput --workdir=workdir    # a trained model
    python -m benchmarks.speed.translate_throughput --num_sentences=64   # untrained, quick

"One at a time" is the PyTorch tutorial's evaluate(): encode one sentence, then call the
decoder once per output token from Python, reading the argmax back to the host each
step. It runs twice: with both calls jit-compiled (the strongest one-at-a-time
baseline; speedups are relative to it) and eagerly, op by op, as the tutorial's
PyTorch modules run (`speedup_vs_eager_one_at_a_time`). The batched
modes are jaxseq.decoding.evaluation.translate_ids with fixed [batch, max_length] shapes. Every
mode translates the same sentences with the same parameters; compilation is excluded
by a warm-up, and results are synchronised before the clock stops. Writes JSON with the
hardware and the ratios measured in this one run.
"""

import argparse
import dataclasses
import functools
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from configs import default
from jaxseq.data import synthetic
from jaxseq.data.vocab import BOS, EOS, WordVocab
from jaxseq.decoding import evaluation, trained
from jaxseq.decoding.options import DecodeOptions, Search
from jaxseq.model import seq2seq
from jaxseq.model.seq2seq import Seq2Seq
from jaxseq.training import steps


def load_model(workdir: str | None, seed: int):
  """(model, params, src_vocab, max_length, sources): a trained workdir or the default config."""
  if workdir:
    member = trained.load(workdir, "translate_throughput")
    config, model, params, src_vocab = member.config, member.model, member.params, member.src_vocab
    tgt_vocab = member.tgt_vocab
  else:
    config = default.get_config()
    splits = synthetic.make_splits(seed, 2000, 0, config.data.language)
    src_vocab = WordVocab.build(s for s, _ in splits["train"])
    tgt_vocab = WordVocab.build(t for _, t in splits["train"])
    model = seq2seq.from_config(config.model, len(src_vocab), len(tgt_vocab))
    # One compiled program: the optimizer's state, made op by op, took seconds.
    params = jax.jit(lambda key: steps.create_train_state(model, config, key).params)(
      jax.random.key(seed)
    )
  del tgt_vocab
  return config, model, params, src_vocab


def tutorial_functions(model, *, compiled: bool):
  """The encode and decoder step that the one-at-a-time loop calls.

  compiled=False runs them eagerly, op by op, as the PyTorch tutorial's modules do.
  """
  encode = functools.partial(model.apply, method=Seq2Seq.encode)
  step = functools.partial(model.apply, method=Seq2Seq.decode_step)
  return (jax.jit(encode), jax.jit(step)) if compiled else (encode, step)


def one_at_a_time(functions, params, sources, max_length) -> int:
  """The tutorial's loop; returns the number of output tokens (EOS included)."""
  encode, step = functions
  produced = 0
  for ids in sources:
    memory, state = encode(params, jnp.asarray(ids))
    token = BOS
    for _ in range(max_length):
      state, logits, _ = step(params, memory, state, jnp.int32(token))
      token = int(jnp.argmax(logits))  # back to the host every step, as the tutorial does
      produced += 1
      if token == EOS:
        break
  return produced


def batched(searcher: evaluation.Searcher, sources, options: DecodeOptions):
  outputs = evaluation.translate_ids(searcher, sources, options)
  return sum(len(o.best.ids) + int(o.best.ended) for o in outputs)


def timed(fn, repeats: int):
  """(fastest of `repeats` runs in seconds, tokens): the least disturbed by other load."""
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    tokens = fn()
    best = min(best, time.perf_counter() - start)
  return best, tokens


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", help="trained workdir (default: untrained default config)")
  parser.add_argument("--num_sentences", type=int, default=512)
  parser.add_argument(
    "--num_single",
    type=int,
    default=64,
    help="sentences translated one at a time, jit-compiled steps",
  )
  parser.add_argument(
    "--num_eager",
    type=int,
    default=16,
    help="sentences translated one at a time, eager steps (slowest)",
  )
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--beam_sizes", default="4,8")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode (best kept)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--output", default=os.path.join(common.RESULTS, "speed", "translate_throughput.json")
  )
  args = parser.parse_args(argv)

  config, model, params, src_vocab = load_model(args.workdir, args.seed)
  max_length = config.model.max_length
  pairs = synthetic.make_splits(args.seed + 1, 0, args.num_sentences, config.data.language)["eval"]
  sources = [np.asarray(src_vocab.encode(s)[:max_length], np.int32) for s, _ in pairs]
  sources = [s for s in sources if len(s)]
  decode = DecodeOptions.from_dict(config.decode, strict=False)  # beam search

  results = {}
  for name, compiled, count in (
    ("one_at_a_time_greedy", True, args.num_single),
    ("one_at_a_time_greedy_eager", False, args.num_eager),
  ):
    single = sources[:count]
    functions = tutorial_functions(model, compiled=compiled)
    one_at_a_time(functions, params, single, max_length)  # compiles every source length
    run = functools.partial(one_at_a_time, functions, params, single, max_length)
    seconds, tokens = timed(run, args.repeats)
    results[name] = {"sentences": len(single), "seconds": seconds, "output_tokens": tokens}
  modes = [("batched_greedy", "greedy", 1)] + [
    (f"batched_beam{b}", "beam", int(b)) for b in args.beam_sizes.split(",")
  ]
  searcher = evaluation.Searcher(model, params, max_length, args.batch_size)
  for name, search, beam in modes:
    chosen = dataclasses.replace(decode, search=Search(search), beam_size=beam, nbest=1)
    run = functools.partial(batched, searcher, sources, chosen)
    run()  # warm-up: compiles the one batch shape
    seconds, tokens = timed(run, args.repeats)
    results[name] = {"sentences": len(sources), "seconds": seconds, "output_tokens": tokens}
  for r in results.values():
    r["sentences_per_second"] = r["sentences"] / r["seconds"]
    r["tokens_per_second"] = r["output_tokens"] / r["seconds"]
    print(
      f"{r['sentences_per_second']:10.1f} sent/s {r['tokens_per_second']:10.1f} tok/s",
      file=sys.stderr,
    )
  base = results["one_at_a_time_greedy"]["sentences_per_second"]
  report = {
    "benchmark": "translate_throughput",
    "model": "trained " + args.workdir if args.workdir else "untrained configs/default.py",
    "config": config.model.to_dict(),
    "batch_size": args.batch_size,
    "alpha": decode.alpha,
    "repeats": args.repeats,
    "results": results,
    "speedup_vs_one_at_a_time": {k: v["sentences_per_second"] / base for k, v in results.items()},
    "speedup_vs_eager_one_at_a_time": {
      k: v["sentences_per_second"] / results["one_at_a_time_greedy_eager"]["sentences_per_second"]
      for k, v in results.items()
    },
    "hardware": {
      "platform": platform.platform(),
      "processor": platform.processor(),
      "cpu_count": os.cpu_count(),
      "jax": jax.__version__,
      "devices": [str(d) for d in jax.devices()],
      "device_kind": jax.devices()[0].device_kind,
    },
  }
  common.write_json(args.output, report)
  print(json.dumps(report["speedup_vs_one_at_a_time"], indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
