"""jaxseq-serve: a translation service over HTTP, batching the requests that arrive together.

    jaxseq-serve --workdir=workdir               # or --artifact=translator/
    curl -s localhost:8000/translate -d '{"text": ["forty two", "seven"], "nbest": 2}'

POST /translate takes {"text": "..."} or {"text": ["...", ...]}, and optionally
"beam_size" (one of --beam_sizes), "nbest" (at most the beam size), "attention"
(true: the weights with the source and output tokens) and "constraints" (target phrases
every translation must contain: ["...", ...] for every text, or one such list per text).
It answers {"translations": [...]}, one object per text: translation, score, when asked
nbest and attention, and with constraints "constraints_met" (false: no translation within
the output length limit contains them all, and the translation is empty). GET /health
says the service is up and which model it serves; GET / is a page that translates and
draws the attention.

A request the service cannot take gets a one-line JSON error {"error": ...} and a 4xx
status, never a 500: JSON parsed within bounds (jaxseq/serving/jsontext.py), texts that are not
Unicode (lone surrogates) refused before they reach a batch, a body past --max_body
refused as soon as that many bytes have come (chunked or not). When a batch fails, its
halves are translated apart until the texts that fail alone are found: their requests get
a 422, every other text of the batch its translation. A client cannot hold the service
either (jaxseq/serving/connections.py): each request must arrive whole within --read_timeout
seconds, an idle connection is closed after --keepalive_timeout seconds, and a connection
past --max_connections gets a 503.

Built on Starlette (the ASGI toolkit under FastAPI, small enough that every request is
validated here, so that each mistake gets one readable message) and uvicorn (the reference
ASGI server; on SIGTERM it stops accepting connections, lets the requests in flight
finish, then exits 0). Texts from all requests waiting at once go to the model together:
one device call of up to --max_batch texts, after waiting at most --max_wait_ms for more.
Batches are padded to a few fixed row counts and source widths, and every one of those
shapes is compiled before the server listens, so no request without constraints ever
waits for a compilation. Texts with constraints are batched apart from the others (they
take the constrained search, `jaxseq/decoding/constraints.py`), which compiles on its
first use for each shape and size of the constraints (4, 8, 16 or 32 tokens; an
artifact: its one size) and is kept in the persistent compilation cache.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import gc
import json
import signal
import sys
import time
from typing import Any, NamedTuple

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HTTPRequest
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from jaxseq import cli
from jaxseq.decoding import batching
from jaxseq.decoding.options import DecodeOptions, Search
from jaxseq.errors import ArtifactError, CheckpointError, InputError
from jaxseq.serving import connections, jsontext, page
from jaxseq.serving.artifact import use_compilation_cache
from jaxseq.serving.translate import Request, Translator
from jaxseq.serving.translation import Translation

FIELDS = ("text", "beam_size", "nbest", "attention", "constraints")
MAX_PHRASES = 32  # constraint phrases per text (each has at least one token)


class RequestError(Exception):
  """A request the service refuses: an HTTP status and one readable message."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status


class TextFailed(Exception):
  """Translating one text of a request raised (alone: the other texts were answered)."""

  def __init__(self, index: int, cause: BaseException):
    super().__init__(
      f"text {index} could not be translated ({type(cause).__name__}); send the others without it"
    )
    self.index, self.cause = index, cause


class Limits(NamedTuple):
  max_texts: int  # texts per request
  max_chars: int  # characters per text
  beam_sizes: tuple  # beam sizes a request may ask for (compiled at start)
  beam_size: int  # the default


class Waiting(NamedTuple):
  """One text in the batcher's queue (with its constraints), with what its request asked
  for."""

  request: Request
  beam_size: int
  nbest: int
  attention: bool
  future: asyncio.Future


class Job(NamedTuple):
  texts: list[str]
  beam_size: int
  nbest: int
  attention: bool
  constraints: list[tuple[str, ...]] | None = None  # per text; None: no constraints


