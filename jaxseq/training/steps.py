"""The optimizer, the train state and the pure train / eval steps."""

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state

from jaxseq.data.vocab import BOS, PAD
from jaxseq.decoding import decode
from jaxseq.model.seq2seq import Seq2Seq
from jaxseq.training import parallel

Array = jax.Array


class TrainState(train_state.TrainState):
  """flax's TrainState (step, params, opt_state) plus the root key of the step streams.

  `key` holds raw key data (uint32, `jax.random.key_data`) so that it checkpoints as a
  plain array.
  """

  key: Array = struct.field(default=None)


def _constant(peak: float, warmup: int, total: int) -> optax.Schedule:
  return optax.linear_schedule(0.0, peak, warmup) if warmup else optax.constant_schedule(peak)


def _warmup_cosine(peak: float, warmup: int, total: int) -> optax.Schedule:
  return optax.warmup_cosine_decay_schedule(
    0.0, peak, warmup, max(total, warmup + 1), end_value=peak * 0.01
  )


def _warmup_rsqrt(peak: float, warmup: int, total: int) -> optax.Schedule:
  w = max(warmup, 1)
  return lambda step: peak * jnp.minimum((step + 1) / w, jnp.sqrt(w / (step + 1)))


# config.lr_schedule -> (peak, warmup steps, total steps) -> schedule; each warms up linearly.
SCHEDULES = {"constant": _constant, "warmup_cosine": _warmup_cosine, "warmup_rsqrt": _warmup_rsqrt}


def learning_rate_schedule(config) -> optax.Schedule:
  """Linear warmup to config.learning_rate, then constant, cosine or 1/sqrt decay."""
  return SCHEDULES[config.lr_schedule](
    config.learning_rate, config.warmup_steps, config.num_train_steps
  )


# Smallest fraction of the schedule's learning rate that reduce-on-plateau goes down to.
PLATEAU_MIN_SCALE = 1e-3


def plateau(config) -> optax.GradientTransformationExtraArgs | None:
  """optax's reduce_on_plateau of config.lr_plateau_factor / _patience; None when off.

  It is told one held-out loss per evaluation (`observe_heldout_loss`), so its patience
  counts evaluations, not steps.
  """
  factor = config.lr_plateau_factor
  if not factor:
    return None
  return optax.contrib.reduce_on_plateau(
    factor=factor, patience=config.lr_plateau_patience, min_scale=PLATEAU_MIN_SCALE
  )


def _scale_by_plateau(transform) -> optax.GradientTransformation:
  """Multiplies updates by the reduce_on_plateau scale held in its state.

  The train step only reads the scale; `observe_heldout_loss` changes it. (optax's own
  update would need the monitored value at every step.)
  """

  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u: state.scale * u, updates), state

  return optax.GradientTransformation(transform.init, update)


def _is_plateau_state(x) -> bool:
  return isinstance(x, optax.contrib.ReduceLROnPlateauState)


def observe_heldout_loss(state: TrainState, loss: float, config) -> TrainState:
  """Feeds one held-out loss to reduce-on-plateau; the state as it was when that is off."""
  transform = plateau(config)
  if transform is None:
    return state

  def observe(x):
    if not _is_plateau_state(x):
      return x
    _, new = transform.update((), x, value=jnp.asarray(loss, jnp.float32))
    return new

  opt_state = jax.tree.map(observe, state.opt_state, is_leaf=_is_plateau_state)
  return state.replace(opt_state=opt_state)


def plateau_scale(state: TrainState) -> float | None:
  """The current reduce-on-plateau factor of the learning rate (None when off)."""
  found = [
    x for x in jax.tree.leaves(state.opt_state, is_leaf=_is_plateau_state) if _is_plateau_state(x)
  ]
  return float(found[0].scale) if found else None


def make_optimizer(config) -> optax.GradientTransformation:
  """Adam with global-norm clipping; a non-finite gradient skips the update.

  With config.lr_plateau_factor the schedule's rate is further multiplied by a factor
  that drops each time the held-out loss has not improved for lr_plateau_patience
  evaluations (Adam's update is linear in the rate, so scaling it scales the rate).

  `optax.apply_if_finite` counts skipped steps in its state (`notfinite_count`, in a
  row; `total_notfinite`); the training loop reads the count after every step and
  stops once config.max_bad_steps in a row were skipped, long before the wrapper would
  give up and apply one.
  """
  parts = []
  if config.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
  parts.append(optax.adam(learning_rate_schedule(config)))
  if (transform := plateau(config)) is not None:
    parts.append(_scale_by_plateau(transform))
  return optax.apply_if_finite(optax.chain(*parts), max_consecutive_errors=2**30)


def create_train_state(model: Seq2Seq, config, key: Array) -> TrainState:
  """Initial parameters (from a one-token dummy sentence) and optimizer state."""
  init_key, step_key = jax.random.split(key)
  dummy = jnp.ones((2,), jnp.int32)
  params = jax.jit(model.init)(init_key, dummy, jnp.int32(BOS))  # one program, not op by op
  state = TrainState.create(
    apply_fn=model.apply,
    params=params,
    tx=make_optimizer(config),
    key=jax.random.key_data(step_key),
  )
  # An int32 array, as every later step returns it: a Python 0 would compile twice.
  return state.replace(step=jnp.zeros((), jnp.int32))


