"""Reliability of jaxseq-serve under abusive clients, over loopback.

    python -m benchmarks.serving.serve_abuse                 # trains a tiny workdir once
    python -m benchmarks.serving.serve_abuse --workdir=/tmp/default

Starts `jaxseq-serve` on a free loopback port (a workdir of the default config trained for
300 steps when --workdir is not given, kept in the temporary directory for later runs).
Good clients send held-out sentences at a steady rate, first alone ("quiet"), then while
abusive clients run ("abuse"), then alone again ("after"). The abuse: malformed JSON
(deep nesting, huge numbers, invalid UTF-8, wrong types), texts with lone surrogates
mixed with good ones, bodies announced too large, 200 MB chunked bodies, pipelined
floods, clients that send a byte at a time or part of a body, and 1,000 connections
that send nothing. Records the good requests' success rate and p50/p99 latency in each
phase, every status any client got (5xx counted), the server's resident memory (peak and
growth) and open descriptors before, during and after, when the idle connections were
closed, and the machine (cpu, cores, load average before the run) in
benchmarks/results/serving/serve_abuse.json, with the targets: no good request failed,
no 5xx, good p99 under abuse at most 3x the quiet one, resident memory growth under
100 MB, idle connections closed within the read timeout and descriptors back to where
they were. Bounded: --seconds per phase (15), every client stops with its phase.
"""

import argparse
import asyncio
import collections
import itertools
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks import common
from benchmarks.serving import serve_load
from benchmarks.serving.serve_load import read_response

ROOT = common.ROOT

OUT = os.path.join(common.RESULTS, "serving", "serve_abuse.json")
TRAIN_FLAGS = [
  "--config.num_train_steps=300",
  "--config.data.num_eval=200",
  "--config.eval_every_steps=300",
  "--config.checkpoint_every_steps=300",
  "--config.num_samples=0",
  "--config.num_attention_plots=0",
]
MALFORMED = [
  b"{not json",
  b"[" * 60000 + b"]" * 60000,
  b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}",
  b'{"text": "one", "beam_size": ' + b"9" * 5000 + b"}",
  b'{"text": "forty \xff one"}',
  b'{"text": 41}',
  b'{"text": []}',
  b'{"text": "x", "nbest": 1e999}',
  b"\x00" * 1000,
  b'{"text": "x", "attention": NaN}',
  b'{"' + b"k" * 20000 + b'": 1}',
]
POISONED = [["\ud800"], ["seven", "\udfff forty"], ["a\ud834b", "twelve", "nine"]]
MAX_P99_RATIO, MAX_RSS_GROWTH_MIB = 3.0, 100.0
# what a client meets when the server closes on it (uvloop raises RuntimeError on a write
# to a closed transport)
CLOSED = (OSError, RuntimeError, asyncio.TimeoutError, asyncio.IncompleteReadError)


# ---- pure parts (tested in tests/test_serve_abuse.py) ----


def percentile(values: list[float], q: float) -> float | None:
  """The nearest-rank q-th percentile (0 < q <= 100) of values; None when there are none."""
  if not values:
    return None
  ordered = sorted(values)
  return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_summary(latencies: list[float], failed: int) -> dict:
  """Good requests of one phase: how many, how many failed, and p50/p99 in seconds."""
  total = len(latencies) + failed
  return {
    "requests": total,
    "failed": failed,
    "success_rate": len(latencies) / total if total else None,
    "latency_p50": percentile(latencies, 50),
    "latency_p99": percentile(latencies, 99),
  }


