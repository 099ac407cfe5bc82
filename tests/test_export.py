"""jaxseq-export and jaxseq-translate --artifact on the shared tiny trained workdir."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxseq.serving import export
from tests.conftest import REPO, subprocess_env
from tests.test_translate import SENTENCES, _one_error_line, translate  # noqa: F401  (fixture)


@pytest.fixture
def artifact(exported) -> str:
  return exported


def test_the_artifact_translates_as_the_workdir(trained_workdir, artifact, translate):
  for flags in (["--nbest=2"], ["--beam_size=1"], ["--coverage_penalty=0.5"]):
    rc, from_workdir, err = translate(trained_workdir, "--json", *flags, *SENTENCES)
    assert rc == 0, err
    rc, from_artifact, err = translate(None, f"--artifact={artifact}", "--json", *flags, *SENTENCES)
    assert rc == 0, err
    for a, b in zip(
      map(json.loads, from_workdir.splitlines()), map(json.loads, from_artifact.splitlines())
    ):
      assert [h["translation"] for h in a["nbest"]] == [h["translation"] for h in b["nbest"]]
      assert [h["score"] for h in a["nbest"]] == pytest.approx(
        [h["score"] for h in b["nbest"]], abs=1e-5
      )
      assert a["output_tokens"] == b["output_tokens"]
      np.testing.assert_allclose(a["attention"], b["attention"], atol=1e-4)


def test_loading_needs_no_flax_and_no_model_code(artifact):
  # The modules a workdir needs are made unimportable; the artifact still translates.
  code = (
    "import sys\n"
    "for name in ('flax', 'orbax', 'optax', 'jaxseq.model.seq2seq',"
    " 'jaxseq.training.checkpointing'):\n"
    "  sys.modules[name] = None\n"
    "from jaxseq.serving import translate\n"
    f"sys.exit(translate.run(['--artifact={artifact}', 'forty one']))\n"
  )
  proc = subprocess.run(
    [sys.executable, "-c", code],
    cwd=REPO,
    env=subprocess_env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr
  assert len(proc.stdout.splitlines()) == 1


def test_a_tampered_or_incomplete_artifact_is_refused(artifact, tmp_path, translate):
  broken = tmp_path / "broken"
  shutil.copytree(artifact, broken)
  data = bytearray((broken / "params.npz").read_bytes())
  data[-100] ^= 1
  (broken / "params.npz").write_bytes(data)
  line = _one_error_line(*translate(None, f"--artifact={broken}", "forty one"))
  assert "params.npz does not match the SHA-256" in line
  shutil.copyfile(f"{artifact}/params.npz", broken / "params.npz")
  (broken / export.function_file(1, 4)).unlink()
  line = _one_error_line(*translate(None, f"--artifact={broken}", "forty one"))
  assert f"{export.function_file(1, 4)} is missing" in line
  (broken / "manifest.json").unlink()
  line = _one_error_line(*translate(None, f"--artifact={broken}", "forty one"))
  assert "manifest.json is missing" in line


@pytest.mark.parametrize(
  "flags, says",
  [
    (["--beam_size=3"], "beam size 3 was not exported; this artifact has 1, 4"),
    (["--sample"], "beam search only"),
    (["--prefix=drei"], "does not force prefixes"),
  ],
)
def test_what_an_artifact_cannot_do_is_one_line(artifact, translate, flags, says):
  assert says in _one_error_line(*translate(None, f"--artifact={artifact}", *flags, "forty one"))


def test_an_artifact_from_before_the_coverage_penalty_refuses_one(artifact, tmp_path, translate):
  old = tmp_path / "old"
  shutil.copytree(artifact, old)
  manifest = json.loads((old / "manifest.json").read_text())
  assert manifest.pop("scalars")[-1] == "coverage_penalty"
  (old / "manifest.json").write_text(json.dumps(manifest))
  flags = (f"--artifact={old}", "--coverage_penalty=0.2", "forty one")
  assert "exported before the coverage penalty" in _one_error_line(*translate(None, *flags))


def test_export_refuses_a_used_directory_and_a_missing_workdir(trained_workdir, tmp_path, capsys):
  (tmp_path / "used").mkdir()
  (tmp_path / "used" / "keep.txt").write_text("mine")
  with pytest.raises(SystemExit) as e:
    export.run([f"--workdir={trained_workdir}", f"--out={tmp_path / 'used'}"])
  assert e.value.code == 2 and "is not empty" in capsys.readouterr().err
  assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
  assert export.run([f"--workdir={tmp_path / 'none'}", f"--out={tmp_path / 'new'}"]) == 2
  assert "config.json is missing" in capsys.readouterr().err
  assert not (tmp_path / "new").exists()
  # An --out that cannot be made is found once the model is loaded; the line naming its
  # checkpoint comes first.
  (tmp_path / "file.txt").write_text("x")
  assert export.run([f"--workdir={trained_workdir}", f"--out={tmp_path / 'file.txt' / 'out'}"]) == 2
  lines = capsys.readouterr().err.splitlines()
  assert lines[0] == f"jaxseq-export: workdir {trained_workdir}, checkpoint step 30"
  assert len(lines) == 2 and lines[1].startswith("error: --out"), lines


def test_an_artifact_for_cpu_and_cuda_runs_here(trained_workdir, tmp_path, translate):
  out = tmp_path / "both"
  assert (
    export.run(
      [f"--workdir={trained_workdir}", f"--out={out}", "--platforms=cpu,cuda", "--beam_sizes=4"]
    )
    == 0
  )
  assert json.loads((out / "manifest.json").read_text())["platforms"] == ["cpu", "cuda"]
  rc, expected, err = translate(trained_workdir, *SENTENCES)
  assert rc == 0, err
  assert translate(None, f"--artifact={out}", *SENTENCES)[1] == expected
