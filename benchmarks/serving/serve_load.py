"""Load on jaxseq-serve over loopback: N concurrent clients against one client at a time.

    python train.py --workdir=/tmp/default
    python -m benchmarks.serving.serve_load --workdir=/tmp/default --clients=32 --requests=1024

Starts `jaxseq-serve` on a free loopback port (compilation happens before it listens and is
not timed), then sends the same held-out sentences of the workdir's corpus, one sentence a
request: first one request at a time from one client, then from --clients concurrent
clients (each with its own keep-alive connection) until --requests are answered. Both phases
run --rounds times, one after the other. Reports sentences per second (the median over
the rounds), p50 (median) and p99 (worst) latency and failed requests for both, each
round, and the hardware, in benchmarks/results/serving/load.json. Bounded: at most
--requests requests a phase and --seconds of sending.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

from benchmarks import common


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _sentences(workdir: str, count: int) -> list[str]:
  from jaxseq.data import corpora
  from jaxseq.training import checkpointing

  config = checkpointing.load_config(workdir)
  corpus = corpora.load_corpus(config, workdir)
  sources = [s for s, _ in corpus.eval] or [s for s, _ in corpus.train]
  return [sources[i % len(sources)] for i in range(count)]


def wait_until_listening(server: subprocess.Popen) -> str:
  """The line jaxseq-serve prints once every shape is compiled (after the line naming the
  checkpoint it loaded), or the last line it printed before it stopped."""
  line = ""
  for line in server.stderr:
    if "compiled" in line:
      break
  return line


async def read_response(reader) -> tuple[int, bytes]:
  """(status, body) of one HTTP/1.1 answer with a Content-Length, read from a stream."""
  head = await reader.readuntil(b"\r\n\r\n")
  status = int(head.split(b" ", 2)[1])
  length = next(
    int(line.split(b":")[1])
    for line in head.split(b"\r\n")
    if line.lower().startswith(b"content-length:")
  )
  return status, await reader.readexactly(length)


class Client:
  """One keep-alive HTTP/1.1 connection over asyncio streams (a thread per client would
  spend the cores the server needs); `ask` returns (ok, seconds)."""

  def __init__(self, port: int):
    self.port = port
    self.streams = None

  async def ask(self, text: str) -> tuple[bool, float]:
    body = json.dumps({"text": text}).encode()
    started = time.perf_counter()
    try:
      if self.streams is None:
        self.streams = await asyncio.open_connection("127.0.0.1", self.port)
      reader, writer = self.streams
      writer.write(
        b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
      )
      status, body = await read_response(reader)
      answer = json.loads(body)
      ok = status == 200 and bool(answer["translations"])
    except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
      ok, self.streams = False, None
    return ok, time.perf_counter() - started


async def _phase(port: int, sentences: list[str], clients: int, seconds: float) -> dict:
  latencies, failures, position = [], [0], [0]
  stop_at = time.perf_counter() + seconds

  async def work():
    client = Client(port)
    while time.perf_counter() < stop_at and position[0] < len(sentences):
      text = sentences[position[0]]
      position[0] += 1
      ok, took = await client.ask(text)
      latencies.append(took)
      failures[0] += not ok

  started = time.perf_counter()
  await asyncio.gather(*(work() for _ in range(clients)))
  elapsed = time.perf_counter() - started
  ordered = sorted(latencies)
  return {
    "clients": clients,
    "requests": len(latencies),
    "failed": failures[0],
    "seconds": round(elapsed, 3),
    "sentences_per_second": len(latencies) / elapsed,
    "latency_p50": statistics.median(ordered),
    "latency_p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
  }


def phase(port: int, sentences: list[str], clients: int, seconds: float) -> dict:
  """Sends every sentence from `clients` concurrent clients (each takes the next one).

  The clients share the server's cores, so they run on uvloop (the event loop uvicorn
  serves with) to take as little of them as they can."""
  import uvloop

  return uvloop.run(_phase(port, sentences, clients, seconds))


def summary(rounds: list[dict]) -> dict:
  """One phase over several rounds: the median rate and p50, the worst p99, every request."""
  return {
    "clients": rounds[0]["clients"],
    "requests": sum(r["requests"] for r in rounds),
    "failed": sum(r["failed"] for r in rounds),
    "sentences_per_second": statistics.median(r["sentences_per_second"] for r in rounds),
    "latency_p50": statistics.median(r["latency_p50"] for r in rounds),
    "latency_p99": max(r["latency_p99"] for r in rounds),
  }


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--clients", type=int, default=32)
  parser.add_argument("--requests", type=int, default=1024, help="per phase, at most")
  parser.add_argument(
    "--sequential_requests", type=int, default=128, help="requests of the one-at-a-time phase"
  )
  parser.add_argument("--seconds", type=float, default=120, help="per phase, at most")
  parser.add_argument(
    "--rounds",
    type=int,
    default=3,
    help="both phases, one after the other, this many times (medians "
    "reported: two cores shared by clients and server make one round noisy)",
  )
  parser.add_argument("--max_batch", type=int, default=16, help="jaxseq-serve's (its default)")
  parser.add_argument("--out", default=os.path.join(common.RESULTS, "serving", "load.json"))
  args = parser.parse_args(argv)
  sentences = _sentences(args.workdir, args.requests)
  port = _free_port()
  env = dict(os.environ, PYTHONPATH=common.ROOT)
  server = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "jaxseq.serving.serve",
      f"--workdir={args.workdir}",
      f"--port={port}",
      f"--max_batch={args.max_batch}",
    ],
    env=env,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    started = wait_until_listening(server)
    if "compiled" not in started:
      raise SystemExit(f"error: jaxseq-serve did not start: {started}{server.stderr.read()}")
    deadline = time.time() + 60
    while time.time() < deadline:
      try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
      except OSError:
        time.sleep(0.1)
    phase(port, sentences[:1], 1, args.seconds)  # one request before timing
    rounds = []
    for _ in range(args.rounds):
      rounds.append(
        {
          "one_at_a_time": phase(port, sentences[: args.sequential_requests], 1, args.seconds),
          "concurrent": phase(port, sentences, args.clients, args.seconds),
        }
      )
  finally:
    server.terminate()
    server.wait(timeout=120)
  record = {
    "command": common.command_line("benchmarks.serving.serve_load", argv),
    "server": started.strip(),
    "max_batch": args.max_batch,
    "rounds": rounds,
    "one_at_a_time": summary([r["one_at_a_time"] for r in rounds]),
    "concurrent": summary([r["concurrent"] for r in rounds]),
    "hardware": common.run_hardware(),
  }
  record["speedup"] = (
    record["concurrent"]["sentences_per_second"] / record["one_at_a_time"]["sentences_per_second"]
  )
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(record, f, indent=2)
  print(json.dumps({k: record[k] for k in ("one_at_a_time", "concurrent", "speedup")}, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
