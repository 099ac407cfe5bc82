"""Turns the library's errors into one line on stderr and an exit status."""

import sys

from jaxseq import configuration, data, trainer

EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
  print(f"error: {message}", file=sys.stderr)
  return EXIT_BAD_INPUT


def run_training(config, workdir: str) -> int:
  """Runs trainer.train_and_evaluate; returns the process exit status."""
  try:
    trainer.train_and_evaluate(config, workdir)
  except configuration.ConfigError as e:
    return fail(str(e))
  except data.DataError as e:
    return fail(f"bad data: {e}")
  except trainer.TrainingStopped as e:
    return fail(f"training stopped: {e}")
  except (FileExistsError, NotADirectoryError, PermissionError) as e:
    return fail(f"workdir {workdir!r} cannot be used: {e}")
  return 0
