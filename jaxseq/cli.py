"""Turns the library's errors into one line on stderr and an exit status.

Exit status: 0 finished; 2 bad input (config, workdir, checkpoint) or a run that cannot go
on (non-finite steps); 3 interrupted by SIGTERM/SIGINT after saving a checkpoint: run the
same command again to resume.
"""

import logging
import sys
import threading

from jaxseq import artifact, checkpointing, configuration, data, trainer
from jaxseq.quiet_restore import closed_loop

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 3


def fail(message: str) -> int:
  print(f"error: {message}", file=sys.stderr)
  return EXIT_BAD_INPUT


def quiet_library_logs():
  """Keeps orbax's background-thread errors (absl, asyncio logs, hooks) off stderr.

  Every failure they describe is raised again in the main thread, where it becomes
  the one line this module prints.
  """
  for name in ("absl", "asyncio"):
    logging.getLogger(name).setLevel(logging.CRITICAL)
  # After a failed asynchronous save, tensorstore may still call into orbax's closed
  # event loop; it reports that through these hooks. The save's error is reported anyway.
  excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

  sys.excepthook = lambda kind, error, tb: (None if closed_loop(error)
                                            else excepthook(kind, error, tb))
  sys.unraisablehook = lambda info: (None if closed_loop(info.exc_value)
                                     else unraisablehook(info))
  # A writer thread (TensorBoard's event log) that meets a full disk: the main thread
  # meets the same error when it closes the writer, and reports it.
  thread_hook = threading.excepthook
  threading.excepthook = lambda args: (None if issubclass(args.exc_type, OSError)
                                       else thread_hook(args))


def run_training(config, workdir: str) -> int:
  """Runs trainer.train_and_evaluate; returns the process exit status. The compiled train
  and evaluation steps are kept in JAX's persistent compilation cache (the exported
  translator's, `artifact.use_compilation_cache`), so the next run starts without compiling."""
  quiet_library_logs()
  artifact.use_compilation_cache()
  try:
    trainer.train_and_evaluate(config, workdir)
  except configuration.ConfigError as e:
    return fail(str(e))
  except checkpointing.CheckpointError as e:
    return fail(str(e))
  except data.DataError as e:
    return fail(f"bad data: {e}")
  except trainer.TrainingStopped as e:
    return fail(f"training stopped: {e}")
  except trainer.TrainingInterrupted as e:
    print(f"interrupted: {e}", file=sys.stderr)
    return EXIT_INTERRUPTED
  except OSError as e:
    return fail(f"workdir {workdir!r} cannot be written: {e}")
  return 0