def token_sums(logits: Array, tgt_out: Array, label_smoothing: float = 0.0) -> dict:
  """Summed loss, NLL, token count and correct tokens over the non-PAD targets.

  logits: [..., tgt_len, vocab]; tgt_out: [..., tgt_len].
  """
  mask = (tgt_out != PAD).astype(logits.dtype)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out)
  if label_smoothing:
    targets = optax.smooth_labels(jax.nn.one_hot(tgt_out, logits.shape[-1]), label_smoothing)
    loss = optax.softmax_cross_entropy(logits, targets)
  else:
    loss = nll
  correct = (jnp.argmax(logits, -1) == tgt_out).astype(logits.dtype)
  return {
    "loss": (loss * mask).sum(),
    "nll": (nll * mask).sum(),
    "tokens": mask.sum(),
    "correct": (correct * mask).sum(),
  }


def coverage_sum(weights: Array, tgt_out: Array) -> Array:
  """The coverage loss (See et al. 2017, Eq. 12) summed over the non-PAD targets:
  sum_t sum_i min(a_t,i, c_t,i), c_t = sum_{t' < t} a_t' the coverage before step t.

  weights: [..., tgt_len, src_len], the attention weights of teacher forcing (row t made
  the logits of tgt_out[t]); tgt_out: [..., tgt_len]. The coverage is the running sum of
  these very weights, which is the state of a coverage attention (`attention.has_coverage`).
  """
  weights = weights.astype(jnp.float32)
  before = jnp.cumsum(weights, axis=-2)[..., :-1, :]
  coverage = jnp.concatenate([jnp.zeros_like(weights[..., :1, :]), before], axis=-2)
  per_token = jnp.minimum(weights, coverage).sum(-1)  # [..., tgt_len]
  return (per_token * (tgt_out != PAD)).sum()


def train_step(
  state: TrainState,
  batch: dict,
  *,
  model: Seq2Seq,
  teacher_forcing_ratio: float,
  label_smoothing: float,
  coverage_loss_weight: float = 0.0,
  coverage_loss_from_step: int = 0,
  mesh=None,
) -> tuple[TrainState, dict[str, Any]]:
  """One optimizer step on a batch; the loss is the mean over its target tokens.

  With a coverage_loss_weight (a Python float, static under jit), the objective is the
  mean over the target tokens of the token loss plus that weight times the token's
  coverage loss (`coverage_sum`); `sums["loss"]` stays the token loss alone, and
  `sums["coverage"]` is the summed coverage loss. At 0 the step is the one without it.
  Before step coverage_loss_from_step the weight is 0 (the loss is still reported): a
  final coverage phase, as See et al. 2017 (Sec. 4) add it to a trained model.

  With a mesh (`parallel.make_mesh`), each device computes the summed loss and its
  gradient on its own rows of the batch and the sums are added once
  (`parallel.sum_over_shards`); without one, on the whole batch.
  """
  step_key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
  keys = jax.random.split(step_key, batch["src"].shape[0])  # one stream per example

  def coverage_weight(step):
    if not coverage_loss_from_step:
      return coverage_loss_weight
    return jnp.where(step >= coverage_loss_from_step, coverage_loss_weight, 0.0)

  def summed_loss_and_grads(replicated, rows):
    params, step = replicated
    batch, keys = rows

    def summed_loss(params):
      logits, weights = decode.batch_teacher_forced(
        model,
        params,
        batch["src"],
        batch["tgt_in"],
        keys,
        decode.Forcing(teacher_forcing_ratio, train=True),
      )
      sums = token_sums(logits, batch["tgt_out"], label_smoothing)
      if not coverage_loss_weight:
        return sums["loss"], sums
      sums["coverage"] = coverage_sum(weights, batch["tgt_out"])
      return sums["loss"] + coverage_weight(step) * sums["coverage"], sums

    (_, sums), grads = jax.value_and_grad(summed_loss, has_aux=True)(params)
    return grads, sums

  grads, sums = parallel.sum_over_shards(summed_loss_and_grads, mesh)(
    (state.params, state.step), (batch, keys)
  )
  tokens = jnp.maximum(sums["tokens"], 1.0)
  loss = sums["loss"] / tokens
  if coverage_loss_weight:
    loss = loss + coverage_weight(state.step) * sums["coverage"] / tokens
  # A non-finite loss makes the step non-finite even where its gradient happens to be finite,
  # so that apply_if_finite skips it.
  grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(loss), g / tokens, jnp.nan), grads)
  state = state.apply_gradients(grads=grads)
  sums["grad_norm"] = optax.tree.norm(grads)
  sums["skipped"] = state.opt_state.notfinite_count  # non-finite steps in a row
  return state, sums


def eval_step(params, batch: dict, *, model: Seq2Seq) -> dict:
  """Summed held-out loss and accuracy with reference inputs (no dropout)."""
  keys = jax.random.split(jax.random.key(0), batch["src"].shape[0])  # unused: no dropout
  logits, _ = decode.batch_teacher_forced(model, params, batch["src"], batch["tgt_in"], keys)
  return token_sums(logits, batch["tgt_out"])
