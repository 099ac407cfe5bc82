"""Checkpoints in the workdir through orbax-checkpoint.

Layout of a workdir:
  config.json          the run's config (configuration.TrainConfig.to_dict, as JSON)
  src_vocab.json ...   the tokenizers (see jaxseq/data/vocab.py); a resumed run reads these
  checkpoints/<step>/  orbax items: `state` (TrainState arrays), `data` (iterator state,
                       JSON), `digest` (SHA-256 of the state's bytes, JSON)
  damaged_checkpoints/ checkpoints that failed to restore, moved out of orbax's way

What a checkpoint promises:
  * atomic: orbax writes into a temporary directory and renames it when complete, so a
    run killed during a save leaves the previous checkpoints as they were;
  * verified: the digest is recomputed on restore, so a truncated or corrupted file is
    found even where the file format would not notice; the newest checkpoint that
    restores and verifies is used, the damaged ones are moved to damaged_checkpoints/;
  * finite: a state holding NaN or Inf is refused before anything is written;
  * kept: the newest config.keep_checkpoints, and the best by validation metric
    (BLEU where given, else held-out loss); orbax deletes old ones only after a new one
    is complete.
"""

import dataclasses
import errno
import hashlib
import json
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util
from orbax.checkpoint import checkpoint_managers

from jaxseq import quiet
from jaxseq.data import tokenizers
from jaxseq.errors import CheckpointError  # noqa: F401  (raised here, caught by the commands)
from jaxseq.training import configuration

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged_checkpoints"
# Config fields a resumed run must share with the run that wrote the workdir: they fix the
# shapes of the saved arrays, the vocabulary and the order of the training data.
RESUME_FIELDS = ("model", "dataset", "data", "seed")


def prepare_workdir(workdir: str):
  """Creates the workdir and proves it writable; CheckpointError says why it is not."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise CheckpointError(
      f"workdir {workdir!r} is a file, not a directory; "
      "give --workdir a directory (it is created if missing)"
    )
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_test")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise CheckpointError(
      f"workdir {workdir!r} cannot be used: {e.strerror or e}; give --workdir a writable directory"
    ) from None
  checkpoints = os.path.join(workdir, CHECKPOINT_DIR)
  if os.path.exists(checkpoints) and not os.path.isdir(checkpoints):
    raise CheckpointError(
      f"{checkpoints} is a file, not a checkpoint directory; use another --workdir"
    )


def has_checkpoints(workdir: str) -> bool:
  """Whether the workdir's checkpoint directory holds anything (a run to resume)."""
  directory = os.path.join(workdir, CHECKPOINT_DIR)
  return os.path.isdir(directory) and bool(os.listdir(directory))


def save_config(workdir: str, config: configuration.TrainConfig):
  """Writes config.json atomically (a killed run never leaves half a file)."""
  path = os.path.join(workdir, CONFIG_FILE)
  with open(path + ".tmp", "w") as f:
    json.dump(config.to_dict(), f, indent=2)
  os.replace(path + ".tmp", path)


