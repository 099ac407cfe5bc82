"""Translates text with a trained workdir: arguments, stdin, a file, or interactively.

    python -m jaxseq.translate --workdir=workdir "three hundred and twelve"
    echo "forty two" | jaxseq-translate --workdir=workdir --beam_size=8 --nbest=3
    jaxseq-translate --workdir=workdir --input=sources.txt > translations.txt
    jaxseq-translate --workdir=workdir --json --attention_plot=att.png "seven"

One output line per input line, in order (with --nbest N: N lines `i ||| text |||
score`; with --json: one JSON object per line). An empty line gives an empty line; a
source longer than the model's max_length is cut, with a warning on stderr. Mistakes
(missing or mismatched checkpoint, invalid UTF-8, bad flags) are one line on stderr
and exit status 2.
"""

import argparse
import functools
import json
import sys
from collections.abc import Iterator

import numpy as np

EXIT_BAD_INPUT = 2


class InputError(ValueError):
  """The text to translate cannot be read."""


class _Parser(argparse.ArgumentParser):
  """Flag mistakes as one line (what is wrong and what is allowed) and exit status 2."""

  def error(self, message: str):
    self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = _Parser(
      prog="jaxseq-translate", description="Translate with a trained jaxseq workdir.")
  parser.add_argument("texts", nargs="*", metavar="TEXT",
                      help="sentences to translate (default: lines of --input or stdin)")
  parser.add_argument("--workdir", required=True, help="directory written by train.py")
  parser.add_argument("--input", help="file with one sentence per line")
  parser.add_argument("--beam_size", type=int, help="default: config.decode.beam_size")
  parser.add_argument("--alpha", type=float, help="length penalty; default: config.decode.alpha")
  parser.add_argument("--nbest", type=int, default=1, help="translations per sentence")
  parser.add_argument("--batch_size", type=int, default=64, help="sentences per batch")
  parser.add_argument("--json", action="store_true",
                      help="one JSON object per line: translation, score, nbest, attention")
  parser.add_argument("--attention_plot", metavar="FILE.png",
                      help="attention heatmap of the (single) sentence")
  args = parser.parse_args(argv)
  for name in ("beam_size", "nbest", "batch_size"):
    value = getattr(args, name)
    if value is not None and value < 1:
      parser.error(f"--{name}={value} is not allowed; expected an integer >= 1")
  if args.alpha is not None and args.alpha < 0:
    parser.error(f"--alpha={args.alpha} is not allowed; expected a number >= 0")
  if args.texts and args.input:
    parser.error("give sentences as arguments or --input FILE, not both")
  return args


def read_lines(stream, name: str) -> list[str]:
  """Lines of a binary stream as text; InputError names the first line that is not UTF-8."""
  lines = []
  for number, raw in enumerate(stream, 1):
    try:
      lines.append(raw.decode("utf-8").rstrip("\r\n"))
    except UnicodeDecodeError as e:
      raise InputError(f"{name} line {number} is not valid UTF-8 (byte 0x{raw[e.start]:02x} "
                       f"at column {e.start + 1}); give UTF-8 text") from None
  return lines


