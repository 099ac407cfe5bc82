"""The train and eval steps: learning, masking, non-finite guard, compile once, and the
coverage loss."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from configs import default
from jaxseq.data.input_pipeline import pad_batch
from jaxseq.decoding import decode
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


# The coverage loss (See et al. 2017, Eq. 12), config.coverage_loss_weight.

_forced = jax.jit(decode.batch_teacher_forced, static_argnames=("model",))


def _plain_jit_step(model, **kw):
  """The train step compiled without donating its state, so that one state serves twice."""
  return jax.jit(
    functools.partial(
      steps.train_step, model=model, teacher_forcing_ratio=1.0, label_smoothing=0.0, **kw
    )
  )


def _step_without_coverage(state, batch, *, model):
  """`steps.train_step` as it was before the coverage loss (no mesh, teacher forcing
  ratio 1, no label smoothing): the step that weight 0 must give bit for bit."""
  step_key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
  keys = jax.random.split(step_key, batch["src"].shape[0])

  def summed_loss(params):
    logits, _ = decode.batch_teacher_forced(
      model, params, batch["src"], batch["tgt_in"], keys, decode.Forcing(1.0, train=True)
    )
    sums = steps.token_sums(logits, batch["tgt_out"], 0.0)
    return sums["loss"], sums

  (_, sums), grads = jax.value_and_grad(summed_loss, has_aux=True)(state.params)
  tokens = jnp.maximum(sums["tokens"], 1.0)
  loss = sums["loss"] / tokens
  grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(loss), g / tokens, jnp.nan), grads)
  state = state.apply_gradients(grads=grads)
  sums["grad_norm"] = optax.tree.norm(grads)
  sums["skipped"] = state.opt_state.notfinite_count
  return state, sums


def _numpy_coverage_loss(weights, tgt_out) -> float:
  """sum over the batch and the non-PAD targets t of sum_i min(a_t,i, c_t,i), c_t the sum
  of the weights before step t, from the weights [batch, tgt_len, src_len] alone."""
  weights, tgt_out = np.asarray(weights, np.float64), np.asarray(tgt_out)
  total = 0.0
  for row, targets in zip(weights, tgt_out):
    coverage = np.zeros(row.shape[-1])
    for a, target in zip(row, targets):
      total += np.minimum(a, coverage).sum() * (target != 0)
      coverage += a
  return total


def test_the_coverage_loss_is_eq_12_of_the_returned_weights_and_joins_the_objective():
  model = tiny_model(attention="coverage")
  state = steps.create_train_state(model, _config(), jax.random.key(0))
  batch = _batch()
  keys = jax.random.split(jax.random.key(0), 4)  # unused: no dropout
  _, weights = _forced(model, state.params, batch["src"], batch["tgt_in"], keys)
  expected = _numpy_coverage_loss(weights, batch["tgt_out"])
  unmasked = _numpy_coverage_loss(weights, np.ones_like(batch["tgt_out"]))
  assert expected > 0.1 and unmasked > expected + 0.1  # target padding is left out
  np.testing.assert_allclose(steps.coverage_sum(weights, batch["tgt_out"]), expected, rtol=1e-5)

  _, sums = _plain_jit_step(model, coverage_loss_weight=4.0)(state, batch)
  np.testing.assert_allclose(sums["coverage"], expected, rtol=1e-5)
  _, without = _plain_jit_step(model)(state, batch)
  np.testing.assert_allclose(sums["loss"], without["loss"], rtol=1e-6)  # the token loss alone

  def objective(params):  # the mean over target tokens of token loss + 4 * coverage loss
    logits, weights = decode.batch_teacher_forced(
      model, params, batch["src"], batch["tgt_in"], keys
    )
    token = steps.token_sums(logits, batch["tgt_out"])
    coverage = steps.coverage_sum(weights, batch["tgt_out"])
    return (token["loss"] + 4.0 * coverage) / token["tokens"]

  grads = jax.jit(jax.grad(objective))(state.params)
  np.testing.assert_allclose(sums["grad_norm"], optax.tree.norm(grads), rtol=1e-5)
  assert abs(float(sums["grad_norm"]) - float(without["grad_norm"])) > 1e-3


def test_a_zero_coverage_weight_is_the_step_without_it_bit_for_bit():
  model = tiny_model(attention="coverage")
  state = steps.create_train_state(model, _config(), jax.random.key(0))
  batch = _batch()
  new, sums = _plain_jit_step(model, coverage_loss_weight=0.0)(state, batch)
  before, reference = jax.jit(functools.partial(_step_without_coverage, model=model))(state, batch)
  assert set(sums) == set(reference)  # no coverage entry
  jax.tree.map(np.testing.assert_array_equal, sums, reference)
  jax.tree.map(np.testing.assert_array_equal, new.params, before.params)
  weighted, _ = _plain_jit_step(model, coverage_loss_weight=0.5)(state, batch)
  assert not np.array_equal(
    weighted.params["params"]["attention"]["energy"]["kernel"],
    new.params["params"]["attention"]["energy"]["kernel"],
  )


def test_the_coverage_loss_joins_at_coverage_loss_from_step():
  model = tiny_model(attention="coverage")
  state = steps.create_train_state(model, _config(), jax.random.key(0))
  batch = _batch()
  phase = _plain_jit_step(model, coverage_loss_weight=0.5, coverage_loss_from_step=3)
  weighted, plain = _plain_jit_step(model, coverage_loss_weight=0.5), _plain_jit_step(model)
  # Adam's first update is about lr * sign(gradient): a gradient near 0 may flip in float32
  close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-5)
  for step in (2, 3, 7):
    at = state.replace(step=jnp.asarray(step, state.step.dtype))
    new, sums = phase(at, batch)
    with_loss, with_sums = weighted(at, batch)
    without, without_sums = plain(at, batch)
    expected, expected_sums = (without, without_sums) if step < 3 else (with_loss, with_sums)
    jax.tree.map(close, new.params, expected.params)
    close(sums["grad_norm"], expected_sums["grad_norm"])
    close(sums["coverage"], with_sums["coverage"])  # reported before the phase too
    assert not np.allclose(
      with_loss.params["params"]["attention"]["energy"]["kernel"],
      without.params["params"]["attention"]["energy"]["kernel"],
    )
