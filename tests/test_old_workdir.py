"""A workdir written by jaxseq 0.1.0 still loads: its config.json (with fields that have
since gone, such as fault_*) and vocabularies build a model whose train state has exactly
the names, shapes and dtypes of the one that release saved, so its checkpoints restore for
translation and resuming. The fixture was written by that release's train.py
(tests/fixtures/workdir_0.1.0/train_state.json says how); it holds no checkpoint."""

import json
import pathlib

import jax

from jaxseq import checkpointing, steps, tokenizers
from jaxseq import model as model_lib

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "workdir_0.1.0"


def _table(tree) -> dict[str, str]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): f"{x.dtype}[{','.join(map(str, x.shape))}]"
          for path, x in leaves}


def test_a_release_workdir_builds_the_train_state_it_saved():
  config = checkpointing.load_config(str(FIXTURE))
  src_vocab, tgt_vocab = tokenizers.load_pair(str(FIXTURE))
  model = model_lib.from_config(config.model, len(src_vocab), len(tgt_vocab))
  abstract = jax.eval_shape(lambda key: steps.create_train_state(model, config, key),
                            jax.random.key(0))
  saved = json.loads((FIXTURE / "train_state.json").read_text())["train_state"]
  assert _table(abstract) == saved
