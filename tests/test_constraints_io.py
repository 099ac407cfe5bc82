"""Lexical constraints through every user-facing path, on the shared tiny trained workdir:
translate_ids, jaxseq-translate (--constraint, --json "constraints"), jaxseq-serve's
"constraints" field, jaxseq-evaluate --constraints and the exported artifact."""

import asyncio
import dataclasses
import json
import shutil

import numpy as np
import pytest
from starlette.testclient import TestClient

from jaxseq.data import tokenizers
from jaxseq.decoding import batching, phrases
from jaxseq.decoding.options import DecodeOptions, Search
from jaxseq.serving import evaluate, export, serve
from jaxseq.serving.artifact import Artifact
from jaxseq.serving.translate import Translator
from tests.test_translate import SENTENCES, _one_error_line, translate  # noqa: F401  (fixture)

PHRASE = "hundert"


def _met(result: dict, phrase: str) -> bool:
  """A --json result holds the phrase, or says that its constraints were not met."""
  if result["constraints_met"]:
    return all(phrase in h["translation"].split() for h in result["nbest"])
  return result["translation"] == "" and result["nbest"] == []


@pytest.fixture(scope="module")
def translator(trained_workdir) -> Translator:
  return Translator([trained_workdir], command="test")


def test_translate_ids_with_and_without_constraints(translator):
  backend = translator.backend
  vocab = translator.tgt_vocab
  sources = [np.asarray(translator.src_vocab.encode(s), np.int32) for s in SENTENCES]
  options = dataclasses.replace(translator.options, nbest=2)
  plain = backend.translate_ids(sources, options, batch_size=2)
  wanted = [[vocab.encode(PHRASE)], [], [vocab.encode("drei"), vocab.encode("acht")]]
  constrained = backend.translate_ids(sources, options, batch_size=2, constraints=wanted)
  # A row without constraints gives exactly today's output.
  assert [h.ids for h in constrained[1].nbest] == [h.ids for h in plain[1].nbest]
  assert [h.score for h in constrained[1].nbest] == pytest.approx([h.score for h in plain[1].nbest])
  for out, want in zip(constrained, wanted):
    if want and not out.unmet:
      assert out.nbest and all(phrases.contains(h.ids, p) for h in out.nbest for p in want)
    else:
      assert out.nbest == [] or not want
  for search in (Search.GREEDY, Search.SAMPLE):
    with pytest.raises(ValueError, match="constraints need beam search"):
      backend.translate_ids(sources, DecodeOptions(search=search), batch_size=2, constraints=wanted)
  too_many = [[[5] * 33]] + [[]] * 2
  with pytest.raises(ValueError, match="at most 32"):
    backend.translate_ids(sources, options, batch_size=2, constraints=too_many)


def test_constraint_sizes_are_few_powers_of_two():
  assert [batching.constraint_width(n) for n in (1, 4, 5, 9, 17, 32)] == [4, 4, 8, 16, 32, 32]
  with pytest.raises(ValueError, match="at most 32"):
    batching.constraint_width(33)
  assert batching.stack_constraints([[], []], batching.CONSTRAINT_SIZES) is None
  stacked = batching.stack_constraints([[[5, 6]], []], batching.CONSTRAINT_SIZES)
  assert stacked.tokens.shape == (2, 4) and stacked.phrase[1].tolist() == [-1] * 4


