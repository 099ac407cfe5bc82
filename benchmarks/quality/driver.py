"""The train-and-score driver that the quality benchmarks share.

quality.py, time_to_quality.py, ensemble.py and decode_sweep.py are thin users of it: it
trains a config into a workdir (the trainer times the steps and the evaluations), restores
trained workdirs and scores their splits with given decoding options, and writes each
benchmark's results JSON with the command that reproduces it and the hardware.
"""

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from absl import flags
from ml_collections import config_flags

from benchmarks import common

if TYPE_CHECKING:
  from jaxseq.decoding.options import DecodeOptions

RESULTS = common.RESULTS
METRICS = (
  "bleu",
  "bleu_lowercase",
  "bleu_lc_tok",
  "chrf",
  "perplexity",
  "loss",
  "exact_match",
  "sentences",
)


def scores(split: dict, *, keep: tuple[str, ...] = METRICS, digits: int | None = None) -> dict:
  """The metrics of one scored split (file lists and the like left out), rounded to
  `digits` where given."""
  return {k: split[k] if digits is None else round(split[k], digits) for k in keep if k in split}


def direction(config: dict) -> str:
  """'source-target' of a trained config (its summary's dict); the generated numbers are
  English number words into config.data.language."""
  data = config.get("data", {})
  if config.get("dataset", "numbers") == "numbers":
    return f"en-{data.get('language', '?')}"
  return f"{data['source_lang']}-{data['target_lang']}"


def define_run_flags(
  flag_values: flags.FlagValues, argv: list[str], *, required: bool = True, out_dir: str = RESULTS
):
  """Defines in flag_values the flags of a training run: --config (with --config.FIELD=VALUE
  overrides, read from argv), --name, --workdir and --out_dir (default `out_dir`)."""
  config_flags.DEFINE_config_file(
    "config",
    os.path.join(common.ROOT, "configs", "default.py"),
    "Python config file; override fields with --config.FIELD=VALUE.",
    lock_config=True,
    flag_values=flag_values,
    sys_argv=argv,
  )
  flags.DEFINE_string(
    "name",
    None,
    "Name of the results file (NAME.json).",
    required=required,
    flag_values=flag_values,
  )
  flags.DEFINE_string(
    "workdir", None, "Workdir of the training run.", required=required, flag_values=flag_values
  )
  flags.DEFINE_string(
    "out_dir", out_dir, "Directory of the results JSON files.", flag_values=flag_values
  )


def parse_flags(
  argv: list[str], define_more: Callable[[flags.FlagValues], None] | None = None, **run_flags
) -> tuple[flags.FlagValues | None, int | None]:
  """(the run flags, and those define_more adds, parsed from argv into flags of their own, so
  that a main can run again in one process; the exit status where the run should stop there:
  0 after --help printed the flags, 2 after one error line for a bad flag, config file or
  config field, None to go on). run_flags go to define_run_flags."""
  flag_values = flags.FlagValues()
  try:
    define_run_flags(flag_values, argv, **run_flags)  # reads the --config.FIELD overrides
    if define_more:
      define_more(flag_values)
    if "--help" in argv[1:] or "-h" in argv[1:]:
      print(flag_values.get_help())
      return None, 0
    flag_values(argv)
    flag_values.config.to_dict()  # a config file that failed to load raises here
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError, OSError) as e:
    print(f"error: bad flag: {' '.join(str(e).split())}", file=sys.stderr)
    return None, 2
  return flag_values, None


def train(config, workdir: str) -> dict | None:
  """The summary that training config in workdir returns, or None after one error line
  (a bad config, corpus or checkpoint, a stopped or interrupted run, an unwritable
  workdir; an interrupted run resumes with the same command)."""
  from jaxseq import quiet
  from jaxseq.data import corpora
  from jaxseq.training import checkpointing, configuration, trainer

  try:
    with quiet.quiet_training():
      return trainer.train_and_evaluate(config, workdir)
  except (
    configuration.ConfigError,
    checkpointing.CheckpointError,
    corpora.DataError,
    trainer.TrainingStopped,
    trainer.TrainingInterrupted,
    OSError,
  ) as e:
    print(f"error: {e}", file=sys.stderr)
    return None


def run_record(name: str, config_path: str, command: str, summary: dict) -> dict:
  """The results JSON of one training run from the summary that training returned."""
  out = {
    "name": name,
    "config": os.path.relpath(os.path.abspath(config_path), common.ROOT),
    "command": command,
    "dataset": summary["config"]["dataset"],
    "recipe": os.path.splitext(os.path.basename(config_path))[0],
    "direction": direction(summary["config"]),
    "heldout": scores(summary["heldout"]),
    "test": {k: scores(v) for k, v in summary.get("test", {}).items()},
    "num_parameters": summary["num_parameters"],
    "steps": summary["steps"],
    "train_seconds": round(summary["train_seconds"], 1),
    "wall_seconds": round(summary["wall_seconds"], 1),
    "stopped_early": summary.get("stopped_early", False),
    # held-out loss and BLEU (config.decode.eval_search) at each evaluation of training
    "heldout_curve": summary.get("heldout_curve"),
  }
  if "averaged" in summary:
    averaged = summary["averaged"]
    out["averaged"] = {
      "steps": averaged["steps"],
      "heldout": scores(averaged["heldout"]),
      "test": {k: scores(v) for k, v in averaged.get("test", {}).items()},
    }
  return out


