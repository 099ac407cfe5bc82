"""The train and eval steps: learning, masking, non-finite guard, compile once."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from jaxseq.data.input_pipeline import pad_batch
from jaxseq.training import steps
from tests.conftest import tiny_model


def _config(**overrides):
  c = default.get_config()
  c.update(
    learning_rate=1e-2,
    lr_schedule="constant",
    warmup_steps=0,
    num_train_steps=100,
    grad_clip_norm=1.0,
    seed=0,
  )
  c.update(overrides)
  return c


def _batch():
  examples = [
    (np.array([4, 5, 6]), np.array([7, 8])),
    (np.array([9, 4]), np.array([5, 6, 7])),
    (np.array([6, 6, 5, 4]), np.array([9])),
    (np.array([10]), np.array([4, 10, 4])),
  ]
  return {k: jnp.asarray(v) for k, v in pad_batch(examples, 6, 4).items()}


def _jit_step(model, **kw):
  step = functools.partial(
    steps.train_step, model=model, teacher_forcing_ratio=1.0, label_smoothing=0.0, **kw
  )
  return jax.jit(step, donate_argnums=0)


def test_a_tiny_model_overfits_a_small_batch():
  model = tiny_model(hidden_size=32, embed_size=16)
  state = steps.create_train_state(model, _config(), jax.random.key(0))
  step, batch = _jit_step(model), _batch()
  first = None
  for _ in range(150):
    state, m = step(state, batch)
    loss = float(m["loss"] / m["tokens"])
    first = loss if first is None else first
  assert first > 2.0 and loss < 0.05, (first, loss)
  sums = jax.jit(functools.partial(steps.eval_step, model=model))(state.params, batch)
  assert float(sums["correct"]) == float(sums["tokens"])  # every target token right


def test_loss_ignores_target_padding():
  model = tiny_model()
  state = steps.create_train_state(model, _config(), jax.random.key(0))
  batch = _batch()
  wider = {k: jnp.pad(v, ((0, 0), (0, 3))) for k, v in batch.items()}  # more PAD columns
  evaluate = jax.jit(functools.partial(steps.eval_step, model=model))
  a, b = evaluate(state.params, batch), evaluate(state.params, wider)
  np.testing.assert_allclose(a["nll"], b["nll"], rtol=1e-5)
  assert float(a["tokens"]) == float(b["tokens"]) == 13.0


def test_a_non_finite_gradient_skips_the_update():
  model = tiny_model()
  state = steps.create_train_state(model, _config(), jax.random.key(0))
  before = jax.tree.map(np.asarray, state.params)
  poisoned = jax.tree.map(lambda x: x * jnp.nan, state.params)
  new = state.apply_gradients(grads=poisoned)
  jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, new.params))
  assert int(new.opt_state.notfinite_count) == 1
  good = new.apply_gradients(grads=jax.tree.map(jnp.ones_like, state.params))
  assert int(good.opt_state.notfinite_count) == 0  # the count is of bad steps in a row
  assert int(good.opt_state.total_notfinite) == 1


def test_the_train_step_compiles_once_for_repeated_shapes():
  model = tiny_model()
  state = steps.create_train_state(model, _config(), jax.random.key(0))
  step, batch = _jit_step(model), _batch()
  for _ in range(4):
    state, _ = step(state, {k: v + 0 for k, v in batch.items()})
  assert step._cache_size() == 1


def test_per_step_keys_differ_and_are_reproducible():
  model = tiny_model(dropout=0.5)
  config = _config()
  step, batch = _jit_step(model), _batch()
  losses = []
  for _ in range(2):
    state = steps.create_train_state(model, config, jax.random.key(7))
    run = []
    for _ in range(3):
      state, m = step(state, batch)
      run.append(float(m["loss"]))
    losses.append(run)
  assert losses[0] == losses[1]  # same seed, same run
  assert len(set(losses[0])) == 3  # dropout masks change from step to step


def test_schedules_warm_up_to_the_peak():
  for name in ("constant", "warmup_cosine", "warmup_rsqrt"):
    schedule = steps.learning_rate_schedule(_config(lr_schedule=name, warmup_steps=10))
    assert float(schedule(0)) < 1e-2 * 0.2, name
    np.testing.assert_allclose(float(schedule(10)), 1e-2, rtol=0.1, err_msg=name)
  cosine = steps.learning_rate_schedule(_config(lr_schedule="warmup_cosine", warmup_steps=10))
  assert float(cosine(100)) < 1e-3
