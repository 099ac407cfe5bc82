"""benchmarks/speed/translate_throughput.py measures a trained workdir's model, not only the
untrained default."""

import json
import pathlib

from benchmarks.speed import translate_throughput


def test_a_trained_workdir_is_measured_with_its_own_model(trained_workdir):
  config, model, params, src_vocab = translate_throughput.load_model(trained_workdir, seed=0)
  workdir = pathlib.Path(trained_workdir)
  saved = json.loads((workdir / "config.json").read_text())
  assert config.model.to_dict() == saved["model"]
  assert src_vocab.words == json.loads((workdir / "src_vocab.json").read_text())["words"]
  embedding = params["params"]["encoder"]["embed"]["embedding"]
  assert embedding.shape == (len(src_vocab), saved["model"]["embed_size"])
  assert model.config.hidden_size == saved["model"]["hidden_size"]
