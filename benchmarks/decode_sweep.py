"""Chooses the beam size and length penalty on the held-out split alone, then scores the
test splits once with that choice.

    JAXSEQ_DATA_DIR=../shared/data python benchmarks/decode_sweep.py \
        --workdir=/tmp/en_de_cgru --name=multi30k_en_de_cgru --metric=bleu_lc_tok

Several --workdir: their ensemble, as in jaxseq-evaluate. Every (beam size, alpha) of the
grid decodes the held-out split; the best by --metric wins, ties going to the earlier
setting of the grid (smaller beams first). Only then are the test splits decoded, once, so
they play no part in the choice. Writes benchmarks/results/decode/NAME.json: each
setting's held-out scores and seconds, the choice, its test scores, and the hardware.
"""

import argparse
import itertools
import json
import os
import shlex
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import quality  # noqa: E402


def choose(rows: list[dict], metric: str) -> dict:
  """The row whose held-out `metric` is highest; the earliest of equals."""
  return max(rows, key=lambda row: row["heldout"][metric])  # max keeps the first of equals


def _numbers(text: str, kind):
  return [kind(v) for v in text.split(",") if v.strip()]


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", action="append", required=True,
                      help="a trained workdir; several: their ensemble")
  parser.add_argument("--name", required=True, help="results/decode/NAME.json")
  parser.add_argument("--metric", default="bleu", choices=("bleu", "bleu_lc_tok", "chrf"),
                      help="held-out score that chooses")
  parser.add_argument("--beam_sizes", default="4,8,12", help="comma-separated integers >= 1")
  parser.add_argument("--alphas", default="0.6,1.0,1.4", help="comma-separated numbers >= 0")
  parser.add_argument("--out_dir", default=os.path.join(quality.RESULTS, "decode"))
  args = parser.parse_args(argv)
  try:
    beams, alphas = _numbers(args.beam_sizes, int), _numbers(args.alphas, float)
  except ValueError:
    parser.error("--beam_sizes takes integers and --alphas numbers, comma-separated")
  if not beams or not alphas or min(beams) < 1 or min(alphas) < 0:
    parser.error("--beam_sizes needs integers >= 1 and --alphas numbers >= 0")

  from jaxseq import checkpointing, cli, data, evaluate, trained
  cli.quiet_library_logs()
  try:
    loaded = trained.Loaded(args.workdir)
    config = loaded.members[0].config
    corpus = data.load_corpus(config, loaded.members[0].workdir)
  except (checkpointing.CheckpointError, data.DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  heldout = evaluate.select_splits(corpus, [evaluate.HELDOUT])
  tests = {k: v for k, v in evaluate.select_splits(corpus, None).items()
           if k != evaluate.HELDOUT}
  pick = lambda m: {k: round(m[k], 2) for k in (*quality.METRICS, "seconds") if k in m}

  def scores(splits, beam_size, alpha):
    settings = dict(config.decode.to_dict(), beam_size=beam_size, alpha=alpha)
    return {name: pick(metrics) for name, metrics in evaluate.score_splits(
        loaded, corpus, splits, settings, search="beam", batch_size=config.batch_size)}

  rows = []
  for beam_size, alpha in itertools.product(beams, alphas):
    row = {"beam_size": beam_size, "alpha": alpha,
           "heldout": scores(heldout, beam_size, alpha)[evaluate.HELDOUT]}
    print(json.dumps(row), flush=True)
    rows.append(row)
  best = choose(rows, args.metric)
  started = time.time()
  record = {
      "name": args.name,
      "command": "python benchmarks/decode_sweep.py " + " ".join(shlex.quote(a) for a in argv),
      "dataset": config.dataset, "workdirs": args.workdir, "metric": args.metric,
      "config_decode": {"beam_size": config.decode.beam_size, "alpha": config.decode.alpha},
      "grid": rows,
      "chosen": {"beam_size": best["beam_size"], "alpha": best["alpha"],
                 "heldout": best["heldout"],
                 "test": scores(tests, best["beam_size"], best["alpha"])},
      "test_seconds": round(time.time() - started, 1),
      "hardware": quality.hardware(),
  }
  path = quality.write_record(args.out_dir, args.name, record)
  print(json.dumps(record["chosen"]))
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