class Translator:
  """A workdir's tokenizers, config and restored parameters, ready to translate."""

  def __init__(self, workdir: str):
    # Imported here so that `--help` and flag mistakes answer before JAX starts.
    import jax
    from absl import logging

    from jaxseq import checkpointing, evaluation, steps, tokenizers
    from jaxseq import model as model_lib
    logging.set_verbosity(logging.ERROR)  # orbax's notes on read-only restores
    try:
      self.config = checkpointing.load_config(workdir)
    except ValueError as e:  # json.JSONDecodeError included
      raise checkpointing.CheckpointError(
          f"config.json in {workdir!r} is not a jaxseq config: {e}") from None
    try:
      self.src_vocab, self.tgt_vocab = tokenizers.load_pair(workdir)
    except (OSError, ValueError, KeyError) as e:
      raise checkpointing.CheckpointError(f"tokenizer files in {workdir!r} cannot be read: "
                                          f"{e}") from None
    try:
      self.model = model_lib.from_config(self.config.model, len(self.src_vocab),
                                         len(self.tgt_vocab))
      self.settings = self.config.decode.to_dict()
    except (AttributeError, KeyError, TypeError) as e:
      raise checkpointing.CheckpointError(
          f"config.json in {workdir!r} does not hold the model and decode fields of this "
          f"jaxseq version ({e}); translate with the version that trained it, or retrain"
      ) from None
    create = functools.partial(steps.create_train_state, self.model, self.config)
    abstract = jax.eval_shape(create, jax.random.key(0))
    try:
      state, self.step = checkpointing.restore_for_inference(workdir, abstract)
    except checkpointing.CheckpointError:
      raise
    except (ValueError, KeyError, TypeError, OSError) as e:
      first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      first = first.split(". ")[0]  # the mismatch, without the library's advice
      raise checkpointing.CheckpointError(
          f"the checkpoint in {workdir!r} does not fit its config.json and vocabulary files "
          f"(source vocab {len(self.src_vocab)}, target vocab {len(self.tgt_vocab)}, "
          f"hidden_size {self.config.model.hidden_size}): {first}") from None
    self.params = state.params
    self.max_length = self.config.model.max_length
    self._evaluation = evaluation

  def translate(self, lines: list[str], *, nbest: int, batch_size: int,
                progress: bool = False) -> list[dict]:
    """One dict per line: translation, score, nbest [(text, score)], tokens, attention."""
    sources, results = [], []
    for number, line in enumerate(lines, 1):
      ids = self.src_vocab.encode(line)
      if len(ids) > self.max_length:
        print(f"warning: sentence {number} has {len(ids)} tokens; only the first "
              f"{self.max_length} (model.max_length) are translated", file=sys.stderr)
      sources.append(ids[:self.max_length])
    todo = [i for i, ids in enumerate(sources) if ids]
    outputs = self._evaluation.translate_ids(
        self.model, self.params, [np.asarray(sources[i], np.int32) for i in todo],
        batch_size=batch_size, max_length=self.max_length, search="beam",
        settings=self.settings, nbest=nbest, progress="translate" if progress else None)
    by_line = dict(zip(todo, outputs))
    for i, line in enumerate(lines):
      src_tokens = [self.src_vocab.words[t] for t in sources[i]]
      out = by_line.get(i)
      if out is None or not out.nbest:
        results.append({"source": line, "translation": "", "score": None, "nbest": [],
                        "source_tokens": src_tokens, "output_tokens": [], "attention": []})
        continue
      texts = [(self.tgt_vocab.decode(ids), score) for ids, score in out.nbest]
      best_ids = out.nbest[0][0]
      results.append({
          "source": line, "translation": texts[0][0], "score": texts[0][1],
          "nbest": [{"translation": t, "score": s} for t, s in texts],
          "source_tokens": src_tokens,
          "output_tokens": [self.tgt_vocab.words[t] for t in best_ids]
                           + (["</s>"] if out.ended else []),
          "attention": np.round(out.attention, 4).tolist()})
    return results


def format_result(index: int, result: dict, *, as_json: bool, nbest: int) -> str:
  if as_json:
    return json.dumps(result, ensure_ascii=False)
  if nbest == 1:
    return result["translation"]
  return "\n".join(f"{index} ||| {h['translation']} ||| {h['score']:.4f}"
                   for h in result["nbest"]) or f"{index} |||  ||| "


def _interactive(translator: Translator, args) -> Iterator[str]:
  print(f"jaxseq-translate: model of step {translator.step}; one sentence per line, "
        "Ctrl-D to quit", file=sys.stderr)
  index = 0
  while True:
    try:
      print("> ", end="", file=sys.stderr, flush=True)  # stdout carries translations only
      line = input()
    except EOFError:
      print(file=sys.stderr)
      return
    result = translator.translate([line], nbest=args.nbest, batch_size=1)[0]
    yield format_result(index, result, as_json=args.json, nbest=args.nbest)
    index += 1


def run(argv: list[str]) -> int:
  args = parse_args(argv)
  from jaxseq import checkpointing
  try:
    if args.texts:
      lines = list(args.texts)
    elif args.input:
      try:
        with open(args.input, "rb") as f:
          lines = read_lines(f, args.input)
      except OSError as e:
        raise InputError(f"--input {args.input!r} cannot be read: {e.strerror}") from None
    elif sys.stdin.isatty():
      lines = None
    else:
      lines = read_lines(sys.stdin.buffer, "stdin")
    if args.attention_plot and (lines is None or len(lines) != 1):
      raise InputError("--attention_plot draws one sentence; give exactly one "
                       f"(got {'an interactive session' if lines is None else len(lines)})")
    translator = Translator(args.workdir)
  except (InputError, checkpointing.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_BAD_INPUT
  if args.beam_size is not None:
    translator.settings["beam_size"] = args.beam_size
  if args.alpha is not None:
    translator.settings["alpha"] = args.alpha
  if args.nbest > translator.settings["beam_size"]:
    print(f"error: --nbest={args.nbest} is not allowed; expected at most the beam size "
          f"({translator.settings['beam_size']})", file=sys.stderr)
    return EXIT_BAD_INPUT

  if lines is None:
    for text in _interactive(translator, args):
      print(text, flush=True)
    return 0
  results = translator.translate(lines, nbest=args.nbest, batch_size=args.batch_size,
                                 progress=len(lines) > args.batch_size)
  for index, result in enumerate(results):
    print(format_result(index, result, as_json=args.json, nbest=args.nbest))
  if args.attention_plot:
    from jaxseq import plots
    result = results[0]
    plots.save_attention(args.attention_plot, result["attention"], result["source_tokens"],
                         result["output_tokens"])
  return 0


def main() -> int:
  return run(sys.argv[1:])


if __name__ == "__main__":
  sys.exit(main())
