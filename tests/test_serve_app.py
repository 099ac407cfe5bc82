"""jaxseq-serve's application in this process, with fast stand-in models: one bad text
never fails the others batched with it, and property-based fuzzing (Hypothesis) of the
request parsing and of the whole application finds no 5xx and no traceback."""

import asyncio
import json
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from jaxseq.data import tokenizers
from jaxseq.decoding.options import DecodeOptions
from jaxseq.serving import jsontext, serve
from jaxseq.serving.translate import Request, Translator

LIMITS = serve.Limits(max_texts=4, max_chars=60, beam_sizes=(1, 4), beam_size=4)
GERMAN = [
  "Ein Mann fährt Fahrrad.",
  "Zwei Hunde spielen im Schnee.",
  "Eine Frau liest ein Buch.",
  "Kinder spielen am Strand.",
] * 4
POISON = "\x07"  # the stand-in tokenizer below raises for texts holding it


class EchoBackend:
  """Stands for a model: each source's best "translation" is its own ids."""

  options = DecodeOptions(beam_size=4)

  def translate_ids(self, sources, options, *, batch_size, prefixes=None, progress=None):
    nbest = options.nbest
    hypotheses = [
      types.SimpleNamespace(
        ids=list(map(int, s)),
        score=-float(len(s)),
        attention=np.full((len(s), len(s)), 1 / len(s)),
        ended=True,
      )
      for s in sources
    ]
    return [types.SimpleNamespace(nbest=[h] * nbest, best=h) for h in hypotheses]


def echo_translator(tokenizer) -> Translator:
  """The real Translator (tokenizing, assembling results) over EchoBackend."""
  translator = Translator.__new__(Translator)  # without loading a workdir
  translator.backend = EchoBackend()
  translator.src_vocab = translator.tgt_vocab = tokenizer
  translator.step, translator.max_length = 7, 64
  translator.options = EchoBackend.options
  return translator


@pytest.fixture(scope="module")
def sentencepiece():
  return tokenizers.build("sentencepiece", GERMAN, vocab_size=300)


class PickyTokenizer:
  """A word tokenizer that raises for any text holding POISON, as a tokenizer might for
  input it cannot take."""

  def __init__(self):
    self.inner = tokenizers.build("word", GERMAN)
    self.words = self.inner.words

  def encode(self, text: str) -> list[int]:
    if POISON in text:
      raise RuntimeError("this tokenizer cannot take the text")
    return self.inner.encode(text) or [3]

  def decode(self, ids) -> str:
    return self.inner.decode(ids)


def run_batched(translator, requests: list[list[str]], max_batch: int = 8) -> list:
  """Submits the requests together to a Batcher (one batch), each answer its results or
  the exception it raised."""

  async def main():
    batcher = serve.Batcher(translator, max_batch=max_batch, max_wait=0.5)
    worker = asyncio.create_task(batcher.run())
    answers = await asyncio.gather(
      *(batcher.submit(texts, 4) for texts in requests), return_exceptions=True
    )
    worker.cancel()
    return answers, batcher.batches

  return asyncio.run(main())


def test_a_lone_surrogate_fails_only_its_own_request_with_sentencepiece(sentencepiece):
  with pytest.raises(RuntimeError, match="Unable to cast"):
    sentencepiece.encode("\ud800")  # what made the whole batch fail
  answers, _ = run_batched(
    echo_translator(sentencepiece),
    [["\ud800"], ["Ein Mann fährt Fahrrad."], ["a\x00b", "\udfff x"]],
  )
  bad, good, mixed = answers
  assert isinstance(bad, serve.TextFailed) and bad.index == 0
  assert isinstance(bad.cause, RuntimeError)
  assert [r.translation for r in good] == ["Ein Mann fährt Fahrrad."]  # the exact echo
  assert isinstance(mixed, serve.TextFailed) and mixed.index == 1


def test_a_failing_text_is_found_by_halving_and_the_others_are_answered():
  calls = []
  translator = echo_translator(PickyTokenizer())
  original = translator.translate

  def counting(requests, **options):
    calls.append(len(requests))
    return original(requests, **options)

  translator.translate = counting
  texts = [[t] for t in GERMAN[:7]] + [[f"Ein {POISON} Mann"]]
  answers, batches = run_batched(translator, texts)
  alone = [translator.translate([Request(t)], batch_size=1)[0].translation for t in GERMAN[:7]]
  assert [a[0].translation for a in answers[:7]] == alone
  assert isinstance(answers[7], serve.TextFailed) and answers[7].index == 0
  # One batch of 8; it fails, then 4 + 4, then 2 + 2 of the failing half, then 1 + 1.
  assert batches == 1 and calls[:7] == [8, 4, 4, 2, 2, 1, 1]


@pytest.fixture(scope="module")
def client(sentencepiece):
  """The application over the SentencePiece echo translator, with its batcher running."""
  translator = echo_translator(sentencepiece)
  batcher = serve.Batcher(translator, max_batch=4, max_wait=0.0)
  app = serve.make_app(
    translator, LIMITS, batcher, {"model": "echo", "step": 7}, max_body=200_000
  )  # room for the deep JSON below
  with TestClient(app, raise_server_exceptions=False) as c:
    yield c


def one_line_error(response) -> str:
  answer = response.json()
  assert list(answer) == ["error"]
  assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
  return answer["error"]


