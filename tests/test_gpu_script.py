"""benchmarks/gpu/run.sh --dry-run: every step of the GPU run, at tiny sizes on the CPU,
through the same script, and what it writes."""

import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks.gpu import steps
from tests.conftest import REPO, subprocess_env

SPLITS = {"train": 200, "val": 24, "test2016": 24, "test2017": 24}


def _data_dir(tmp_path) -> str:
  """The raw corpora: the shared Multi30k where present, else a made-up one in its layout."""
  shared = subprocess_env()["JAXSEQ_DATA_DIR"]
  if os.path.isfile(os.path.join(shared, "multi30k", "train.de")):
    return shared
  root = tmp_path / "raw"
  (root / "multi30k").mkdir(parents=True)
  for stem, n in SPLITS.items():
    (root / "multi30k" / f"{stem}.de").write_text(
      "".join(f"ein hund {i % 7} läuft\n" for i in range(n))
    )
    (root / "multi30k" / f"{stem}.en").write_text(
      "".join(f"a dog {i % 7} runs\n" for i in range(n))
    )
  return str(root)


def _sweep_stopped_by_its_rule(sweep: dict):
  points = sweep["points"]
  batches = [p["batch_size"] for p in points]
  assert batches == [batches[0] * 2**i for i in range(len(batches))], batches
  gains = [p["gain"] for p in points[1:]]
  assert gains, "one point cannot show a gain"
  low = sweep["min_gain"]
  if sweep["stop_reason"] == "gain":
    assert gains[-1] < low and all(g >= low for g in gains[:-1]), gains
  else:
    assert sweep["stop_reason"] == "cap", sweep["stop_reason"]
    assert batches[-1] == sweep["max_batch"] and all(g >= low for g in gains), gains
  assert sweep["best_tokens_per_second"] == max(p["tokens_per_second"] for p in points)


def test_dry_run_does_every_step_and_writes_the_results(tmp_path):
  out = tmp_path / "out"
  env = dict(
    subprocess_env(),
    PYTHON=sys.executable,
    TMPDIR=str(tmp_path),
    JAXSEQ_DATA_DIR=_data_dir(tmp_path),
    JAXSEQ_TFDS_DIR=str(tmp_path / "tfds"),
  )
  done = subprocess.run(
    ["bash", os.path.join(REPO, "benchmarks", "gpu", "run.sh"), "--dry-run", "--out", str(out)],
    env=env,
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]

  results = json.loads((out / "results.json").read_text())
  assert results["dry_run"] and results["ok"]
  assert {name: s["status"] for name, s in results["steps"].items()} == {
    name: "ok"
    for name in ("environment", "compare", "multi30k", "utilisation", "sweep", "translate")
  }
  steps = {name: s["result"] for name, s in results["steps"].items()}

  assert steps["environment"]["jax_platform"] == "cpu"
  assert steps["environment"]["versions"]["tensorflow-datasets"]

  # The same network: equal parameter counts and first losses (float32 on the CPU).
  for c in steps["compare"]["comparisons"]:
    assert c["torch_device"] == "cpu" and c["params_match"]
    assert c["first_loss_abs_diff"] < 1e-4, c["first_loss_abs_diff"]
    for who in ("jaxseq", "jaxseq_bfloat16", "torch"):
      assert c[who]["tokens_per_second"] > 0, who
    assert math.isfinite(c["jaxseq_bfloat16"]["losses"][0])

  sweep = steps["sweep"]
  assert all(p["tokens_per_second"] > 0 for p in sweep["points"])
  _sweep_stopped_by_its_rule(sweep)

  translate = steps["translate"]["results"]
  assert {"one_at_a_time_greedy", "batched_greedy"} <= set(translate)
  assert all(r["sentences_per_second"] > 0 for r in translate.values())

  utilisation = steps["utilisation"]
  assert [r["log_every_steps"] for r in utilisation["runs"]] == [100, 1]
  for run in utilisation["runs"]:
    assert run["steps"] == utilisation["num_steps"] and run["steps_per_second"] > 0
  assert utilisation["log_every_1_over_100"] > 0

  multi30k = steps["multi30k"]
  assert 0 <= multi30k["test"]["test2016"]["bleu"] <= 100
  assert multi30k["wall_seconds"] > 0 and multi30k["steps"] > 0

  markdown = (out / "results.md").read_text()
  assert results["device"]["name"] in markdown
  assert f"jax {results['versions']['jax']}" in markdown and "test2016 BLEU" in markdown
  files = os.listdir(out)  # what comes back from the GPU machine: at most 8 files
  assert {"results.json", "results.md", "run.log"} <= set(files) and len(files) <= 8, files


def test_the_utilisation_step_reads_its_config_as_train_py_does():
  config = steps.load_config(
    os.path.join(REPO, "configs", "multi30k_de_en.py"),
    [
      "--config.batch_size=16",
      "--config.model.hidden_size=32",
      "--config.bucket_lengths=",
      "--config.learning_rate=1",
    ],
  )
  assert (config.batch_size, config.model.hidden_size, config.bucket_lengths) == (16, 32, "")
  assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
  assert config.dataset == "multi30k"  # the rest is the file's


def test_the_utilisation_step_refuses_an_unknown_config_field_in_one_line(capsys):
  with pytest.raises(SystemExit) as exited:
    steps.main(
      [
        "utilisation",
        "--out=/nonexistent/u.json",
        "--config=configs/default.py",
        "--config.no_such_field=1",
      ]
    )
  assert exited.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert "no_such_field" in err[-1] and "error: --config configs/default.py" in err[-1]