def shown(value, limit: int = 40) -> str:
  """A client's value in a message, cut to about limit characters: a string as Python
  writes it (quoted, unprintable characters escaped), anything else as JSON."""
  text = repr(value) if isinstance(value, str) else json.dumps(value)
  return text if len(text) <= limit else text[:limit] + "..."


def _int_field(item: dict, name: str, default: int) -> int:
  value = item.get(name, default)
  if isinstance(value, bool) or not isinstance(value, int):
    raise RequestError(400, f"{name!r} must be an integer, not {shown(value)}")
  return value


def _texts(item: dict, limits: Limits) -> list[str]:
  """The texts of a request object, each valid Unicode within the limits."""
  texts = item["text"]
  if isinstance(texts, str):
    texts = [texts]
  elif not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
    raise RequestError(400, '"text" must be a string or a list of strings')
  if not texts:
    raise RequestError(400, '"text" is an empty list; give at least one string')
  if len(texts) > limits.max_texts:
    raise RequestError(413, f"{len(texts)} texts in one request; at most {limits.max_texts}")
  for i, t in enumerate(texts):
    if len(t) > limits.max_chars:
      raise RequestError(413, f"text {i} has {len(t)} characters; at most {limits.max_chars}")
    problem = jsontext.unicode_problem(t)
    if problem:
      raise RequestError(
        400,
        f"text {i} is not valid Unicode ({problem}); give Unicode "
        "text, with \\uD800-\\uDFFF escapes only in surrogate pairs",
      )
  return texts


def _constraints(item: dict, count: int, limits: Limits) -> list[tuple[str, ...]] | None:
  """The constraint phrases of each of a request's `count` texts: "constraints" is a list
  of strings (for every text) or a list of such lists (one per text); None without it."""
  if "constraints" not in item:
    return None
  value = item["constraints"]
  usage = '"constraints" must be a list of strings, or one such list per text'
  if not isinstance(value, list):
    raise RequestError(400, usage)
  if all(isinstance(c, str) for c in value):
    lists = [value] * count
  elif all(isinstance(c, list) and all(isinstance(p, str) for p in c) for c in value):
    if len(value) != count:
      raise RequestError(400, f'"constraints" has {len(value)} lists for {count} texts')
    lists = value
  else:
    raise RequestError(400, usage)
  for i, phrases in enumerate(lists):
    if len(phrases) > MAX_PHRASES:
      raise RequestError(400, f"text {i} has {len(phrases)} constraints; at most {MAX_PHRASES}")
    for phrase in phrases:
      if len(phrase) > limits.max_chars:
        raise RequestError(
          413, f"a constraint of text {i} has {len(phrase)} characters; at most {limits.max_chars}"
        )
      if problem := jsontext.unicode_problem(phrase):
        raise RequestError(400, f"a constraint of text {i} is not valid Unicode ({problem})")
  return [tuple(p) for p in lists]


def parse_request(body: bytes, limits: Limits) -> Job:
  """The translation job of a POST /translate body; RequestError says what is wrong."""
  try:
    text = body.decode("utf-8")
  except UnicodeDecodeError as e:
    raise RequestError(
      400, f"the body is not valid UTF-8 (byte 0x{body[e.start]:02x} at offset {e.start})"
    ) from None
  try:
    item = jsontext.loads(text)
  except jsontext.JsonError as e:
    raise RequestError(400, f"the body: {e}") from None
  if not isinstance(item, dict):
    raise RequestError(400, 'the body must be a JSON object like {"text": "..."}')
  unknown = sorted(set(item) - set(FIELDS))
  if unknown:
    raise RequestError(400, f"unknown field {shown(unknown[0])}; allowed: {', '.join(FIELDS)}")
  if "text" not in item:
    raise RequestError(400, '"text" is missing: give a string or a list of strings')
  texts = _texts(item, limits)
  beam_size = _int_field(item, "beam_size", limits.beam_size)
  if beam_size not in limits.beam_sizes:
    raise RequestError(
      400, f"beam_size {beam_size} is not served; allowed: {', '.join(map(str, limits.beam_sizes))}"
    )
  nbest = _int_field(item, "nbest", 1)
  if not 1 <= nbest <= beam_size:
    raise RequestError(400, f"nbest {nbest} must be between 1 and the beam size ({beam_size})")
  attention = item.get("attention", False)
  if not isinstance(attention, bool):
    raise RequestError(400, f"'attention' must be true or false, not {shown(attention)}")
  return Job(texts, beam_size, nbest, attention, _constraints(item, len(texts), limits))


