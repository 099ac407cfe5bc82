"""jaxseq-train: trains and evaluates a translator (`python train.py` is the same command).

    jaxseq-train                                        # configs/default.py, ./workdir
    jaxseq-train --config=configs/default.py --workdir=/tmp/run \
        --config.model.attention=luong_general --config.num_train_steps=500

The flags are absl's: --config, a Python file whose get_config() gives the run's config,
with any field overridden by --config.FIELD=VALUE, and --workdir. Mistakes are one line
on stderr; the exit statuses are jaxseq/cli.py's.
"""

import contextlib
import os
import sys

from absl import flags
from ml_collections import config_flags

from jaxseq import cli, quiet
from jaxseq.data import corpora
from jaxseq.errors import CheckpointError, ConfigError
from jaxseq.serving.artifact import use_compilation_cache

# The project's folder: configs/ (and train.py) are there.
PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(PROJECT, "configs", "default.py")
HELP = ("--help", "-h")
# The libraries' quiet scope of a process run as the command, entered by main() and never
# left (a scope that nothing refers to would be left when collected).
_process_scope = contextlib.ExitStack()


def _define(argv: list[str]):
  """The command's flags, in a FlagValues of their own (not absl's global FLAGS, so that
  main() can be called again in one process, as the tests do): (flag_values, config flag,
  workdir flag). config_flags reads the --config.FIELD overrides of argv here, so an
  unknown field is raised here rather than at parse time."""
  flag_values = flags.FlagValues()
  config = config_flags.DEFINE_config_file(
    "config",
    DEFAULT_CONFIG,
    "Python config file (get_config()); override fields with --config.FIELD=VALUE.",
    lock_config=True,
    flag_values=flag_values,
    sys_argv=argv,
  )
  workdir = flags.DEFINE_string(
    "workdir", "workdir", "Directory for everything the run writes.", flag_values=flag_values
  )
  return flag_values, config, workdir


def parse(argv: list[str]):
  """(config, workdir) from the command line (argv[0]: the program's name); raises on a bad
  flag or config field."""
  flag_values, config, workdir = _define(argv)
  positional = flag_values(argv)[1:]
  if positional:
    raise ValueError(f"{positional[0]!r} is not a flag: the command takes --flags only")
  config.value.to_dict()  # a config file that failed to load raises here, not later
  return config.value, workdir.value


def usage(program: str) -> str:
  """What --help prints."""
  flag_values, _, _ = _define([program])
  return (
    f"usage: {program} [--config=FILE] [--config.FIELD=VALUE ...] [--workdir=DIR]\n\n"
    f"{__doc__.splitlines()[0]}\n{flag_values.get_help()}"
  )


def _describe(error: Exception, argv: list[str]) -> str:
  message = str(error).strip()
  if isinstance(error, (AttributeError, KeyError)):
    name = message.strip("\"'").split("'")[0]
    flag = next(
      (a.split("=")[0] for a in argv if a.startswith("--config.") and name in a.split("=")[0]), name
    )
    return (
      f"{flag}: the config has no field {name!r}; see the config file for the fields that exist"
    )
  return " ".join(message.split())


def run_training(config, workdir: str) -> int:
  """Runs trainer.train_and_evaluate; returns the process exit status. The compiled train
  and evaluation steps are kept in JAX's persistent compilation cache (the exported
  translator's, `artifact.use_compilation_cache`), so the next run starts without compiling."""
  # Imported here, after the flags: where PyTorch is installed (the test and bench extras),
  # tensorboardX imports it, and a flag mistake would take 7.3 s instead of 3.9 s.
  from jaxseq.training import trainer

  use_compilation_cache()
  try:
    with quiet.quiet_training():
      trainer.train_and_evaluate(config, workdir)
  except (ConfigError, CheckpointError) as e:
    return cli.fail(str(e))
  except corpora.DataError as e:
    return cli.fail(f"bad data: {e}")
  except trainer.TrainingStopped as e:
    return cli.fail(f"training stopped: {e}")
  except trainer.TrainingInterrupted as e:
    return cli.interrupted(str(e))
  except OSError as e:
    return cli.fail(f"workdir {workdir!r} cannot be written: {e}")
  return 0


def main(argv: list[str] | None = None) -> int:
  """The exit status of a run of the command line argv (argv[0]: the program's name).

  Without argv (jaxseq-train, `python train.py`): this process's command line. The config
  files import one another as configs.NAME, from the project's folder, which `python
  train.py` has on sys.path and jaxseq-train adds. The libraries stay quiet to the end of
  the process: the tasks that a failed asynchronous save abandoned report when the
  interpreter collects them at exit, after main has returned (and reported that failure in
  its one line)."""
  if argv is None:
    if PROJECT not in sys.path:
      sys.path.append(PROJECT)
    _process_scope.enter_context(quiet.quiet_training())
    argv = sys.argv
  if any(a in HELP for a in argv[1:]):
    print(usage(os.path.basename(argv[0])))
    return 0
  try:
    config, workdir = parse(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError, OSError) as e:
    return cli.fail(f"bad flag: {_describe(e, argv)}")
  return run_training(config, workdir)


if __name__ == "__main__":
  sys.exit(main())
