"""Fault injection for the tests of a run's guards (config.fault_*); off by default.

Nothing here is inside the pure train step: a poisoned step is the real step run on NaN
parameters, and a signal is sent by the loop between two steps, so what the tests see
is what a diverged update or an operator's `kill` would cause.
"""

import os
import signal

import jax
import jax.numpy as jnp


def nan_steps(config) -> tuple[int, ...]:
  """config.fault_nan_steps ("3,4") as step numbers; ValueError when it is not that."""
  text = config.fault_nan_steps
  if not isinstance(text, str):
    raise ValueError(text)
  steps = tuple(int(part) for part in text.split(",") if part.strip())
  if any(n < 1 for n in steps):
    raise ValueError(text)
  return steps


def poison_steps(train_step, steps: tuple[int, ...]):
  """train_step, except that at the given step numbers (1-based, as logged) its loss and
  gradient are NaN; the state keeps its real parameters. The step itself is unchanged
  (its non-finite guard decides what happens), so this is only a wrapper."""
  if not steps:
    return train_step
  numbers = jnp.asarray(steps)

  def step(state, batch):
    poisoned = jnp.isin(state.step + 1, numbers)
    nan_params = jax.tree.map(lambda p: jnp.where(poisoned, jnp.nan, p), state.params)
    new, metrics = train_step(state.replace(params=nan_params), batch)
    params = jax.tree.map(lambda n, p: jnp.where(poisoned, p, n), new.params, state.params)
    return new.replace(params=params), metrics
  return step


def signal_after(config, step: int):
  """Sends config.fault_signal to this process right after config.fault_signal_step."""
  if config.fault_signal and step == config.fault_signal_step:
    os.kill(os.getpid(), signal.Signals["SIG" + config.fault_signal])
