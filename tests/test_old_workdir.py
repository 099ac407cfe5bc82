"""A workdir written by jaxseq 0.1.0 still loads: its config.json (with fields that have
since gone, such as fault_*) and vocabularies build a model whose train state has exactly
the names, shapes and dtypes of the one that release saved, so its checkpoints restore for
translation and resuming. The fixture was written by that release's train.py
(tests/fixtures/workdir_0.1.0/train_state.json says how); it holds no checkpoint."""

import dataclasses
import json
import pathlib
import shutil

import jax
import pytest

from jaxseq.data import tokenizers
from jaxseq.model import seq2seq
from jaxseq.serving import translate as translate_cli
from jaxseq.training import checkpointing, configuration, steps
from tests import runs

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "workdir_0.1.0"


def _table(tree) -> dict[str, str]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {
    jax.tree_util.keystr(path): f"{x.dtype}[{','.join(map(str, x.shape))}]" for path, x in leaves
  }


def _built_table(workdir: pathlib.Path) -> dict[str, str]:
  """The train-state layout that today's code builds from a workdir's config and vocabularies."""
  config = checkpointing.load_config(str(workdir))
  src_vocab, tgt_vocab = tokenizers.load_pair(str(workdir))
  model = seq2seq.from_config(config.model, len(src_vocab), len(tgt_vocab))
  abstract = jax.eval_shape(
    lambda key: steps.create_train_state(model, config, key), jax.random.key(0)
  )
  return _table(abstract)


def test_a_release_workdir_builds_the_train_state_it_saved():
  saved = json.loads((FIXTURE / "train_state.json").read_text())["train_state"]
  assert _built_table(FIXTURE) == saved


def _without(tmp_path, section: str, name: str) -> pathlib.Path:
  """A copy of the fixture workdir whose config.json lacks config.SECTION.NAME, as one
  written before that field existed."""
  workdir = tmp_path / "workdir"
  shutil.copytree(FIXTURE, workdir)
  saved = json.loads((workdir / "config.json").read_text())
  del saved[section][name]
  (workdir / "config.json").write_text(json.dumps(saved))
  return workdir


@pytest.mark.parametrize(
  "section, name, default",
  [
    ("model", "tie_embeddings", seq2seq.ModelConfig().tie_embeddings),
    ("model", "scan_unroll", seq2seq.ModelConfig().scan_unroll),
    ("decode", "alpha", configuration.TrainConfig().decode.alpha),
    ("decode", "eval_search", configuration.TrainConfig().decode.eval_search),
  ],
)
def test_a_config_json_without_a_field_takes_its_default(tmp_path, section, name, default):
  workdir = _without(tmp_path, section, name)
  config = checkpointing.load_config(str(workdir))
  assert getattr(getattr(config, section), name) == default
  full = checkpointing.load_config(str(FIXTURE))
  assert config == full  # the fixture holds the defaults, so nothing else moved
  if section == "model":
    saved = json.loads((FIXTURE / "train_state.json").read_text())["train_state"]
    assert _built_table(workdir) == saved


@pytest.mark.parametrize(
  "section, name, default",
  [
    ("model", "local_window", seq2seq.ModelConfig().local_window),
    ("", "coverage_loss_weight", configuration.TrainConfig().coverage_loss_weight),
  ],
)
def test_a_field_newer_than_the_release_takes_its_default(section, name, default):
  saved = json.loads((FIXTURE / "config.json").read_text())
  assert name not in (saved[section] if section else saved)  # the release had no such field
  config = checkpointing.load_config(str(FIXTURE))
  assert getattr(getattr(config, section) if section else config, name) == default


def test_fields_that_have_gone_are_ignored():
  saved = json.loads((FIXTURE / "config.json").read_text())
  assert [k for k in saved if k.startswith("fault_")]  # the fixture holds some
  config = checkpointing.load_config(str(FIXTURE))
  assert not [k for k in config.to_dict() if k.startswith("fault_")]
  assert config.model.hidden_size == saved["model"]["hidden_size"]


def test_a_run_with_the_saved_values_resumes_an_older_workdir(tmp_path):
  workdir = _without(tmp_path, "model", "tie_embeddings")
  saved = json.loads((FIXTURE / "config.json").read_text())
  now = configuration.TrainConfig.from_dict(saved, strict=False)  # today's full config
  checkpointing.check_same_run(str(workdir), now)  # no difference: resumes
  changed = dataclasses.replace(now, model=dataclasses.replace(now.model, hidden_size=24))
  with pytest.raises(checkpointing.CheckpointError, match=r"config.model.hidden_size=24"):
    checkpointing.check_same_run(str(workdir), changed)


def _as_release_wrote_it(workdir: pathlib.Path):
  """Rewrites workdir's config.json with exactly the fields of the fixture's (release
  0.1.0's layout, its fault_* fields included), keeping the workdir's own values."""
  current = json.loads((workdir / "config.json").read_text())
  release = json.loads((FIXTURE / "config.json").read_text())
  old = {
    key: (
      {k: current[key][k] for k in value} if isinstance(value, dict) else current.get(key, value)
    )
    for key, value in release.items()
  }
  (workdir / "config.json").write_text(json.dumps(old))


def test_a_trained_workdir_in_the_release_layout_translates_and_resumes(reference, tmp_path, capfd):
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  _as_release_wrote_it(workdir)
  assert set(json.loads((workdir / "config.json").read_text())) != set(
    json.loads((reference / "config.json").read_text())
  )  # a layout of its own

  outputs = []
  for w in (reference, workdir):
    capfd.readouterr()
    assert translate_cli.run([f"--workdir={w}", "forty one", "seven"]) == 0
    outputs.append(capfd.readouterr().out)
  assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 2

  resumed = runs.train_here(capfd, workdir, num_train_steps=32)
  assert resumed.returncode == 0, resumed.stderr
  assert "resumed from step 30" in resumed.stdout
  assert 32 in runs.checkpoint_steps(workdir)