def verdict(record: dict) -> dict:
  """Each target of the module docstring: whether the record meets it."""
  quiet, abuse = record["good"]["quiet"], record["good"]["abuse"]
  idle, fds = record["idle_connections"], record["open_files"]
  good = [record["good"][phase] for phase in ("quiet", "abuse", "after")]
  return {
    "no_good_request_failed": all(p["failed"] == 0 and p["requests"] > 0 for p in good),
    "no_5xx": record["status_5xx"] == 0,
    "p99_under_abuse_at_most_3x": (
      abuse["latency_p99"] is not None
      and quiet["latency_p99"] is not None
      and abuse["latency_p99"] <= MAX_P99_RATIO * quiet["latency_p99"]
    ),
    "rss_growth_under_100_mib": record["rss_mib"]["growth"] < MAX_RSS_GROWTH_MIB,
    "idle_closed_within_read_timeout": (
      idle["closed"] == idle["opened"] and idle["latest_close_s"] <= record["read_timeout"] + 1.0
    ),
    "descriptors_back_to_baseline": fds["after"] <= fds["before"],
  }


# ---- the server and what is measured of it ----


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def rss_mib(pid: int) -> float:
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def open_files(pid: int) -> int:
  return len(os.listdir(f"/proc/{pid}/fd"))


class Sampler(threading.Thread):
  """Samples the server's resident memory and descriptors every 0.1 s, by phase."""

  def __init__(self, pid: int):
    super().__init__(daemon=True)
    self.pid, self.phase, self.done = pid, "start", threading.Event()
    self.samples = collections.defaultdict(list)  # phase -> [(rss MiB, descriptors)]

  def run(self):
    while not self.done.wait(0.1):
      try:
        self.samples[self.phase].append((rss_mib(self.pid), open_files(self.pid)))
      except OSError:
        return

  def peak(self, phase: str, column: int) -> float:
    return max((s[column] for s in self.samples[phase]), default=float("nan"))


def ensure_workdir(workdir: str | None) -> str:
  """The workdir to serve: the given one, or a tiny one trained (once) by train.py."""
  if workdir:
    return workdir
  workdir = os.path.join(tempfile.gettempdir(), "jaxseq-serve-abuse-workdir")
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    print(f"training {workdir} (once)", file=sys.stderr, flush=True)
    subprocess.run(
      [sys.executable, os.path.join(ROOT, "train.py"), f"--workdir={workdir}", *TRAIN_FLAGS],
      check=True,
      cwd=ROOT,
      stdout=subprocess.DEVNULL,
    )
  return workdir


def held_out_sentences(workdir: str, count: int = 200) -> list[str]:
  from jaxseq.data import corpora
  from jaxseq.training import checkpointing

  config = checkpointing.load_config(workdir)
  corpus = corpora.load_corpus(config, workdir)
  sources = [s for s, _ in corpus.eval] or [s for s, _ in corpus.train]
  return sources[:count]


def start_server(workdir: str, port: int, read_timeout: float) -> subprocess.Popen:
  server = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "jaxseq.serving.serve",
      f"--workdir={workdir}",
      f"--port={port}",
      f"--read_timeout={read_timeout}",
      "--keepalive_timeout=5",
      "--max_connections=2048",
    ],
    cwd=ROOT,
    env=dict(os.environ, PYTHONPATH=ROOT),
    stderr=subprocess.PIPE,
    text=True,
  )
  started = serve_load.wait_until_listening(server)
  if "compiled" not in started:
    server.kill()
    raise SystemExit(f"error: jaxseq-serve did not start: {started}{server.stderr.read()}")
  threading.Thread(target=server.stderr.read, daemon=True).start()  # keep the pipe drained
  deadline = time.time() + 60
  while time.time() < deadline:
    try:
      socket.create_connection(("127.0.0.1", port), timeout=1).close()
      return server
    except OSError:
      time.sleep(0.1)
  raise SystemExit("error: jaxseq-serve did not listen within 60 s")


# ---- clients ----


def post(body: bytes, close: bool = False) -> bytes:
  return (
    b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n%s\r\n%s"
    % (len(body), b"Connection: close\r\n" if close else b"", body)
  )


class Statuses:
  """Every status any client got, and the good requests' latencies by phase."""

  def __init__(self):
    self.counts = collections.Counter()
    self.latencies = collections.defaultdict(list)
    self.failed = collections.Counter()
    self.phase = "quiet"

  def seen(self, status: int):
    self.counts[status] += 1


