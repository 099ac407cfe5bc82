"""Turns the library's errors into one line on stderr and an exit status.

Exit status: 0 finished; 2 bad input (config, workdir, checkpoint) or a run that cannot go
on (non-finite steps); 3 interrupted by SIGTERM/SIGINT after saving a checkpoint: run the
same command again to resume.
"""

import sys

from jaxseq import quiet
from jaxseq.data import corpora
from jaxseq.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from jaxseq.serving import artifact
from jaxseq.training import checkpointing, configuration, trainer


def fail(message: str) -> int:
  print(f"error: {message}", file=sys.stderr)
  return EXIT_BAD_INPUT


def run_training(config, workdir: str) -> int:
  """Runs trainer.train_and_evaluate; returns the process exit status. The compiled train
  and evaluation steps are kept in JAX's persistent compilation cache (the exported
  translator's, `artifact.use_compilation_cache`), so the next run starts without compiling."""
  artifact.use_compilation_cache()
  try:
    with quiet.quiet_training():
      trainer.train_and_evaluate(config, workdir)
  except configuration.ConfigError as e:
    return fail(str(e))
  except checkpointing.CheckpointError as e:
    return fail(str(e))
  except corpora.DataError as e:
    return fail(f"bad data: {e}")
  except trainer.TrainingStopped as e:
    return fail(f"training stopped: {e}")
  except trainer.TrainingInterrupted as e:
    print(f"interrupted: {e}", file=sys.stderr)
    return EXIT_INTERRUPTED
  except OSError as e:
    return fail(f"workdir {workdir!r} cannot be written: {e}")
  return 0
