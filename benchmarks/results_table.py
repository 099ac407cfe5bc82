"""The README's results table, generated from every benchmarks/results/*.json.

    python benchmarks/results_table.py              # prints it, writes results/README_table.md
    python benchmarks/results_table.py --readme=README.md   # also puts it into the README

One row per run and evaluated split (held-out, each test split), and one more per split
for the averaged checkpoints where the run averaged them. BLEU is sacreBLEU's, cased and
detokenized (lowercased next to it); BLEU (lc tok) on lowercased, Moses-normalised and
-tokenised text, as the papers on Multi30k report it (jaxseq/evaluation.py); chrF;
perplexity with reference decoder inputs.
"""

import argparse
import glob
import json
import os
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BEGIN, END = "<!-- results table: begin -->", "<!-- results table: end -->"
HEADER = ("| Run | Split | BLEU | BLEU (lc) | BLEU (lc tok) | chrF | PPL | Params | Steps "
          "| Train time "
          "| Hardware | Command |")


def _fmt(value, digits: int = 1) -> str:
  return "–" if value is None else f"{value:.{digits}f}"


def _duration(seconds: float) -> str:
  minutes = seconds / 60
  return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _hardware(hw: dict) -> str:
  if hw.get("platform") == "cpu":
    threads = hw.get("torch_threads")  # PyTorch runs record the threads they were given
    used = f", PyTorch on {threads} thread{'s' * (threads != 1)}" if threads else ""
    cores = hw.get("cpu_count")
    if hw.get("cpus_used", cores) != cores:
      cores = f"{hw['cpus_used']} of {cores}"
    return f"{cores} CPU cores ({hw.get('cpu', 'cpu')}{used})"
  return f"{len(hw.get('devices', []))}x {hw.get('devices', ['?'])[0]}"


def _splits(record: dict):
  """(split, label, scores, the run or member they belong to) of every row of a record."""
  yield "held-out", "", record["heldout"], record
  for name, scores in record.get("test", {}).items():
    yield f"test {name}", "", scores, record
  averaged = record.get("averaged")
  if averaged:
    label = f" (avg of steps {', '.join(map(str, averaged['steps']))})"
    yield "held-out", label, averaged["heldout"], record
    for name, scores in averaged.get("test", {}).items():
      yield f"test {name}", label, scores, record
  for member in record.get("members", []):  # an ensemble's members (benchmarks/ensemble.py)
    label = f" ({member['label']} alone)"
    yield "held-out", label, member["heldout"], member
    for name, scores in member.get("test", {}).items():
      yield f"test {name}", label, scores, member


def rows(record: dict) -> list[str]:
  """The table rows of one results JSON."""
  out = []
  for split, label, s, run in _splits(record):
    steps = f"{run['steps']:,}" + (" (early stop)" if run.get("stopped_early") else "")
    out.append(
        f"| {record['name']}{label} | {split} | {_fmt(s.get('bleu'))} "
        f"| {_fmt(s.get('bleu_lowercase'))} | {_fmt(s.get('bleu_lc_tok'))} "
        f"| {_fmt(s.get('chrf'))} "
        f"| {_fmt(s.get('perplexity'), 2)} | {run['num_parameters'] / 1e6:.2f} M | {steps} "
        f"| {_duration(run['train_seconds'])} | {_hardware(record.get('hardware', {}))} "
        f"| `{record['command']}` |")
  return out


def table(paths: list[str]) -> str:
  lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
  for path in sorted(paths):
    with open(path) as f:
      lines += rows(json.load(f))
  return "\n".join(lines) + "\n"


def put_into_readme(path: str, text: str, begin: str = BEGIN, end: str = END):
  """Replaces what lies between the begin and end markers of the README by the table."""
  with open(path, encoding="utf-8") as f:
    readme = f.read()
  if begin not in readme or end not in readme:
    raise ValueError(f"{path} lacks the markers {begin} and {end}")
  head, rest = readme.split(begin, 1)
  tail = rest.split(end, 1)[1]
  with open(path, "w", encoding="utf-8") as f:
    f.write(f"{head}{begin}\n{text}{end}{tail}")


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--results", default=RESULTS, help="directory of the results JSON files")
  parser.add_argument("--out", default=os.path.join(RESULTS, "README_table.md"),
                      help="markdown file to write ('' to only print)")
  parser.add_argument("--readme", default="", help="README whose table to replace")
  args = parser.parse_args(argv)
  paths = glob.glob(os.path.join(args.results, "*.json"))
  if not paths:
    print(f"error: no results JSON in {args.results}; run benchmarks/quality.py first",
          file=sys.stderr)
    return 2
  text = table(paths)
  print(text, end="")
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)
  if args.readme:
    try:
      put_into_readme(args.readme, text)
    except (OSError, ValueError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
