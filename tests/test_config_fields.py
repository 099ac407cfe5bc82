"""Each config field is defined once (jaxseq/fields.py): the tree declares it in one class,
the config files only set it, and every kind of check names the field, value and rule."""

import ast
import dataclasses
import importlib
import pathlib

import pytest

import train as train_py
from configs import default
from jaxseq import fields
from jaxseq.data import corpora
from jaxseq.decoding import evaluation
from jaxseq.model import seq2seq
from jaxseq.training import configuration

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_CLASSES = (
  seq2seq.ModelConfig,
  corpora.DataConfig,
  evaluation.DecodeConfig,
  configuration.TrainConfig,
)
RECIPES = sorted(
  p.stem for p in (REPO / "configs").glob("*.py") if p.stem not in ("__init__", "corpus_fields")
)


def declarations(source: str, path: str) -> list[tuple[str, str, str]]:
  """(path, class, name) of every class-level annotated declaration `name: type` in a class
  that holds config fields: a subclass of fields.Config (a base named Config), or a Flax
  module of jaxseq/model/seq2seq.py (Seq2Seq and Encoder once repeated config.model's fields)."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if not isinstance(node, ast.ClassDef):
      continue
    bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
    if "Config" not in bases and not (path == "jaxseq/model/seq2seq.py" and "Module" in bases):
      continue
    found += [
      (path, node.name, stmt.target.id)
      for stmt in node.body
      if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    ]
  return found


def tree_declarations() -> list[tuple[str, str, str]]:
  """declarations() over every Python file of jaxseq/ and configs/."""
  found = []
  for path in sorted([*(REPO / "jaxseq").rglob("*.py"), *(REPO / "configs").glob("*.py")]):
    found += declarations(path.read_text(), str(path.relative_to(REPO)))
  return found


def test_the_declaration_finder_sees_a_repeated_field():
  source = (
    "class Encoder(nn.Module):\n  hidden_size: int\n  other = 3\n"
    "class DataConfig(fields.Config):\n  hidden_size: int = fields.field(1, 'x')\n"
    "class Plain:\n  hidden_size: int\n"
  )
  assert declarations(source, "jaxseq/model/seq2seq.py") == [
    ("jaxseq/model/seq2seq.py", "Encoder", "hidden_size"),
    ("jaxseq/model/seq2seq.py", "DataConfig", "hidden_size"),
  ]
  assert declarations(source, "jaxseq/other.py") == [
    ("jaxseq/other.py", "DataConfig", "hidden_size")
  ]


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_each_field_is_declared_in_exactly_one_place(cls):
  found = tree_declarations()
  path = str(pathlib.Path(importlib.import_module(cls.__module__).__file__).relative_to(REPO))
  for f in dataclasses.fields(cls):
    where = [(p, c) for p, c, name in found if name == f.name]
    assert where == [(path, cls.__name__)], f"{cls.section or 'config'}.{f.name}: {where}"
    assert f.metadata["doc"], f"{f.name} has no one-line meaning"


def test_config_files_make_no_config_dict_of_their_own():
  for path in (REPO / "configs").glob("*.py"):
    assert "ConfigDict(" not in path.read_text(), f"{path.name} builds fields by hand"


def _keys(tree: dict, prefix: str = "") -> set[str]:
  keys = set()
  for key, value in tree.items():
    keys |= _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
  return keys


@pytest.mark.parametrize("name", RECIPES)
def test_every_config_file_has_exactly_the_dataclass_fields(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  assert _keys(config.to_dict()) == _keys(configuration.TrainConfig().to_dict())
  with pytest.raises(AttributeError):  # locked: a config file can only set fields
    config.model.hidden_sise = 3


def test_the_default_config_is_the_dataclass_defaults():
  assert configuration.validate(default.get_config()) == configuration.TrainConfig()
  assert default.get_model_config().to_dict() == dataclasses.asdict(seq2seq.ModelConfig())


@pytest.mark.parametrize(
  "field, value, expected",
  [
    ("model.bidirectional", 1, "True or False"),  # bool: an int is not a bool
    ("model.hidden_size", True, "an integer >= 1"),  # int: a bool is not an int
    ("model.max_length", 8.0, "an integer >= 1"),  # int: a float is not an int
    ("decode.alpha", "0.6", "a number in [0.0, inf)"),  # float: a string is not one
    ("data.language", "es", "one of de, fr"),  # one_of a table
    ("data.vocab_size", 299, "an integer >= 300"),  # at_least
    ("label_smoothing", 1.0, "a number in [0, 1)"),  # in_range, open end
    ("data_dir", 3, "a string"),  # str without a check
    ("model.hidden_sise", 3, "no such field; the fields are attention, attention_size"),
    ("decode.nbest", 5, "an integer in [1, decode.beam_size=4]"),  # a rule between fields
  ],
)
def test_each_kind_of_check_names_the_field_the_value_and_what_is_allowed(field, value, expected):
  values = configuration.TrainConfig().to_dict()
  section, _, name = field.rpartition(".")
  (values[section] if section else values)[name] = value
  with pytest.raises(configuration.ConfigError) as error:
    configuration.TrainConfig.from_dict(values)
  assert str(error.value).startswith(
    f"config.{field}={value!r} is not allowed; expected {expected}"
  )
  assert error.value.field == field


@pytest.mark.parametrize(
  "weight, start, allowed",
  [(0.5, 0, True), (0.5, 999, True), (0.5, 1000, False), (0.0, 500, False)],
)
def test_a_coverage_phase_must_start_within_training_and_have_a_weight(weight, start, allowed):
  values = configuration.TrainConfig().to_dict()  # 1,000 steps
  values["model"]["attention"] = "coverage"
  values.update(coverage_loss_weight=weight, coverage_loss_from_step=start)
  if allowed:
    assert configuration.TrainConfig.from_dict(values).coverage_loss_from_step == start
    return
  with pytest.raises(configuration.ConfigError, match="never joins") as error:
    configuration.TrainConfig.from_dict(values)
  assert error.value.field == "coverage_loss_from_step"


def test_a_float_field_takes_an_int_and_keeps_a_float():
  config = configuration.validate({"learning_rate": 1, "decode": {"alpha": 0}})
  assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
  assert isinstance(config.decode.alpha, float)


def test_the_data_rules_follow_the_dataset():
  with pytest.raises(configuration.ConfigError, match=r"config.data.pair='fr-en'.*pair of"):
    configuration.validate({"dataset": "wmt14", "data": {"source_lang": "en", "target_lang": "de"}})
  # The numbers ignore the corpus languages; a real corpus checks them.
  configuration.validate({"data": {"source_lang": "xx"}})
  with pytest.raises(configuration.ConfigError, match="config.data.source_lang='xx'"):
    configuration.validate({"dataset": "multi30k", "data": {"source_lang": "xx"}})


def test_a_partial_mapping_takes_the_defaults_and_a_loose_one_ignores_unknown_keys():
  config = configuration.TrainConfig.from_dict(
    {"model": {"hidden_size": 32}, "gone": 1}, strict=False
  )
  assert config.model.hidden_size == 32
  assert config == dataclasses.replace(
    configuration.TrainConfig(), model=dataclasses.replace(seq2seq.ModelConfig(), hidden_size=32)
  )


def test_the_listing_has_every_field_with_its_meaning():
  lines = fields.describe(configuration.TrainConfig)
  assert len(lines) == len(_keys(configuration.TrainConfig().to_dict()))
  assert "model.hidden_size: int = 128  # recurrent state size of encoder and decoder" in lines


def test_a_bad_override_is_one_line_and_exit_status_2(tmp_path, capsys):
  status = train_py.main(["train.py", f"--workdir={tmp_path / 'run'}", "--config.decode.nbest=9"])
  err = capsys.readouterr().err.strip().splitlines()
  assert status == 2
  assert err == [
    "error: config.decode.nbest=9 is not allowed; expected an integer in [1, decode.beam_size=4]"
  ]
  assert not (tmp_path / "run").exists()  # refused before anything was written
