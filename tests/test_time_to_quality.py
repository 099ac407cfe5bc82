"""benchmarks/quality/time_to_quality.py: threshold passes, its table and plot, the committed
results against the README, and the PyTorch recipe's curve from torch_tutorial.py."""

import json
import os
import pathlib
import re

import pytest

from benchmarks.quality import time_to_quality, torch_tutorial
from tests.test_results_table import REPO

CURVE = {
  "search": "greedy",
  "steps": [250, 500, 750, 1000],
  "bleu": [12.0, 30.5, 29.0, 38.2],
  "loss": [4.0, 3.0, 2.9, 2.5],
  "train_seconds": [60.0, 121.0, 180.5, 240.0],
  "wall_seconds": [90.0, 170.0, 250.0, 330.0],
  "load_1min": [2.0, 2.1, 2.0, 2.0],
}


def test_a_threshold_is_passed_at_the_first_evaluation_that_reaches_it():
  hits = time_to_quality.passes(CURVE, [30.0, 38.2, 40.0])
  assert hits["30"] == {"step": 500, "bleu": 30.5, "train_seconds": 121.0, "wall_seconds": 170.0}
  assert hits["38.2"]["step"] == 1000  # equal counts as reached
  assert hits["40"] is None


@pytest.mark.parametrize("text", ["", "abc", "30,,x", "0", "101", "-5"])
def test_bad_thresholds_are_refused(text):
  with pytest.raises(ValueError, match="thresholds"):
    time_to_quality.parse_thresholds(text)


def test_the_report_has_a_row_per_threshold_and_draws_every_run(tmp_path):
  for name, shift in (("fast", 0.0), ("slow", -10.0)):
    record = {
      "name": name,
      "command": f"python x --name={name}",
      "heldout": {"bleu": 39.0, "search": "beam"},
      "test": {"test2016": {"bleu": 38.4}},
      "heldout_curve": {**CURVE, "bleu": [b + shift for b in CURVE["bleu"]]},
      "hardware": {"platform": "cpu", "cpu_count": 2, "cpu": "Xeon"},
    }
    record["thresholds"] = time_to_quality.passes(record["heldout_curve"], [30.0, 38.0])
    (tmp_path / f"{name}.json").write_text(json.dumps(record))
  readme = tmp_path / "README.md"
  readme.write_text(f"intro\n{time_to_quality.BEGIN}\nold\n{time_to_quality.END}\nend\n")
  assert (
    time_to_quality.main(["ttq", "--report", f"--out_dir={tmp_path}", f"--readme={readme}"]) == 0
  )
  lines = (tmp_path / "README_table.md").read_text().splitlines()
  assert len(lines) == 2 + 4 and len({line.count("|") for line in lines}) == 1
  assert "| fast | 30 | 500 | 2.0 min | 2.8 min | 39.0 (beam) | test2016 38.4 |" in lines[2]
  assert "| slow | 38 | not reached |" in lines[5]
  assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
  text = readme.read_text()
  assert "old" not in text and lines[2] in text and text.endswith("end\n")


def test_the_results_page_table_is_the_one_made_from_the_committed_results():
  directory = pathlib.Path(time_to_quality.OUT_DIR)
  records = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
  assert records, "no committed time-to-quality results"
  readme = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
  table = readme.split(time_to_quality.BEGIN)[1].split(time_to_quality.END)[0]
  for record in records:
    assert record["thresholds"] == time_to_quality.passes(
      record["heldout_curve"], [float(t) for t in record["thresholds"]]
    )
    for row in time_to_quality.rows(record):
      assert row in table


def test_the_pytorch_recipe_records_its_curve(tmp_path, monkeypatch):
  # 600 lines of the real Tatoeba file that the tutorial's filter keeps, prepared here
  raw = tmp_path / "raw" / "tatoeba-eng-fra"
  raw.mkdir(parents=True)
  data_dir = os.environ.get("JAXSEQ_DATA_DIR", str(REPO.parent / "shared" / "data"))
  real = pathlib.Path(data_dir) / "tatoeba-eng-fra" / "eng-fra.txt"
  kept = [
    line
    for line in real.read_text(encoding="utf-8").splitlines()
    if re.match(r"(I am|He is|She is|You are|We are|They are) [^\t]{0,25}\t", line)
  ]
  (raw / "eng-fra.txt").write_text("\n".join(kept[:600]) + "\n", encoding="utf-8")
  monkeypatch.setenv("JAXSEQ_DATA_DIR", str(tmp_path / "raw"))
  monkeypatch.setenv("JAXSEQ_TFDS_DIR", str(tmp_path / "tfds"))
  assert (
    torch_tutorial.main(
      [
        "torch_tutorial",
        "--max_steps=7",
        "--eval_every=3",
        "--threads=1",
        "--name=tiny",
        "--thresholds=0.5,99",
        f"--out_dir={tmp_path}",
      ]
    )
    == 0
  )
  record = json.loads((tmp_path / "tiny.json").read_text())
  assert record["command"].startswith("python -m benchmarks.quality.torch_tutorial --max_steps=7")
  assert (record["recipe"], record["direction"]) == ("torch_tutorial", "fra-eng")
  curve = record["heldout_curve"]
  assert curve["steps"] == [3, 6, 7]  # every 3 steps, and the final model
  assert curve["bleu"][-1] == pytest.approx(record["heldout"]["bleu"])
  assert all(a < b for a, b in zip(curve["train_seconds"], curve["train_seconds"][1:]))
  assert curve["train_seconds"][-1] <= record["train_seconds"] + 0.06  # rounded to 0.1 s
  assert set(record["thresholds"]) == {"0.5", "99"} and record["thresholds"]["99"] is None
  assert re.match(rb"\x89PNG", (tmp_path / "tiny.png").read_bytes())