def row_buckets(max_batch: int) -> list[int]:
  """The row counts a batch is padded to: 1, 4, 16, ... and max_batch."""
  return batching.padded_sizes(1, 4, max_batch)


class Batcher:
  """Collects the texts of concurrent requests and translates them in shared batches.

  One worker task takes the first waiting text, waits up to max_wait seconds for more (up
  to max_batch), and runs the batch in a single thread, one device call at a time.
  """

  def __init__(self, translator: Translator, max_batch: int, max_wait: float, workers: int = 1):
    self.translator, self.max_batch, self.max_wait = translator, max_batch, max_wait
    self.workers = workers
    self.rows = row_buckets(max_batch)
    self.queue: asyncio.Queue = asyncio.Queue()
    self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    self.batches = 0  # device calls so far
    self.in_flight = 0  # requests waiting for their translations

  def beam(self, beam_size: int, nbest: int) -> DecodeOptions:
    """The translator's options for beam search of this size and n-best."""
    return dataclasses.replace(
      self.translator.options, search=Search.BEAM, beam_size=beam_size, nbest=nbest
    )

  def translate_now(
    self, requests: list[Request], beam_size: int, nbest: int, attention: bool
  ) -> list[Translation]:
    """One device call (blocking): texts of one beam size, padded to a row bucket; the
    n-best lists and attention made on the host only as far as some request asked."""
    rows = next(r for r in self.rows if r >= len(requests))
    return self.translator.translate(
      requests,
      options=self.beam(beam_size, nbest),
      batch_size=rows,
      attention=attention,
    )

  def compile_all(self, beam_sizes, max_length: int) -> int:
    """Runs every (beam size, row count, source width) once, so that none compiles later."""
    count = 0
    for beam_size in beam_sizes:
      options = self.beam(beam_size, 1)
      for rows in self.rows:
        for width in batching.widths(max_length):
          source = np.full(width, 4, np.int32)  # `width` tokens: a batch of exactly that width
          self.translator.backend.translate_ids([source] * rows, options, batch_size=rows)
          count += 1
    return count

  def translate_apart(
    self, requests: list[Request], beam_size: int, nbest: int, attention: bool
  ) -> list:
    """translate_now, and when it raises for several texts, each half apart, down to the
    texts that fail on their own: one result per text, a Translation or the exception that text
    raised alone (so that one bad text never fails the others)."""
    try:
      return self.translate_now(requests, beam_size, nbest, attention)
    except Exception as e:  # noqa: BLE001  (whatever the tokenizer or the search raises)
      if len(requests) == 1:
        print(
          f"jaxseq-serve: a text could not be translated: {type(e).__name__}: "
          f"{str(e).splitlines()[0] if str(e) else ''}",
          file=sys.stderr,
          flush=True,
        )
        return [e]
    half = len(requests) // 2
    first = self.translate_apart(requests[:half], beam_size, nbest, attention)
    return first + self.translate_apart(requests[half:], beam_size, nbest, attention)

  async def submit(
    self,
    texts: list[str],
    beam_size: int,
    nbest: int = 1,
    attention: bool = False,
    constraints: list[tuple[str, ...]] | None = None,
  ) -> list[Translation]:
    """The results of texts (with constraints: the phrases of each), once their batches
    have run; TextFailed names the first text that failed."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in texts]
    phrases = constraints if constraints is not None else [()] * len(texts)
    for text, cons, future in zip(texts, phrases, futures):
      self.queue.put_nowait(Waiting(Request(text, "", cons), beam_size, nbest, attention, future))
    self.in_flight += 1
    try:
      results = await asyncio.gather(*futures, return_exceptions=True)
    finally:
      self.in_flight -= 1
    answers = []
    for index, result in enumerate(results):
      if isinstance(result, BaseException):
        raise TextFailed(index, result)
      answers.append(result)
    return answers

  async def run(self):
    """Forms batches for ever; up to `workers` of them run at once (JAX releases the GIL
    while a batch computes, so on several cores they overlap)."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(self.workers)
    running = set()
    while True:
      waiting = [await self.queue.get()]
      await slots.acquire()  # a worker is free: take what has arrived meanwhile
      deadline = loop.time() + self.max_wait
      while len(waiting) < self.max_batch:
        if not self.queue.empty():  # what has arrived already, without a timer each
          waiting.append(self.queue.get_nowait())
          continue
        timeout = deadline - loop.time()
        if timeout <= 0:
          break
        try:
          waiting.append(await asyncio.wait_for(self.queue.get(), timeout))
        except TimeoutError:
          break
      task = asyncio.create_task(self._translate(waiting, slots))
      running.add(task)
      task.add_done_callback(running.discard)

  async def _translate(self, waiting: list, slots: asyncio.Semaphore):
    loop = asyncio.get_running_loop()
    try:
      # One device call per beam size, and texts with constraints apart from the others:
      # they take the constrained search, which the others need not wait for.
      kind = lambda w: (w.beam_size, bool(w.request.constraints))
      for beam_size, constrained in sorted({kind(w) for w in waiting}):
        group = [w for w in waiting if kind(w) == (beam_size, constrained)]
        results = await loop.run_in_executor(
          self.executor,
          self.translate_apart,
          [w.request for w in group],
          beam_size,
          max(w.nbest for w in group),
          any(w.attention for w in group),
        )
        self.batches += 1
        for w, result in zip(group, results):
          settle(w.future, result)
    finally:
      slots.release()
      for w in waiting:  # none is left waiting, whatever happened above
        settle(w.future, RuntimeError("the batch ended without a result for this text"))