async def good_client(port: int, texts: list[str], rate: float, stop: float, tally):
  """One keep-alive client sending a sentence every 1/rate seconds until stop."""
  streams, due = None, time.monotonic()
  for n in itertools.count():
    due += 1 / rate
    if due > stop:
      return
    await asyncio.sleep(max(0.0, due - time.monotonic()))
    phase, started = tally.phase, time.perf_counter()
    try:
      if streams is None:
        streams = await asyncio.open_connection("127.0.0.1", port)
      streams[1].write(post(json.dumps({"text": texts[n % len(texts)]}).encode()))
      status, body = await asyncio.wait_for(read_response(streams[0]), 30)
      tally.seen(status)
      ok = status == 200 and len(json.loads(body)["translations"]) == 1
    except (*CLOSED, ValueError):
      ok, streams = False, None
    if ok:
      tally.latencies[phase].append(time.perf_counter() - started)
    else:
      tally.failed[phase] += 1


async def one_shot(port: int, data: bytes, tally, timeout: float = 30) -> bytes:
  """Sends data on a new connection and reads until the server closes it; records the
  status of the first response, if one came."""
  received = b""
  try:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
  except CLOSED:
    pass
  if received.startswith(b"HTTP/1.1 "):
    tally.seen(int(received.split(b" ", 2)[1]))
  return received


async def malformed(port: int, stop: float, tally):
  for n in itertools.count():
    if time.monotonic() > stop:
      return
    await one_shot(port, post(MALFORMED[n % len(MALFORMED)], close=True), tally)
    await asyncio.sleep(0.05)


async def poisoned(port: int, stop: float, tally):
  """Texts with lone surrogates, sent together with good ones (the same batch window)."""
  for n in itertools.count():
    if time.monotonic() > stop:
      return
    bad = json.dumps({"text": POISONED[n % len(POISONED)]}).encode()
    good = json.dumps({"text": "forty one"}).encode()
    await asyncio.gather(
      one_shot(port, post(bad, close=True), tally), one_shot(port, post(good, close=True), tally)
    )
    await asyncio.sleep(0.05)


