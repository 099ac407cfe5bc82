"""Corpus configs validate, and a bad corpus file ends a run with one line and exit status 2."""

import importlib
import pathlib

import pytest

from configs import multi30k_de_en, tutorial_fra_eng
from jaxseq.training import configuration
from jaxseq.training import main as train_command

# Every runnable config file (corpus_fields.py is the fields they share, not a config).
CONFIGS = sorted(
  p.stem
  for p in (pathlib.Path(__file__).parents[1] / "configs").glob("*.py")
  if p.stem not in ("__init__", "corpus_fields")
)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_is_valid(name):
  configuration.validate(importlib.import_module(f"configs.{name}").get_config())


def test_wrong_language_is_a_config_error():
  config = multi30k_de_en.get_config()
  config.data.target_lang = "de"
  with pytest.raises(configuration.ConfigError, match="data.target_lang"):
    configuration.validate(config)


def test_bad_corpus_file_is_one_line_and_exit_2(tmp_path, capsys):
  raw = tmp_path / "raw" / "tatoeba-eng-fra"
  raw.mkdir(parents=True)
  (raw / "eng-fra.txt").write_text("I am here.\tJe suis la.\nI am tired.  Je suis fatigue.\n")
  config = tutorial_fra_eng.get_config()
  config.data_dir, config.tfds_dir = str(tmp_path / "raw"), str(tmp_path / "tfds")
  status = train_command.run_training(config, str(tmp_path / "workdir"))
  err = capsys.readouterr().err.strip().splitlines()
  assert status == 2
  assert err == [
    f"error: bad data: {raw / 'eng-fra.txt'}:2: no tab in the line; expected English<TAB>French"
  ]
