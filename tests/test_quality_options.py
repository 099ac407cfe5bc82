"""Weight tying, reduce-on-plateau, checkpoint averaging and early stopping, in-process."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxseq.model.seq2seq import Seq2Seq
from jaxseq.training import averaging, configuration, early_stopping, steps
from tests.conftest import init_params, tiny_model
from tests.test_steps import _batch, _config


def test_tied_model_has_no_output_kernel_and_its_logits_are_embedding_times_h(rng):
  model = tiny_model(embed_size=12, hidden_size=12, tie_embeddings=True)
  params = init_params(model)["params"]
  assert "output" not in params and params["output_bias"].shape == (13,)
  untied = init_params(tiny_model(embed_size=12, hidden_size=12))["params"]
  assert untied["output"]["kernel"].shape == (12, 13)
  count = lambda p: sum(x.size for x in jax.tree.leaves(p))
  assert count(untied) - count(params) == 12 * 13  # the kernel, and nothing else, is gone

  k1, k2 = jax.random.split(rng)
  bias = jax.random.normal(k1, (13,))
  params = {**params, "output_bias": bias}
  h = jax.random.normal(k2, (12,))
  logits = model.apply({"params": params}, h, method=Seq2Seq.logits)
  np.testing.assert_allclose(
    logits, params["tgt_embed"]["embedding"] @ h + bias, rtol=1e-5, atol=1e-5
  )


def test_tied_decoder_step_depends_on_the_target_embedding_through_the_output(rng):
  model = tiny_model(embed_size=12, hidden_size=12, tie_embeddings=True)
  params = init_params(model)
  src, token = jnp.array([4, 5, 6], jnp.int32), jnp.int32(7)
  _, logits, _ = model.apply(params, src, token)
  # Changing only the row of a word the step neither reads nor writes as input still
  # changes that word's logit: the output layer is the embedding matrix.
  changed = jax.tree.map(lambda x: x, params)
  changed["params"]["tgt_embed"]["embedding"] = (
    params["params"]["tgt_embed"]["embedding"].at[3].add(1.0)
  )
  _, logits2, _ = model.apply(changed, src, token)
  assert not np.isclose(logits[3], logits2[3])
  np.testing.assert_allclose(np.delete(logits, 3), np.delete(logits2, 3), rtol=1e-6)


def test_tying_with_unequal_sizes_is_a_config_error_naming_both():
  config = default.get_config()
  config.model.tie_embeddings = True
  config.model.embed_size, config.model.hidden_size = 64, 128
  with pytest.raises(configuration.ConfigError, match=r"embed_size \(64\).*hidden_size \(128\)"):
    configuration.validate(config)
  with pytest.raises(ValueError, match="64.*128"):
    init_params(tiny_model(embed_size=64, hidden_size=128, tie_embeddings=True))


@pytest.mark.parametrize(
  "field, value, words",
  [
    ("lr_plateau_factor", 1.0, "[0, 1)"),
    ("lr_plateau_patience", 0, ">= 1"),
    ("early_stopping_patience", -1, ">= 0"),
    ("average_last_checkpoints", 1, "keep_checkpoints=3"),
    ("average_last_checkpoints", 4, "keep_checkpoints=3"),
  ],
)
def test_quality_fields_are_checked(field, value, words):
  config = default.get_config()
  config[field] = value
  with pytest.raises(configuration.ConfigError) as e:
    configuration.validate(config)
  assert f"config.{field}={value!r}" in str(e.value) and words in str(e.value)


def test_reduce_on_plateau_halves_the_update_after_a_stalled_evaluation():
  config = _config(lr_plateau_factor=0.5, lr_plateau_patience=1)
  model = tiny_model()
  state = steps.create_train_state(model, config, jax.random.key(0))
  assert steps.plateau_scale(state) == 1.0
  state = steps.observe_heldout_loss(state, 2.0, config)
  assert steps.plateau_scale(state) == 1.0  # first value: an improvement
  reduced = steps.observe_heldout_loss(state, 2.5, config)
  assert steps.plateau_scale(reduced) == 0.5  # one evaluation without improvement
  assert steps.plateau_scale(steps.observe_heldout_loss(reduced, 1.0, config)) == 0.5

  # Without donation: the two states share their parameter buffers.
  step = jax.jit(
    functools.partial(steps.train_step, model=model, teacher_forcing_ratio=1.0, label_smoothing=0.0)
  )
  batch = _batch()
  before = jax.device_get(state.params)
  full, _ = step(state, batch)
  half, _ = step(reduced, batch)
  delta = lambda s: jax.tree.map(lambda a, b: np.asarray(a) - b, jax.device_get(s.params), before)
  for d_full, d_half in zip(jax.tree.leaves(delta(full)), jax.tree.leaves(delta(half))):
    np.testing.assert_allclose(d_half, 0.5 * d_full, rtol=1e-4, atol=1e-8)


def test_plateau_off_leaves_the_optimizer_as_it_was():
  config = _config()
  state = steps.create_train_state(tiny_model(), config, jax.random.key(0))
  assert steps.plateau_scale(state) is None
  assert steps.observe_heldout_loss(state, 1.0, config) is state


def test_average_trees_is_the_leafwise_mean():
  trees = [{"a": np.full((2, 3), float(i)), "b": {"c": np.arange(4.0) * i}} for i in (1, 2, 6)]
  mean = averaging.average_trees(trees)
  np.testing.assert_allclose(mean["a"], np.full((2, 3), 3.0))
  np.testing.assert_allclose(mean["b"]["c"], np.arange(4.0) * 3)


def test_early_stopping_counts_evaluations_since_the_best():
  stopping = early_stopping.EarlyStopping(patience=2)
  assert not stopping.update(10, 5.0)
  assert not stopping.update(20, 4.0)
  assert not stopping.update(30, 6.0)  # better: the count starts again
  assert not stopping.update(40, 6.0)  # equal is not better
  assert stopping.update(50, 1.0)
  assert (stopping.best, stopping.best_step) == (6.0, 30)
  never = early_stopping.EarlyStopping(patience=0)
  assert not any(never.update(s, 0.0) for s in range(1, 20))
