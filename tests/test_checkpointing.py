"""checkpointing.py and preemption.py in-process: refusal of NaN, verification, mismatch."""

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxseq.model import seq2seq
from jaxseq.training import checkpointing, preemption, steps


@pytest.fixture(scope="module")
def config():
  config = default.get_config()
  config.model.update(hidden_size=8, embed_size=4, attention_size=4)
  config.keep_checkpoints = 2
  return config


@pytest.fixture(scope="module")
def state(config):
  model = seq2seq.from_config(config.model, 9, 11)
  return steps.create_train_state(model, config, jax.random.key(0))


def _with_step(state, step):
  return state.replace(step=jnp.asarray(step, jnp.int32))


def _save_all(workdir, config, states):
  manager = checkpointing.make_manager(workdir, config)
  for s in states:
    checkpointing.save(manager, s, {"position": int(s.step)}, force=True)
  checkpointing.wait(manager)
  manager.close()


def _assert_same_arrays(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_then_restore_gives_back_the_same_state_and_iterator(config, state, tmp_path):
  _save_all(tmp_path, config, [_with_step(state, 3)])
  manager = checkpointing.make_manager(tmp_path, config)
  restored = checkpointing.restore_latest(manager, state, str(tmp_path))
  manager.close()
  assert restored.step == 3 and restored.data_state == {"position": 3}
  _assert_same_arrays(restored.state, _with_step(state, 3))


def test_a_state_holding_nan_is_never_written(config, state, tmp_path):
  poisoned = state.replace(params=jax.tree.map(lambda x: x.at[..., 0].set(jnp.nan), state.params))
  manager = checkpointing.make_manager(tmp_path, config)
  with pytest.raises(checkpointing.CheckpointError, match="NaN or Inf"):
    checkpointing.save(manager, _with_step(poisoned, 5), {"position": 5})
  checkpointing.wait(manager)
  manager.close()
  assert not os.listdir(tmp_path / "checkpoints")


def test_restore_for_inference_skips_a_checkpoint_whose_digest_fails(config, state, tmp_path):
  _save_all(tmp_path, config, [_with_step(state, 1), _with_step(state, 2)])
  digest_file = tmp_path / "checkpoints" / "2" / "digest" / "metadata"
  digest_file.write_text('{"sha256": "0"}')
  restored, step = checkpointing.restore_for_inference(str(tmp_path), state)
  assert step == 1
  _assert_same_arrays(restored, _with_step(state, 1))


def test_checkpoints_of_another_program_are_refused_and_left_alone(config, state, tmp_path):
  foreign = tmp_path / "checkpoints" / "7"
  foreign.mkdir(parents=True)
  (foreign / "weights.npy").write_bytes(b"123")
  manager = checkpointing.make_manager(tmp_path, config)
  with pytest.raises(checkpointing.CheckpointError, match="none of the 1 checkpoints"):
    checkpointing.restore_latest(manager, state, str(tmp_path))
  manager.close()
  assert (foreign / "weights.npy").read_bytes() == b"123"
  assert not (tmp_path / checkpointing.DAMAGED_DIR).exists()


def test_a_changed_config_is_refused_naming_every_difference(config, tmp_path):
  checkpointing.save_config(tmp_path, config)
  checkpointing.check_same_run(str(tmp_path), config)  # the same config passes
  changed = config.copy_and_resolve_references()
  changed.model.cell = "lstm"
  changed.data.language = "fr"
  changed.learning_rate = 1.0  # not a RESUME_FIELDS field: may change between runs
  with pytest.raises(checkpointing.CheckpointError) as error:
    checkpointing.check_same_run(str(tmp_path), changed)
  message = str(error.value)
  assert "config.model.cell='lstm' (saved: 'gru')" in message
  assert "config.data.language='fr' (saved: 'de')" in message
  assert "learning_rate" not in message


def test_a_changed_vocabulary_is_refused_naming_the_first_difference():
  saved = ["<pad>", "<s>", "</s>", "<unk>", "eins", "zwei"]
  checkpointing.check_same_vocab("target", "v.json", saved, list(saved))
  with pytest.raises(checkpointing.CheckpointError, match="at id 5 .'drei' now, 'zwei' saved"):
    checkpointing.check_same_vocab("target", "v.json", saved, saved[:5] + ["drei"])
  with pytest.raises(checkpointing.CheckpointError, match="7 words built now, 6 saved"):
    checkpointing.check_same_vocab("target", "v.json", saved, saved + ["drei"])


def test_a_stop_signal_sets_the_request_and_the_old_handler_comes_back():
  before = signal.getsignal(signal.SIGTERM)
  with preemption.catch_stop_signals() as request:
    assert request.signal_name is None
    os.kill(os.getpid(), signal.SIGTERM)
    assert request.signal_name == "SIGTERM"
    # After the first signal the previous handler is back, so a second one is not swallowed.
    assert signal.getsignal(signal.SIGTERM) is before
  assert signal.getsignal(signal.SIGTERM) is before
