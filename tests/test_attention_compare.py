"""benchmarks/quality/attention_compare.py: the comparison table from its files."""

import json

from benchmarks.quality import attention_compare


def _coverage_file(folder, name, split, rows):
  keys = ("coverage_penalty", "bleu", "under_translation", "over_translation")
  (folder / f"{name}_{split}.json").write_text(
    json.dumps({"rows": [dict(zip(keys, r, strict=True)) for r in rows]})
  )


def _setup(tmp_path, monkeypatch):
  runs, coverage = tmp_path / "runs", tmp_path / "coverage"
  runs.mkdir(), coverage.mkdir()
  monkeypatch.setattr(attention_compare, "RUNS", str(runs))
  monkeypatch.setattr(attention_compare, "COVERAGE", str(coverage))
  monkeypatch.setattr(attention_compare.common, "ROOT", str(tmp_path))
  return runs, coverage


def _run(runs, name, command):
  record = {"name": name, "direction": "de-en", "command": command, "train_seconds": 600}
  (runs / f"{name}.json").write_text(json.dumps(record))


def test_a_row_per_run_with_the_held_out_pick_applied_to_the_tests(tmp_path, monkeypatch):
  runs, coverage = _setup(tmp_path, monkeypatch)
  _run(runs, "cov", "python -m q --config.model.attention=coverage --config.coverage_loss_weight=1")
  _coverage_file(coverage, "cov", "heldout", [(0.0, 30, 0.2, 0.01), (0.2, 31, 0.1, 0.02)])
  _coverage_file(coverage, "cov", "test2016", [(0.0, 32, 0.15, 0.004), (0.2, 33, 0.12, 0.005)])
  _coverage_file(coverage, "cov", "test2017", [(0.0, 28, 0.2, 0.01), (0.2, 27.5, 0.1, 0.02)])
  _run(runs, "bah", "python -m q --config.model.attention=bahdanau")
  _coverage_file(coverage, "bah", "heldout", [(0.0, 30, 0.2, 0.01), (0.2, 29, 0.1, 0.02)])
  _coverage_file(coverage, "bah", "test2016", [(0.0, 31.04, 0.25, 0.006)])
  _run(runs, "missing", "python -m q --config.model.attention=luong_local_m")
  phase = "--config.coverage_loss_weight=0.5 --config.coverage_loss_from_step=1200"
  _run(runs, "phase", f"python -m q --config.model.attention=coverage {phase}")
  for split in ("heldout", "test2016", "test2017"):
    _coverage_file(coverage, "phase", split, [(0.0, 30, 0.2, 0.01)])

  lines = attention_compare.table().splitlines()
  assert len(lines) == 2 + 2  # header, rule, two complete runs: the others lack files
  _coverage_file(coverage, "bah", "test2017", [(0.0, 27.0, 0.2, 0.01)])
  bah, cov, phase = attention_compare.table().splitlines()[2:]
  assert "| `coverage` + coverage loss 0.5 from step 1,200 | 30.0 | 0 |" in phase
  # The held-out split picks 0.2 for one run, 0 for the other; tests show 0, then the pick.
  assert "`coverage` + coverage loss 1 | 30.0 | 0.2 | 32.0 → 33.0 | 28.0 → 27.5 |" in cov
  assert "15.0% → 12.0% | 0.40% → 0.50% | 10.0 min | [cov.json](../runs/cov.json) |" in cov
  assert "| de → en | `bahdanau` | 30.0 | 0 | 31.0 | 27.0 | 25.0% | 0.60% |" in bah


def test_the_table_goes_between_the_markers(tmp_path, monkeypatch):
  _setup(tmp_path, monkeypatch)
  page = tmp_path / "page.md"
  page.write_text(f"before\n{attention_compare.BEGIN}\nold\n{attention_compare.END}\nafter\n")
  assert attention_compare.main([f"--readme={page}"]) == 0
  text = page.read_text()
  assert "old" not in text and attention_compare.HEADER in text
  assert text.startswith("before\n") and text.endswith("after\n")
