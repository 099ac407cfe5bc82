"""Fault injection for the tests of a run's guards: NaN steps and signals, from outside.

The product knows nothing of these. A poisoned step is the real train step run on NaN
parameters (`jaxseq.training.steps.train_step` wrapped for the test), and a signal is sent by the
`after_step` action that `trainer.train_and_evaluate` accepts, right after the step and
its checkpoint, so what the tests see is what a diverged update or an operator's `kill`
would cause.

In a test process, `installed(...)` patches for the duration of a with-block. For a run that
must be a process of its own (kill -9), this file is the program:

    python tests/faults.py --nan_steps=3,4 --signal=KILL --signal_step=17 -- <train.py args>
"""

import argparse
import contextlib
import functools
import os
import pathlib
import signal
import sys
from unittest import mock

import jax
import jax.numpy as jnp

from jaxseq.training import steps, trainer

SIGNALS = ("KILL", "TERM", "INT")


def poisoned(train_step, nan_steps: tuple[int, ...]):
  """train_step, except that at the given step numbers (1-based, as logged) its loss and
  gradient are NaN; the state keeps its real parameters. The step's own non-finite guard
  decides what happens next."""
  numbers = jnp.asarray(nan_steps)

  @functools.wraps(train_step)
  def step(state, batch, **kwargs):
    poison = jnp.isin(state.step + 1, numbers)
    nan_params = jax.tree.map(lambda p: jnp.where(poison, jnp.nan, p), state.params)
    new, metrics = train_step(state.replace(params=nan_params), batch, **kwargs)
    params = jax.tree.map(lambda n, p: jnp.where(poison, p, n), new.params, state.params)
    return new.replace(params=params), metrics

  return step


def signal_after(name: str, at_step: int):
  """An after_step action that sends SIG<name> to this process right after at_step."""

  def action(number: int):
    if number == at_step:
      os.kill(os.getpid(), signal.Signals["SIG" + name])

  return action


@contextlib.contextmanager
def installed(nan_steps: tuple[int, ...] = (), signal_name: str = "", signal_step: int = 0):
  """Within the block, runs of train.py in this process get the given faults."""
  with contextlib.ExitStack() as stack:
    if nan_steps:
      stack.enter_context(
        mock.patch.object(steps, "train_step", poisoned(steps.train_step, tuple(nan_steps)))
      )
    if signal_name:
      stack.enter_context(
        mock.patch.object(
          trainer,
          "train_and_evaluate",
          functools.partial(
            trainer.train_and_evaluate, after_step=signal_after(signal_name, signal_step)
          ),
        )
      )
    yield


def parse_nan_steps(text: str) -> tuple[int, ...]:
  """ "3,4" as step numbers."""
  return tuple(int(part) for part in text.split(",") if part.strip())


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description="train.py with injected faults")
  parser.add_argument("--nan_steps", default="", help="comma-separated 1-based steps")
  parser.add_argument("--signal", default="", choices=("",) + SIGNALS)
  parser.add_argument("--signal_step", type=int, default=0)
  parser.add_argument("train_args", nargs="*")
  args = parser.parse_args(argv)
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  import train as train_py  # the top-level train.py

  with installed(parse_nan_steps(args.nan_steps), args.signal, args.signal_step):
    return train_py.main(["train.py", *args.train_args])


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
