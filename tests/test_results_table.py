"""The quality driver's results record, and the full and headline tables made from such
records (benchmarks/quality/)."""

import json
import pathlib

import pytest

from benchmarks.quality import decode_sweep, driver, ensemble, results_table

REPO = pathlib.Path(__file__).resolve().parents[1]


def _split(bleu: float) -> dict:
  return {
    "bleu": bleu,
    "bleu_lowercase": bleu + 1,
    "bleu_lc_tok": bleu + 2,
    "chrf": 50.0,
    "perplexity": 3.5,
    "loss": 1.25,
    "sentences": 10,
    "files": {"hypotheses": "x.hyp.txt"},
  }


SUMMARY = {
  "config": {"dataset": "multi30k", "data": {"source_lang": "de", "target_lang": "en"}},
  "heldout": _split(31.04),
  "test": {"test2016": _split(33.46)},
  "num_parameters": 2_500_000,
  "steps": 900,
  "train_seconds": 7260.0,
  "wall_seconds": 7300.0,
  "stopped_early": True,
  "heldout_curve": {
    "search": "greedy",
    "steps": [500, 900],
    "bleu": [20.5, 30.1],
    "loss": [2.5, 2.1],
  },
  "averaged": {"steps": [800, 900], "heldout": _split(32.0), "test": {"test2016": _split(34.0)}},
}


def test_a_record_keeps_the_scores_and_drops_the_file_lists():
  record = driver.run_record(
    "m30k", str(REPO / "configs" / "multi30k_de_en.py"), "python x", SUMMARY
  )
  assert record["config"] == "configs/multi30k_de_en.py"
  assert (record["recipe"], record["direction"]) == ("multi30k_de_en", "de-en")
  assert record["heldout"]["bleu"] == 31.04 and "files" not in record["heldout"]
  assert record["test"]["test2016"]["bleu_lowercase"] == 34.46
  assert record["averaged"]["steps"] == [800, 900]
  assert record["averaged"]["test"]["test2016"]["bleu"] == 34.0
  assert record["heldout_curve"]["steps"] == [500, 900]
  assert record["heldout_curve"]["bleu"] == [20.5, 30.1]
  json.dumps(record)  # plain JSON


def test_the_table_has_one_row_per_split_and_average(tmp_path):
  record = driver.run_record("m30k", "configs/multi30k_de_en.py", "python x", SUMMARY)
  record["hardware"] = {"platform": "gpu", "devices": ["NVIDIA H100"]}
  (tmp_path / "m30k.json").write_text(json.dumps(record))
  out = tmp_path / "docs" / "results.md"
  assert results_table.main(["--results", str(tmp_path), "--out", str(out)]) == 0
  page = out.read_text()
  assert page.startswith(results_table.PAGE_INTRO)  # what the columns mean, then the table
  lines = page.split(results_table.BEGIN)[1].split(results_table.END)[0].strip().splitlines()
  assert len(lines) == 2 + 4
  widths = {line.count("|") for line in lines}
  assert len(widths) == 1  # every row has the header's columns
  heldout, test, avg_heldout, avg_test = lines[2:]
  assert "| held-out | 31.0 | 32.0 | 33.0 | 50.0 |" in heldout and "900 (early stop)" in heldout
  assert "test test2016 | 33.5 | 34.5 |" in test
  assert "avg of steps 800, 900" in avg_heldout and "| 32.0 |" in avg_heldout
  assert "| 34.0 |" in avg_test and "2.0 h" in avg_test and "1x NVIDIA H100" in avg_test


def test_no_results_is_one_error_line(tmp_path, capsys):
  assert results_table.main(["--results", str(tmp_path), "--out", ""]) == 2
  assert "no results JSON" in capsys.readouterr().err