def settle(future: asyncio.Future, result):
  """Gives a waiting text its result or exception, unless its client went away."""
  if future.done():
    return
  if isinstance(result, BaseException):
    future.set_exception(result)
  else:
    future.set_result(result)


def answer(result: Translation, job: Job) -> dict:
  """The response object of one translated text."""
  out: dict[str, Any] = {"translation": result.translation, "score": result.score}
  if job.nbest > 1:
    out["nbest"] = [c.to_json() for c in result.nbest[: job.nbest]]
  if job.attention:
    out.update(
      source_tokens=result.source_tokens,
      output_tokens=result.output_tokens,
      attention=result.attention,
    )
  if result.constraints_met is not None:
    out["constraints_met"] = result.constraints_met
  return out


def body_limit(limits: Limits) -> int:
  """The largest body the texts within limits can need (UTF-8, JSON quoting, the other
  fields): --max_body's default."""
  return limits.max_texts * (limits.max_chars * 4 + 16) + 4096


async def read_body(request, max_body: int) -> bytes:
  """The request body, read as it arrives (Content-Length or chunked); RequestError 413 as
  soon as more than max_body bytes have come, without reading the rest."""
  length = request.headers.get("content-length")
  if length is not None and length.isdigit() and int(length) > max_body:
    raise RequestError(413, f"the body has {length} bytes; at most {max_body}")
  body = bytearray()
  async for chunk in request.stream():
    body += chunk
    if len(body) > max_body:
      raise RequestError(413, f"the body has more than {max_body} bytes; at most {max_body}")
  return bytes(body)


