"""Scores an ensemble of trained workdirs next to its members, for the results tables.

    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.ensemble \
        --workdir=/tmp/ens/seed0 --workdir=/tmp/ens/seed1 --name=multi30k_de_en_fast_ensemble

The members' own scores are read from the summary.json their training wrote (the same
beam search and batches); the ensemble is scored on every split as jaxseq-evaluate scores it,
and the first member alone once more on the first test split, so that the decoding times of
one model and of the ensemble are measured in the same process (benchmarks/quality/driver.py).
Writes benchmarks/results/NAME.json: the ensemble's scores, each member's, the training time
of all members together, the decoding seconds and the hardware.
"""

import argparse
import os
import sys
import tempfile

from benchmarks import common
from benchmarks.quality import driver


def labels(workdirs: list[str], configs: list[dict]) -> list[str]:
  """Each member's 'seed N', with its workdir's name where a seed repeats or recipes differ."""
  seeds = [f"seed {c['seed']}" for c in configs]
  recipes = [{k: v for k, v in c.items() if k != "seed"} for c in configs]
  mixed = any(r != recipes[0] for r in recipes)
  return [
    s + (f", {os.path.basename(os.path.normpath(w))}" if mixed or seeds.count(s) > 1 else "")
    for s, w in zip(seeds, workdirs)
  ]


def _scored(workdirs: list[str], names: list[str] | None) -> dict:
  """{split: metrics and seconds} of these workdirs (all splits where names is None); the
  hypothesis and alignment files are written, as jaxseq-evaluate --out writes them."""
  found = driver.load(workdirs)
  if found is None:
    raise SystemExit(2)
  loaded, corpus = found
  if names is None:
    heldout, tests = driver.split_names(corpus)
    names = [heldout, *tests]
  with tempfile.TemporaryDirectory() as out:
    return driver.score(loaded, corpus, names, out=out)


def main(argv: list[str]) -> int:
  """Scores the ensemble of the --workdir members and writes --out_dir/NAME.json."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", action="append", required=True, help="a member (2 or more)")
  parser.add_argument("--name", required=True, help="results/NAME.json")
  parser.add_argument("--out_dir", default=driver.RESULTS)
  args = parser.parse_args(argv)
  if len(args.workdir) < 2:
    parser.error("an ensemble needs at least two --workdir")
  members = [driver.member_record(w) for w in args.workdir]
  configs = [m.pop("config") for m in members]
  for m, label in zip(members, labels(args.workdir, configs)):
    m["label"] = label
  splits = _scored(args.workdir, None)
  tests = [name for name in splits if name != "heldout"]
  alone = _scored(args.workdir[:1], tests[:1]) if tests else {}
  record = {
    "name": args.name,
    "command": common.command_line("benchmarks.quality.ensemble", argv),
    "dataset": configs[0]["dataset"],
    "recipe": args.name,
    "direction": driver.direction(configs[0]),
    "heldout": driver.scores(splits["heldout"]),
    "test": {name: driver.scores(splits[name]) for name in tests},
    "num_parameters": sum(m["num_parameters"] for m in members),
    "steps": members[0]["steps"],
    # every member trained one after the other (or side by side, one core each)
    "train_seconds": sum(m["train_seconds"] for m in members),
    "members": members,
    "decode_seconds": {
      "ensemble": {k: round(v["seconds"], 1) for k, v in splits.items()},
      "first member alone": {k: round(v["seconds"], 1) for k, v in alone.items()},
    },
    "settings": configs[0]["decode"],
    "hardware": common.run_hardware(),
  }
  print(f"wrote {driver.write_record(args.out_dir, args.name, record)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
