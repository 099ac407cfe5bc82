"""Trains and evaluates one config, and writes its results JSON for the README's table.

    python benchmarks/quality.py --name=numbers_de --workdir=/tmp/numbers_de
    JAXSEQ_DATA_DIR=../shared/data python benchmarks/quality.py \
        --config=configs/multi30k_de_en.py --name=multi30k_de_en --workdir=/tmp/m30k

Writes benchmarks/results/NAME.json (--out_dir): the config file and the command, held-out
and test-split BLEU (cased and lowercased), chrF and perplexity, the scores of the averaged
checkpoints where config.average_last_checkpoints is on, the held-out learning curve,
parameter count, training wall time, steps and the hardware. `benchmarks/results_table.py`
turns these files into the README's table.
"""

import json
import os
import platform
import shlex
import sys

from absl import flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RESULTS = os.path.join(ROOT, "benchmarks", "results")
METRICS = ("bleu", "bleu_lowercase", "bleu_lc_tok", "chrf", "perplexity", "loss", "exact_match", "sentences")


def _scores(split: dict) -> dict:
  return {k: split[k] for k in METRICS if k in split}


def hardware() -> dict:
  """The machine the run was measured on."""
  import jax
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return {"platform": jax.devices()[0].platform, "devices": [d.device_kind for d in jax.devices()],
          "cpu": cpu, "cpu_count": os.cpu_count(),
          # the cores this process may run on (taskset), where fewer than cpu_count
          "cpus_used": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                       else os.cpu_count(),
          "jax": jax.__version__,
          "python": platform.python_version(),
          # other processes on the machine slow a run down: timings are only as good as this
          "load_average_1min_at_end": round(os.getloadavg()[0], 2)}


def results(name: str, config_file: str, command: str, summary: dict) -> dict:
  """The results JSON of one run from the summary that training returned."""
  out = {
      "name": name, "config": os.path.relpath(os.path.abspath(config_file), ROOT),
      "command": command, "dataset": summary["config"]["dataset"],
      "heldout": _scores(summary["heldout"]),
      "test": {k: _scores(v) for k, v in summary.get("test", {}).items()},
      "num_parameters": summary["num_parameters"], "steps": summary["steps"],
      "train_seconds": round(summary["train_seconds"], 1),
      "wall_seconds": round(summary["wall_seconds"], 1),
      "stopped_early": summary.get("stopped_early", False),
      # held-out loss and BLEU (config.decode.eval_search) at each evaluation of training
      "heldout_curve": summary.get("heldout_curve"),
  }
  if "averaged" in summary:
    averaged = summary["averaged"]
    out["averaged"] = {"steps": averaged["steps"], "heldout": _scores(averaged["heldout"]),
                       "test": {k: _scores(v) for k, v in averaged.get("test", {}).items()}}
  return out


def write_record(out_dir: str, name: str, record: dict) -> str:
  """Writes out_dir/NAME.json (what results_table.py reads); returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, f"{name}.json")
  with open(path, "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
  return path


def main(argv):
  config = config_flags.DEFINE_config_file(
      "config", os.path.join(ROOT, "configs", "default.py"),
      "Python config file; override fields with --config.FIELD=VALUE.", lock_config=True)
  name = flags.DEFINE_string("name", None, "Name of the results file (NAME.json).",
                             required=True)
  workdir = flags.DEFINE_string("workdir", None, "Workdir of the training run.", required=True)
  out_dir = flags.DEFINE_string("out_dir", RESULTS, "Directory of the results JSON files.")
  flags.FLAGS(argv)
  record = train_and_record(config.value, flags.FLAGS["config"].config_filename, name.value,
                            workdir.value, argv)
  if record is None:
    return 2
  print(f"wrote {write_record(out_dir.value, name.value, record)}")
  return 0


def train_and_record(config, config_file: str, name: str, workdir: str, argv: list[str]
                     ) -> dict | None:
  """Trains config in workdir; its results record with the command and the hardware, or
  None after one error line (a bad config, corpus or checkpoint, a stopped or interrupted
  run, an unwritable workdir)."""
  from jaxseq import checkpointing, cli, configuration, data, trainer  # after the flags
  cli.quiet_library_logs()
  try:
    summary = trainer.train_and_evaluate(config, workdir)
  except (configuration.ConfigError, checkpointing.CheckpointError, data.DataError,
          trainer.TrainingStopped, trainer.TrainingInterrupted, OSError) as e:
    print(f"error: {e}", file=sys.stderr)  # an interrupted run resumes with the same command
    return None
  command = "python " + " ".join(shlex.quote(a) for a in argv)
  if os.environ.get("JAX_NUM_CPU_DEVICES"):  # CPU data parallelism: part of the recipe
    command = f"JAX_NUM_CPU_DEVICES={os.environ['JAX_NUM_CPU_DEVICES']} {command}"
  record = results(name, config_file, command, summary)
  record["hardware"] = hardware()
  return record


if __name__ == "__main__":
  sys.exit(main(sys.argv))