def test_translate_with_constraint_flags_and_json(trained_workdir, translate):
  rc, out, err = translate(trained_workdir, "--json", f"--constraint={PHRASE}", *SENTENCES)
  assert rc == 0, err
  results = [json.loads(line) for line in out.splitlines()]
  assert [r["constraints"] for r in results] == [[PHRASE]] * 3
  assert all(_met(r, PHRASE) for r in results)
  # Plain output: the phrase, or an empty line and one warning per unmet line.
  rc, plain, err = translate(trained_workdir, f"--constraint={PHRASE}", *SENTENCES)
  assert rc == 0, err
  for number, (line, result) in enumerate(zip(plain.splitlines(), results), 1):
    assert line == result["translation"]
    warned = f"warning: line {number}: no translation contains every constraint" in err
    assert warned == (not result["constraints_met"])
  # A phrase longer than any output the limit allows: never met, said so, nothing printed.
  long = "--constraint=" + " ".join(["acht"] * 12)
  rc, plain, err = translate(trained_workdir, long, SENTENCES[1])
  assert rc == 0 and plain == "\n", err
  assert "warning: line 1: no translation contains every constraint" in err
  rc, out, err = translate(trained_workdir, "--json", long, SENTENCES[1])
  assert json.loads(out)["constraints_met"] is False and json.loads(out)["nbest"] == []
  assert "warning" not in err
  # Per-line constraints, with the flag's added and a prefix: both hold.
  lines = [
    json.dumps({"text": SENTENCES[0], "constraints": ["drei"]}),
    json.dumps({"text": SENTENCES[1], "prefix": "neun", "constraints": []}),
    SENTENCES[2],
  ]
  rc, out, err = translate(
    trained_workdir, "--json", "--constraint=acht", stdin=("\n".join(lines) + "\n").encode()
  )
  assert rc == 0, err
  results = [json.loads(line) for line in out.splitlines()]
  assert [r["constraints"] for r in results] == [["drei", "acht"], ["acht"], ["acht"]]
  for result in results:
    assert all(_met(result, p) for p in result["constraints"])
  if results[1]["constraints_met"]:
    assert results[1]["translation"].startswith("neun")
  # Without constraints nothing changes: no constraint fields.
  rc, out, err = translate(trained_workdir, "--json", SENTENCES[0])
  assert "constraints" not in json.loads(out) and "constraints_met" not in json.loads(out)


@pytest.mark.parametrize(
  "args, says",
  [
    (["--constraint=zebra"], "'zebra' is not in it"),
    (["--constraint=  "], "is empty"),
    (["--constraint=" + " ".join(["acht"] * 33)], "at most 32"),
    (["--sample", "--constraint=acht"], "--constraint needs beam search"),
  ],
)
def test_constraint_mistakes_are_one_line(trained_workdir, translate, args, says):
  line = _one_error_line(*translate(trained_workdir, *args, "forty one"))
  assert says in line


def test_json_constraint_mistakes_are_one_line(trained_workdir, translate):
  for bad, says in (
    ('{"text": "forty one", "constraints": "acht"}', "list of strings"),
    ('{"text": "forty one", "constraints": [""]}', "is empty"),
    ('{"text": "forty one", "constraints": ["zebra"]}', "'zebra' is not in it"),
  ):
    line = _one_error_line(*translate(trained_workdir, "--json", stdin=bad.encode() + b"\n"))
    assert says in line and "line 1" in line


def test_sentencepiece_phrases_are_encoded_as_inside_a_sentence():
  sentences = ["a red bicycle and a red helmet", "the bicycle is red", "bicycles everywhere"]
  sp = tokenizers.build("sentencepiece", sentences * 20, vocab_size=300)
  ids = phrases.phrase_ids(sp, "bicycle")
  assert sp.processor.id_to_piece(ids[0]).startswith(phrases.WORD_START)
  assert phrases.contains(sp.encode("a red bicycle and a red helmet"), ids)
  assert phrases.contains(sp.encode("the bicycle is red"), phrases.phrase_ids(sp, " the bicycle"))
  with pytest.raises(ValueError, match="empty"):
    phrases.phrase_ids(sp, " ")
  words = tokenizers.build("word", sentences)
  with pytest.raises(ValueError, match="'zebra' is not in it"):
    phrases.phrase_ids(words, "red zebra")
  with pytest.raises(ValueError, match="at most 2"):
    phrases.constraint_ids(words, ["red helmet", "bicycle"], 2)