def make_app(
  translator: Translator,
  limits: Limits,
  batcher: Batcher,
  model_info: dict,
  max_body: int | None = None,
):
  """The Starlette application (the batcher's worker starts with it); max_body: the
  largest request body (default `body_limit(limits)`)."""
  max_body = body_limit(limits) if max_body is None else max_body

  def error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)

  async def translate(request: HTTPRequest) -> Response:
    try:
      job = parse_request(await read_body(request, max_body), limits)
    except ClientDisconnect:
      return Response(status_code=499)  # nobody reads it
    except RequestError as e:
      # the rest of a body too long is not read: the connection cannot serve another request
      return error(e.status, str(e), **({"connection": "close"} if e.status == 413 else {}))
    for i, phrases in enumerate(job.constraints or []):
      try:  # an empty phrase, one the vocabulary cannot write, too many tokens: this request
        translator.constraint_ids(phrases, f"text {i}")
      except InputError as e:
        return error(400, str(e))
      except Exception as e:  # noqa: BLE001  (whatever the tokenizer raises)
        return error(422, f"a constraint of text {i} could not be encoded ({type(e).__name__})")
    started = time.perf_counter()
    try:
      results = await batcher.submit(
        job.texts, job.beam_size, job.nbest, job.attention, job.constraints
      )
    except TextFailed as e:
      return error(422, str(e))
    return JSONResponse(
      {
        "translations": [answer(r, job) for r in results],
        "seconds": round(time.perf_counter() - started, 4),
      }
    )

  async def health(request: HTTPRequest) -> Response:
    return JSONResponse(
      {"status": "ok", **model_info, "batches": batcher.batches, "in_flight": batcher.in_flight}
    )

  async def index(request: HTTPRequest) -> Response:
    return HTMLResponse(page.HTML)

  async def http_error(request: HTTPRequest, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # the handler of HTTPException only
    message = {
      404: f"no such path {shown(request.url.path)}; paths: /, /health, /translate",
      405: f"{request.method} is not allowed on {request.url.path}",
    }
    return error(exc.status_code, message.get(exc.status_code, exc.detail))

  async def internal_error(request: HTTPRequest, exc: Exception) -> Response:
    return error(500, f"internal error ({type(exc).__name__}); the service goes on")

  @contextlib.asynccontextmanager
  async def lifespan(app):
    worker = asyncio.create_task(batcher.run())
    yield
    worker.cancel()

  return Starlette(
    routes=[
      Route("/", index),
      Route("/health", health),
      Route("/translate", translate, methods=["POST"]),
    ],
    exception_handlers={HTTPException: http_error, Exception: internal_error},
    lifespan=lifespan,
  )


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = cli.OneLineParser(prog="jaxseq-serve", description="Serve translations over HTTP.")
  parser.add_model_flags(artifact=True)
  parser.add_argument("--host", default="127.0.0.1")
  parser.add_argument("--port", type=int, default=8000)
  parser.add_beam_sizes_flag(
    "comma-separated beam sizes requests may ask for (default: "
    "config.decode.beam_size; an artifact: what it holds)",
  )
  parser.add_argument(
    "--max_batch",
    type=int,
    default=16,
    help="texts per device call (with --workers=2, two batches of up to "
    "16 alternate: one computes while the other's requests are read and "
    "answered)",
  )
  parser.add_argument(
    "--max_wait_ms", type=float, default=5.0, help="how long a batch waits for more texts"
  )
  parser.add_argument(
    "--workers", type=int, default=2, help="batches computed at once (each in its own thread)"
  )
  parser.add_argument("--max_texts", type=int, default=32, help="texts per request")
  parser.add_argument("--max_chars", type=int, default=1000, help="characters per text")
  parser.add_argument(
    "--max_body",
    type=int,
    help="bytes of a request body, counted while it is read (chunked or "
    "not): past them a 413 (default: what --max_texts texts of --max_chars "
    "characters can need, 132608 with the defaults)",
  )
  parser.add_argument(
    "--read_timeout",
    type=float,
    default=10.0,
    help="seconds a client has to send a whole request (headers and body) "
    "from its first byte, or from the connection's opening; past them the "
    "connection is closed (408 when part of a request came)",
  )
  parser.add_argument(
    "--keepalive_timeout",
    type=float,
    default=5.0,
    help="seconds an idle connection is kept open after a response",
  )
  parser.add_argument(
    "--max_connections",
    type=int,
    default=2048,
    help="open connections; one more gets a 503 and is closed",
  )
  args = parser.parse_args(argv)
  parser.require_one_model(args)
  parser.require_positive(
    args, "max_batch", "workers", "max_texts", "max_chars", "max_body", "max_connections"
  )
  parser.require_not_negative(args, "max_wait_ms")
  for name in ("read_timeout", "keepalive_timeout"):
    value = getattr(args, name)
    if not 0 < value < float("inf"):
      parser.error(f"--{name}={value} is not allowed; expected a number of seconds > 0")
  if not 0 <= args.port < 65536:
    parser.error(f"--port={args.port} is not allowed; expected 0..65535")
  args.beam_sizes = parser.beam_sizes(args.beam_sizes)
  return args


def run(argv: list[str]) -> int:
  args = parse_args(argv)
  problem = connections.open_files_for(args.max_connections)
  if problem:
    return cli.fail(problem)
  started = time.perf_counter()
  use_compilation_cache()  # later starts load the compiled shapes
  try:
    translator = Translator(
      [args.workdir] if args.workdir else None, args.artifact, command="jaxseq-serve"
    )
  except (CheckpointError, ArtifactError) as e:
    return cli.fail(str(e))
  served = getattr(translator.backend, "beam_sizes", None)
  beam_sizes = args.beam_sizes or served or [translator.options.beam_size]
  if served and not set(beam_sizes) <= set(served):
    return cli.fail(
      f"--beam_sizes={beam_sizes} is not allowed; the artifact holds {', '.join(map(str, served))}"
    )
  default_beam = translator.options.beam_size
  if default_beam not in beam_sizes:
    default_beam = beam_sizes[-1]
  limits = Limits(args.max_texts, args.max_chars, tuple(beam_sizes), default_beam)
  batcher = Batcher(translator, args.max_batch, args.max_wait_ms / 1000, args.workers)
  shapes = batcher.compile_all(beam_sizes, translator.max_length)
  print(
    f"jaxseq-serve: model of step {translator.step}, {shapes} shapes compiled in "
    f"{time.perf_counter() - started:.1f} s; http://{args.host}:{args.port}/",
    file=sys.stderr,
    flush=True,
  )
  info = {
    "model": args.artifact or args.workdir,
    "step": translator.step,
    "beam_sizes": list(beam_sizes),
    "max_batch": args.max_batch,
  }
  app = make_app(translator, limits, batcher, info, args.max_body)
  # The objects made so far (the libraries, the model, the compiled searches) live as long
  # as the service: kept out of the collector's view, a full collection no longer walks
  # them all, which otherwise stalls every request in flight.
  gc.freeze()
  # The guarded protocol adds what uvicorn lacks: a read deadline per request and a cap on
  # open connections (jaxseq/serving/connections.py). No WebSocket upgrades: the service has no
  # WebSocket route, and an upgraded connection would leave the guards behind.
  config = uvicorn.Config(
    app,
    host=args.host,
    port=args.port,
    log_level="warning",
    access_log=False,
    timeout_graceful_shutdown=60,
    http=connections.protocol(args.read_timeout, args.max_connections),
    timeout_keep_alive=args.keepalive_timeout,
    ws="none",
  )
  server = type(
    "Server", (uvicorn.Server,), {"capture_signals": contextlib.contextmanager(_graceful)}
  )(config)
  server.run()
  return 0 if server.started else cli.EXIT_BAD_INPUT  # not started: the port was not free


def _graceful(server):
  """SIGTERM and SIGINT: stop accepting, finish the requests in flight, return (exit 0).

  uvicorn's own handlers do the same but raise the signal again at the end, which makes
  the exit status say "killed"."""

  def stop(signum, frame):
    server.should_exit = True

  previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


def main() -> int:
  return run(sys.argv[1:])


if __name__ == "__main__":
  sys.exit(main())
