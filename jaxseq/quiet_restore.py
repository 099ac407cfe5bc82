"""Keeps orbax's and tensorstore's reports of a failed checkpoint read off stderr.

jaxseq reports a damaged checkpoint in one line and falls back to an older one; the
libraries underneath would print tracebacks for the same failure, at times that depend on
the machine (see `quiet_restore`). This is written here by hand because orbax offers no
switch for it.
"""

import asyncio
import contextlib
import gc
import logging
import sys
import time
import traceback
import types


def closed_loop(error) -> bool:
  return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


def _pending_on_aclosed_loop() -> bool:
  return any(issubclass(type(x), asyncio.Future) and not x.done() and x.get_loop().is_closed()
             for x in gc.get_objects())


def _clear_frames(error: BaseException):
  """Drops the local variables of the finished frames that error (and its causes) went
  through: they hold the reads a failed restore left pending, which could otherwise not
  be garbage-collected until the caller drops the error."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    traceback.clear_frames(error.__traceback__)
    error = error.__cause__ or error.__context__


def _collect_abandoned_reads(seconds: float):
  """Waits (at most seconds) until the futures left pending on closed event loops are
  garbage-collected, so that whatever they print is printed now."""
  deadline = time.monotonic() + seconds
  while True:
    gc.collect()
    if not _pending_on_aclosed_loop() or time.monotonic() > deadline:
      return
    time.sleep(0.02)


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
  abandoned reads are collected, then puts every hook and logger level back.
  """
  loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
  levels = [logger.level for logger in loggers]
  unraisablehook, excepthook = sys.unraisablehook, sys.excepthook
  sys.unraisablehook = lambda info: (
      None if isinstance(info.object, types.CoroutineType) or closed_loop(info.exc_value)
      else unraisablehook(info))
  sys.excepthook = lambda kind, error, tb: (None if closed_loop(error)
                                            else excepthook(kind, error, tb))
  for logger in loggers:
    logger.setLevel(logging.CRITICAL)
  try:
    yield
  except Exception as error:
    _clear_frames(error)
    _collect_abandoned_reads(wait_seconds)
    raise
  finally:
    sys.unraisablehook, sys.excepthook = unraisablehook, excepthook
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)
