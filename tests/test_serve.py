"""jaxseq-serve on the shared tiny trained workdir: a real server process, real HTTP, the page
in headless Chromium, every kind of bad input, clients that send too much, too slowly or
nothing at all, and SIGTERM with a request in flight."""

import asyncio
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from jaxseq.decoding.options import DecodeOptions
from jaxseq.serving import serve
from tests import runs
from tests.conftest import REPO, subprocess_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Server:
  """jaxseq-serve in a subprocess, ready once /health answers (workdir None: flags give
  --artifact)."""

  def __init__(self, workdir: str, *flags: str):
    self.port = _free_port()
    self.url = f"http://127.0.0.1:{self.port}"
    self.proc = subprocess.Popen(
      [sys.executable, "-m", "jaxseq.serving.serve", f"--port={self.port}", *flags]
      + [f"--workdir={workdir}"] * (workdir is not None),
      cwd=REPO,
      env=subprocess_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
      if self.proc.poll() is not None:
        raise AssertionError(f"jaxseq-serve exited: {self.proc.stderr.read()}")
      try:
        self.get("/health")
        return
      except OSError:
        time.sleep(0.2)
    raise AssertionError("jaxseq-serve did not start in 300 s")

  def get(self, path: str) -> tuple[int, bytes]:
    try:
      with urllib.request.urlopen(self.url + path, timeout=60) as r:
        return r.status, r.read()
    except urllib.error.HTTPError as e:
      return e.code, e.read()

  def post(self, body: bytes | dict) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(self.url + "/translate", data=data, method="POST")
    try:
      with urllib.request.urlopen(request, timeout=120) as r:
        return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
      return e.code, json.loads(e.read())

  def stop(self) -> tuple[int, str]:
    if self.proc.poll() is None:
      self.proc.send_signal(signal.SIGTERM)
    _, err = self.proc.communicate(timeout=120)
    return self.proc.returncode, err


@pytest.fixture(scope="module")
def server(trained_workdir):
  s = Server(
    trained_workdir, "--max_batch=4", "--max_texts=4", "--max_chars=60", "--beam_sizes=1,4"
  )
  yield s
  s.stop()


def test_translations_with_nbest_and_attention_and_health(server, trained_workdir):
  status, health = server.get("/health")
  assert status == 200 and json.loads(health)["status"] == "ok"
  assert json.loads(health)["step"] == runs.checkpoint_steps(trained_workdir)[-1]
  status, one = server.post({"text": "forty one"})
  assert status == 200 and set(one["translations"][0]) == {"translation", "score"}
  status, many = server.post({"text": ["seven", "forty one"], "nbest": 3, "attention": True})
  assert status == 200
  second = many["translations"][1]
  assert second["translation"] == one["translations"][0]["translation"]
  scores = [h["score"] for h in second["nbest"]]
  assert len(scores) == 3 and scores == sorted(scores, reverse=True)
  assert len(second["attention"]) == len(second["output_tokens"])
  assert all(len(row) == len(second["source_tokens"]) for row in second["attention"])
  status, greedy = server.post({"text": "forty one", "beam_size": 1})
  assert status == 200


def test_concurrent_requests_get_their_own_answers(server):
  texts = ["seven", "forty one", "three hundred", "twelve", "nine", "sixty six"]
  alone = [server.post({"text": t})[1]["translations"][0] for t in texts]
  answers = [None] * len(texts)

  def ask(i):
    answers[i] = server.post({"text": texts[i]})

  threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(texts))]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert [a[0] for a in answers] == [200] * len(texts)
  assert [a[1]["translations"][0]["translation"] for a in answers] == [
    a["translation"] for a in alone
  ]


