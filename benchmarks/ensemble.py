"""Scores an ensemble of trained workdirs next to its members, for the README's results table.

    JAXSEQ_DATA_DIR=../shared/data python benchmarks/ensemble.py \
        --workdir=/tmp/ens/seed0 --workdir=/tmp/ens/seed1 --name=multi30k_de_en_fast_ensemble

The members' own scores are read from the summary.json their training wrote (the same
beam search and batches); the ensemble is scored by `jaxseq-evaluate` on every split, and
the first member alone once more on the first test split, so that the decoding times of one
model and of the ensemble are measured in the same process. Writes
benchmarks/results/NAME.json: the ensemble's scores, each member's, the training time of
all members together, the decoding seconds and the hardware.
"""

import argparse
import json
import os
import shlex
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import quality  # noqa: E402


def _evaluate(workdirs: list[str], splits: list[str] | None) -> dict:
  """jaxseq-evaluate's report (evaluation.json) for these workdirs."""
  from jaxseq import evaluate
  with tempfile.TemporaryDirectory() as out:
    argv = [f"--workdir={w}" for w in workdirs] + [f"--out={out}"]
    argv += [f"--split={s}" for s in splits or []]
    if evaluate.run(argv) != 0:
      raise SystemExit(2)
    with open(os.path.join(out, "evaluation.json")) as f:
      return json.load(f)


def _with_lc_tok(workdir: str, split: dict, language: str) -> dict:
  """A member's scores of one split, with bleu_lc_tok computed from the hypothesis and
  reference files its training wrote where the training predates that metric."""
  if "bleu_lc_tok" in split or "files" not in split:
    return split
  from jaxseq import evaluation

  def lines(name):
    with open(os.path.join(workdir, name), encoding="utf-8") as f:
      return f.read().splitlines()
  hypotheses = lines(split["files"]["hypotheses"])
  references = [list(r) for r in zip(*(lines(n) for n in split["files"]["references"]))]
  metrics = evaluation.text_metrics(hypotheses, references, False, language)
  return dict(split, bleu_lc_tok=metrics["bleu_lc_tok"])


def _member(workdir: str) -> dict:
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  language = summary["config"]["data"]["target_lang"]
  scores = lambda split: {k: v for k, v in _with_lc_tok(workdir, split, language).items()
                          if k in quality.METRICS}
  return {"workdir": workdir, "config": summary["config"],
          "heldout": scores(summary["heldout"]),
          "test": {k: scores(v) for k, v in summary.get("test", {}).items()},
          "num_parameters": summary["num_parameters"], "steps": summary["steps"],
          "train_seconds": round(summary["train_seconds"], 1)}


def labels(workdirs: list[str], configs: list[dict]) -> list[str]:
  """Each member's 'seed N', with its workdir's name where a seed repeats or recipes differ."""
  seeds = [f"seed {c['seed']}" for c in configs]
  recipes = [{k: v for k, v in c.items() if k != "seed"} for c in configs]
  mixed = any(r != recipes[0] for r in recipes)
  return [s + (f", {os.path.basename(os.path.normpath(w))}"
               if mixed or seeds.count(s) > 1 else "") for s, w in zip(seeds, workdirs)]


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", action="append", required=True, help="a member (2 or more)")
  parser.add_argument("--name", required=True, help="results/NAME.json")
  parser.add_argument("--out_dir", default=quality.RESULTS)
  args = parser.parse_args(argv)
  if len(args.workdir) < 2:
    parser.error("an ensemble needs at least two --workdir")
  members = [_member(w) for w in args.workdir]
  configs = [m.pop("config") for m in members]
  for m, label in zip(members, labels(args.workdir, configs)):
    m["label"] = label
  report = _evaluate(args.workdir, None)
  splits = report["splits"]
  tests = [name for name in splits if name != "heldout"]
  alone = _evaluate(args.workdir[:1], tests[:1])["splits"] if tests else {}
  pick = lambda s: {k: s[k] for k in quality.METRICS if k in s}
  record = {
      "name": args.name, "command": "python benchmarks/ensemble.py " + " ".join(
          shlex.quote(a) for a in argv),
      "dataset": report["dataset"],
      "heldout": pick(splits["heldout"]),
      "test": {name: pick(splits[name]) for name in tests},
      "num_parameters": sum(m["num_parameters"] for m in members),
      "steps": members[0]["steps"],
      # every member trained one after the other (or side by side, one core each)
      "train_seconds": sum(m["train_seconds"] for m in members),
      "members": members,
      "decode_seconds": {"ensemble": {k: round(v["seconds"], 1) for k, v in splits.items()},
                         "first member alone": {k: round(v["seconds"], 1)
                                                for k, v in alone.items()}},
      "settings": report["settings"],
      "hardware": quality.hardware(),
  }
  os.makedirs(args.out_dir, exist_ok=True)
  path = os.path.join(args.out_dir, f"{args.name}.json")
  with open(path, "w") as f:
    json.dump(record, f, indent=2)
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
