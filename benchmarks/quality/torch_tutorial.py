"""The PyTorch tutorial's own recipe, retrained on jaxseq's split of its data, for comparison.

    pip install torch        # the optional `bench` dependency
    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.torch_tutorial \
        --name=torch_tutorial_fra_eng --threads=1           # 80 epochs, as the tutorial
    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.torch_tutorial \
        --max_steps=20 --out_dir=/tmp                       # a smoke run

The recipe is the tutorial's: a GRU encoder (hidden 128, embedding 128, dropout 0.1), a GRU
decoder with Bahdanau attention fed [embedding; context], batch 32, Adam at 1e-3, NLL loss,
always teacher forcing, 80 epochs, greedy decoding of up to MAX_LENGTH words. As in the
tutorial, nothing is masked: padded positions are read by the encoder and the attention and
counted in the loss. What comes from jaxseq: the data (configs/tutorial_fra_eng.py: the
tutorial's filter, the held-out split grouped by French source), the word vocabularies, and
the evaluation (multi-reference sacreBLEU and chrF of jaxseq.decoding.evaluation). The
results JSON has the fields of benchmarks/quality/driver.py's, so
benchmarks/quality/results_table.py lists
it too.

References:
  PyTorch tutorial "NLP From Scratch: Translation with a Sequence to Sequence Network and
    Attention" (seq2seq_translation_tutorial.py).
  Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and
    Translate".
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn

from benchmarks import common
from benchmarks.quality import driver, time_to_quality
from configs import tutorial_fra_eng
from jaxseq.data import corpora, input_pipeline
from jaxseq.data.vocab import BOS, EOS, PAD
from jaxseq.decoding import evaluation


class Encoder(nn.Module):
  """The tutorial's EncoderRNN: embedding, dropout, one GRU layer."""

  def __init__(self, vocab_size: int, hidden: int, dropout: float):
    super().__init__()
    self.embedding = nn.Embedding(vocab_size, hidden)
    self.gru = nn.GRU(hidden, hidden, batch_first=True)
    self.dropout = nn.Dropout(dropout)

  def forward(self, src):
    """src [batch, src_len] -> outputs [batch, src_len, hidden], final [1, batch, hidden]."""
    return self.gru(self.dropout(self.embedding(src)))


class Bahdanau(nn.Module):
  """score(q, k) = v^T tanh(W q + U k), as the tutorial's BahdanauAttention."""

  def __init__(self, hidden: int):
    super().__init__()
    self.w, self.u, self.v = (
      nn.Linear(hidden, hidden),
      nn.Linear(hidden, hidden),
      nn.Linear(hidden, 1),
    )

  def forward(self, query, keys):
    """query [batch, 1, hidden], keys [batch, src_len, hidden] -> context, weights."""
    scores = self.v(torch.tanh(self.w(query) + self.u(keys))).squeeze(2).unsqueeze(1)
    weights = torch.softmax(scores, dim=-1)  # [batch, 1, src_len]
    return torch.bmm(weights, keys), weights  # context [batch, 1, hidden]


class Decoder(nn.Module):
  """The tutorial's AttnDecoderRNN: the previous state asks, [embedding; context] feeds the GRU."""

  def __init__(self, vocab_size: int, hidden: int, dropout: float):
    super().__init__()
    self.embedding = nn.Embedding(vocab_size, hidden)
    self.attention = Bahdanau(hidden)
    self.gru = nn.GRU(2 * hidden, hidden, batch_first=True)
    self.out = nn.Linear(hidden, vocab_size)
    self.dropout = nn.Dropout(dropout)

  def step(self, token, hidden, keys):
    """token [batch, 1], hidden [1, batch, h] -> log-probs [batch, 1, vocab], hidden."""
    emb = self.dropout(self.embedding(token))
    context, _ = self.attention(hidden.permute(1, 0, 2), keys)
    output, hidden = self.gru(torch.cat([emb, context], dim=2), hidden)
    return torch.log_softmax(self.out(output), dim=-1), hidden

  def forward(self, keys, hidden, length: int, target=None):
    """Teacher-forced when target [batch, length] is given, else greedy; log-probs out."""
    token = torch.full((keys.shape[0], 1), BOS, dtype=torch.long)
    outputs = []
    for i in range(length):
      log_probs, hidden = self.step(token, hidden, keys)
      outputs.append(log_probs)
      token = target[:, i : i + 1] if target is not None else log_probs.argmax(-1)
    return torch.cat(outputs, dim=1)  # [batch, length, vocab]


def tensors(examples, width: int):
  """[n, width] source ids + EOS and target ids + EOS, zero padded, as the tutorial."""
  src = np.full((len(examples), width), PAD, np.int64)
  tgt = np.full((len(examples), width), PAD, np.int64)
  for row, (s, t) in enumerate(examples):
    src[row, : len(s) + 1] = [*s, EOS]
    tgt[row, : len(t) + 1] = [*t, EOS]
  return torch.from_numpy(src), torch.from_numpy(tgt)