@pytest.fixture(scope="module")
def client(translator):
  limits = serve.Limits(max_texts=4, max_chars=400, beam_sizes=(4,), beam_size=4)
  batcher = serve.Batcher(translator, max_batch=4, max_wait=0.0)
  app = serve.make_app(translator, limits, batcher, {"model": "tiny", "step": translator.step})
  with TestClient(app, raise_server_exceptions=False) as c:
    yield c


def test_serve_constraints_per_request_and_per_text(client):
  assert "constraints" in serve.FIELDS
  ok = client.post("/translate", json={"text": SENTENCES[:2], "constraints": [PHRASE]})
  assert ok.status_code == 200, ok.text
  for t in ok.json()["translations"]:
    assert t["constraints_met"] == (PHRASE in t["translation"].split())
    assert t["constraints_met"] or t["translation"] == ""
  per_text = client.post(
    "/translate", json={"text": SENTENCES[:2], "constraints": [["drei"], []], "nbest": 2}
  )
  assert per_text.status_code == 200, per_text.text
  first, second = per_text.json()["translations"]
  assert "constraints_met" in first and "constraints_met" not in second
  plain = client.post("/translate", json={"text": SENTENCES[1], "nbest": 2})
  assert second["nbest"] == plain.json()["translations"][0]["nbest"]


@pytest.mark.parametrize(
  "constraints, says",
  [
    (["zebra"], "'zebra' is not in it"),
    ([""], "is empty"),
    ([" ".join(["acht"] * 33)], "at most 32"),
    ("acht", "must be a list of strings"),
    ([["acht"]], "1 lists for 2 texts"),
  ],
)
def test_serve_a_bad_constraint_fails_only_its_own_request(client, constraints, says):
  bad = client.post("/translate", json={"text": SENTENCES[:2], "constraints": constraints})
  assert bad.status_code == 400
  error = bad.json()["error"]
  assert says in error and "\n" not in error
  good = client.post("/translate", json={"text": SENTENCES[0], "constraints": ["acht"]})
  assert good.status_code == 200


def test_serve_batches_constrained_texts_apart():
  calls = []

  class Recorder:
    options = DecodeOptions(beam_size=4)

    def translate(self, requests, *, options, batch_size, attention):
      calls.append(sorted(bool(r.constraints) for r in requests))
      return [{"translation": r.text} for r in requests]

  async def main():
    batcher = serve.Batcher(Recorder(), max_batch=8, max_wait=0.5)
    worker = asyncio.create_task(batcher.run())
    await asyncio.gather(
      batcher.submit(["a", "b"], 4),
      batcher.submit(["c"], 4, constraints=[("x",)]),
      batcher.submit(["d"], 4, constraints=[()]),
    )
    worker.cancel()

  asyncio.run(main())
  assert sorted(calls) == [[False, False, False], [True]]


def test_evaluate_with_a_constraints_file(trained_workdir, tmp_path, capsys):
  from jaxseq.data import corpora
  from jaxseq.training import checkpointing

  config = checkpointing.load_config(trained_workdir)
  count = len(corpora.load_corpus(config, trained_workdir).eval)
  file = tmp_path / "constraints.jsonl"
  file.write_text("\n".join(json.dumps([PHRASE] if i % 2 else []) for i in range(count)) + "\n")

  def run(*args):
    capsys.readouterr()
    try:
      status = evaluate.run([f"--workdir={trained_workdir}", "--split=heldout", *args])
    except SystemExit as e:
      status = e.code
    return status, *capsys.readouterr()

  rc, out, err = run(f"--constraints={file}")
  assert rc == 0, err
  line = json.loads(out)
  assert line["constraints"] == count // 2
  assert 0.0 <= line["constraints_met"] <= 1.0 and "bleu" in line
  assert line["constraints_met"] == pytest.approx(
    1 - line["constrained_sentences_unmet"] / line["constraints"]
  )
  file.write_text(json.dumps([PHRASE]) + "\n")
  rc, out, err = run(f"--constraints={file}")
  assert rc == 2 and out == ""
  assert err.strip().splitlines()[-1].startswith("error: --constraints has 1 lines but the split")
  rc, out, err = run(f"--constraints={file}", "--search=greedy")
  assert rc == 2 and "needs beam search" in err
  file.write_text("\n".join(['["zebra"]'] * count) + "\n")
  rc, out, err = run(f"--constraints={file}")
  assert rc == 2 and "'zebra' is not in it" in err.strip().splitlines()[-1]