def test_a_pytorch_run_shows_its_thread_count():
  cpu = {"platform": "cpu", "cpu_count": 2, "cpu": "Xeon"}
  assert (
    results_table._hardware({**cpu, "torch_threads": 1})
    == "2 CPU cores (Xeon, PyTorch on 1 thread)"
  )
  assert results_table._hardware(cpu) == "2 CPU cores (Xeon)"
  assert results_table._hardware({**cpu, "cpus_used": 1}) == "1 of 2 CPU cores (Xeon)"


def test_an_ensemble_has_a_row_per_split_and_per_member(tmp_path):
  member = lambda seed, bleu: {
    "workdir": f"/w{seed}",
    "label": f"seed {seed}",
    "heldout": _split(bleu),
    "test": {},
    "num_parameters": 1_000_000,
    "steps": 2000,
    "train_seconds": 600.0,
  }
  record = {
    "name": "ens",
    "command": "python -m benchmarks.quality.ensemble",
    "heldout": _split(40.0),
    "test": {"test2016": _split(39.0)},
    "num_parameters": 2_000_000,
    "steps": 2000,
    "train_seconds": 1200.0,
    "members": [member(0, 38.0), member(1, 37.0)],
    "hardware": {"platform": "cpu", "cpu": "Xeon", "cpu_count": 2},
  }
  (tmp_path / "ens.json").write_text(json.dumps(record))
  lines = results_table.table([str(tmp_path / "ens.json")]).splitlines()[2:]
  assert len(lines) == 4
  assert (
    lines[0].startswith("| ens | held-out | 40.0 |") and "2.00 M | 2,000 | 20.0 min" in lines[0]
  )
  assert lines[2].startswith("| ens (seed 0 alone) | held-out | 38.0 |")
  assert "1.00 M | 2,000 | 10.0 min" in lines[2]
  assert lines[3].startswith("| ens (seed 1 alone) | held-out | 37.0 |")


def test_the_decode_sweep_chooses_by_heldout_and_keeps_the_first_of_equals():
  choose = decode_sweep.choose
  rows = [
    {"beam_size": b, "alpha": a, "heldout": {"bleu": bleu, "bleu_lc_tok": lc}}
    for b, a, bleu, lc in [(4, 0.6, 30.0, 33.0), (8, 0.6, 31.0, 32.0), (8, 1.0, 31.0, 31.0)]
  ]
  assert (choose(rows, "bleu")["beam_size"], choose(rows, "bleu")["alpha"]) == (8, 0.6)
  assert choose(rows, "bleu_lc_tok")["beam_size"] == 4


def test_the_decode_sweep_refuses_a_bad_grid(capsys):
  for grid in ("--beam_sizes=0,4", "--alphas=-1", "--beam_sizes=four"):
    with pytest.raises(SystemExit) as exited:
      decode_sweep.main(["--workdir=/nonexistent", "--name=x", grid])
    assert exited.value.code == 2, grid
  assert "--beam_sizes" in capsys.readouterr().err


def test_ensemble_members_are_named_by_workdir_where_seeds_repeat_or_recipes_differ():
  labels = ensemble.labels
  same = {"seed": 0, "num_train_steps": 2000}
  assert labels(["/w/a", "/w/b"], [same, dict(same, seed=1)]) == ["seed 0", "seed 1"]
  assert labels(["/w/a", "/w/b/"], [same, same]) == ["seed 0, a", "seed 0, b"]
  longer = dict(same, seed=1, num_train_steps=3500)
  assert labels(["/w/long", "/w/s1"], [longer, same]) == ["seed 1, long", "seed 0, s1"]


def _run(
  name: str, recipe: str, direction: str, heldout: float, tests: dict, averaged: tuple | None = None
) -> dict:
  """A results record of the driver's form with these BLEU scores."""
  record = {
    "name": name,
    "command": f"python -m benchmarks.quality.quality --name={name}",
    "recipe": recipe,
    "direction": direction,
    "heldout": _split(heldout),
    "test": {k: _split(v) for k, v in tests.items()},
    "num_parameters": 3_000_000,
    "steps": 2000,
    "train_seconds": 1800.0,
    "hardware": {"platform": "cpu", "cpu": "Xeon", "cpu_count": 2},
  }
  if averaged:
    steps, bleu = averaged
    record["averaged"] = {
      "steps": steps,
      "heldout": _split(bleu),
      "test": {k: _split(v + 1) for k, v in tests.items()},
    }
  return record


