"""Importing or calling jaxseq changes no process-wide state: logger levels, absl's
verbosity, the exception hooks, jax.config or the garbage collector. The commands set
what they need in scopes that put it back (jaxseq/quiet.py).

Each check runs in a fresh interpreter, so that what this test process set up (pytest's
own hooks, conftest's environment) does not hide a change."""

import json
import pathlib
import subprocess
import sys
import textwrap

from tests import runs

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "jaxseq"

# The libraries jaxseq builds on, imported before the first snapshot: what they set up
# when imported is theirs, not jaxseq's.
PRELUDE = """
import asyncio, gc, json, logging, sys, threading
import absl.logging, flax, grain, jax, optax, orbax.checkpoint, sentencepiece, starlette
import matplotlib, sacrebleu, sacremoses, tensorboardX, tensorflow_datasets, uvicorn
from tensorboardX import SummaryWriter

def snapshot():
  levels = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)}
  levels[""] = logging.root.level
  return {"levels": levels, "absl": absl.logging.get_verbosity(),
          "hooks": [id(sys.excepthook), id(sys.unraisablehook), id(threading.excepthook),
                    id(asyncio.get_event_loop_policy())],
          "gc": [gc.isenabled(), list(gc.get_threshold()), gc.get_freeze_count()],
          "jax": {k: repr(v) for k, v in jax.config.values.items()}}

def changes(before, after):
  found = {k: (before[k], after[k]) for k in ("absl", "hooks", "gc") if before[k] != after[k]}
  found.update({f"logger {n!r}": (v, after["levels"].get(n))
                for n, v in before["levels"].items() if after["levels"].get(n) != v})
  found.update({f"logger {n!r}": (None, v) for n, v in after["levels"].items()
                if n not in before["levels"] and v != logging.NOTSET})
  found.update({f"jax {k}": (v, after["jax"].get(k)) for k, v in before["jax"].items()
                if after["jax"].get(k) != v})
  return found

before = snapshot()
"""


def _changes(body: str) -> dict:
  script = PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(changes(before, snapshot())))\n"
  result = subprocess.run(
    [sys.executable, "-c", script], cwd=runs.REPO, capture_output=True, text=True, timeout=300
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_every_module_changes_nothing():
  modules = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
    for p in PACKAGE.rglob("*.py")
    if p.name != "__init__.py"
  )
  assert len(modules) > 30
  imports = "\n".join(f"import {m}" for m in modules)
  assert _changes(imports) == {}


def test_loading_translating_and_training_put_everything_back(reference_run, tmp_path):
  workdir, _ = reference_run
  assert (
    _changes(f"""
      import train
      from jaxseq.serving import translate
      translator = translate.Translator([{str(workdir)!r}], command="test")
      translator.translate([translate.Request("seven")], batch_size=1)
      assert translate.run(["--workdir={workdir}", "forty two"]) == 0
      assert train.main(["train.py", "--workdir={tmp_path}", "--config.num_train_steps=2",
                         "--config.data.num_train=50", "--config.data.num_eval=5",
                         "--config.batch_size=8",
                         "--config.model.hidden_size=8", "--config.model.embed_size=8",
                         "--config.model.attention_size=8", "--config.num_samples=0",
                         "--config.num_attention_plots=0"]) == 0
      """)
    == {}
  )
