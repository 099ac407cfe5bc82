"""Time to quality: how many minutes of training until held-out BLEU passes given marks.

    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.time_to_quality \
        --config=configs/multi30k_de_en_fast.py --name=multi30k_de_en_fast \
        --workdir=/tmp/ttq_m30k --thresholds=30,35,38
    python -m benchmarks.quality.time_to_quality --report --readme=README.md   # table, plot

A run trains a config with the shared driver (benchmarks/quality/driver.py). At every
periodic evaluation (config.eval_every_steps) the trainer records the step, the training
seconds so far (evaluation excluded), the seconds since the run started (data preparation
and evaluation included), the load average and the held-out BLEU of config.decode.eval_search.
This script adds, per threshold, the first evaluation at or above it, and at the end the
beam-search scores of every split (the driver's record). It writes
benchmarks/results/time_to_quality/NAME.json and NAME.png (BLEU against training minutes).
benchmarks/quality/torch_tutorial.py --eval_every writes the same record for the PyTorch
recipe.

--report reads every NAME.json there, draws them together (curves.png) and writes the table
(README_table.md; with --readme, also into the README between its time-to-quality markers).
"""

import glob
import json
import os
import sys

from absl import flags

from benchmarks.quality import driver, results_table

OUT_DIR = os.path.join(driver.RESULTS, "time_to_quality")
BEGIN = "<!-- time to quality table: begin -->"
END = "<!-- time to quality table: end -->"
HEADER = (
  "| Run | Held-out BLEU mark | Step | Training time | Since start | Final held-out "
  "(search) | Test | Hardware | Command |"
)


def passes(curve: dict, thresholds: list[float]) -> dict:
  """For each threshold, the first evaluation whose BLEU is at or above it (None if none)."""
  out = {}
  for threshold in thresholds:
    first = next((i for i, bleu in enumerate(curve["bleu"]) if bleu >= threshold), None)
    out[f"{threshold:g}"] = (
      None
      if first is None
      else {
        "step": curve["steps"][first],
        "bleu": curve["bleu"][first],
        "train_seconds": curve["train_seconds"][first],
        "wall_seconds": curve["wall_seconds"][first],
      }
    )
  return out


def parse_thresholds(text: str) -> list[float]:
  try:
    values = [float(t) for t in text.split(",") if t.strip()]
  except ValueError:
    values = []
  if not values or any(not 0 < v <= 100 for v in values):
    raise ValueError(f"--thresholds={text!r}: give BLEU marks in (0, 100] separated by commas")
  return sorted(values)


def save_plot(path: str, records: list[dict]):
  """BLEU against training minutes, one line per record, thresholds as dotted lines."""
  from jaxseq.training import plots  # matplotlib without a display

  fig, ax = plots.pyplot().subplots(figsize=(7, 4.2))
  marks = set()
  for record in records:
    curve = record["heldout_curve"]
    minutes = [s / 60 for s in curve["train_seconds"]]
    ax.plot(
      minutes,
      curve["bleu"],
      marker="o",
      markersize=3,
      label=f"{record['name']} ({curve['search']})",
    )
    marks.update(float(t) for t in record.get("thresholds", {}))
  for mark in sorted(marks):
    ax.axhline(mark, color="grey", linestyle=":", linewidth=0.8)
  ax.set_xlabel("training minutes (evaluation excluded)")
  ax.set_ylabel("held-out BLEU")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plots.pyplot().close(fig)


def _minutes(seconds) -> str:
  return "–" if seconds is None else f"{seconds / 60:.1f} min"


def rows(record: dict) -> list[str]:
  """One table row per threshold of one time-to-quality record."""
  final = record["heldout"]
  tests = ", ".join(f"{name} {s['bleu']:.1f}" for name, s in record.get("test", {}).items())
  common = (
    f"{final['bleu']:.1f} ({final.get('search', 'beam')}) | {tests or '–'} "
    f"| {results_table._hardware(record.get('hardware', {}))} | `{record['command']}` |"
  )
  out = []
  for mark, hit in record["thresholds"].items():
    if hit is None:
      out.append(f"| {record['name']} | {mark} | not reached | – | – | {common}")
    else:
      out.append(
        f"| {record['name']} | {mark} | {hit['step']:,} | "
        f"{_minutes(hit['train_seconds'])} | {_minutes(hit['wall_seconds'])} | {common}"
      )
  return out


def report(out_dir: str, readme: str) -> int:
  paths = sorted(glob.glob(os.path.join(out_dir, "*.json")))
  if not paths:
    print(f"error: no time-to-quality JSON in {out_dir}", file=sys.stderr)
    return 2
  records = []
  for path in paths:
    with open(path) as f:
      records.append(json.load(f))
  lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
  for record in records:
    lines += rows(record)
  text = "\n".join(lines) + "\n"
  print(text, end="")
  with open(os.path.join(out_dir, "README_table.md"), "w") as f:
    f.write(text)
  save_plot(os.path.join(out_dir, "curves.png"), records)
  if readme:
    try:
      results_table.put_into_readme(readme, text, BEGIN, END)
    except (OSError, ValueError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  return 0


def record_run(name: str, base: dict, thresholds: list[float], out_dir: str) -> str:
  """Adds the threshold passes to a driver record, writes NAME.json and NAME.png."""
  base["thresholds"] = passes(base["heldout_curve"], thresholds)
  path = driver.write_record(out_dir, name, base)
  save_plot(os.path.join(out_dir, f"{name}.png"), [base])
  return path


def _define_flags(flag_values: flags.FlagValues):
  """--thresholds, --report and --readme, next to the driver's run flags."""
  flags.DEFINE_string(
    "thresholds", "", "Held-out BLEU marks, e.g. 30,35,38.", flag_values=flag_values
  )
  flags.DEFINE_bool(
    "report", False, "Make the table and plot of every run.", flag_values=flag_values
  )
  flags.DEFINE_string(
    "readme", "", "With --report: README whose table to replace.", flag_values=flag_values
  )


def main(argv: list[str]) -> int:
  """Trains and records one run, or with --report makes the table and plot of all; 2 after
  an error."""
  parsed, stop = driver.parse_flags(argv, _define_flags, required=False, out_dir=OUT_DIR)
  if stop is not None:
    return stop
  if parsed.report:
    return report(parsed.out_dir, parsed.readme)
  if not parsed.name or not parsed.workdir:
    print("error: --name and --workdir are required (or --report)", file=sys.stderr)
    return 2
  try:
    marks = parse_thresholds(parsed.thresholds)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  from jaxseq.training import checkpointing

  if checkpointing.has_checkpoints(parsed.workdir):
    print(
      f"error: {parsed.workdir} holds checkpoints; time to quality needs a fresh workdir",
      file=sys.stderr,
    )
    return 2
  record = driver.train_from_flags("benchmarks.quality.time_to_quality", argv, parsed)
  if record is None:
    return 2
  record["heldout"]["search"] = "beam"
  print(f"wrote {record_run(parsed.name, record, marks, parsed.out_dir)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