@pytest.fixture
def results_dir(tmp_path) -> pathlib.Path:
  """Four runs: two of one recipe and direction (the later one best after averaging), the
  same recipe in the other direction, and an ensemble."""
  directory = tmp_path / "benchmarks" / "results"
  directory.mkdir(parents=True)
  runs = [
    _run("m30k_a", "m30k", "de-en", 38.0, {"test2016": 37.0}),
    _run("m30k_b", "m30k", "de-en", 37.5, {"test2016": 36.0}, ([1500, 2000], 39.5)),
    _run("m30k_en_de", "m30k", "en-de", 30.0, {"test2016": 31.0, "test2017": 25.0}),
    _run("m30k_ens", "m30k_ens", "de-en", 41.0, {}),
  ]
  for record in runs:
    (directory / f"{record['name']}.json").write_text(json.dumps(record))
  return directory


def test_the_headline_has_one_row_per_recipe_and_direction_with_its_best_run(results_dir):
  paths = [str(p) for p in results_dir.glob("*.json")]
  lines = results_table.headline(paths, str(results_dir.parents[1])).splitlines()
  assert lines[0] == results_table.HEADLINE_HEADER
  rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in lines[2:]}
  assert set(rows) == {("m30k", "de → en"), ("m30k", "en → de"), ("m30k_ens", "de → en")}
  best = rows["m30k", "de → en"]  # m30k_b's averaged checkpoints beat m30k_a's 38.0
  assert "| m30k_b (avg of steps 1500, 2000) | 39.5 | test2016 37.0 | test2016 39.0 |" in best
  assert best.endswith("| [m30k_b.json](benchmarks/results/m30k_b.json) |")
  assert "| 30.0 | test2016 31.0, test2017 25.0 |" in rows["m30k", "en → de"]
  assert "| 41.0 | – | – |" in rows["m30k_ens", "de → en"]


def test_the_readme_gets_the_headline_and_keeps_its_old_full_table_filled(results_dir, tmp_path):
  readme = tmp_path / "README.md"
  readme.write_text(
    f"# x\n{results_table.HEADLINE_BEGIN}\nold headline\n"
    f"{results_table.HEADLINE_END}\nmiddle\n{results_table.BEGIN}\nold table\n"
    f"{results_table.END}\nend\n"
  )
  page = tmp_path / "docs" / "results.md"
  assert (
    results_table.main(["--results", str(results_dir), "--out", str(page), f"--readme={readme}"])
    == 0
  )
  text = readme.read_text()
  assert "old" not in text and text.startswith("# x\n") and text.endswith("end\n")
  headline = text.split(results_table.HEADLINE_BEGIN)[1].split(results_table.HEADLINE_END)[0]
  assert len(headline.strip().splitlines()) == 2 + 3
  assert "(benchmarks/results/m30k_ens.json)" in headline  # relative to the README
  full = text.split(results_table.BEGIN)[1].split(results_table.END)[0]
  assert full in page.read_text() and "| m30k_a | held-out | 38.0 |" in full


def test_a_readme_without_headline_markers_is_one_error_line(results_dir, tmp_path, capsys):
  readme = tmp_path / "README.md"
  readme.write_text("no markers\n")
  assert results_table.main(["--results", str(results_dir), "--out", "", f"--readme={readme}"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and results_table.HEADLINE_BEGIN in err
  assert readme.read_text() == "no markers\n"


def test_the_committed_results_page_and_headline_are_generated_from_the_committed_json():
  paths = [str(p) for p in (REPO / "benchmarks" / "results").glob("*.json")]
  page = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
  assert results_table.table(paths) in page
  readme = (REPO / "README.md").read_text(encoding="utf-8")
  assert results_table.headline(paths, str(REPO)) in readme
