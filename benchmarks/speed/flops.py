"""The limit: matmul FLOPs of one train step, counted by hand, and the machine's
measured dense matmul FLOP/s.

Only matrix products are counted (2 FLOPs per multiply-add), over every padded
position, since that is the work the step executes; element-wise gates, softmax and
the optimizer are left out, so the fraction reached is a slight underestimate.
Backward costs about twice the forward (one product for the input gradient, one for
the weight gradient), hence 3x the forward count per train step.

    python -m benchmarks.speed.flops    # prints the measured matmul FLOP/s
"""

import time

from benchmarks.common import Size


def forward_flops_per_example(size: Size) -> int:
  """Matmul FLOPs of one teacher-forced forward pass of one sentence pair.

  Mirrors jaxseq.model.seq2seq.Seq2Seq with a GRU and Bahdanau attention.
  """
  S = T = size.length
  E, H, A, V = size.embed_size, size.hidden_size, size.hidden_size, size.vocab_size
  D = 2 if size.bidirectional else 1
  mm = lambda m, k, n: 2 * m * k * n
  encoder = D * (mm(S, E, 3 * H) + mm(S, H, 3 * H))  # input projection + recurrence
  if size.bidirectional:
    encoder += mm(S, 2 * H, H) + mm(1, 2 * H, H)  # memory projection + bridge
  keys = mm(S, H, A)  # attention keys, once per sentence
  per_step = (
    mm(1, H, A)  # query projection
    + mm(S, A, 1)  # energy v^T tanh(.)
    + mm(1, S, H)  # context = weights @ values
    + mm(1, E + H, 3 * H)  # decoder input projection of [embedding; context]
    + mm(1, H, 3 * H)  # decoder recurrence
    + mm(1, 2 * H, H)  # attentional tanh(W [context; h])
    + mm(1, H, V)
  )  # output projection
  return encoder + keys + T * per_step


def train_step_flops(size: Size) -> int:
  """Forward + backward matmul FLOPs of one train step over the whole batch."""
  return 3 * size.batch_size * forward_flops_per_example(size)


def measure_matmul_flops(n: int = 2048, repeats: int = 10) -> dict:
  """Dense float32 matmul throughput of the default device: [n, n] @ [n, n], median."""
  import jax
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, b).block_until_ready()  # compile and warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    dot(a, b).block_until_ready()
    times.append(time.perf_counter() - start)
  times.sort()
  seconds = times[len(times) // 2]
  return {
    "matrix_size": n,
    "median_seconds": seconds,
    "flops_per_second": 2 * n**3 / seconds,
    "best_flops_per_second": 2 * n**3 / times[0],
  }


if __name__ == "__main__":
  result = measure_matmul_flops()
  print(
    f"f32 matmul {result['matrix_size']}^2: {result['flops_per_second'] / 1e9:.1f} GFLOP/s "
    f"(median), {result['best_flops_per_second'] / 1e9:.1f} best"
  )