BAD = [
  (b"{not json", 400, "not valid JSON"),
  (b'{"text": "forty \xff one"}', 400, "not valid UTF-8"),
  (b'["forty one"]', 400, "must be a JSON object"),
  (b'{"text": 41}', 400, "string or a list of strings"),
  (b'{"text": ["forty", 1]}', 400, "string or a list of strings"),
  (b'{"text": []}', 400, "empty list"),
  (b'{"beam_size": 4}', 400, '"text" is missing'),
  (b'{"text": "forty", "colour": "red"}', 400, "unknown field 'colour'"),
  (b'{"text": "forty", "beam_size": 3}', 400, "beam_size 3 is not served; allowed: 1, 4"),
  (b'{"text": "forty", "beam_size": true}', 400, "must be an integer"),
  (b'{"text": "forty", "nbest": 5}', 400, "nbest 5 must be between 1 and the beam size"),
  (b'{"text": "forty", "attention": "yes"}', 400, "must be true or false"),
  (json.dumps({"text": ["seven"] * 5}).encode(), 413, "5 texts in one request; at most 4"),
  (json.dumps({"text": "seven " * 20}).encode(), 413, "has 120 characters; at most 60"),
  (b'{"text": ["seven", "\\ud800"]}', 400, "text 1 is not valid Unicode"),
  (b"[" * 600 + b"]" * 600, 400, "nested too deeply; at most 32 levels"),
  (b'{"text": ' + b"[" * 500 + b"]" * 500 + b"}", 400, "nested too deeply"),
  (b'{"text": "one", "beam_size": ' + b"9" * 5000 + b"}", 400, "a number of 5000 characters"),
  (b'{"text": "forty", "' + b"x" * 2000 + b'": 1}', 400, "unknown field 'xxxxxxx"),
]


@pytest.mark.parametrize("body, status, says", BAD)
def test_bad_input_gets_one_message_and_the_service_stays_up(server, body, status, says):
  got, answer = server.post(body)
  assert got == status
  assert list(answer) == ["error"] and says in answer["error"]
  assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
  assert len(answer["error"]) < 300
  assert server.post({"text": "forty one"})[0] == 200


def test_unknown_paths_methods_and_a_client_that_leaves(server):
  status, body = server.get("/nothing")
  assert status == 404 and "no such path" in json.loads(body)["error"]
  status, body = server.get("/translate")
  assert status == 405 and json.loads(body)["error"] == "GET is not allowed on /translate"
  # A client announces 500 bytes, sends 10 and disconnects.
  with socket.create_connection(("127.0.0.1", server.port)) as s:
    s.sendall(
      b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      b'Content-Length: 500\r\n\r\n{"text": "'
    )
  assert server.post({"text": "forty one"})[0] == 200


