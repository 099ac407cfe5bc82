"""Keeps the libraries' own reports of failures that jaxseq reports in one line off stderr.

Every piece is a context manager that puts back what it changed, so importing or calling
jaxseq changes no logger, hook or verbosity of the process: the commands enter them.

- `quiet_restore`: orbax's and tensorstore's tracebacks of a failed checkpoint read (jaxseq
  reports a damaged checkpoint in one line and falls back to an older one).
- `quiet_training`: orbax's background-thread errors of a failed save, and a metrics writer
  thread's error on a full disk (the main thread meets and reports the same error).
- `absl_errors_only`: orbax's notes on read-only restores.

Written here by hand because orbax offers no switch for it.
"""

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
import traceback
import types
import warnings
import weakref

from absl import logging as absl_logging


def closed_loop(error) -> bool:
  return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


class _TrackingPolicy(asyncio.DefaultEventLoopPolicy):
  """The default event loop policy, except that every task of a loop it makes is also put in
  `tasks` (a WeakSet): the reads of a restore, and nothing else of the process."""

  def __init__(self, tasks: weakref.WeakSet):
    super().__init__()
    self._tasks = tasks

  def new_event_loop(self) -> asyncio.AbstractEventLoop:
    loop = super().new_event_loop()

    def tracked(loop, coro, **kwargs):
      task = asyncio.Task(coro, loop=loop, **kwargs)
      self._tasks.add(task)
      return task

    loop.set_task_factory(tracked)
    return loop


@contextlib.contextmanager
def _tracked_tasks():
  """Within the block, the event loops that asyncio makes (orbax makes one per restore)
  record their tasks in the WeakSet it yields; the policy before is put back at the end."""
  tasks: weakref.WeakSet = weakref.WeakSet()
  policy = asyncio.get_event_loop_policy()
  asyncio.set_event_loop_policy(_TrackingPolicy(tasks))
  try:
    yield tasks
  finally:
    asyncio.set_event_loop_policy(policy)


def _clear_frames(error: BaseException | None):
  """Drops the local variables of the finished frames that error (and its causes) went
  through: they hold the reads a failed restore left pending, which could otherwise not
  be garbage-collected until the caller drops the error."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    traceback.clear_frames(error.__traceback__)
    error = error.__cause__ or error.__context__


def _collect_abandoned_reads(tasks: weakref.WeakSet, seconds: float):
  """Waits (at most seconds) until the tasks left pending on a closed event loop are
  garbage-collected, so that whatever they print is printed now."""
  deadline = time.monotonic() + seconds
  while True:
    gc.collect()
    abandoned = [t for t in list(tasks) if not t.done() and t.get_loop().is_closed()]
    if not abandoned or time.monotonic() > deadline:
      return
    del abandoned
    time.sleep(0.02)


@contextlib.contextmanager
def _dropped(unraisable, uncaught, thread=None):
  """Within the block: the absl (orbax) and asyncio loggers at CRITICAL, and the reports
  that these predicates accept dropped from sys.unraisablehook, sys.excepthook and (when
  given) threading.excepthook; everything put back at the end."""
  loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
  levels = [logger.level for logger in loggers]
  hooks = sys.unraisablehook, sys.excepthook, threading.excepthook
  sys.unraisablehook = lambda info: None if unraisable(info) else hooks[0](info)
  sys.excepthook = lambda kind, error, tb: None if uncaught(error) else hooks[1](kind, error, tb)
  if thread is not None:
    threading.excepthook = lambda args: None if thread(args) else hooks[2](args)
  for logger in loggers:
    logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    sys.unraisablehook, sys.excepthook, threading.excepthook = hooks
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)


@contextlib.contextmanager
def quiet_training():
  """A training run's scope: after a failed asynchronous save, tensorstore may still call
  into orbax's closed event loop and report it through the hooks (the thread's hook too),
  and its abandoned writes are collected unawaited; a writer thread (TensorBoard's event
  log) that meets a full disk raises OSError in its thread. The run reports each of these
  failures itself, once, from the main thread."""
  with (
    _dropped(
      lambda info: closed_loop(info.exc_value),
      closed_loop,
      lambda args: issubclass(args.exc_type, OSError) or closed_loop(args.exc_value),
    ),
    warnings.catch_warnings(),
  ):
    # the abandoned writes' coroutines, collected unawaited
    warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
    yield


@contextlib.contextmanager
def absl_errors_only():
  """absl's verbosity at ERROR within the block (orbax logs notes on read-only restores)."""
  logger, verbosity = logging.getLogger("absl"), absl_logging.get_verbosity()
  level = logger.level  # set_verbosity sets it too, where absl's default leaves it NOTSET
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    absl_logging.set_verbosity(verbosity)
    logger.setLevel(level)


@contextlib.contextmanager
def quiet_restore(wait_seconds: float = 10.0):
  """Keeps the library's reports of a failed restore off stderr; the caller reports it.

  When one read of a restore fails (a truncated file), orbax closes its event loop with
  the other reads still pending (_run_sync_via_new_loop, orbax/checkpoint/_src/
  asyncio_utils.py). As they finish, tensorstore's callbacks meet the closed loop
  ("Event loop is closed"); once garbage-collected, each abandoned coroutine of
  _read_array_index_and_device_put (_src/serialization/serialization.py) turns the
  GeneratorExit into "Exception: Encountered error while reading array index" (both go
  to sys.unraisablehook or sys.excepthook), and asyncio logs "exception was never
  retrieved" for their gathers: each with a traceback, at times that depend on the
  machine. Within this scope those are dropped and the absl (orbax) and asyncio log
  records are held back; after a failure it waits (at most wait_seconds) until the
  abandoned reads are collected, then puts every hook and logger level back. It knows
  them as the tasks of the event loops made within the scope (the only loops whose
  policy it sets), without looking at any other object of the process.
  """
  abandoned = lambda info: (
    isinstance(info.object, types.CoroutineType) or closed_loop(info.exc_value)
  )
  with _dropped(abandoned, closed_loop), _tracked_tasks() as tasks:
    try:
      yield
    except Exception as error:
      _clear_frames(error)
      _collect_abandoned_reads(tasks, wait_seconds)
      raise
