"""The same model in PyTorch eager, trained the way the PyTorch tutorial trains, side by
side with jaxseq on the same batches in the same run.

The PyTorch model repeats the equations of jaxseq.model.seq2seq.Seq2Seq (GRU, Bahdanau
attention, optional bidirectional encoder): nn.GRU has the same gate order (r, z, n)
and applies the reset gate after the recurrent product, as jaxseq.model.cells.gru_step does.
The jaxseq initial parameters are copied into it, so the first losses must agree to
float precision before anything is timed; that is the check that the two really are
the same network. Then both train with Adam (lr 1e-3, global-norm clipping at 1) for
the same steps on the same batches, the PyTorch decoder as a Python loop over the
target positions (eager, the tutorial's way), their steps interleaved, and the ratio
of their median step times is reported (PyTorch with the faster of its default thread
count and one thread).

On a GPU (`--device cuda`) the PyTorch model and batches live on the GPU (nn.GRU then
runs cuDNN; the decoder stays the same Python loop), each timed step ends with
torch.cuda.synchronize(), and float32 matmuls may use TF32 on both sides (JAX's default on
GPU; `torch.set_float32_matmul_precision("high")`), so the first losses agree to TF32
rounding rather than float32's. `--bfloat16` adds jaxseq with model.dtype=bfloat16 as a
third contender on the same batches (its parameters and loss stay float32).

    pip install '.[bench]'                        # torch, CPU build
    python -m benchmarks.speed.torch_reference --size small --steps 10
    JAX_NUM_CPU_DEVICES=2 python -m benchmarks.speed.torch_reference --size small  # jaxseq data
                                                  # parallel over 2 CPU devices, 1 per core
    python -m benchmarks.speed.torch_reference --size large --device cuda --bfloat16  # on a GPU
"""

import argparse
import dataclasses

import numpy as np
import torch
from torch import nn
from torch.nn.utils import rnn as rnn_utils

from benchmarks import common
from benchmarks.speed import flops, train_throughput


class TorchSeq2Seq(nn.Module):
  """GRU encoder, Bahdanau attention GRU decoder; batch-first tensors."""

  def __init__(self, size: common.Size):
    super().__init__()
    V, E, H = size.vocab_size, size.embed_size, size.hidden_size
    A = H
    self.bidirectional = size.bidirectional
    self.embed = nn.Embedding(V, E)
    self.encoder = nn.GRU(E, H, batch_first=True, bidirectional=size.bidirectional)
    if size.bidirectional:
      self.memory_proj = nn.Linear(2 * H, H)
      self.bridge = nn.Linear(2 * H, H)
    self.key = nn.Linear(H, A, bias=False)
    self.query = nn.Linear(H, A)
    self.energy = nn.Linear(A, 1, bias=False)
    self.tgt_embed = nn.Embedding(V, E)
    self.decoder = nn.GRUCell(E + H, H)
    self.attentional = nn.Linear(2 * H, H, bias=False)
    self.output = nn.Linear(H, V)

  def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
    """src, tgt_in: [batch, len] int64 (0 = padding) -> logits [batch, tgt_len, vocab]."""
    mask = src != 0
    lengths = mask.sum(1)
    packed = rnn_utils.pack_padded_sequence(
      self.embed(src), lengths.cpu(), batch_first=True, enforce_sorted=False
    )
    out, final = self.encoder(packed)  # final: [directions, batch, hidden]
    values, _ = rnn_utils.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
    if self.bidirectional:
      values = self.memory_proj(values) * mask[..., None]
      h = torch.tanh(self.bridge(torch.cat([final[0], final[1]], -1)))
    else:
      h = final[0]
    keys = self.key(values)  # once per sentence
    logits = []
    for t in range(tgt_in.shape[1]):  # the tutorial's decoder loop
      scores = self.energy(torch.tanh(keys + self.query(h)[:, None])).squeeze(-1)
      scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
      weights = torch.softmax(scores, -1) * mask
      context = torch.bmm(weights[:, None], values)[:, 0]
      h = self.decoder(torch.cat([self.tgt_embed(tgt_in[:, t]), context], -1), h)
      attentional = torch.tanh(self.attentional(torch.cat([context, h], -1)))
      logits.append(self.output(attentional))
    return torch.stack(logits, 1)


