"""Trains and evaluates a jaxseq translator.

    python train.py                                     # configs/default.py, ./workdir
    python train.py --config=configs/default.py --workdir=/tmp/run \
        --config.model.attention=luong_general --config.num_train_steps=500
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")


def parse(argv: list[str]):
  """(config, workdir) from the command line; raises on a bad flag or config field."""
  # config_flags reads --config.FIELD overrides while the flag is defined, so an unknown
  # field is raised here rather than at parse time.
  # Flags of their own (not absl's global FLAGS), so that main() can be called again in
  # one process, as the tests do.
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
  flag_values(argv)
  config.value.to_dict()  # a config file that failed to load raises here, not later
  return config.value, workdir.value


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


def main(argv: list[str]) -> int:
  try:
    config, workdir = parse(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError, OSError) as e:
    print(f"error: bad flag: {_describe(e, argv)}", file=sys.stderr)
    return 2
  # Imported after flag parsing, so a bad flag is reported before JAX starts.
  from jaxseq import cli

  return cli.run_training(config, workdir)


if __name__ == "__main__":
  # As a program, the quiet scope lasts to the end of the process: the tasks that a failed
  # asynchronous save abandoned report when the interpreter collects them at exit, after
  # main has returned (and reported that failure in its one line).
  from jaxseq import quiet

  process_scope = quiet.quiet_training()  # held (never exited) while the process lives
  process_scope.__enter__()
  sys.exit(main(sys.argv))