def test_the_page_translates_and_draws_the_attention(server, tmp_path):
  from playwright.sync_api import sync_playwright

  if CHROMIUM is None:
    pytest.fail(
      "Chromium is not installed; the README's test command installs it (apt-get install chromium)"
    )
  _, api = server.post({"text": "seven hundred and twelve", "attention": True})
  expected = api["translations"][0]
  with sync_playwright() as p:
    browser = p.chromium.launch(
      executable_path=CHROMIUM,
      args=[
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    )
    page = browser.new_page()
    page.goto(server.url + "/")
    page.fill("#text", "seven hundred and twelve")
    page.click("#submit")
    page.wait_for_selector("body[data-state=done]", timeout=60_000)
    translation = page.inner_text("#translation")
    rows = page.eval_on_selector_all(
      "#heatmap tbody tr",
      "rows => rows.map(r => [...r.querySelectorAll('td')]"
      ".map(td => parseFloat(td.dataset.weight)))",
    )
    columns = page.eval_on_selector_all("#heatmap thead th", "ths => ths.map(t => t.textContent)")
    page.screenshot(path=str(tmp_path / "page.png"))
    browser.close()
  assert translation == expected["translation"]
  assert columns[1:] == expected["source_tokens"]
  assert len(rows) == len(expected["output_tokens"])
  for row, weights in zip(rows, expected["attention"]):
    assert row == pytest.approx(weights, abs=1e-4)
  assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigterm_lets_the_request_in_flight_finish(exported):
  # Served from an exported artifact; a long batching wait keeps the request in flight
  # while the signal arrives.
  s = Server(None, f"--artifact={exported}", "--max_batch=2", "--max_wait_ms=3000")
  assert json.loads(s.get("/health")[1])["beam_sizes"] == [1, 4]
  answer = {}
  thread = threading.Thread(target=lambda: answer.update(result=s.post({"text": "seven"})))
  thread.start()
  deadline = time.time() + 60
  while json.loads(s.get("/health")[1])["in_flight"] == 0 and time.time() < deadline:
    time.sleep(0.05)
  code, err = s.stop()
  thread.join(timeout=60)
  assert answer["result"][0] == 200 and answer["result"][1]["translations"]
  assert code == 0, err
  assert "Traceback" not in err


def test_the_batcher_puts_concurrent_texts_into_one_device_call():
  calls = []

  class Recorder:
    options = DecodeOptions(beam_size=4)

    def translate(self, requests, *, options, batch_size, attention):
      calls.append((len(requests), batch_size, options.beam_size, options.nbest, attention))
      return [{"translation": r.text.upper()} for r in requests]

  async def main():
    batcher = serve.Batcher(Recorder(), max_batch=8, max_wait=0.5)
    worker = asyncio.create_task(batcher.run())
    answers = await asyncio.gather(
      batcher.submit(["a", "b"], 4),
      batcher.submit(["c"], 4, nbest=2, attention=True),
      batcher.submit(["d"], 1),
    )
    worker.cancel()
    return answers

  answers = asyncio.run(main())
  assert [[r["translation"] for r in a] for a in answers] == [["A", "B"], ["C"], ["D"]]
  # One call per beam size; three texts padded to the row bucket 4, one to 1; n-best
  # lists and attention as far as one of the requests asked.
  assert sorted(calls) == [(1, 1, 1, 1, False), (3, 4, 4, 2, True)]
  assert serve.row_buckets(32) == [1, 4, 16, 32] and serve.row_buckets(1) == [1]


READ_TIMEOUT = 2.0  # the guarded server's; what the clients below wait for is bounded by it


@pytest.fixture(scope="module")
def guarded(trained_workdir):
  """A server with small limits, to be reached quickly: a 2 s read deadline, 1 s of
  keep-alive, 1,000 connections and 4,096-byte bodies."""
  s = Server(
    trained_workdir,
    f"--read_timeout={READ_TIMEOUT}",
    "--keepalive_timeout=1",
    "--max_connections=1000",
    "--max_body=4096",
  )
  yield s
  s.stop()


def _connect(port: int) -> socket.socket:
  return socket.create_connection(("127.0.0.1", port), timeout=30)


def _until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
  """What the server sends until it closes the connection, and the seconds that took;
  AssertionError if it is still open after `within` seconds."""
  started, received = time.monotonic(), b""
  sock.settimeout(within)
  try:
    while chunk := sock.recv(65536):
      received += chunk
  except TimeoutError:
    raise AssertionError(f"still open after {within} s; received {received[:200]!r}") from None
  except ConnectionResetError:
    pass
  return received, time.monotonic() - started


def _json_error(response: bytes, status: int) -> str:
  head, _, body = response.partition(b"\r\n\r\n")
  assert head.startswith(b"HTTP/1.1 %d " % status), response[:200]
  message = json.loads(body)["error"]
  assert "\n" not in message
  return message


def _open_files(pid: int) -> int:
  return len(os.listdir(f"/proc/{pid}/fd"))


def _settled_open_files(pid: int) -> int:
  """The server's descriptors once the connections of earlier tests have closed."""
  counts, deadline = [], time.monotonic() + 3 * READ_TIMEOUT
  while time.monotonic() < deadline:
    counts.append(_open_files(pid))
    if len(counts) >= 3 and len(set(counts[-3:])) == 1:  # the same for half a second
      break
    time.sleep(0.25)
  return counts[-1]


def test_idle_connections_are_closed_at_the_read_timeout_and_one_past_the_cap_gets_503(guarded):
  pid = guarded.proc.pid
  baseline = _settled_open_files(pid)
  idle, opened = [], time.monotonic()
  try:
    for _ in range(1000):
      idle.append(_connect(guarded.port))
    extra = _connect(guarded.port)
    refused, _ = _until_closed(extra, within=10)
    extra.close()
    assert "1000 connections open" in _json_error(refused, 503)
    assert _open_files(pid) >= baseline + 990  # they are held
    selector = selectors.DefaultSelector()
    for sock in idle:
      sock.setblocking(False)
      selector.register(sock, selectors.EVENT_READ)
    closed_after = []
    while len(closed_after) < len(idle) and time.monotonic() < opened + READ_TIMEOUT + 10:
      for key, _ in selector.select(timeout=1):
        try:
          assert key.fileobj.recv(1) == b""  # closed without a word: nothing was asked
        except ConnectionResetError:
          pass
        closed_after.append(time.monotonic() - opened)
        selector.unregister(key.fileobj)
  finally:
    for sock in idle:
      sock.close()
  assert len(closed_after) == 1000
  assert READ_TIMEOUT - 0.1 <= min(closed_after) and max(closed_after) <= READ_TIMEOUT + 5
  deadline = time.monotonic() + 10
  while _open_files(pid) > baseline and time.monotonic() < deadline:
    time.sleep(0.1)
  assert _open_files(pid) <= baseline
  assert guarded.post({"text": "forty one"})[0] == 200


PARTIAL = [
  b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-",  # part of the headers
  b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
  b'Content-Length: 500\r\n\r\n{"text": "',  # less body than announced
  b"POST /translate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
  b'5\r\n{"tex\r\n',  # a chunked body that never ends
]


@pytest.mark.parametrize("sent", PARTIAL, ids=["headers", "body", "chunked"])
def test_a_request_that_never_arrives_whole_gets_408_at_the_read_timeout(guarded, sent):
  with _connect(guarded.port) as sock:
    sock.sendall(sent)
    response, seconds = _until_closed(sock, within=READ_TIMEOUT + 10)
  assert "did not arrive whole within 2 seconds" in _json_error(response, 408)
  assert READ_TIMEOUT - 0.1 <= seconds <= READ_TIMEOUT + 5


def test_a_request_sent_a_byte_at_a_time_cannot_hold_the_connection(guarded):
  request = b"POST /translate HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
  with _connect(guarded.port) as sock:
    started = time.monotonic()
    try:
      for byte in request:  # a byte every 0.1 s: 10 s for all, far past the deadline
        sock.sendall(bytes([byte]))
        time.sleep(0.1)
    except OSError:  # closed by the server meanwhile
      pass
    response, _ = _until_closed(sock, within=10)
    seconds = time.monotonic() - started
  _json_error(response, 408)
  assert seconds <= READ_TIMEOUT + 5


def test_a_kept_alive_connection_is_closed_after_the_keepalive_timeout(guarded):
  body = b'{"text": "seven"}'
  with _connect(guarded.port) as sock:
    sock.sendall(
      b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    response, seconds = _until_closed(sock, within=60)
  assert response.startswith(b"HTTP/1.1 200 ") and b"translations" in response
  assert seconds >= 1.0  # kept open for the keep-alive second after the answer, then closed


def test_headers_past_64_kib_get_431(guarded):
  with _connect(guarded.port) as sock:
    try:
      sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000)
    except OSError:  # closed by the server before all of it was sent
      pass
    response, _ = _until_closed(sock, within=10)
  assert "at most 65536" in _json_error(response, 431)


def test_a_chunked_body_past_max_body_gets_413_before_it_ends(guarded):
  chunk = b'{"text": "' + b"x" * 8000
  with _connect(guarded.port) as sock:
    sock.sendall(
      b"POST /translate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      + b"%x\r\n%s\r\n" % (len(chunk), chunk)
    )  # and never the last chunk
    response, seconds = _until_closed(sock, within=READ_TIMEOUT + 10)
  assert "more than 4096 bytes; at most 4096" in _json_error(response, 413)
  assert seconds < READ_TIMEOUT  # answered on arrival, not at the read deadline
  status, answer = guarded.post(b'{"text": "' + b"x" * 5000 + b'"}')
  assert status == 413 and "at most 4096" in answer["error"]


def _request(text: str, close: bool = False) -> bytes:
  body = json.dumps({"text": text}).encode()
  return b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s" % (
    len(body),
    b"Connection: close\r\n" if close else b"",
    body,
  )