def _dense(linear: nn.Linear, p: dict):
  linear.weight.copy_(torch.from_numpy(np.array(p["kernel"]).T))
  if linear.bias is not None:
    linear.bias.copy_(torch.from_numpy(np.array(p["bias"])))


def _gru(weight_ih, weight_hh, bias_ih, bias_hh, p: dict):
  weight_ih.copy_(torch.from_numpy(np.array(p["input"]["kernel"]).T))
  bias_ih.copy_(torch.from_numpy(np.array(p["input"]["bias"])))
  weight_hh.copy_(torch.from_numpy(np.array(p["recurrent_kernel"]).T))
  bias_hh.copy_(torch.from_numpy(np.array(p["recurrent_bias"])))


@torch.no_grad()
def load_jaxseq_params(model: TorchSeq2Seq, params: dict):
  """Copies jaxseq parameters (flax [in, out] kernels) into the PyTorch model."""
  p = params["params"]
  model.embed.weight.copy_(torch.from_numpy(np.array(p["encoder"]["embed"]["embedding"])))
  enc = model.encoder
  _gru(
    enc.weight_ih_l0, enc.weight_hh_l0, enc.bias_ih_l0, enc.bias_hh_l0, p["encoder"]["layer0_fwd"]
  )
  if model.bidirectional:
    _gru(
      enc.weight_ih_l0_reverse,
      enc.weight_hh_l0_reverse,
      enc.bias_ih_l0_reverse,
      enc.bias_hh_l0_reverse,
      p["encoder"]["layer0_bwd"],
    )
    _dense(model.memory_proj, p["memory_proj"])
    _dense(model.bridge, p["bridge0"])
  _dense(model.key, p["attention"]["key"])
  _dense(model.query, p["attention"]["query"])
  _dense(model.energy, p["attention"]["energy"])
  model.tgt_embed.weight.copy_(torch.from_numpy(np.array(p["tgt_embed"]["embedding"])))
  dec = model.decoder
  _gru(dec.weight_ih, dec.weight_hh, dec.bias_ih, dec.bias_hh, p["decoder0"])
  _dense(model.attentional, p["attentional"])
  _dense(model.output, p["output"])


def token_loss(logits: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
  """Mean cross-entropy over the non-PAD target tokens."""
  return nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=0)


def torch_stepper(size: common.Size, jax_params, threads: int, device: str = "cpu"):
  """One PyTorch train step per call, step(batch) -> loss, on `threads` threads (CPU) or
  on the GPU (device "cuda"), where the host batch is copied over inside the step."""
  model = TorchSeq2Seq(size)
  load_jaxseq_params(model, jax_params)
  model.to(device)  # before the optimizer is made, so it holds the device's tensors
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

  def step(host_batch: dict) -> float:
    torch.set_num_threads(threads)
    batch = {k: torch.from_numpy(v).long().to(device) for k, v in host_batch.items()}
    optimizer.zero_grad()
    loss = token_loss(model(batch["src"], batch["tgt_in"]), batch["tgt_out"])
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if device != "cpu":
      torch.cuda.synchronize()  # the whole step, optimizer included, is done
    return loss.item()

  return step, sum(p.numel() for p in model.parameters())


