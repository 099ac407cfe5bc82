"""The same model in PyTorch eager, trained the way the PyTorch tutorial trains, side by
side with jaxseq on the same batches in the same run.

The PyTorch model repeats the equations of jaxseq.model.Seq2Seq (GRU, Bahdanau
attention, optional bidirectional encoder): nn.GRU has the same gate order (r, z, n)
and applies the reset gate after the recurrent product, as jaxseq.cells.gru_step does.
The jaxseq initial parameters are copied into it, so the first losses must agree to
float precision before anything is timed; that is the check that the two really are
the same network. Then both train with Adam (lr 1e-3, global-norm clipping at 1) for
the same steps on the same batches, the PyTorch decoder as a Python loop over the
target positions (eager, the tutorial's way), and the ratio of their median step
times is reported.

    pip install '.[bench]'                        # torch, CPU build
    python -m benchmarks.torch_reference --size small --steps 10
"""

import argparse
import dataclasses
import os

import numpy as np
import torch
from torch import nn
from torch.nn.utils import rnn as rnn_utils

from benchmarks import common, flops, train_throughput


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
    packed = rnn_utils.pack_padded_sequence(self.embed(src), lengths.cpu(), batch_first=True,
                                            enforce_sorted=False)
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
  _gru(enc.weight_ih_l0, enc.weight_hh_l0, enc.bias_ih_l0, enc.bias_hh_l0,
       p["encoder"]["layer0_fwd"])
  if model.bidirectional:
    _gru(enc.weight_ih_l0_reverse, enc.weight_hh_l0_reverse, enc.bias_ih_l0_reverse,
         enc.bias_hh_l0_reverse, p["encoder"]["layer0_bwd"])
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


def measure_torch(size: common.Size, batches: list[dict], warmup: int, jax_params,
                  threads: int) -> dict:
  """Trains the PyTorch model on `batches` (the first `warmup` untimed) on `threads` threads."""
  torch.set_num_threads(threads)
  model = TorchSeq2Seq(size)
  load_jaxseq_params(model, jax_params)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  losses = []

  def one_step(i):
    batch = {k: torch.from_numpy(v).long() for k, v in batches[i].items()}
    optimizer.zero_grad()
    loss = token_loss(model(batch["src"], batch["tgt_in"]), batch["tgt_out"])
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    losses.append(loss.item())

  for i in range(warmup):
    one_step(i)
  times = common.time_calls(lambda i: one_step(warmup + i), len(batches) - warmup)
  step_seconds = common.median(times)
  tokens = [common.target_tokens(b) for b in batches[warmup:]]
  return {"num_params": sum(p.numel() for p in model.parameters()),
          "step_seconds_median": step_seconds, "step_seconds_all": times,
          "steps_per_second": 1 / step_seconds,
          "tokens_per_second": common.median(tokens) / step_seconds,
          "losses": losses, "threads": torch.get_num_threads()}


def measure_jaxseq(size: common.Size, batches: list[dict], warmup: int) -> tuple[dict, dict]:
  """Trains jaxseq on the same batches; returns its record and its initial parameters."""
  import jax
  from jaxseq import parallel
  _, state, train_step, mesh = train_throughput.build(size)
  initial = jax.device_get(state.params)
  compiled = train_step.lower(state, parallel.shard_batch(batches[0], mesh)).compile()
  losses = []

  def one_step(i):
    nonlocal state
    state, metrics = compiled(state, parallel.shard_batch(batches[i], mesh))
    jax.block_until_ready((state, metrics))
    losses.append(float(metrics["loss"]) / float(metrics["tokens"]))

  for i in range(warmup):
    one_step(i)
  times = common.time_calls(lambda i: one_step(warmup + i), len(batches) - warmup)
  step_seconds = common.median(times)
  tokens = [common.target_tokens(b) for b in batches[warmup:]]
  return {"num_params": int(sum(x.size for x in jax.tree.leaves(initial))),
          "step_seconds_median": step_seconds, "step_seconds_all": times,
          "steps_per_second": 1 / step_seconds,
          "tokens_per_second": common.median(tokens) / step_seconds,
          "losses": losses}, initial


def measure_torch_matmul(n: int = 2048, repeats: int = 10) -> dict:
  """PyTorch's own dense f32 matmul rate per thread count, for reference next to XLA's."""
  a = torch.randn(n, n)
  default_threads = torch.get_num_threads()
  rates = {}
  for threads in sorted({default_threads, 1}):
    torch.set_num_threads(threads)
    a @ a  # warm up
    times = common.time_calls(lambda _: a @ a, repeats)
    rates[threads] = 2 * n ** 3 / common.median(times)
  torch.set_num_threads(default_threads)
  return {"matrix_size": n, "flops_per_second_by_threads": rates}


def compare(size: common.Size, num_steps: int, warmup: int = 2) -> dict:
  """jaxseq and PyTorch on the same batches, one after the other in this process."""
  batches = common.make_batches(size, warmup + num_steps)
  jax_result, initial = measure_jaxseq(size, batches, warmup)
  # PyTorch gets its better thread count: on a busy machine one thread can beat all.
  default_threads = torch.get_num_threads()
  tries = [measure_torch(size, batches, warmup, initial, n)
           for n in sorted({default_threads, 1}, reverse=True)]
  torch.set_num_threads(default_threads)
  torch_result = min(tries, key=lambda r: r["step_seconds_median"])
  torch_result["other_thread_counts"] = [
      {"threads": r["threads"], "tokens_per_second": r["tokens_per_second"]}
      for r in tries if r is not torch_result]
  first_gap = abs(jax_result["losses"][0] - torch_result["losses"][0])
  train_flops = flops.train_step_flops(size)
  return {
      "size": dataclasses.asdict(size), "warmup_steps": warmup, "timed_steps": num_steps,
      "jaxseq": jax_result, "torch": torch_result,
      "params_match": jax_result["num_params"] == torch_result["num_params"],
      "first_loss_abs_diff": first_gap,
      "speedup": torch_result["step_seconds_median"] / jax_result["step_seconds_median"],
      "train_step_gflop": train_flops / 1e9,
      "jaxseq_gflops": train_flops / jax_result["step_seconds_median"] / 1e9,
      "torch_gflops": train_flops / torch_result["step_seconds_median"] / 1e9,
  }


def report(result: dict) -> str:
  j, t = result["jaxseq"], result["torch"]
  return (f"{result['size']['name']}: parameters jaxseq {j['num_params']:,} / torch "
          f"{t['num_params']:,}; first loss {j['losses'][0]:.5f} / {t['losses'][0]:.5f}, last "
          f"{j['losses'][-1]:.5f} / {t['losses'][-1]:.5f}; tokens/s {j['tokens_per_second']:,.0f}"
          f" / {t['tokens_per_second']:,.0f} ({t['threads']} threads); "
          f"jaxseq / torch = {result['speedup']:.2f}x")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", choices=sorted(common.SIZES), default="small")
  parser.add_argument("--batch_size", type=int, help="overrides the size's batch")
  parser.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up)")
  parser.add_argument("--out", help="write the JSON record here")
  args = parser.parse_args(argv)
  size = common.SIZES[args.size]
  if args.batch_size:
    size = dataclasses.replace(size, batch_size=args.batch_size)
  result = compare(size, args.steps)
  print(report(result))
  if args.out:
    common.write_json(args.out, {"benchmark": "torch_reference", "hardware": common.hardware(),
                                 "versions": common.versions(), "result": result})


if __name__ == "__main__":
  main()