def test_invalid_unicode_is_refused_per_text_and_nul_is_translated(client):
  refused = client.post("/translate", content=b'{"text": ["fine", "\\ud800 x"]}')
  assert refused.status_code == 400
  assert "text 1 is not valid Unicode (the lone surrogate U+D800 at character 1)" in one_line_error(
    refused
  )
  nul = client.post("/translate", json={"text": "a\x00b"})
  assert nul.status_code == 200 and nul.json()["translations"][0]["translation"] == "a\x00b"
  assert client.get("/health").json()["step"] == 7


def test_a_text_failing_in_the_model_gets_a_422_and_one_line():
  picky = echo_translator(PickyTokenizer())
  app = serve.make_app(
    picky, LIMITS, serve.Batcher(picky, max_batch=4, max_wait=0.0), {"model": "picky", "step": 1}
  )
  with TestClient(app, raise_server_exceptions=False) as c:
    failed = c.post("/translate", json={"text": ["Ein Mann", f"zwei {POISON}"]})
    ok = c.post("/translate", json={"text": "Ein Mann"})
  assert failed.status_code == 422
  assert one_line_error(failed).startswith("text 1 could not be translated (RuntimeError)")
  assert ok.status_code == 200


@pytest.mark.parametrize(
  "body",
  [
    b"[" * 60000 + b"]" * 60000,
    b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"text": "one", "beam_size": ' + b"9" * 5000 + b"}",
    b'{"text": "one", "nbest": 1e999999}',
    b'{"text": "one", "beam_size": NaN}',
  ],
)
def test_json_a_parser_chokes_on_gets_a_400(client, body):
  response = client.post("/translate", content=body)
  assert response.status_code == 400
  one_line_error(response)


class EndlessBody:
  """A request whose chunked body never ends (what starlette's Request offers read_body)."""

  def __init__(self, chunk: bytes, length: str | None = None):
    self.chunk, self.chunks_read = chunk, 0
    self.headers = {} if length is None else {"content-length": length}

  async def stream(self):
    while True:
      self.chunks_read += 1
      yield self.chunk


def test_a_body_is_refused_as_soon_as_it_passes_max_body():
  request = EndlessBody(b"x" * 1000)
  with pytest.raises(serve.RequestError, match="more than 4096 bytes; at most 4096"):
    asyncio.run(serve.read_body(request, 4096))
  assert request.chunks_read == 5  # stopped at the chunk that passed the limit
  announced = EndlessBody(b"x", length="5000")
  with pytest.raises(serve.RequestError, match="the body has 5000 bytes; at most 4096"):
    asyncio.run(serve.read_body(announced, 4096))
  assert announced.chunks_read == 0


# Fuzzing: what a client can send, down to any bytes.
ADVERSARIAL = st.sampled_from(
  [
    "\ud800",
    "\udfff",
    "\x00",
    "a\x00b",
    "e\u0301\u0301\u0301",
    "\u202e\u2066",
    "\ufeff",
    "\u0000" * 60,
    "\U0010ffff",
    "\x1b[31m",
    "\r\n",
    "<script>",
    "ü" * 61,
    "",
    " ",
  ]
)
TEXTS = st.one_of(
  ADVERSARIAL,
  st.text(max_size=70),
  st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
)
NUMBERS = st.one_of(
  st.integers(),
  st.integers(-(10**40), 10**40),
  st.floats(allow_nan=False),
  st.sampled_from([0, 1, 4, -1, True, False, None]),
)
JSON = st.recursive(
  st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS),
  lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXTS, inner, max_size=4),
  max_leaves=20,
)
REQUESTS = st.fixed_dictionaries(
  {"text": st.one_of(TEXTS, st.lists(TEXTS, max_size=6), JSON)},
  optional={
    "beam_size": NUMBERS,
    "nbest": NUMBERS,
    "attention": st.one_of(st.booleans(), JSON),
    "colour": JSON,
  },
)


def body_of(value) -> bytes:
  """JSON text of any value, lone surrogates included (escaped, as JSON allows)."""
  return json.dumps(value).encode()


BODIES = st.one_of(
  st.binary(max_size=300),
  JSON.map(body_of),
  REQUESTS.map(body_of),
  st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
  st.integers(30, 6000).map(lambda n: b'{"text": "a", "nbest": ' + b"7" * n + b"}"),
)


def check_parsed(body: bytes):
  """parse_request gives a job within the limits, or a 400/413 with one line."""
  try:
    job = serve.parse_request(body, LIMITS)
  except serve.RequestError as e:
    assert e.status in (400, 413) and "\n" not in str(e) and len(str(e)) < 300
    return None
  assert 1 <= len(job.texts) <= LIMITS.max_texts
  assert all(jsontext.unicode_problem(t) is None and len(t) <= LIMITS.max_chars for t in job.texts)
  assert job.beam_size in LIMITS.beam_sizes and 1 <= job.nbest <= job.beam_size
  return job


@settings(max_examples=400, deadline=None)
@given(BODIES)
def test_parse_request_fuzzed_gives_a_job_or_one_line(body):
  check_parsed(body)


@settings(
  max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(BODIES)
def test_the_application_fuzzed_answers_every_text_or_one_line_4xx(client, body):
  response = client.post("/translate", content=body)
  assert response.status_code < 500, response.text
  if response.status_code == 200:
    job = check_parsed(body)
    translations = response.json()["translations"]
    assert len(translations) == len(job.texts)
    assert all(isinstance(t["translation"], str) for t in translations)
  else:
    assert 400 <= response.status_code < 500
    one_line_error(response)