def translate(encoder, decoder, corpus, width: int, batch_size: int = 256) -> list[str]:
  """Greedy translations of the held-out sources, cut at the first EOS."""
  encoder.eval()
  decoder.eval()
  hypotheses = []
  with torch.no_grad():
    for start in range(0, len(corpus.eval), batch_size):
      chunk = corpus.eval[start : start + batch_size]
      ids = [np.asarray(corpus.src_vocab.encode(s)[: width - 1], np.int64) for s, _ in chunk]
      src, _ = tensors([(s, []) for s in ids], width)
      keys, hidden = encoder(src)
      out = decoder(keys, hidden, width).argmax(-1).numpy()
      hypotheses += [corpus.tgt_vocab.decode(row.tolist()) for row in out]
  encoder.train()
  decoder.train()
  return hypotheses


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--name", default="torch_tutorial_fra_eng")
  parser.add_argument("--epochs", type=int, default=80, help="the tutorial's n_epochs")
  parser.add_argument("--max_steps", type=int, default=0, help="stop after this many (0: none)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
  parser.add_argument(
    "--eval_every",
    type=int,
    default=0,
    help="held-out BLEU every this many steps, for time to quality (0: none)",
  )
  parser.add_argument(
    "--thresholds", default="55,58.6", help="with --eval_every: held-out BLEU marks to time"
  )
  parser.add_argument(
    "--out_dir",
    default=None,
    help="default: benchmarks/results, or benchmarks/results/time_to_quality with --eval_every",
  )
  args = parser.parse_args(argv[1:])
  if args.out_dir is None:
    args.out_dir = time_to_quality.OUT_DIR if args.eval_every else driver.RESULTS
  try:
    thresholds = time_to_quality.parse_thresholds(args.thresholds)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  started = time.time()
  config = tutorial_fra_eng.get_config()
  try:
    corpus = corpora.load_corpus(config)
  except corpora.DataError as e:
    print(f"error: bad data: {e}", file=sys.stderr)
    return 2
  width = config.model.max_length + 1  # up to max_length words and EOS
  examples, _ = input_pipeline.encode_pairs(
    corpus.train, corpus.src_vocab, corpus.tgt_vocab, config.model.max_length
  )
  src, tgt = tensors(examples, width)
  hidden, dropout = config.model.hidden_size, config.model.dropout
  encoder = Encoder(len(corpus.src_vocab), hidden, dropout)
  decoder = Decoder(len(corpus.tgt_vocab), hidden, dropout)
  params = [*encoder.parameters(), *decoder.parameters()]
  optimizer = torch.optim.Adam(params, lr=config.learning_rate)
  loss_fn = nn.NLLLoss()
  references = corpus.eval_references or [[t] for _, t in corpus.eval]
  curve = {
    "search": "greedy",
    "steps": [],
    "bleu": [],
    "train_seconds": [],
    "wall_seconds": [],
    "load_1min": [],
  }

  def add_point(step: int, bleu: float, train_seconds: float):
    for key, value in (
      ("steps", step),
      ("bleu", bleu),
      ("train_seconds", train_seconds),
      ("wall_seconds", time.time() - started),
      ("load_1min", os.getloadavg()[0]),
    ):
      curve[key].append(round(value, 2) if isinstance(value, float) else value)
    print(f"step {step}: held-out BLEU (greedy) {bleu:.2f} after {train_seconds:.0f} s")

  def evaluate(step: int, train_seconds: float):
    """Greedy held-out BLEU at this step, added to the curve (not counted as training)."""
    add_point(
      step,
      evaluation.text_metrics(
        translate(encoder, decoder, corpus, width), references, exact_match=False
      )["bleu"],
      train_seconds,
    )

  batch, step, train_seconds = config.batch_size, 0, 0.0
  print(
    f"{len(examples)} training pairs, {len(corpus.eval)} held-out sources, "
    f"{sum(p.numel() for p in params):,} parameters"
  )
  for epoch in range(args.epochs):
    tick, total, batches = time.time(), 0.0, 0
    order = torch.randperm(len(examples))
    for start in range(0, len(order), batch):
      rows = order[start : start + batch]
      keys, state = encoder(src[rows])
      log_probs = decoder(keys, state, width, target=tgt[rows])
      loss = loss_fn(log_probs.reshape(-1, log_probs.shape[-1]), tgt[rows].reshape(-1))
      optimizer.zero_grad()
      loss.backward()
      optimizer.step()
      total += float(loss.detach())
      step, batches = step + 1, batches + 1
      if args.eval_every and step % args.eval_every == 0:
        train_seconds += time.time() - tick
        evaluate(step, train_seconds)
        tick = time.time()
      if args.max_steps and step >= args.max_steps:
        break
    train_seconds += time.time() - tick
    print(
      f"epoch {epoch + 1}: mean loss {total / max(batches, 1):.4f}, "
      f"step {step}, {train_seconds:.0f} s"
    )
    if args.max_steps and step >= args.max_steps:
      break
  hypotheses = translate(encoder, decoder, corpus, width)
  metrics = evaluation.text_metrics(hypotheses, references, exact_match=False)
  record = {
    "name": args.name,
    "config": "benchmarks/quality/torch_tutorial.py",
    "command": common.command_line("benchmarks.quality.torch_tutorial", argv[1:]),
    "dataset": config.dataset,
    "recipe": "torch_tutorial",
    "direction": driver.direction(config.to_dict()),
    "heldout": {
      **{k: metrics[k] for k in ("bleu", "bleu_lowercase", "chrf")},
      "sentences": len(hypotheses),
      "search": "greedy",
    },
    "test": {},
    "num_parameters": sum(p.numel() for p in params),
    "steps": step,
    "train_seconds": round(train_seconds, 1),
    "wall_seconds": round(time.time() - started, 1),
    "hardware": {
      **common.run_hardware(),
      "torch": torch.__version__,
      "torch_threads": torch.get_num_threads(),
    },
  }
  if args.eval_every:
    if not curve["steps"] or curve["steps"][-1] != step:
      add_point(step, metrics["bleu"], train_seconds)  # the final model, also greedy
    record["heldout_curve"] = curve
    path = time_to_quality.record_run(args.name, record, thresholds, args.out_dir)
  else:
    path = driver.write_record(args.out_dir, args.name, record)
  print(f"held-out BLEU {metrics['bleu']:.2f}, chrF {metrics['chrf']:.2f}; wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
