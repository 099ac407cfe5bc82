"""SIGTERM / SIGINT as a request to stop after the current step (preemption).

The first signal only sets a flag that the training loop reads between steps, so the
step in flight finishes and a checkpoint is written; the handler it replaced is put
back at once, so a second signal acts as it would have without jaxseq (e.g. a second
Ctrl-C raises KeyboardInterrupt).
"""

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Which stop signal arrived (None while none has)."""

  def __init__(self):
    self.signal_name: str | None = None


@contextlib.contextmanager
def catch_stop_signals() -> Iterator[StopRequest]:
  """Within the block, SIGTERM and SIGINT set request.signal_name instead of stopping."""
  request = StopRequest()
  if threading.current_thread() is not threading.main_thread():
    yield request  # Python delivers signals to the main thread only
    return
  previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

  def handler(signum, frame):
    del frame
    request.signal_name = signal.Signals(signum).name
    for s, h in previous.items():
      signal.signal(s, h)

  for s in STOP_SIGNALS:
    signal.signal(s, handler)
  try:
    yield request
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