def test_a_few_pipelined_requests_are_answered_in_order_and_a_flood_gets_429(guarded):
  texts = ["seven", "forty one", "twelve"]
  with _connect(guarded.port) as sock:
    sock.sendall(b"".join(_request(t, close=t == texts[-1]) for t in texts))
    response, _ = _until_closed(sock, within=60)
  answers = [
    json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])
    for part in response.split(b"HTTP/1.1 200 OK")[1:]
  ]
  assert len(answers) == 3
  alone = [guarded.post({"text": t})[1]["translations"] for t in texts]
  assert [a["translations"] for a in answers] == alone
  with _connect(guarded.port) as sock:
    sock.sendall(_request("seven") * 20)  # one segment, read at once: none is left unread
    response, _ = _until_closed(sock, within=60)
  assert "more than 8 requests sent ahead of their answers" in _json_error(
    response[response.index(b"HTTP/1.1 429 ") :], 429
  )
  assert guarded.post({"text": "seven"})[0] == 200


@pytest.mark.parametrize(
  "sent",
  [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # TLS hello
    b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n"
    b'Transfer-Encoding: chunked\r\n\r\n{"text": "seven"}',  # smuggling's ambiguity
    b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
  ],
  ids=["tls", "length-and-chunked", "negative-length"],
)
def test_what_is_not_http_gets_a_json_400(guarded, sent):
  with _connect(guarded.port) as sock:
    sock.sendall(sent)
    response, _ = _until_closed(sock, within=30)
  assert _json_error(response, 400).startswith("not an HTTP/1.1 request")


