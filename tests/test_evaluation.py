"""Metrics: sacreBLEU's properties, multiple references, and summary.json against its CLI."""

import json
import os
import struct
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sacrebleu

from configs import default
from jaxseq.data.vocab import BOS, WordVocab
from jaxseq.decoding import evaluation
from jaxseq.decoding.options import DecodeOptions
from tests.conftest import subprocess_env, tiny_model


def test_identical_text_scores_100_and_case_only_matters_when_cased():
  refs = ["the cat sat on the mat", "a dog ran in the park today"]
  same = evaluation.text_metrics(refs, [[r] for r in refs], exact_match=True)
  assert same["bleu"] == pytest.approx(100.0)
  assert same["chrf"] == pytest.approx(100.0)
  assert same["exact_match"] == 1.0
  upper = evaluation.text_metrics([r.upper() for r in refs], [[r] for r in refs], True)
  assert upper["bleu"] < 1.0
  assert upper["bleu_lowercase"] == pytest.approx(100.0)
  assert upper["exact_match"] == 0.0
  assert "case:mixed" in upper["bleu_signature"] and "nrefs:1" in upper["bleu_signature"]


def test_bleu_lc_tok_scores_moses_normalised_lowercased_tokens():
  assert (
    evaluation.moses_lc_tok("Zwei Männer, die „Fußball“ spielen.", "de")
    == 'zwei männer , die " fußball " spielen .'
  )
  assert evaluation.moses_lc_tok("Two dogs' toys -- aren't they?", "eng") == (
    "two dogs ' toys -- aren 't they ?"
  )
  hyps = ["Ein Mann sagt „Hallo“.", "Zwei Hunde laufen"]
  refs = [['ein mann sagt "hallo" .'], ["Zwei Hunde rennen im Park."]]
  metrics = evaluation.text_metrics(hyps, refs, exact_match=False, language="de")
  by_hand = (
    sacrebleu.BLEU(tokenize="none", force=True)
    .corpus_score(
      ['ein mann sagt " hallo " .', "zwei hunde laufen"],
      [['ein mann sagt " hallo " .', "zwei hunde rennen im park ."]],
    )
    .score
  )
  assert metrics["bleu_lc_tok"] == pytest.approx(by_hand)
  assert metrics["bleu_lc_tok"] > metrics["bleu_lowercase"]  # the quotes now match
  assert "bleu_lc_tok" not in evaluation.text_metrics(hyps, refs, exact_match=False)


def test_a_second_reference_can_only_help():
  hyps = ["the cat is on the mat", "there is a dog in the park"]
  one = [["the cat sat on the mat"], ["a dog ran in the park"]]
  two = [one[0] + ["the cat is on the mat"], one[1]]  # sentence 2 keeps one reference
  single = evaluation.text_metrics(hyps, one, exact_match=False)
  multi = evaluation.text_metrics(hyps, two, exact_match=False)
  assert multi["bleu"] > single["bleu"]
  assert multi["references_per_sentence"] == 2
  assert "nrefs:var" in multi["bleu_signature"] or "nrefs:2" in multi["bleu_signature"]


def test_evaluate_split_keeps_every_sentence():
  src_vocab = WordVocab.build(["a b c d"])
  tgt_vocab = WordVocab.build(["x y z"])
  model = tiny_model(
    len(src_vocab), len(tgt_vocab), embed_size=8, hidden_size=8, attention_size=8, max_length=4
  )
  params = jax.jit(model.init)(jax.random.key(0), jnp.ones((2,), jnp.int32), jnp.int32(BOS))
  pairs = [("a b", "x"), ("", "y"), ("a b c d a b c", "z z"), ("unknown c", "x y")]
  result = evaluation.evaluate_split(
    evaluation.Searcher(model, params, max_length=4, batch_size=2),
    evaluation.Vocabularies(src_vocab, tgt_vocab),
    evaluation.Split(pairs),
    DecodeOptions.from_dict(
      {**default.get_config().decode.to_dict(), "search": "greedy"}, strict=False
    ),
  )
  assert len(result.hypotheses) == len(pairs)
  assert result.hypotheses[1] == ""
  assert result.metrics["sentences"] == 4 and result.metrics["truncated_sources"] == 1
  assert result.attentions[2].shape[1] == 4  # the cut source


def _scalar_tags(logdir):
  """Tags of scalar and image summaries in TFRecord event files (read without TensorBoard)."""
  from tensorboardX.proto import event_pb2

  scalars, images = set(), set()
  for name in os.listdir(logdir):
    with open(os.path.join(logdir, name), "rb") as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos : pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
      pos += 12 + length + 4
      for value in event.summary.value:
        (images if value.HasField("image") else scalars).add(value.tag)
  return scalars, images