def train_and_record(
  config, config_path: str, name: str, workdir: str, command: str
) -> dict | None:
  """Trains config in workdir; its results record with the command and the hardware, or
  None after one error line."""
  summary = train(config, workdir)
  if summary is None:
    return None
  record = run_record(name, config_path, command, summary)
  record["hardware"] = common.run_hardware()
  return record


def train_from_flags(module: str, argv: list[str], flag_values: flags.FlagValues) -> dict | None:
  """train_and_record of the parsed run flags (parse_flags), the command being
  `python -m MODULE` with argv's flags."""
  return train_and_record(
    flag_values.config,
    flag_values["config"].config_filename,
    flag_values.name,
    flag_values.workdir,
    common.command_line(module, argv[1:]),
  )


def load(workdirs: list[str]):
  """(trained.Loaded of the workdirs, several being their ensemble; the corpus of the first),
  or None after one error line."""
  from jaxseq import quiet
  from jaxseq.data import corpora
  from jaxseq.decoding import trained
  from jaxseq.training import checkpointing

  try:
    with quiet.absl_errors_only():
      loaded = trained.Loaded(workdirs)
    first = loaded.members[0]
    return loaded, corpora.load_corpus(first.config, first.workdir)
  except (checkpointing.CheckpointError, corpora.DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return None


def load_split(workdirs: list[str], split: str, num_sentences: int = 0):
  """(trained.Loaded of the workdirs, the first member's config, the first num_sentences
  (0: all) pairs of the corpus's split, their references: a list of reference texts per
  sentence, the pair's target where the split has no other), or None after one error line."""
  from jaxseq.serving import evaluate

  found = load(workdirs)
  if found is None:
    return None
  loaded, corpus = found
  try:
    pairs, references = evaluate.select_splits(corpus, [split])[split]
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return None
  pairs = pairs[: num_sentences or len(pairs)]
  references = (
    [list(r) for r in references[: len(pairs)]] if references else [[t] for _, t in pairs]
  )
  return loaded, loaded.members[0].config, pairs, references


def split_names(corpus) -> tuple[str, list[str]]:
  """(the held-out split's name, the names of the test splits) of a corpus."""
  from jaxseq.serving import evaluate

  tests = [k for k in evaluate.select_splits(corpus, None) if k != evaluate.HELDOUT]
  return evaluate.HELDOUT, tests


def score(
  loaded, corpus, names: list[str], options: "DecodeOptions | None" = None, out: str | None = None
) -> dict:
  """{split: metrics and seconds} of the named splits decoded with options (default: beam
  search with the first member's config.decode, `loaded.options`), batches of its
  config.batch_size (as jaxseq-evaluate scores them); with `out`, the hypothesis,
  reference and alignment files go there."""
  from jaxseq.serving import evaluate

  if not names:
    return {}  # (select_splits reads no names as every split)
  config = loaded.members[0].config
  splits = evaluate.select_splits(corpus, names)
  return dict(
    evaluate.score_splits(
      loaded,
      corpus,
      splits,
      loaded.options if options is None else options,
      batch_size=config.batch_size,
      out=out,
    )
  )


def member_record(workdir: str) -> dict:
  """A trained workdir's own scores, from the summary.json its training wrote, with its
  config (a dict); bleu_lc_tok is computed from its files where training predates it."""
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  data = summary["config"]["data"]
  language = data.get("target_lang", data.get("language"))  # the numbers: data.language

  def split_scores(split):
    return scores(_with_lc_tok(workdir, split, language))

  return {
    "workdir": workdir,
    "config": summary["config"],
    "heldout": split_scores(summary["heldout"]),
    "test": {k: split_scores(v) for k, v in summary.get("test", {}).items()},
    "num_parameters": summary["num_parameters"],
    "steps": summary["steps"],
    "train_seconds": round(summary["train_seconds"], 1),
  }


def _with_lc_tok(workdir: str, split: dict, language: str) -> dict:
  """A split's scores with bleu_lc_tok computed from the hypothesis and reference files
  that training wrote where the training predates that metric."""
  if "bleu_lc_tok" in split or "files" not in split:
    return split
  from jaxseq.decoding import evaluation

  def lines(name):
    with open(os.path.join(workdir, name), encoding="utf-8") as f:
      return f.read().splitlines()

  hypotheses = lines(split["files"]["hypotheses"])
  references = [list(r) for r in zip(*(lines(n) for n in split["files"]["references"]))]
  metrics = evaluation.text_metrics(hypotheses, references, False, language)
  return dict(split, bleu_lc_tok=metrics["bleu_lc_tok"])


def write_record(out_dir: str, name: str, record: dict) -> str:
  """Writes out_dir/NAME.json (what results_table.py reads); returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, f"{name}.json")
  with open(path, "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
  return path
