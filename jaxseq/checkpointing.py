"""Checkpoints in the workdir through orbax-checkpoint.

Layout of a workdir:
  config.json         the run's config (ConfigDict.to_json)
  src_vocab.json ...  the tokenizers (see jaxseq/vocab.py)
  checkpoints/<step>/ orbax items: `state` (TrainState arrays), `data` (iterator state, JSON)
"""

import json
import os

import jax
import ml_collections
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


class CheckpointError(RuntimeError):
  """A checkpoint is missing, damaged, or does not fit the model asked for."""


def save_config(workdir: str, config: ml_collections.ConfigDict):
  with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
    f.write(config.to_json(indent=2))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise CheckpointError(f"{path} is missing: {workdir!r} holds no jaxseq run")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def make_manager(workdir: str, config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)),
                               options=options)


def save(manager: ocp.CheckpointManager, state, data_state: dict, *, force: bool = False):
  """Saves (asynchronously) the train state and the input iterator's state."""
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                              data=ocp.args.JsonSave(data_state)), force=force)


def restore_latest(manager: ocp.CheckpointManager, abstract_state):
  """(state, data_state) of the latest checkpoint, or None when there is none."""
  step = manager.latest_step()
  if step is None:
    return None
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
  return restored.state, restored.data


def restore_for_inference(workdir: str, abstract_state):
  """(state, step) of the workdir's latest checkpoint, for translation."""
  directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
  if not os.path.isdir(directory):
    raise CheckpointError(f"{directory} is missing: train a model into {workdir!r} first")
  options = ocp.CheckpointManagerOptions(read_only=True)
  with ocp.CheckpointManager(directory, options=options) as manager:
    step = manager.latest_step()
    if step is None:
      raise CheckpointError(f"{directory} holds no checkpoint")
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))
  return restored.state, step