def jaxseq_stepper(size: common.Size, first_batch: dict, dtype: str = "float32"):
  """One jaxseq train step per call (compiled here), and the initial parameters."""
  import jax

  from jaxseq.training import parallel

  _, state, train_step, mesh = train_throughput.build(size, dtype)
  initial = jax.device_get(state.params)
  compiled = train_step.lower(state, parallel.shard_batch(first_batch, mesh)).compile()

  def step(host_batch: dict) -> float:
    nonlocal state
    state, metrics = compiled(state, parallel.shard_batch(host_batch, mesh))
    jax.block_until_ready((state, metrics))
    return float(metrics["loss"]) / float(metrics["tokens"])

  return step, initial, int(sum(x.size for x in jax.tree.leaves(initial)))


def _summary(times: list[float], losses: list[float], batches: list[dict], **extra) -> dict:
  step_seconds = common.median(times)
  tokens = common.median([common.target_tokens(b) for b in batches])
  return {
    "step_seconds_median": step_seconds,
    "step_seconds_all": times,
    "steps_per_second": 1 / step_seconds,
    "tokens_per_second": tokens / step_seconds,
    "losses": losses,
    **extra,
  }


def measure_torch_matmul(n: int = 2048, repeats: int = 10) -> dict:
  """PyTorch's own dense f32 matmul rate per thread count, for reference next to XLA's."""
  a = torch.randn(n, n)
  default_threads = torch.get_num_threads()
  rates = {}
  for threads in sorted({default_threads, 1}):
    torch.set_num_threads(threads)
    a @ a  # warm up
    times = common.time_calls(lambda _: a @ a, repeats)
    rates[threads] = 2 * n**3 / common.median(times)
  torch.set_num_threads(default_threads)
  return {"matrix_size": n, "flops_per_second_by_threads": rates}


