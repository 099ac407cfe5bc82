"""The attention comparison on Multi30k: one table from the runs' and the coverage files.

    python -m benchmarks.quality.attention_compare                          # print the table
    python -m benchmarks.quality.attention_compare --readme=docs/results.md  # and write it there

Every row of the comparison is one run of configs/multi30k_coverage_compare.py (the same
data, steps and seed; only `model.attention` and the fields it reads change), trained and
scored by the driver (benchmarks/quality/quality.py --out_dir=benchmarks/results/
attention_compare) and then measured by benchmarks/quality/coverage.py: the coverage
penalty swept on the held-out split (NAME_heldout.json), the test splits scored once with
0 and the held-out pick (NAME_test2016.json, NAME_test2017.json, in benchmarks/results/
coverage/). This script only reads those files. Per direction and attention it gives:
the held-out BLEU at penalty 0, the penalty that the held-out split picks (by BLEU), the
test BLEU at 0 and at that pick, and on test2016 the two shares that coverage is meant to
lower, at 0 and at the pick: source words with less than 0.5 attention in all
(under-translation) and 3-grams repeated where the reference does not repeat them
(over-translation).
"""

import argparse
import glob
import json
import os
import sys

from benchmarks import common
from benchmarks.quality import results_table

RUNS = os.path.join(common.RESULTS, "attention_compare")
COVERAGE = os.path.join(common.RESULTS, "coverage")
BEGIN = "<!-- attention comparison: begin -->"
END = "<!-- attention comparison: end -->"
HEADER = (
  "| Direction | Attention | Held-out BLEU | Penalty picked | test2016 BLEU | test2017 BLEU "
  "| Under-translated words | Repeated 3-grams | Training | Results |\n"
  "|---|---|---|---|---|---|---|---|---|---|"
)


def _overrides(command: str) -> dict[str, str]:
  """The --config.FIELD=VALUE overrides of a recorded command: {FIELD: VALUE}."""
  overrides = {}
  for arg in command.split():
    if arg.startswith("--config.") and "=" in arg:
      field, _, value = arg.removeprefix("--config.").partition("=")
      overrides[field] = value
  return overrides


def _rows_by_penalty(path: str) -> dict[float, dict]:
  with open(path) as f:
    return {row["coverage_penalty"]: row for row in json.load(f)["rows"]}


def _pair(rows: dict[float, dict], pick: float, key: str, fmt: str) -> str:
  """The value at penalty 0, then at the pick when that is not 0."""
  text = format(rows[0.0][key], fmt)
  return text if pick == 0 else f"{text} → {format(rows[pick][key], fmt)}"


def row(run_path: str) -> str | None:
  """The table row of one run's results file; None while a coverage file is missing."""
  with open(run_path) as f:
    run = json.load(f)
  name = run["name"]
  files = {
    s: os.path.join(COVERAGE, f"{name}_{s}.json") for s in ("heldout", "test2016", "test2017")
  }
  if not all(os.path.isfile(p) for p in files.values()):
    return None
  heldout, test2016, test2017 = (_rows_by_penalty(files[s]) for s in files)
  pick = max(heldout.values(), key=lambda r: r["bleu"])["coverage_penalty"]
  overrides = _overrides(run["command"])
  weight = float(overrides.get("coverage_loss_weight", 0))
  label = f"`{overrides['model.attention']}`" + (f" + coverage loss {weight:g}" if weight else "")
  if weight and int(overrides.get("coverage_loss_from_step", 0)):
    label += f" from step {int(overrides['coverage_loss_from_step']):,}"
  link = os.path.relpath(run_path, common.ROOT)
  return (
    f"| {run['direction'].replace('-', ' → ')} | {label} | {heldout[0.0]['bleu']:.1f} | {pick:g} "
    f"| {_pair(test2016, pick, 'bleu', '.1f')} | {_pair(test2017, pick, 'bleu', '.1f')} "
    f"| {_pair(test2016, pick, 'under_translation', '.1%')} "
    f"| {_pair(test2016, pick, 'over_translation', '.2%')} "
    f"| {run['train_seconds'] / 60:.1f} min | [{os.path.basename(link)}](../{link}) |"
  )


def table() -> str:
  paths = sorted(glob.glob(os.path.join(RUNS, "*.json")))
  lines = [r for r in map(row, paths) if r is not None]
  return "\n".join([HEADER, *lines])


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m benchmarks.quality.attention_compare", description=__doc__.splitlines()[0]
  )
  parser.add_argument("--readme", help="a Markdown file with the comparison's markers")
  args = parser.parse_args(argv)
  text = table()
  print(text)
  if args.readme:
    results_table.put_into_readme(args.readme, text + "\n", BEGIN, END)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
