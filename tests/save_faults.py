"""train.py with one checkpoint save that meets a broken workdir: run as

    python -m tests.save_faults ACTION STEP train.py-arguments...

Right before the save of step STEP (once the saves before it are complete), ACTION
breaks the workdir: `unwritable` takes the write permission off workdir/checkpoints
(for a user that file permissions bind), `vanished` deletes the whole workdir. The
process then goes on as train.py would; its exit status is train.py's.
"""

import os
import shutil
import sys

import train
from jaxseq.training import checkpointing


def break_workdir(action: str, workdir: str):
  """Does ACTION to workdir (see the module docstring)."""
  if action == "unwritable":
    os.chmod(os.path.join(workdir, checkpointing.CHECKPOINT_DIR), 0o555)
  elif action == "vanished":
    shutil.rmtree(workdir)
  else:
    raise SystemExit(f"unknown action {action!r}; expected unwritable or vanished")


def main(argv: list[str]) -> int:
  action, step, train_argv = argv[0], int(argv[1]), argv[2:]
  workdir = next(a.split("=", 1)[1] for a in train_argv if a.startswith("--workdir="))
  save = checkpointing.save

  def save_then_break(manager, state, *args, **kwargs):
    if int(state.step) == step:
      checkpointing.wait(manager)
      break_workdir(action, workdir)
      print(
        f"save_faults: workdir {action} before the save of step {step}", file=sys.stderr, flush=True
      )  # from here, benchmarks/robustness/failed_save.py times the exit
    return save(manager, state, *args, **kwargs)

  checkpointing.save = save_then_break
  return train.main(train_argv)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
