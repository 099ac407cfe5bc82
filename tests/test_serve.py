"""jaxseq-serve on the shared tiny trained workdir: a real server process, real HTTP, the page
in headless Chromium, every kind of bad input, and SIGTERM with a request in flight."""

import asyncio
import json
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

from jaxseq import serve
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
        [sys.executable, "-m", "jaxseq.serve", f"--port={self.port}", *flags]
        + [f"--workdir={workdir}"] * (workdir is not None), cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
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
  s = Server(trained_workdir, "--max_batch=4", "--max_texts=4", "--max_chars=60",
             "--beam_sizes=1,4")
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
  assert [a[1]["translations"][0]["translation"] for a in answers] == \
      [a["translation"] for a in alone]


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
    s.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 500\r\n\r\n{\"text\": \"")
  assert server.post({"text": "forty one"})[0] == 200


def test_the_page_translates_and_draws_the_attention(server, tmp_path):
  from playwright.sync_api import sync_playwright
  if CHROMIUM is None:
    pytest.fail("Chromium is not installed; the README's test command installs it "
                "(apt-get install chromium)")
  _, api = server.post({"text": "seven hundred and twelve", "attention": True})
  expected = api["translations"][0]
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"])
    page = browser.new_page()
    page.goto(server.url + "/")
    page.fill("#text", "seven hundred and twelve")
    page.click("#submit")
    page.wait_for_selector("body[data-state=done]", timeout=60_000)
    translation = page.inner_text("#translation")
    rows = page.eval_on_selector_all(
        "#heatmap tbody tr", "rows => rows.map(r => [...r.querySelectorAll('td')]"
        ".map(td => parseFloat(td.dataset.weight)))")
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
  s = Server(None, f"--artifact={exported}", "--max_batch=2",
             "--max_wait_ms=3000")
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
    settings = {"beam_size": 4}

    def translate(self, requests, *, nbest, batch_size, settings, attention):
      calls.append((len(requests), batch_size, settings["beam_size"], nbest, attention))
      return [{"translation": r.text.upper()} for r in requests]

  async def main():
    batcher = serve.Batcher(Recorder(), max_batch=8, max_wait=0.5)
    worker = asyncio.create_task(batcher.run())
    answers = await asyncio.gather(batcher.submit(["a", "b"], 4),
                                   batcher.submit(["c"], 4, nbest=2, attention=True),
                                   batcher.submit(["d"], 1))
    worker.cancel()
    return answers
  answers = asyncio.run(main())
  assert [[r["translation"] for r in a] for a in answers] == [["A", "B"], ["C"], ["D"]]
  # One call per beam size; three texts padded to the row bucket 4, one to 1; n-best
  # lists and attention as far as one of the requests asked.
  assert sorted(calls) == [(1, 1, 1, 1, False), (3, 4, 4, 2, True)]
  assert serve.row_buckets(32) == [1, 4, 16, 32] and serve.row_buckets(1) == [1]


def test_flag_mistakes_are_one_line(trained_workdir):
  proc = subprocess.run([sys.executable, "-m", "jaxseq.serve", "--max_batch=0",
                         f"--workdir={trained_workdir}"], cwd=REPO, env=subprocess_env(),
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      "error: --max_batch=0 is not allowed; expected an integer >= 1 (see jaxseq-serve --help)"]