def load_config(workdir: str) -> configuration.TrainConfig:
  """The workdir's config.json as a TrainConfig: a field it lacks (added by a later
  version) takes its default, a field this version no longer has is ignored."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise CheckpointError(f"{path} is missing: {workdir!r} holds no jaxseq run")
  try:
    with open(path) as f:
      saved = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CheckpointError(f"{path} is not a jaxseq config: {e}") from None
  try:
    return configuration.TrainConfig.from_dict(saved, strict=False)
  except configuration.ConfigError as e:
    raise CheckpointError(f"{path} holds a value this version does not allow: {e}") from None


def _flatten(tree: dict) -> dict:
  """{"model.hidden_size": 256, ...}; tuples as lists, as JSON gives them back."""
  return {
    k: list(v) if isinstance(v, tuple) else v
    for k, v in traverse_util.flatten_dict(tree, sep=".").items()
  }


def check_same_run(workdir: str, config: configuration.TrainConfig):
  """Raises CheckpointError naming every RESUME_FIELDS field that differs from the saved run."""
  if not os.path.isfile(os.path.join(workdir, CONFIG_FILE)):
    raise CheckpointError(
      f"{os.path.join(workdir, CHECKPOINT_DIR)} is not empty but {CONFIG_FILE} is missing: "
      "this workdir was not written by jaxseq; give a new --workdir"
    )
  saved = _flatten({k: v for k, v in load_config(workdir).to_dict().items() if k in RESUME_FIELDS})
  now = _flatten({k: v for k, v in config.to_dict().items() if k in RESUME_FIELDS})
  differences = [
    f"config.{k}={now.get(k, '<absent>')!r} (saved: {saved.get(k, '<absent>')!r})"
    for k in sorted(set(saved) | set(now))
    if saved.get(k) != now.get(k)
  ]
  if differences:
    raise CheckpointError(
      f"{workdir!r} holds a run with a different model or data: {'; '.join(differences)}; "
      "resume with the saved values or give a new --workdir"
    )


def check_same_vocab(side: str, path: str, saved_words, built_words):
  """Raises CheckpointError when the vocabulary a run builds differs from the saved one."""
  difference = tokenizers.first_difference(saved_words, built_words)
  if difference is None:
    return
  first, saved_word, built_word = difference
  raise CheckpointError(
    f"the {side} vocabulary differs from {path}: {len(built_words)} words built now, "
    f"{len(saved_words)} saved; first difference at id {first} ({built_word!r} now, "
    f"{saved_word!r} saved); give a new --workdir"
  )


def state_digest(state) -> str:
  """SHA-256 over the paths, dtypes, shapes and bytes of every array of the state.

  Integers are hashed as int64: a Python int in the restore target (a fresh
  TrainState's step) comes back as int64 with the same value.
  """
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]:
    array = np.ascontiguousarray(leaf)
    if np.issubdtype(array.dtype, np.integer):
      array = array.astype(np.int64)
    digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


@jax.jit
def _all_finite(state) -> jax.Array:
  leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.asarray([jnp.isfinite(x).all() for x in leaves]))


def _quality(metrics: dict) -> float:
  """Larger is better: BLEU where the run computed it, else minus the held-out loss."""
  return metrics["bleu"] if "bleu" in metrics else -metrics["heldout_loss"]


def make_manager(workdir: str, config) -> ocp.CheckpointManager:
  """Asynchronous manager keeping the newest keep_checkpoints and the best by metric."""
  policy = checkpoint_managers.AnyPreservationPolicy(
    [
      checkpoint_managers.LatestN(n=config.keep_checkpoints),
      checkpoint_managers.BestN(
        get_metric_fn=_quality, n=1, keep_checkpoints_without_metrics=False
      ),
    ]
  )
  # best_fn only makes orbax write each checkpoint's metrics, so that the best one is
  # still known after a restart; the policy above decides what is deleted.
  # The step's directories are made in save() itself, before the arrays are written in
  # the background: made asynchronously, a directory that cannot be made (a folder that
  # cannot be written, a vanished workdir) leaves orbax's commit threads waiting for its
  # "directory created" signal for minutes, and the process cannot exit until they give up.
  options = ocp.CheckpointManagerOptions(
    preservation_policy=policy,
    best_fn=_quality,
    best_mode="max",
    create=True,
    cleanup_tmp_directories=True,
    enable_async_checkpointing=True,
    async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
  )
  try:
    return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)), options=options
    )
  except (OSError, ValueError) as e:
    raise CheckpointError(f"cannot open the checkpoints in {workdir!r}: {e}") from None


def save(
  manager: ocp.CheckpointManager,
  state,
  data_state: dict,
  *,
  metrics: dict | None = None,
  force: bool = False,
):
  """Saves (asynchronously) the train state and the input iterator's state.

  Raises CheckpointError, writing nothing, when the state holds NaN or Inf, when the
  checkpoint folder is gone (the workdir was moved or deleted), and when the previous
  asynchronous save failed (e.g. a full disk).
  """
  step = int(jax.device_get(state.step))
  if not os.path.isdir(manager.directory):  # orbax would make it again, workdir and all
    raise CheckpointError(
      f"saving a checkpoint into {manager.directory} failed (the folder "
      "is gone: the workdir was moved or deleted during the run)"
    )
  if not bool(_all_finite(state)):
    raise CheckpointError(
      f"the train state of step {step} holds NaN or Inf; it was not saved "
      f"(kept: steps {manager.all_steps()})"
    )
  digest = {"sha256": state_digest(state)}
  try:
    manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state),
        digest=ocp.args.JsonSave(digest),
      ),
      metrics=metrics,
      force=force,
    )
  except Exception as e:  # orbax and tensorstore raise many kinds; all mean "not saved"
    raise _save_failed(manager, e) from None


def wait(manager: ocp.CheckpointManager):
  """Waits for the save in flight; CheckpointError when it failed."""
  try:
    manager.wait_until_finished()
  except Exception as e:  # as in save()
    raise _save_failed(manager, e) from None


def _reason(error: Exception) -> str:
  """A short cause: the OS error where one is named inside a long library message."""
  text = " ".join(str(error).split())
  for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO):
    if os.strerror(code) in text:
      return f"{os.strerror(code)} [Errno {code}]"
  return f"{type(error).__name__}: {text[:200]}"


def _save_failed(manager, error: Exception) -> CheckpointError:
  good = [s for s in _step_dirs(manager.directory)]
  return CheckpointError(
    f"saving a checkpoint into {manager.directory} failed "
    f"({_reason(error)}); the checkpoints of steps "
    f"{good} were left as they were"
  )


def _step_dirs(directory) -> list[int]:
  directory = str(directory)
  if not os.path.isdir(directory):
    return []
  return sorted(
    int(n)
    for n in os.listdir(directory)
    if n.isdigit() and os.path.isdir(os.path.join(directory, n))
  )


@dataclasses.dataclass
class Restored:
  state: object
  data_state: dict
  step: int
  damaged: list[tuple[int, str]]  # (step, why) of newer checkpoints that were moved aside


def _restore_verified(manager, step: int, abstract_state, with_data: bool = True):
  """The checkpoint of step, its digest checked; quiet about a damaged one (it raises)."""
  items = {"state": ocp.args.StandardRestore(abstract_state), "digest": ocp.args.JsonRestore()}
  if with_data:
    items["data"] = ocp.args.JsonRestore()
  with quiet.quiet_restore():
    restored = manager.restore(step, args=ocp.args.Composite(**items))
  if restored.digest.get("sha256") != state_digest(restored.state):
    raise CheckpointError("its arrays do not match the digest written with them")
  return restored


def _newest_good(manager, abstract_state, *, with_data: bool):
  """(the newest checkpoint that restores and verifies, its step, [(step, why)] of the newer
  ones that did not); (None, None, those) when none does."""
  damaged: list[tuple[int, str]] = []
  for step in _step_dirs(manager.directory)[::-1]:
    try:
      return _restore_verified(manager, step, abstract_state, with_data), step, damaged
    except Exception as e:  # any failure to read back means: not a usable checkpoint
      damaged.append((step, _reason(e)))
  return None, None, damaged


def restore_state(manager: ocp.CheckpointManager, step: int, abstract_state):
  """The verified train state of one step (the data position is not read)."""
  return _restore_verified(manager, step, abstract_state, with_data=False).state


def restore_latest(
  manager: ocp.CheckpointManager, abstract_state, workdir: str, log: Callable[[str], None] = print
) -> Restored | None:
  """The newest checkpoint that restores and verifies, or None when there is none.

  Damaged newer checkpoints are reported (one line each) and moved to
  workdir/damaged_checkpoints/, so that orbax never counts them among those it keeps.
  Raises CheckpointError when there are checkpoints but none of them restores (e.g. a
  directory written by another program): nothing is moved or deleted then.
  """
  restored, step, damaged = _newest_good(manager, abstract_state, with_data=True)
  if restored is not None:
    for bad_step, why in damaged:
      target = _move_aside(manager.directory, bad_step, workdir)
      log(f"checkpoint of step {bad_step} is damaged ({why}); moved to {target}")
    if damaged:
      manager.reload()
    return Restored(restored.state, restored.data, step, damaged)
  if damaged:
    step, why = damaged[0]
    raise CheckpointError(
      f"none of the {len(damaged)} checkpoints in {manager.directory} can be restored "
      f"(step {step}: {why}); they were left as they were: move them away or give a new "
      "--workdir"
    )
  return None


def _move_aside(directory, step: int, workdir: str) -> str:
  target_dir = os.path.join(workdir, DAMAGED_DIR)
  os.makedirs(target_dir, exist_ok=True)
  target, n = os.path.join(target_dir, str(step)), 1
  while os.path.exists(target):
    target, n = os.path.join(target_dir, f"{step}.{n}"), n + 1
  os.rename(os.path.join(str(directory), str(step)), target)
  return target


def params_mismatch(step_dir: str, abstract_params) -> str | None:
  """The first parameter whose saved shape differs from the model's, or None.

  Read from the checkpoint's metadata, without restoring any array.
  """
  try:
    with quiet.quiet_restore():
      saved = ocp.StandardCheckpointer().metadata(os.path.join(step_dir, "state"))
    saved = saved.item_metadata
    saved = {
      jax.tree_util.keystr(p): tuple(x.shape)
      for p, x in jax.tree_util.tree_leaves_with_path(saved["params"])
    }
  except Exception:  # unreadable metadata: the restore itself reports the damage
    return None
  wanted = {
    jax.tree_util.keystr(p): tuple(x.shape)
    for p, x in jax.tree_util.tree_leaves_with_path(abstract_params)
  }
  for path in sorted(set(saved) | set(wanted)):
    if saved.get(path) != wanted.get(path):
      return (
        f"parameter {path} is {saved.get(path, 'absent')} in the checkpoint, "
        f"{wanted.get(path, 'absent')} for this config"
      )
  return None


def restore_for_inference(workdir: str, abstract_state, log: Callable[[str], None] | None = None):
  """(state, step) of the workdir's newest checkpoint that restores and verifies.

  Each newer checkpoint that was skipped as damaged is reported to log (one line naming
  its path; nothing is moved: inference only reads the workdir). A checkpoint whose
  parameter shapes do not fit the model of abstract_state is refused with a
  CheckpointError saying which parameter differs. The arrays come back on this
  process's first device, whatever devices the training run saved them from (orbax
  would otherwise ask for the saved topology, e.g. two CPU devices).
  """
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract_state = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract_state
  )
  directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
  if not os.path.isdir(directory):
    raise CheckpointError(f"{directory} is missing: train a model into {workdir!r} first")
  steps_saved = _step_dirs(directory)
  if steps_saved:
    mismatch = params_mismatch(os.path.join(directory, str(steps_saved[-1])), abstract_state.params)
    if mismatch:
      raise CheckpointError(
        f"the checkpoint in {directory} does not fit the workdir's "
        f"config.json and vocabulary files: {mismatch}"
      )
  options = ocp.CheckpointManagerOptions(read_only=True)
  with ocp.CheckpointManager(directory, options=options) as manager:
    restored, step, errors = _newest_good(manager, abstract_state, with_data=False)
  if restored is not None:
    for bad_step, why in errors:
      if log is not None:
        log(
          f"the checkpoint of step {bad_step} ({os.path.join(directory, str(bad_step))}) "
          f"is damaged ({why}); using step {step}"
        )
    return restored.state, step
  if errors:
    raise CheckpointError(
      f"no checkpoint in {directory} can be restored (step {errors[0][0]}: {errors[0][1]})"
    )
  raise CheckpointError(f"{directory} holds no checkpoint")