def test_flag_mistakes_are_one_line(trained_workdir):
  proc = subprocess.run(
    [sys.executable, "-m", "jaxseq.serving.serve", "--max_batch=0", f"--workdir={trained_workdir}"],
    cwd=REPO,
    env=subprocess_env(),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    "error: --max_batch=0 is not allowed; expected an integer >= 1 (see jaxseq-serve --help)"
  ]


@pytest.mark.parametrize(
  "flag, says",
  [
    ("--read_timeout=0", "--read_timeout=0.0 is not allowed; expected a number of seconds > 0"),
    ("--keepalive_timeout=nan", "--keepalive_timeout=nan is not allowed"),
    ("--max_body=0", "--max_body=0 is not allowed; expected an integer >= 1"),
    ("--max_connections=-5", "--max_connections=-5 is not allowed"),
  ],
)
def test_limit_flag_mistakes_are_one_line(flag, says):
  proc = subprocess.run(
    [sys.executable, "-m", "jaxseq.serving.serve", flag, "--workdir=unused"],
    cwd=REPO,
    env=subprocess_env(),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and says in lines[0]


def test_more_connections_than_the_process_may_open_is_one_line(trained_workdir):
  import resource

  _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  if hard == resource.RLIM_INFINITY:
    hard = 1 << 20
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxseq.serving.serve",
      f"--max_connections={hard}",
      f"--workdir={trained_workdir}",
    ],
    cwd=REPO,
    env=subprocess_env(),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    f"error: --max_connections={hard} needs {hard + 256} open files, but this process may "
    f"open at most {hard} (ulimit -Hn); lower --max_connections"
  ]