async def chunked_flood(port: int, stop: float, tally, megabytes: int, sent: list):
  """A chunked body of `megabytes` MB, sent as fast as the server takes it, again and
  again; sent gets the bytes each attempt got out before the server closed."""
  chunk = b"x" * (1 << 20)
  while time.monotonic() < stop:
    count = 0
    try:
      reader, writer = await asyncio.open_connection("127.0.0.1", port)
      writer.write(b"POST /translate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
      for _ in range(megabytes):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        count += len(chunk)
      writer.write(b"0\r\n\r\n")
      answer = await asyncio.wait_for(reader.read(), 30)
      if answer.startswith(b"HTTP/1.1 "):
        tally.seen(int(answer.split(b" ", 2)[1]))
      writer.close()
    except CLOSED:
      pass
    sent.append(count)
    await asyncio.sleep(0.2)


async def announced_too_large(port: int, stop: float, tally):
  head = (
    b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n"
    b"Expect: 100-continue\r\n\r\n"
  )
  while time.monotonic() < stop:
    await one_shot(port, head, tally)
    await asyncio.sleep(0.1)


async def pipelined_flood(port: int, stop: float, tally):
  request = post(json.dumps({"text": "seven"}).encode())
  while time.monotonic() < stop:
    await one_shot(port, request * 200, tally)
    await asyncio.sleep(0.2)


async def slow_client(port: int, stop: float, tally, partial_body: bool):
  """Sends a request a byte every 0.25 s (or its headers and part of the body, then
  nothing) until the server closes the connection, again and again."""
  head = b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
  while time.monotonic() < stop:
    try:
      reader, writer = await asyncio.open_connection("127.0.0.1", port)
      if partial_body:
        writer.write(head + b'{"text": ')
      else:
        for byte in head:
          if reader.at_eof() or time.monotonic() > stop:
            break
          writer.write(bytes([byte]))
          await asyncio.sleep(0.25)
      answer = await asyncio.wait_for(reader.read(), max(1.0, stop - time.monotonic()))
      if answer.startswith(b"HTTP/1.1 "):
        tally.seen(int(answer.split(b" ", 2)[1]))
      writer.close()
    except CLOSED:
      pass


async def idle_connections(port: int, count: int) -> dict:
  """Opens `count` connections that send nothing; when the server closed each."""
  opened = time.monotonic()
  connections = await asyncio.gather(
    *(asyncio.open_connection("127.0.0.1", port) for _ in range(count)), return_exceptions=True
  )
  streams = [c for c in connections if not isinstance(c, BaseException)]

  async def closed_after(reader, writer) -> float | None:
    try:
      await asyncio.wait_for(reader.read(), 60)
      return time.monotonic() - opened
    except CLOSED:
      return None
    finally:
      writer.close()

  delays = await asyncio.gather(*(closed_after(r, w) for r, w in streams))
  closed = [d for d in delays if d is not None]
  return {
    "opened": len(streams),
    "failed_to_open": count - len(streams),
    "closed": len(closed),
    "earliest_close_s": min(closed, default=None),
    "latest_close_s": max(closed, default=None),
  }


# ---- the run ----


async def good_phase(port: int, texts: list[str], seconds: float, tally, rate: float, clients: int):
  stop = time.monotonic() + seconds
  await asyncio.gather(
    *(good_client(port, texts[i::clients], rate / clients, stop, tally) for i in range(clients))
  )


async def abuse(port: int, args) -> dict:
  """Every abusive client at once, for args.seconds: what they got."""
  stop, tally, chunked_sent = time.monotonic() + args.seconds, Statuses(), []
  results = await asyncio.gather(
    idle_connections(port, args.idle),
    malformed(port, stop, tally),
    poisoned(port, stop, tally),
    announced_too_large(port, stop, tally),
    pipelined_flood(port, stop, tally),
    *(
      chunked_flood(port, stop, tally, args.chunked_mb, chunked_sent)
      for _ in range(args.chunked_clients)
    ),
    *(slow_client(port, stop, tally, partial_body=i % 2 == 1) for i in range(10)),
  )
  return {"statuses": dict(tally.counts), "idle": results[0], "chunked_sent": chunked_sent}


def start_abusers(port: int, args) -> subprocess.Popen:
  """The abusive clients in a process of their own, so that the good clients' latencies
  are not those of a client event loop busy opening a thousand connections."""
  return subprocess.Popen(
    [
      sys.executable,
      "-m",
      "benchmarks.serving.serve_abuse",
      f"--abuse_only={port}",
      f"--seconds={args.seconds}",
      f"--idle={args.idle}",
      f"--chunked_mb={args.chunked_mb}",
      f"--chunked_clients={args.chunked_clients}",
    ],
    cwd=ROOT,
    env=dict(os.environ, PYTHONPATH=ROOT),
    stdout=subprocess.PIPE,
    text=True,
  )


def settle_open_files(pid: int, baseline: int, seconds: float) -> tuple[int, float]:
  """Waits until the server's descriptors are back to baseline (at most seconds)."""
  started = time.monotonic()
  while open_files(pid) > baseline and time.monotonic() - started < seconds:
    time.sleep(0.1)
  return open_files(pid), time.monotonic() - started


def measure(args, workdir: str, port: int, server: subprocess.Popen) -> dict:
  import uvloop

  texts = held_out_sentences(workdir)
  tally, sampler = Statuses(), Sampler(server.pid)
  uvloop.run(good_phase(port, texts, 2, tally, args.rate, args.clients))  # warm-up
  tally.latencies.clear()
  tally.failed.clear()
  tally.counts.clear()
  before_fds = open_files(server.pid)
  sampler.start()
  rss_at_start, abusers = {}, None
  for name in ("quiet", "abuse", "after"):
    tally.phase = sampler.phase = name
    rss_at_start[name] = rss_mib(server.pid)
    if name == "abuse":
      abusers = start_abusers(port, args)
    uvloop.run(good_phase(port, texts, args.seconds, tally, args.rate, args.clients))
    if name == "abuse":
      abused = json.loads(abusers.communicate(timeout=120)[0])
  for status, count in abused["statuses"].items():
    tally.counts[int(status)] += count
  chunked_sent, idle = abused["chunked_sent"], abused["idle"]
  after_fds, settle_seconds = settle_open_files(server.pid, before_fds, args.read_timeout + 10)
  sampler.done.set()
  peak_abuse, rss_before_abuse = sampler.peak("abuse", 0), rss_at_start["abuse"]
  return {
    "good": {
      p: latency_summary(tally.latencies[p], tally.failed[p]) for p in ("quiet", "abuse", "after")
    },
    "statuses": {str(k): v for k, v in sorted(tally.counts.items())},
    "status_5xx": sum(v for k, v in tally.counts.items() if k >= 500),
    "rss_mib": {
      "before_abuse": round(rss_before_abuse, 1),
      "peak_abuse": round(peak_abuse, 1),
      "growth": round(peak_abuse - rss_before_abuse, 1),
      "after": round(rss_mib(server.pid), 1),
    },
    "open_files": {
      "before": before_fds,
      "peak_abuse": int(sampler.peak("abuse", 1)),
      "after": after_fds,
      "settled_after_s": round(settle_seconds, 2),
    },
    "idle_connections": idle,
    "chunked_bodies": {
      "clients": args.chunked_clients,
      "megabytes_each": args.chunked_mb,
      "attempts": len(chunked_sent),
      "largest_bytes_sent_before_refused": max(chunked_sent, default=0),
    },
  }


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", help="default: a tiny one trained once (see above)")
  parser.add_argument("--seconds", type=float, default=15, help="each phase")
  parser.add_argument("--rate", type=float, default=20, help="good requests per second")
  parser.add_argument("--clients", type=int, default=4, help="good clients")
  parser.add_argument("--idle", type=int, default=1000, help="connections that send nothing")
  parser.add_argument("--chunked_mb", type=int, default=200, help="each chunked body")
  parser.add_argument("--chunked_clients", type=int, default=2)
  parser.add_argument("--read_timeout", type=float, default=3.0, help="the server's")
  parser.add_argument("--out", default=OUT)
  parser.add_argument(
    "--abuse_only",
    type=int,
    metavar="PORT",
    help="(what the run starts) only the abusive clients, against PORT, "
    "for --seconds; prints what they got as JSON",
  )
  args = parser.parse_args(argv)
  from jaxseq.serving import connections

  problem = connections.open_files_for(args.idle + 256)  # the idle connections' ends
  if problem:
    raise SystemExit(f"error: {problem}")
  if args.abuse_only:
    import uvloop

    print(json.dumps(uvloop.run(abuse(args.abuse_only, args))))
    return 0
  load_before = os.getloadavg()
  workdir = ensure_workdir(args.workdir)
  port = _free_port()
  server = start_server(workdir, port, args.read_timeout)
  try:
    record = measure(args, workdir, port, server)
  finally:
    server.terminate()
    server.wait(timeout=120)
  record = {
    "command": "python -m benchmarks.serving.serve_abuse " + " ".join(argv),
    "workdir": workdir,
    "read_timeout": args.read_timeout,
    "seconds_per_phase": args.seconds,
    "good_rate": args.rate,
    "good_clients": args.clients,
    **record,
    "load_average_before": [round(x, 2) for x in load_before],
    "hardware": common.hardware(),
  }
  record["targets"] = verdict(record)
  common.write_json(args.out, record)
  print(
    json.dumps(
      {
        k: record[k]
        for k in ("good", "status_5xx", "rss_mib", "open_files", "idle_connections", "targets")
      },
      indent=1,
    )
  )
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
