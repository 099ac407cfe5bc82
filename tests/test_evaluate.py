"""The evaluate command on the shared tiny trained workdir: one model and an ensemble."""

import json
import os

import pytest

from jaxseq.serving import evaluate


def _evaluate(capsys, *args):
  capsys.readouterr()
  try:
    status = evaluate.run(list(args))
  except SystemExit as e:
    status = e.code
  out, err = capsys.readouterr()
  return status, out, err


def test_one_model_scores_what_training_scored(trained_workdir, tmp_path, capsys):
  rc, out, err = _evaluate(
    capsys, f"--workdir={trained_workdir}", "--split=heldout", f"--out={tmp_path}"
  )
  assert rc == 0, err
  assert f"jaxseq-evaluate: workdir {trained_workdir}, checkpoint step 30" in err.splitlines()
  line = json.loads(out)
  with open(os.path.join(trained_workdir, "summary.json")) as f:
    heldout = json.load(f)["heldout"]
  assert line["split"] == "heldout" and line["sentences"] == heldout["sentences"]
  assert line["bleu"] == pytest.approx(heldout["bleu"], abs=1e-6)
  assert line["bleu_signature"] == heldout["bleu_signature"]
  assert line["perplexity"] == pytest.approx(heldout["perplexity"], rel=1e-5)
  report = json.loads((tmp_path / "evaluation.json").read_text())
  assert report["workdirs"] == [trained_workdir]
  hypotheses = (tmp_path / "heldout.hyp.txt").read_text().splitlines()
  assert hypotheses == open(os.path.join(trained_workdir, "heldout.hyp.txt")).read().splitlines()
  assert len((tmp_path / "heldout.align.txt").read_text().splitlines()) == len(hypotheses)


def test_an_ensemble_and_an_unknown_split(trained_workdir, capsys):
  rc, out, err = _evaluate(
    capsys, f"--workdir={trained_workdir}", f"--workdir={trained_workdir}", "--search=greedy"
  )
  assert rc == 0, err
  assert [json.loads(line)["split"] for line in out.splitlines()] == ["heldout"]
  rc, out, err = _evaluate(capsys, f"--workdir={trained_workdir}", "--split=test2016")
  assert rc == 2 and out == ""
  # The split is checked once the model is loaded: the line naming its checkpoint comes first.
  assert err.strip().splitlines() == [
    f"jaxseq-evaluate: workdir {trained_workdir}, checkpoint step 30",
    "error: --split='test2016' is not a split of this corpus; allowed: heldout",
  ]


def test_an_out_directory_whose_files_cannot_be_written_is_one_line(
  trained_workdir, tmp_path, capsys
):
  (tmp_path / "heldout.hyp.txt").mkdir()  # where the hypotheses go: even root cannot write
  rc, out, err = _evaluate(
    capsys, f"--workdir={trained_workdir}", "--split=heldout", f"--out={tmp_path}"
  )
  assert rc == 2 and out == ""
  errors = [line for line in err.splitlines() if line.startswith("error:")]
  assert errors == [
    f"error: --out '{tmp_path}' cannot be written: Is a directory; give a writable directory"
  ], err
  assert "Traceback" not in err
