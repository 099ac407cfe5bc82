"""Chooses an ensemble's members from a pool of trained workdirs on the held-out split alone.

    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.ensemble_select \
        --workdir=/tmp/seed0 --workdir=/tmp/seed1 --workdir=/tmp/seed2 \
        --name=multi30k_de_en_cgru_pool --metric=bleu

The pool is ranked by each member's own held-out score (the summary.json its training
wrote); then the best one, the best two, ... are decoded as an ensemble on the held-out
split, and the size with the highest --metric wins, ties going to the smaller ensemble. No
test split is decoded: score the chosen members with benchmarks/quality/ensemble.py (and
decode_sweep.py) afterwards, once. Members must share their vocabularies, as for any
jaxseq ensemble. Writes benchmarks/results/select/NAME.json: the pool with its members' own
scores, each size's held-out scores and seconds, the choice, and the hardware; prints the
chosen members as --workdir flags.
"""

import argparse
import os
import sys

from benchmarks import common
from benchmarks.quality import driver

METRIC_CHOICES = ("bleu", "bleu_lc_tok", "chrf")


def ranked(members: list[dict], metric: str) -> list[str]:
  """The members' workdirs, best own held-out `metric` first; equals keep their order."""
  return [m["workdir"] for m in sorted(members, key=lambda m: -m["heldout"][metric])]


def choose(rows: list[dict], metric: str) -> dict:
  """The row whose held-out `metric` is highest; the smallest ensemble of equals (rows come
  in growing size, and max keeps the first of equals)."""
  return max(rows, key=lambda row: row["heldout"][metric])


def _parse(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", action="append", required=True, help="a pool member (2+)")
  parser.add_argument("--name", required=True, help="results/select/NAME.json")
  parser.add_argument(
    "--metric", default="bleu", choices=METRIC_CHOICES, help="held-out score that chooses"
  )
  parser.add_argument(
    "--max_size", type=int, default=0, help="largest ensemble tried; 0: the whole pool"
  )
  parser.add_argument("--out_dir", default=os.path.join(driver.RESULTS, "select"))
  args = parser.parse_args(argv)
  if len(args.workdir) < 2:
    parser.error("a pool needs at least two --workdir")
  if len(set(args.workdir)) != len(args.workdir):
    parser.error("each --workdir may be named once")
  if args.max_size < 0 or args.max_size == 1:
    parser.error("--max_size takes 0 (the whole pool) or an integer >= 2")
  return args


def main(argv: list[str]) -> int:
  """Decodes the held-out split with the best 1, 2, ... members; writes --out_dir/NAME.json."""
  args = _parse(argv)
  members = [driver.member_record(w) for w in args.workdir]
  order = ranked(members, args.metric)
  sizes = range(1, min(args.max_size or len(order), len(order)) + 1)
  rows = []
  for size in sizes:
    found = driver.load(order[:size])
    if found is None:
      return 2
    loaded, corpus = found
    heldout, _ = driver.split_names(corpus)
    scored = driver.score(loaded, corpus, [heldout])[heldout]
    row = {
      "size": size,
      "workdirs": order[:size],
      "heldout": driver.scores(scored, keep=(*driver.METRICS, "seconds"), digits=2),
    }
    print(f"{size} member(s): held-out {args.metric} {row['heldout'][args.metric]}", flush=True)
    rows.append(row)
  best = choose(rows, args.metric)
  record = {
    "name": args.name,
    "command": common.command_line("benchmarks.quality.ensemble_select", argv),
    "metric": args.metric,
    "pool": [
      {"workdir": m["workdir"], "seed": m["config"]["seed"], "heldout": m["heldout"]}
      for m in members
    ],
    "rows": rows,
    "chosen": {"size": best["size"], "workdirs": best["workdirs"], "heldout": best["heldout"]},
    "hardware": common.run_hardware(),
  }
  path = driver.write_record(args.out_dir, args.name, record)
  print(" ".join(f"--workdir={w}" for w in best["workdirs"]))
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
