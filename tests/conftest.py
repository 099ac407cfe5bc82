"""Shared fixtures: a tiny model trained once per session by the real train.py."""

import os
import subprocess
import sys

import pytest

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
