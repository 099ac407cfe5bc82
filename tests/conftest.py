"""Shared fixtures: tiny models built the way the library builds them, and tiny runs of
train.py in a subprocess (see tests/runs.py)."""

import os
import subprocess
import sys

# The tests compile many tiny programs; XLA's backend optimisations cost more time than
# they save at these sizes. Set before JAX starts; subprocesses inherit it.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

from configs import default  # noqa: E402
from jaxseq import model as model_lib  # noqa: E402
from jaxseq.model import Seq2Seq  # noqa: E402
from tests import runs  # noqa: E402
from jaxseq.vocab import BOS  # noqa: E402


def tiny_model(src_vocab_size: int = 11, tgt_vocab_size: int = 13, **overrides) -> Seq2Seq:
  """configs/default.py's model (the one source of its fields) at tiny sizes."""
  fields = default.get_model_config()
  fields.update(embed_size=8, hidden_size=12, attention_size=10, max_length=9,
                bidirectional=False)
  fields.update(overrides)
  return model_lib.from_config(fields, src_vocab_size, tgt_vocab_size)


def init_params(model: Seq2Seq, seed: int = 0):
  # Compiled as one program: op-by-op initialisation is several times slower on CPU.
  return jax.jit(model.init)(jax.random.key(seed), jnp.array([4, 5], jnp.int32),
                             jnp.int32(BOS))


@pytest.fixture
def rng():
  return jax.random.key(42)


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory):
  return tmp_path_factory.mktemp("compile_cache")


@pytest.fixture(scope="session")
def reference(tmp_path_factory, compile_cache):
  """The workdir of one uninterrupted tiny run (runs.TINY); tests must not change it."""
  workdir = tmp_path_factory.mktemp("reference")
  result = runs.train(workdir, compile_cache)
  assert result.returncode == 0, result.stderr
  return workdir


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_FLAGS = (
    "--config.data.num_train=200", "--config.data.num_eval=20",
    "--config.num_train_steps=6", "--config.eval_every_steps=3", "--config.log_every_steps=2",
    "--config.checkpoint_every_steps=3", "--config.batch_size=16",
    "--config.model.hidden_size=16", "--config.model.embed_size=16",
    "--config.model.attention_size=16", "--config.model.max_length=12",
    "--config.decode.beam_size=3", "--config.num_attention_plots=1",
)


def subprocess_env() -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  env.setdefault("JAXSEQ_DATA_DIR", os.path.join(REPO, "..", "shared", "data"))
  return env


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory) -> str:
  """A workdir written by `python train.py` with a tiny config (a few steps)."""
  workdir = str(tmp_path_factory.mktemp("tiny_run"))
  proc = subprocess.run([sys.executable, "train.py", f"--workdir={workdir}", *TINY_FLAGS],
                        cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir
