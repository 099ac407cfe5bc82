"""Held-out loss and greedy translations of encoded examples."""

import functools

import jax
import numpy as np
import sacrebleu

from jaxseq import decode, input_pipeline, steps


@functools.partial(jax.jit, static_argnames=("model",))
def _eval_sums(params, batch, model):
  return steps.eval_step(params, batch, model=model)


@functools.partial(jax.jit, static_argnames=("model", "max_len"))
def _greedy(params, src, model, max_len):
  return decode.batch_greedy(model, params, src, max_len=max_len)


def heldout_loss(model, params, examples, batch_size: int, max_length: int) -> dict:
  """Per-token NLL, perplexity and token accuracy with reference decoder inputs."""
  totals = {"nll": 0.0, "tokens": 0.0, "correct": 0.0}
  for batch, _ in input_pipeline.eval_batches(examples, batch_size, max_length):
    sums = jax.device_get(_eval_sums(params, batch, model))
    for k in totals:
      totals[k] += float(sums[k])
  tokens = max(totals["tokens"], 1.0)
  nll = totals["nll"] / tokens
  return {"loss": nll, "perplexity": float(np.exp(nll)), "token_accuracy": totals["correct"] / tokens}


def greedy_translate(model, params, examples, batch_size: int, max_length: int):
  """Greedy outputs for every example: (token id lists without EOS, attention arrays)."""
  outputs, attentions = [], []
  for batch, real in input_pipeline.eval_batches(examples, batch_size, max_length):
    tokens, attn, length = jax.device_get(_greedy(params, batch["src"], model, max_length))
    for row in range(real):
      n, src_len = int(length[row]), len(examples[len(outputs)][0])
      outputs.append(tokens[row, :n].tolist())
      attentions.append(attn[row, :n + 1, :src_len])  # output rows include EOS
  return outputs, attentions


def text_metrics(hypotheses: list[str], references: list[str], exact_match: bool) -> dict:
  """Corpus BLEU and chrF (sacreBLEU), and exact match where it is meaningful."""
  metrics = {
      "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
      "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
  }
  if exact_match:
    same = sum(h == r for h, r in zip(hypotheses, references))
    metrics["exact_match"] = same / max(len(references), 1)
  return metrics