def test_training_writes_metrics_curves_and_event_files(trained_workdir):
  with open(os.path.join(trained_workdir, "summary.json")) as f:
    heldout = json.load(f)["heldout"]
  for key in (
    "bleu",
    "bleu_lowercase",
    "bleu_lc_tok",
    "chrf",
    "perplexity",
    "loss",
    "bleu_signature",
  ):
    assert key in heldout
  assert heldout["perplexity"] == pytest.approx(np.exp(heldout["loss"]), rel=1e-6)
  assert heldout["search"] == "beam" and heldout["sentences"] == 20
  for name in ("loss.png", "bleu.png", "attention_0.png"):
    with open(os.path.join(trained_workdir, name), "rb") as f:
      assert f.read(4) == b"\x89PNG"
  scalars, images = _scalar_tags(os.path.join(trained_workdir, "tensorboard"))
  assert {"train/loss", "heldout/bleu", "heldout/loss", "heldout_final/bleu"} <= scalars
  assert "attention/0" in images


def test_the_summary_keeps_the_learning_curve_of_the_periodic_evaluations(trained_workdir):
  with open(os.path.join(trained_workdir, "summary.json")) as f:
    curve = json.load(f)["heldout_curve"]
  assert curve["search"] == "greedy"
  assert curve["steps"] == [7, 14, 21, 28]  # eval_every_steps=7 of 30; 30 is the final one
  assert len(curve["bleu"]) == len(curve["loss"]) == 4
  assert all(0.0 <= b <= 100.0 for b in curve["bleu"]) and all(x > 0 for x in curve["loss"])
  # the clock of each evaluation, for time to quality: training time (evaluation excluded)
  # grows, and the time since the start, which adds data preparation, is always larger
  train, wall = curve["train_seconds"], curve["wall_seconds"]
  assert len(train) == len(wall) == len(curve["load_1min"]) == 4
  assert all(0 < a < b for a, b in zip(train, train[1:]))
  assert all(t < w for t, w in zip(train, wall)) and all(x >= 0 for x in curve["load_1min"])


def test_summary_bleu_equals_sacrebleu_command_line(trained_workdir):
  with open(os.path.join(trained_workdir, "summary.json")) as f:
    heldout = json.load(f)["heldout"]
  files = heldout["files"]
  refs = [os.path.join(trained_workdir, r) for r in files["references"]]
  hyp = os.path.join(trained_workdir, files["hypotheses"])
  with open(hyp, encoding="utf-8") as f:
    hypotheses = f.read().splitlines()
  assert len(hypotheses) == heldout["sentences"]
  # The word alignment of each hypothesis: one source word per target word, in range.
  with open(os.path.join(trained_workdir, files["alignments"]), encoding="utf-8") as f:
    alignments = f.read().splitlines()
  assert len(alignments) == len(hypotheses)
  config = json.loads(open(os.path.join(trained_workdir, "config.json")).read())
  for hypothesis, links in zip(hypotheses, alignments):
    pairs = [tuple(map(int, link.split("-"))) for link in links.split()]
    assert [t for _, t in pairs] == list(range(len(hypothesis.split())))
    assert all(0 <= s < config["model"]["max_length"] for s, _ in pairs)
  proc = subprocess.run(
    ["sacrebleu", *refs, "-i", hyp, "-m", "bleu", "chrf", "-w", "6"],
    env=subprocess_env(),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  cli = {entry["name"]: entry for entry in json.loads(proc.stdout)}
  assert cli["BLEU"]["score"] == pytest.approx(heldout["bleu"], abs=1e-5)
  assert cli["BLEU"]["signature"] == heldout["bleu_signature"]
  assert cli["chrF2"]["score"] == pytest.approx(heldout["chrf"], abs=1e-5)


def test_written_files_give_the_same_scores_on_the_command_line(tmp_path):
  hyps = ["the cat is on the mat", "there is a dog in the park", "hello"]
  refs = [
    ["the cat sat on the mat", "the cat is on a mat"],
    ["a dog ran in the park"],
    ["hello there", "hi"],
  ]  # sentence 2 has one reference, the others two
  metrics = evaluation.text_metrics(hyps, refs, exact_match=False)
  files = evaluation.write_outputs(str(tmp_path), "split", hyps, refs)
  assert len(files["references"]) == 2
  proc = subprocess.run(
    [
      "sacrebleu",
      *[str(tmp_path / r) for r in files["references"]],
      "-i",
      str(tmp_path / files["hypotheses"]),
      "-m",
      "bleu",
      "chrf",
      "-b",
      "-w",
      "6",
    ],
    env=subprocess_env(),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  bleu, chrf = json.loads(proc.stdout)
  assert bleu == pytest.approx(metrics["bleu"], abs=1e-5)
  assert chrf == pytest.approx(metrics["chrf"], abs=1e-5)