def compare(
  size: common.Size, num_steps: int, warmup: int = 2, device: str = "cpu", bfloat16: bool = False
) -> dict:
  """jaxseq and PyTorch on the same batches in this process, their steps interleaved.

  Step i of every contender runs back to back on batch i, so a change in the machine's
  load during the run hits all of them alike. On the CPU, PyTorch runs twice, on its
  default thread count and on one thread, and the faster is the reference: on a busy
  machine one thread can beat several. On a GPU (device "cuda") it runs once, there.
  bfloat16 adds jaxseq with model.dtype=bfloat16 (result "jaxseq_bfloat16").
  """
  import time

  import jax

  if device != "cpu":
    if not torch.cuda.is_available():
      raise RuntimeError(f"--device {device}: PyTorch sees no CUDA device")
    torch.set_float32_matmul_precision("high")  # TF32, as JAX's default f32 dot on GPU
  batches = common.make_batches(size, warmup + num_steps)
  jax_step, initial, jax_params = jaxseq_stepper(size, batches[0])
  default_threads = torch.get_num_threads()
  contenders = {"jaxseq": jax_step}
  if bfloat16:
    contenders["jaxseq_bfloat16"], _, _ = jaxseq_stepper(size, batches[0], "bfloat16")
  torch_settings = {}  # contender name -> what its summary records
  if device == "cpu":
    for threads in sorted({default_threads, 1}, reverse=True):
      name = f"torch_{threads}"
      contenders[name], torch_params = torch_stepper(size, initial, threads)
      torch_settings[name] = {"threads": threads, "device": "cpu"}
  else:
    contenders["torch_cuda"], torch_params = torch_stepper(size, initial, default_threads, device)
    torch_settings["torch_cuda"] = {
      "threads": default_threads,
      "device": device,
      "gpu": torch.cuda.get_device_name(),
      "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
  times = {name: [] for name in contenders}
  losses = {name: [] for name in contenders}
  for i, batch in enumerate(batches):
    for name, step in contenders.items():
      start = time.perf_counter()
      losses[name].append(step(batch))
      if i >= warmup:
        times[name].append(time.perf_counter() - start)
  torch.set_num_threads(default_threads)
  timed = batches[warmup:]
  jax_result = _summary(times["jaxseq"], losses["jaxseq"], timed, num_params=jax_params)
  tries = [
    _summary(times[n], losses[n], timed, num_params=torch_params, **settings)
    for n, settings in torch_settings.items()
  ]
  torch_result = min(tries, key=lambda r: r["step_seconds_median"])
  torch_result["other_thread_counts"] = [
    {"threads": r["threads"], "tokens_per_second": r["tokens_per_second"]}
    for r in tries
    if r is not torch_result
  ]
  train_flops = flops.train_step_flops(size)
  result = {
    "size": dataclasses.asdict(size),
    "warmup_steps": warmup,
    "timed_steps": num_steps,
    "devices": jax.device_count(),  # jaxseq's data-parallel devices (JAX_NUM_CPU_DEVICES)
    "jax_device_kind": jax.devices()[0].device_kind,
    "torch_device": device,
    "jaxseq": jax_result,
    "torch": torch_result,
    "params_match": jax_params == torch_params,
    "first_loss_abs_diff": abs(jax_result["losses"][0] - torch_result["losses"][0]),
    "last_loss_abs_diff": abs(jax_result["losses"][-1] - torch_result["losses"][-1]),
    "speedup": torch_result["step_seconds_median"] / jax_result["step_seconds_median"],
    "train_step_gflop": train_flops / 1e9,
    "jaxseq_gflops": train_flops / jax_result["step_seconds_median"] / 1e9,
    "torch_gflops": train_flops / torch_result["step_seconds_median"] / 1e9,
  }
  if bfloat16:
    bf16 = _summary(
      times["jaxseq_bfloat16"],
      losses["jaxseq_bfloat16"],
      timed,
      num_params=jax_params,
      dtype="bfloat16",
    )
    result["jaxseq_bfloat16"] = bf16
    result["speedup_bfloat16"] = torch_result["step_seconds_median"] / bf16["step_seconds_median"]
    result["bfloat16_first_loss_abs_diff"] = abs(bf16["losses"][0] - jax_result["losses"][0])
  return result


def report(result: dict) -> str:
  j, t = result["jaxseq"], result["torch"]
  where = f"{t['threads']} threads" if t.get("device", "cpu") == "cpu" else f"on {t['device']}"
  text = (
    f"{result['size']['name']} ({result['devices']} jax device(s)): parameters jaxseq "
    f"{j['num_params']:,} / torch "
    f"{t['num_params']:,}; first loss {j['losses'][0]:.5f} / {t['losses'][0]:.5f}, last "
    f"{j['losses'][-1]:.5f} / {t['losses'][-1]:.5f}; tokens/s {j['tokens_per_second']:,.0f}"
    f" / {t['tokens_per_second']:,.0f} ({where}); "
    f"jaxseq / torch = {result['speedup']:.2f}x"
  )
  if "jaxseq_bfloat16" in result:
    text += (
      f"; bfloat16 tokens/s {result['jaxseq_bfloat16']['tokens_per_second']:,.0f}, "
      f"jaxseq bfloat16 / torch = {result['speedup_bfloat16']:.2f}x"
    )
  return text


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", choices=sorted(common.SIZES), default="small")
  parser.add_argument("--batch_size", type=int, help="overrides the size's batch")
  parser.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up)")
  parser.add_argument("--out", help="write the JSON record here")
  parser.add_argument(
    "--device",
    choices=("cpu", "cuda"),
    default="cpu",
    help="where the PyTorch model trains (jaxseq uses JAX's default device)",
  )
  parser.add_argument(
    "--bfloat16", action="store_true", help="also time jaxseq with model.dtype=bfloat16"
  )
  args = parser.parse_args(argv)
  size = common.SIZES[args.size]
  if args.batch_size:
    size = dataclasses.replace(size, batch_size=args.batch_size)
  result = compare(size, args.steps, device=args.device, bfloat16=args.bfloat16)
  print(report(result))
  if args.out:
    common.write_json(
      args.out,
      {
        "benchmark": "torch_reference",
        "hardware": common.hardware(),
        "versions": common.versions(),
        "result": result,
      },
    )


if __name__ == "__main__":
  main()
