"""Chooses the beam size and length penalty on the held-out split alone, then scores the
test splits once with that choice.

    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.decode_sweep \
        --workdir=/tmp/en_de_cgru --name=multi30k_en_de_cgru --metric=bleu_lc_tok

Several --workdir: their ensemble, as in jaxseq-evaluate. Every (beam size, alpha) of the
grid decodes the held-out split; the best by --metric wins, ties going to the earlier
setting of the grid (smaller beams first). Only then are the test splits decoded, once, so
they play no part in the choice. Writes benchmarks/results/decode/NAME.json: each
setting's held-out scores and seconds, the choice, its test scores, and the hardware.
"""

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time

from benchmarks import common
from benchmarks.quality import driver


def choose(rows: list[dict], metric: str) -> dict:
  """The row whose held-out `metric` is highest; the earliest of equals."""
  return max(rows, key=lambda row: row["heldout"][metric])  # max keeps the first of equals


def _numbers(text: str, kind):
  return [kind(v) for v in text.split(",") if v.strip()]


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[int], list[float]]:
  """The flags, the beam sizes and the alphas; exits 2 with one line on a bad grid."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--workdir", action="append", required=True, help="a trained workdir; several: their ensemble"
  )
  parser.add_argument("--name", required=True, help="results/decode/NAME.json")
  parser.add_argument(
    "--metric",
    default="bleu",
    choices=("bleu", "bleu_lc_tok", "chrf"),
    help="held-out score that chooses",
  )
  parser.add_argument("--beam_sizes", default="4,8,12", help="comma-separated integers >= 1")
  parser.add_argument("--alphas", default="0.6,1.0,1.4", help="comma-separated numbers >= 0")
  parser.add_argument("--out_dir", default=os.path.join(driver.RESULTS, "decode"))
  args = parser.parse_args(argv)
  try:
    beams, alphas = _numbers(args.beam_sizes, int), _numbers(args.alphas, float)
  except ValueError:
    parser.error("--beam_sizes takes integers and --alphas numbers, comma-separated")
  if not beams or not alphas or min(beams) < 1 or min(alphas) < 0:
    parser.error("--beam_sizes needs integers >= 1 and --alphas numbers >= 0")
  return args, beams, alphas


def main(argv: list[str]) -> int:
  """Decodes the held-out split at every grid point, the test splits at the best; writes
  --out_dir/NAME.json."""
  args, beams, alphas = _parse(argv)
  found = driver.load(args.workdir)
  if found is None:
    return 2
  loaded, corpus = found
  config = loaded.members[0].config
  heldout, tests = driver.split_names(corpus)

  def scores(names, beam_size, alpha):
    options = dataclasses.replace(loaded.options, beam_size=beam_size, alpha=alpha, nbest=1)
    scored = driver.score(loaded, corpus, names, options)
    return {
      name: driver.scores(m, keep=(*driver.METRICS, "seconds"), digits=2)
      for name, m in scored.items()
    }

  rows = []
  for beam_size, alpha in itertools.product(beams, alphas):
    row = {
      "beam_size": beam_size,
      "alpha": alpha,
      "heldout": scores([heldout], beam_size, alpha)[heldout],
    }
    print(json.dumps(row), flush=True)
    rows.append(row)
  best = choose(rows, args.metric)
  started = time.time()
  record = {
    "name": args.name,
    "command": common.command_line("benchmarks.quality.decode_sweep", argv),
    "dataset": config.dataset,
    "workdirs": args.workdir,
    "metric": args.metric,
    "config_decode": {"beam_size": config.decode.beam_size, "alpha": config.decode.alpha},
    "grid": rows,
    "chosen": {
      "beam_size": best["beam_size"],
      "alpha": best["alpha"],
      "heldout": best["heldout"],
      "test": scores(tests, best["beam_size"], best["alpha"]),
    },
    "test_seconds": round(time.time() - started, 1),
    "hardware": common.run_hardware(),
  }
  path = driver.write_record(args.out_dir, args.name, record)
  print(json.dumps(record["chosen"]))
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