def test_the_artifact_translates_with_constraints_as_the_workdir(
  trained_workdir, exported, translate
):
  manifest = json.loads(open(f"{exported}/manifest.json").read())
  assert manifest["max_constraint_tokens"] == export.DEFAULT_CONSTRAINT_TOKENS
  flags = ["--json", "--nbest=2", f"--constraint={PHRASE}", *SENTENCES]
  rc, from_workdir, err = translate(trained_workdir, *flags)
  assert rc == 0, err
  rc, from_artifact, err = translate(None, f"--artifact={exported}", *flags)
  assert rc == 0, err
  for a, b in zip(
    map(json.loads, from_workdir.splitlines()), map(json.loads, from_artifact.splitlines())
  ):
    assert a["constraints_met"] == b["constraints_met"]
    assert [h["translation"] for h in a["nbest"]] == [h["translation"] for h in b["nbest"]]
  line = _one_error_line(
    *translate(None, f"--artifact={exported}", "--constraint=" + " ".join(["acht"] * 17), "one")
  )
  assert "at most 16" in line


def test_an_old_artifact_without_the_field_loads_and_takes_no_constraints(
  exported, tmp_path, translate
):
  old = tmp_path / "old"
  shutil.copytree(exported, old)
  manifest = json.loads((old / "manifest.json").read_text())
  for name in manifest.pop("constrained_functions").values():
    for file in name.values():
      (old / file).unlink()
      del manifest["sha256"][file]
  del manifest["max_constraint_tokens"]
  (old / "manifest.json").write_text(json.dumps(manifest))
  assert Artifact(str(old)).max_constraint_tokens == 0
  rc, out, err = translate(None, f"--artifact={old}", *SENTENCES)
  assert rc == 0 and len(out.splitlines()) == len(SENTENCES), err
  line = _one_error_line(*translate(None, f"--artifact={old}", "--constraint=acht", "forty one"))
  assert "takes no constraints" in line


def test_a_text_failing_in_the_model_with_constraints_fails_only_its_own_request():
  from tests.test_serve_app import POISON, EchoBackend, PickyTokenizer, echo_translator

  class ConstrainedEcho(EchoBackend):
    max_constraint_tokens = 8

    def translate_ids(self, sources, options, *, constraints=None, **rest):
      return super().translate_ids(sources, options, **rest)

  translator = echo_translator(PickyTokenizer())
  translator.backend = ConstrainedEcho()
  limits = serve.Limits(max_texts=4, max_chars=60, beam_sizes=(4,), beam_size=4)
  app = serve.make_app(
    translator, limits, serve.Batcher(translator, max_batch=4, max_wait=0.05), {"step": 1}
  )
  with TestClient(app, raise_server_exceptions=False) as c:
    failed = c.post(
      "/translate", json={"text": ["Ein Mann", f"zwei {POISON}"], "constraints": ["Mann"]}
    )
    ok = c.post("/translate", json={"text": "Ein Mann", "constraints": ["Mann"]})
  assert failed.status_code == 422
  assert failed.json()["error"].startswith("text 1 could not be translated (RuntimeError)")
  assert ok.status_code == 200 and ok.json()["translations"][0]["constraints_met"] is True


def test_export_flag_mistakes_are_one_line(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    export.run([f"--workdir={tmp_path}", f"--out={tmp_path / 'a'}", "--max_constraint_tokens=-1"])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "--max_constraint_tokens=-1 is not allowed" in err[0]
