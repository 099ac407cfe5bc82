"""Connection guards of jaxseq-serve, added to uvicorn's HTTP protocol (httptools).

uvicorn closes a keep-alive connection left idle after a response (`timeout_keep_alive`)
and answers 503 past `limit_concurrency`, but it waits for ever on a request that never
arrives whole: a connection that sends nothing, part of its headers, or less body than
its Content-Length announces stays open, one file descriptor each, until the client
leaves. `limit_concurrency` only looks at a connection once its headers are complete, so
silent connections pile up past it. httptools keeps every byte of an unfinished header,
so one endless header line grows the process without bound; and requests pipelined on one
connection (sent before the answers to earlier ones) are parsed and queued without limit:
one client sending them without reading grew the service by 400 MB in 8 seconds.

`protocol(read_timeout, max_connections)` is the class jaxseq-serve serves with:
  - each request must arrive whole (request line, headers and body) within read_timeout
    seconds of its first byte (of the connection's opening, for the first request);
    past that the connection is closed, with a 408 when part of a request had come;
  - a connection past max_connections gets a 503 and is closed at once;
  - a request head (request line and headers) longer than MAX_HEAD_BYTES gets a 431;
  - more than MAX_PIPELINED requests waiting on one connection get a 429;
  - a request uvicorn cannot parse gets its 400 as JSON.
Every refusal is a one-line JSON error, like the application's own, and closes the
connection. A closed connection's request still being answered is told it was closed, so
that its answer is dropped, not written to the closed transport (uvloop raises there).

The subclass reads and extends HttpToolsProtocol's own state (cycle, pipeline, the parser
callbacks, _start_asgi_task) as uvicorn 0.54 has it: constraints.txt pins that version,
and tests/test_serve.py checks every guard against a real server.
"""

import json
import resource

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
MAX_PIPELINED = 8  # requests of one connection queued behind the one being answered
SPARE_FILES = 256  # descriptors besides the connections: the model, libraries, the listener


def refusal(status: int, reason: str, message: str) -> bytes:
  """A whole HTTP/1.1 response carrying {"error": message}, announcing the close."""
  body = json.dumps({"error": message}).encode()
  head = (
    f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
    f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
  )
  return head.encode() + body


class PipelineFull(Exception):
  """Raised in a parser callback to stop parsing: httptools turns it into its error."""


class GuardedProtocol(HttpToolsProtocol):
  """uvicorn's httptools protocol with a read deadline per request and connection caps
  (the class attributes; `protocol` makes a subclass with the served values)."""

  read_timeout = 10.0
  max_connections = 2048

  def connection_made(self, transport):
    super().connection_made(transport)
    self.deadline = None  # the timer of the request being read
    self.in_head = True  # what arrives now is a request head (or nothing yet)
    self.head_bytes = 0
    self.reading = False  # part of a request has come
    self.running = None  # the request being answered (self.cycle is the newest parsed)
    self.overflow = False  # stopped for too many pipelined requests
    if len(self.connections) > self.max_connections:
      self.refuse(
        503,
        "Service Unavailable",
        f"the service has {self.max_connections} connections open, its limit "
        "(--max_connections); try again later",
      )
      return
    self.arm()

  def connection_lost(self, exc):
    self.disarm()
    self.abandon()
    super().connection_lost(exc)

  def data_received(self, data: bytes):
    if self.deadline is None:
      self.arm()
    if self.in_head:
      self.head_bytes += len(data)
    super().data_received(data)
    if self.in_head and self.head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
      self.refuse(
        431,
        "Request Header Fields Too Large",
        f"the request line and headers take more than {MAX_HEAD_BYTES} bytes; "
        f"at most {MAX_HEAD_BYTES}",
      )

  def on_message_begin(self):
    super().on_message_begin()
    self.reading = True
    if self.deadline is None:
      self.arm()

  def on_headers_complete(self):
    self.in_head = False
    super().on_headers_complete()
    if len(self.pipeline) > MAX_PIPELINED:
      self.overflow = True
      raise PipelineFull()  # stops the parser before it queues more

  def _start_asgi_task(self, cycle, app):
    self.running = cycle
    super()._start_asgi_task(cycle, app)

  def send_400_response(self, msg: str):
    if self.overflow:
      self.refuse(
        429,
        "Too Many Requests",
        f"more than {MAX_PIPELINED} requests sent ahead of their answers on one "
        f"connection; at most {MAX_PIPELINED}",
      )
    else:
      self.refuse(400, "Bad Request", f"not an HTTP/1.1 request ({msg.rstrip('.')})")

  def on_message_complete(self):
    super().on_message_complete()
    self.in_head, self.head_bytes, self.reading = True, 0, False
    self.disarm()

  def arm(self):
    """Starts the read deadline of the request to come."""
    self.deadline = self.loop.call_later(self.read_timeout, self.expired)

  def disarm(self):
    if self.deadline is not None:
      self.deadline.cancel()
      self.deadline = None

  def answering(self) -> bool:
    """Whether this connection waits for the service (an earlier request of it is still
    being answered), not the service for it."""
    cycle = self.cycle
    return bool(self.pipeline) or (
      cycle is not None and not cycle.more_body and not cycle.response_complete
    )

  def expired(self):
    """The read deadline passed: close, saying so when part of a request had come."""
    self.deadline = None
    if self.transport.is_closing():
      return
    if self.answering():
      self.arm()
      return
    if self.reading:
      self.refuse(
        408,
        "Request Timeout",
        f"the request did not arrive whole within {self.read_timeout:g} seconds (--read_timeout)",
      )
    else:
      self.close()

  def refuse(self, status: int, reason: str, message: str):
    """Answers with a one-line JSON error and closes the connection."""
    if not self.transport.is_closing():
      self.transport.write(refusal(status, reason, message))
    self.close()

  def close(self):
    self.disarm()
    self.abandon()
    self.transport.close()

  def abandon(self):
    """Tells the requests of this connection still being answered that it is closed."""
    for cycle in (self.running, self.cycle):
      if cycle is not None and not cycle.response_complete:
        cycle.disconnected = True
        cycle.message_event.set()


def protocol(read_timeout: float, max_connections: int) -> type:
  """The protocol class for uvicorn.Config(http=...) with these limits."""
  return type(
    "GuardedProtocol",
    (GuardedProtocol,),
    {"read_timeout": read_timeout, "max_connections": max_connections},
  )


def open_files_for(max_connections: int) -> str | None:
  """Raises this process's soft limit on open files to what max_connections needs;
  a one-line message when the hard limit does not allow it (None when it does)."""
  needed = max_connections + SPARE_FILES
  soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  if soft == resource.RLIM_INFINITY or soft >= needed:
    return None
  if hard != resource.RLIM_INFINITY and hard < needed:
    return (
      f"--max_connections={max_connections} needs {needed} open files, but this "
      f"process may open at most {hard} (ulimit -Hn); lower --max_connections"
    )
  resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
  return None
