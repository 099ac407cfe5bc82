"""Shared fixtures: tiny models built the way the library builds them, and tiny runs of
train.py in a subprocess (see tests/runs.py).

The suite runs on two pytest-xdist workers (pyproject's addopts); what is shared between
them (the compilation cache, the one tiny trained workdir) lives in folders both can see,
and the workdir is trained once, under a file lock.
"""

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import sys
import tempfile

# The tests compile many tiny programs; XLA's backend optimisations cost more time than
# they save at these sizes, and the older CPU fusion code generator compiles faster than
# the fusion emitters (test_model and test_beam_search: 144 s instead of 205 s, 2 cores).
# Set before JAX starts; subprocesses inherit it.
# Each of the two workers runs its matmuls on one thread: two workers on two cores gain
# nothing from splitting them, and lose the time of the threads waiting on each other.
os.environ.setdefault(
  "XLA_FLAGS",
  "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false "
  "--xla_cpu_multi_thread_eigen=false",
)
# The session's folders are named by the process that loads this file first (pytest's own,
# the controller with xdist), and the workers and their subprocesses inherit the name; that
# process removes them at the end (pytest_unconfigure).
SESSION = os.environ.setdefault("JAXSEQ_TEST_SESSION", str(os.getpid()))
# One persistent compilation cache for this session's processes (this one and the train.py
# and translate subprocesses): the tiny runs compile the same steps again and again. The
# cache only saves time: a cached executable is the one compiled before.
COMPILE_CACHE = os.path.join(tempfile.gettempdir(), f"jaxseq-tests-xla-{SESSION}")
os.makedirs(COMPILE_CACHE, exist_ok=True)
# Byte code, likewise: with PYTHONDONTWRITEBYTECODE set and a venv installed without .pyc
# files (pip --no-compile), every one of the suite's dozens of Python processes compiled the
# source of jax, flax, orbax and the rest again, about 4 s of CPU each. The session's
# processes keep their byte code in one folder of their own, outside the tree and the venv.
PYCACHE = os.path.join(tempfile.gettempdir(), f"jaxseq-tests-pyc-{SESSION}")
os.environ["PYTHONPYCACHEPREFIX"] = PYCACHE
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.pycache_prefix, sys.dont_write_bytecode = PYCACHE, False
os.environ["JAX_COMPILATION_CACHE_DIR"] = COMPILE_CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

from jaxseq.data.vocab import BOS  # noqa: E402
from jaxseq.model import seq2seq  # noqa: E402
from jaxseq.model.seq2seq import Seq2Seq  # noqa: E402
from tests import runs  # noqa: E402


def tiny_model(src_vocab_size: int = 11, tgt_vocab_size: int = 13, **overrides) -> Seq2Seq:
  """The default model (seq2seq.ModelConfig, the one source of its fields) at tiny sizes."""
  fields = dict(embed_size=8, hidden_size=12, attention_size=10, max_length=9, bidirectional=False)
  return Seq2Seq(seq2seq.ModelConfig(**{**fields, **overrides}), src_vocab_size, tgt_vocab_size)


def init_params(model: Seq2Seq, seed: int = 0):
  # Compiled as one program: op-by-op initialisation is several times slower on CPU.
  return jax.jit(model.init)(jax.random.key(seed), jnp.array([4, 5], jnp.int32), jnp.int32(BOS))


@pytest.fixture
def rng():
  return jax.random.key(42)


# The longest files start first, so that the two workers finish together instead of one
# running a long test alone at the end (with --dist worksteal in pyproject's addopts).
LONGEST_FIRST = ("test_gpu_script.py", "test_parallel.py", "test_resume.py")


def pytest_collection_modifyitems(items):
  rank = lambda item: next(
    (i for i, name in enumerate(LONGEST_FIRST) if item.path.name == name), len(LONGEST_FIRST)
  )
  items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept


def pytest_unconfigure(config):
  # The last hook: the terminal summary, which imports modules of its own, has run.
  if not hasattr(config, "workerinput"):  # the controller, after every worker
    for folder in (COMPILE_CACHE, PYCACHE):
      shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: pathlib.Path):
  with open(path, "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    yield


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> tuple[pathlib.Path, dict]:
  """One uninterrupted tiny run of the real train.py (runs.TINY), trained once for the
  whole session (all workers): its workdir and what it printed ({"stdout", "stderr"})."""
  base = tmp_path_factory.getbasetemp()
  shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  workdir, printed = shared / "reference", shared / "reference.json"
  with _locked(shared / "reference.lock"):
    if not printed.exists():
      result = runs.train(workdir)
      assert result.returncode == 0, result.stderr
      printed.write_text(json.dumps({"stdout": result.stdout, "stderr": result.stderr}))
  return workdir, json.loads(printed.read_text())


@pytest.fixture(scope="session")
def reference(reference_run) -> pathlib.Path:
  """The shared tiny trained workdir: every test that needs some trained model uses it.
  Tests must not change it (copy it first)."""
  return reference_run[0]


@pytest.fixture(scope="session")
def exported(reference, tmp_path_factory) -> str:
  """The shared tiny workdir exported by jaxseq-export (made once for all workers); tests
  must not change it (copy it first)."""
  from jaxseq.serving import export

  base = tmp_path_factory.getbasetemp()
  shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  out = shared / "exported"
  with _locked(shared / "exported.lock"):
    if not (out / "manifest.json").exists():
      assert export.run([f"--workdir={reference}", f"--out={out}"]) == 0
  return str(out)


@pytest.fixture(scope="session")
def trained_workdir(reference) -> str:
  """The shared tiny trained workdir (see `reference`), as a path string."""
  return str(reference)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env() -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  env.setdefault("JAXSEQ_DATA_DIR", os.path.join(REPO, "..", "shared", "data"))
  return env
