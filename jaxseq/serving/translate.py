"""Translates text with a trained workdir: arguments, stdin, a file, or interactively.

    python -m jaxseq.serving.translate --workdir=workdir "three hundred and twelve"
    echo "forty two" | jaxseq-translate --workdir=workdir --beam_size=8 --nbest=3
    jaxseq-translate --workdir=workdir --input=sources.txt > translations.txt
    jaxseq-translate --workdir=workdir --json --attention_plot=att.png "seven"
    jaxseq-translate --workdir=run1 --workdir=run2 "forty two"       # an ensemble
    jaxseq-translate --workdir=workdir --sample --top_p=0.9 --nbest=5 --seed=1 "seven"
    jaxseq-translate --workdir=workdir --prefix="sieben" --alignments "seven hundred"
    jaxseq-translate --workdir=workdir --constraint="hundert" --constraint="zwölf" "seven"

One output line per input line, in order (with --nbest N: N lines `i ||| text |||
score`; with --alignments ` ||| 0-0 1-2 ...` added; with --json: one JSON object per
line, and input lines may be objects {"text": ..., "prefix": ..., "constraints":
[...]}). With constraints (--constraint, repeatable, for every line; or a line's
"constraints") beam search keeps only outputs that contain every phrase
(`jaxseq/decoding/phrases.py` says how a phrase is encoded); a line whose constraints
cannot be met within the output length limit prints an empty line and a warning on
stderr (with --json, "constraints_met": false). An empty line gives an empty line; a
source longer than the model's max_length is cut, with a warning on stderr. stderr also
names the checkpoint step loaded from each workdir, after a warning for a damaged newer
one that was skipped. Mistakes (missing or mismatched checkpoint, models with different
vocabularies, invalid UTF-8, text that is not valid Unicode such as a lone surrogate, a
--json line starting with "{" that is not JSON within `jsontext`'s bounds, a prefix or
constraint the target vocabulary cannot write, an empty constraint, more constraint
tokens than the translator takes, bad flags or combinations of them) are one line on
stderr and exit status 2; at the interactive prompt a bad line is reported and the
session goes on. Output that cannot be written (a full disk) is one line and exit status
2 as well; a reader that stops reading (`| head`) ends the command quietly with exit
status 1, and Ctrl-C ends it at once (the lines printed so far are complete).
"""

import argparse
import dataclasses
import itertools
import json
import signal
import sys
from collections.abc import Iterator
from typing import NamedTuple, Protocol

import numpy as np

from jaxseq import cli, quiet
from jaxseq.data.tokenizers import Tokenizer
from jaxseq.data.vocab import UNK
from jaxseq.decoding import alignment, phrases
from jaxseq.decoding.batching import Output
from jaxseq.decoding.options import DecodeOptions, Search
from jaxseq.errors import ArtifactError, CheckpointError, InputError
from jaxseq.serving import jsontext
from jaxseq.serving.artifact import Artifact, use_compilation_cache
from jaxseq.serving.translation import Candidate, Translation
from jaxseq.training import plots

DECODE_FLAGS = ("beam_size", "alpha", "coverage_penalty")  # cli's add_decode_flags


def decode_overrides(options: "DecodeOptions", args: argparse.Namespace, **more) -> "DecodeOptions":
  """A new options object: options with the --beam_size, --alpha and --coverage_penalty
  that were given, and the fields in more (the flags were checked by the parser; the
  object checks itself)."""
  given = {name: getattr(args, name) for name in DECODE_FLAGS}
  given = {k: v for k, v in given.items() if v is not None}
  return dataclasses.replace(options, **given, **more)


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = cli.OneLineParser(
    prog="jaxseq-translate", description="Translate with a trained jaxseq workdir."
  )
  parser.add_argument(
    "texts",
    nargs="*",
    metavar="TEXT",
    help="sentences to translate (default: lines of --input or stdin)",
  )
  parser.add_model_flags(ensemble=True, artifact=True)
  parser.add_argument("--input", help="file with one sentence per line")
  parser.add_decode_flags(nbest=True)
  parser.add_argument("--batch_size", type=int, default=64, help="sentences per batch")
  parser.add_argument(
    "--sample",
    action="store_true",
    help="draw outputs at random from the model instead of beam search",
  )
  parser.add_argument(
    "--temperature",
    type=float,
    help="with --sample: divides the log-probabilities (default 1; 0 is greedy)",
  )
  parser.add_argument(
    "--top_k", type=int, help="with --sample: draw among the k most likely tokens (default 0: all)"
  )
  parser.add_argument(
    "--top_p",
    type=float,
    help="with --sample: draw among the most likely tokens whose probability "
    "reaches p (default 1: all)",
  )
  parser.add_argument(
    "--seed", type=int, help="with --sample: the same seed gives the same outputs (default 0)"
  )
  parser.add_argument(
    "--prefix", default="", help="target text every translation starts with; the model completes it"
  )
  parser.add_argument(
    "--constraint",
    action="append",
    default=[],
    metavar="PHRASE",
    help="target text every translation must contain (repeatable: all of them, for "
    'every line; beam search only); with --json, added to a line\'s own "constraints"',
  )
  parser.add_argument(
    "--alignments",
    action="store_true",
    help="add each translation's word alignment (Pharaoh 'src-tgt' pairs)",
  )
  parser.add_argument(
    "--json",
    action="store_true",
    help="one JSON object per line out; input lines may be JSON objects "
    '{"text": ..., "prefix": ..., "constraints": [...]}',
  )
  parser.add_argument(
    "--attention_plot", metavar="FILE.png", help="attention heatmap of the (single) sentence"
  )
  args = parser.parse_args(argv)
  parser.require_one_model(args)
  parser.check_decode_flags(args)
  parser.require_positive(args, "batch_size")
  if args.texts and args.input:
    parser.error("give sentences as arguments or --input FILE, not both")
  sampling = ("temperature", "top_k", "top_p", "seed")
  if not args.sample:
    given = [f"--{n}" for n in sampling if getattr(args, n) is not None]
    if given:
      parser.error(f"{given[0]} applies only with --sample")
  else:
    if args.constraint:
      parser.error("--constraint needs beam search; it is not allowed with --sample")
    if args.beam_size is not None and args.beam_size > 1:
      parser.error(
        f"--sample draws outputs one token at a time; --beam_size={args.beam_size} "
        "is not allowed with it (leave it out, or use 1)"
      )
    if args.temperature is not None and args.temperature < 0:
      parser.error(f"--temperature={args.temperature} is not allowed; expected a number >= 0")
    if args.top_k is not None and args.top_k < 0:
      parser.error(f"--top_k={args.top_k} is not allowed; expected an integer >= 0 (0: all)")
    if args.top_p is not None and not 0 < args.top_p <= 1:
      parser.error(f"--top_p={args.top_p} is not allowed; expected a number in (0, 1]")
  return args


def read_lines(stream, name: str) -> list[str]:
  """Lines of a binary stream as text; InputError names the first line that is not UTF-8."""
  lines = []
  for number, raw in enumerate(stream, 1):
    try:
      lines.append(raw.decode("utf-8").rstrip("\r\n"))
    except UnicodeDecodeError as e:
      raise InputError(
        f"{name} line {number} is not valid UTF-8 (byte 0x{raw[e.start]:02x} "
        f"at column {e.start + 1}); give UTF-8 text"
      ) from None
  return lines


class Request(NamedTuple):
  """One line to translate: its text, the target prefix its outputs must start with, and
  the phrases (target text) they must contain."""

  text: str
  prefix: str = ""
  constraints: tuple[str, ...] = ()


def check_unicode(request: Request, where: str) -> Request:
  """The request, when its text, prefix and constraints are valid Unicode; InputError names
  the first lone surrogate (a JSON escape such as "\\ud800", or an argument that is not
  UTF-8)."""
  text, prefix, constraints = request
  values = [("text", text), ("prefix", prefix)]
  values += [(f"constraint {i}", c) for i, c in enumerate(constraints)]
  for field, value in values:
    if problem := jsontext.unicode_problem(value):
      raise InputError(
        f"{where} is not valid Unicode: its {field} holds {problem}; give UTF-8 text"
      )
  return request


def parse_json_lines(lines: list[str], name: str, first: int = 1) -> list[Request]:
  """--json input: a line that starts with "{" is an object {"text": ..., "prefix": ...,
  "constraints": [...]} ("prefix" and the list of strings "constraints" optional); any
  other line is plain text. The lines are numbered from first.
  InputError (one line) names the bad line: not JSON, nested or numbered beyond
  jsontext's bounds, not such an object, or text that is not valid Unicode."""
  requests = []
  for number, line in enumerate(lines, first):
    where = f"{name} line {number}"
    if not line.lstrip().startswith("{"):
      requests.append(check_unicode(Request(line), where))
      continue
    try:
      item = jsontext.loads(line)
    except jsontext.JsonError as e:
      raise InputError(
        f"{where} starts with '{{' but is not a JSON object ({e}); give "
        '{"text": ..., "prefix": ...} or plain text'
      ) from None
    unknown = set(item) - set(Request._fields) if isinstance(item, dict) else set()
    constraints = item.get("constraints", []) if isinstance(item, dict) else None
    if (
      not isinstance(item, dict)
      or not isinstance(item.get("text"), str)
      or not isinstance(item.get("prefix", ""), str)
      or not isinstance(constraints, list)
      or not all(isinstance(c, str) for c in constraints)
      or unknown
    ):
      raise InputError(
        f"{where} is not a translation request: expected a JSON "
        'object with a string "text", an optional string "prefix" and an optional list '
        'of strings "constraints"' + (f" (unknown field {sorted(unknown)[0]!r})" if unknown else "")
      )
    request = Request(item["text"], item.get("prefix", ""), tuple(constraints))
    requests.append(check_unicode(request, where))
  return requests


class Backend(Protocol):
  """What a Translator translates with: one workdir or an ensemble (`trained.Loaded`), or
  an exported artifact (`artifact.Artifact`)."""

  src_vocab: "Tokenizer"
  tgt_vocab: "Tokenizer"
  step: int
  max_length: int
  options: "DecodeOptions"  # the default: beam search with config.decode
  max_constraint_tokens: int  # constraint tokens a sentence may have (0: no constraints)

  def translate_ids(
    self,
    sources: list[np.ndarray],
    options: "DecodeOptions",
    *,
    batch_size: int,
    prefixes: list[list[int]] | None = None,
    constraints: list[list[list[int]]] | None = None,
    progress: str | None = None,
  ) -> list["Output"]: ...


def _load_workdirs(workdirs: list[str], command: str) -> Backend:
  """The trained models of these workdirs (one, or an ensemble)."""
  # Imported here: the model and training code (JAX, Flax, orbax) would make every start
  # 3.4 s longer (--help: 3.8 s against 0.4 s), and an exported artifact runs without them.
  from jaxseq.decoding import trained

  with quiet.absl_errors_only():  # orbax's notes on read-only restores
    return trained.Loaded(workdirs, command)


class Translator:
  """Text in, translations out, over a trained workdir (`trained.Loaded`: one model or an
  ensemble) or an exported artifact (`artifact.Artifact`). command: the name that leads
  the stderr line saying which checkpoint of a workdir was loaded."""

  def __init__(
    self, workdirs: list[str] | None = None, artifact: str | None = None, command: str = "jaxseq"
  ):
    self.backend: Backend
    if artifact is not None:
      self.backend = Artifact(artifact)
    else:
      self.backend = _load_workdirs(workdirs or [], command)
    backend = self.backend
    self.src_vocab, self.tgt_vocab = backend.src_vocab, backend.tgt_vocab
    self.step, self.max_length = backend.step, backend.max_length
    self.options: DecodeOptions = backend.options

  def prefix_ids(self, prefix: str, where: str) -> list[int]:
    """Target ids of a prefix; InputError when the target tokenizer cannot represent it."""
    if not prefix.strip():
      return []
    ids = self.tgt_vocab.encode(prefix)
    if UNK in ids or self.tgt_vocab.decode(ids).split() != prefix.split():
      unknown = [w for w in prefix.split() if UNK in self.tgt_vocab.encode(w)]
      raise InputError(
        f"the prefix {prefix!r} of {where} cannot be written with the target "
        "vocabulary"
        + (f" ({unknown[0]!r} is not in it)" if unknown else "")
        + "; use words the model knows"
      )
    if len(ids) >= self.max_length:
      raise InputError(
        f"the prefix of {where} has {len(ids)} tokens; at most "
        f"{self.max_length - 1} fit (model.max_length {self.max_length})"
      )
    return ids

  def constraint_ids(self, constraints: tuple[str, ...], where: str) -> list[list[int]]:
    """Target ids of a request's constraint phrases (`phrases.constraint_ids`); InputError
    for an empty phrase, one the target vocabulary cannot write, or too many tokens."""
    most = getattr(self.backend, "max_constraint_tokens", 0)
    try:
      return phrases.constraint_ids(self.tgt_vocab, constraints, most)
    except ValueError as e:
      raise InputError(f"{where}: {e}") from None

  def translate(
    self,
    requests: list[Request],
    options: "DecodeOptions | None" = None,
    *,
    batch_size: int,
    alignments: bool = False,
    progress: bool = False,
    attention: bool = True,
  ) -> list[Translation]:
    """One Translation per request: its n-best list (options.nbest, best first), source
    and output tokens, attention (when asked) and alignments (when asked), and with
    constraints whether they were met. InputError for a bad prefix or constraint, or
    constraints with a search other than beam search. options: the decoding options of
    this call (default: self.options)."""
    options = self.options if options is None else options
    prefixes = [self.prefix_ids(r.prefix, f"line {n}") for n, r in enumerate(requests, 1)]
    wanted = [self.constraint_ids(r.constraints, f"line {n}") for n, r in enumerate(requests, 1)]
    sources = []
    for number, request in enumerate(requests, 1):
      ids = self.src_vocab.encode(request.text)
      if len(ids) > self.max_length:
        print(
          f"warning: sentence {number} has {len(ids)} tokens; only the first "
          f"{self.max_length} (model.max_length) are translated",
          file=sys.stderr,
        )
      sources.append(ids[: self.max_length])
    todo = [i for i, ids in enumerate(sources) if ids]
    # Only with constraints: a backend without them (or a stand-in) gets today's call.
    more = {"constraints": [wanted[i] for i in todo]} if any(wanted) else {}
    try:
      outputs = self.backend.translate_ids(
        [np.asarray(sources[i], np.int32) for i in todo],
        options,
        batch_size=batch_size,
        prefixes=[prefixes[i] for i in todo],
        progress="translate" if progress else None,
        **more,
      )
    except ValueError as e:  # what an exported artifact cannot do
      raise InputError(str(e)) from None
    by_line = dict(zip(todo, outputs))
    return [
      self._translation(request, sources[i], by_line.get(i), alignments, attention)
      for i, request in enumerate(requests)
    ]

  def _translation(
    self, request: Request, source: list[int], out: "Output | None", alignments, attention
  ) -> Translation:
    """The Translation of one request from its search output (None: an empty source)."""
    src_tokens = [self.src_vocab.words[t] for t in source]
    constraints = list(request.constraints) if request.constraints else None
    if out is None or not out.nbest:
      return Translation(
        request.text,
        [],
        src_tokens,
        [],
        attention=[] if attention else None,
        alignment="" if alignments else None,
        constraints=constraints,
        constraints_met=False if constraints else None,  # an empty output holds none
      )
    nbest = [
      Candidate(
        self.tgt_vocab.decode(h.ids),
        h.score,
        alignment.align(h.attention, source, h.ids, self.src_vocab, self.tgt_vocab)
        if alignments
        else None,
      )
      for h in out.nbest
    ]
    best = out.nbest[0]
    return Translation(
      request.text,
      nbest,
      src_tokens,
      [self.tgt_vocab.words[t] for t in best.ids] + (["</s>"] if best.ended else []),
      attention=np.round(best.attention, 4).tolist() if attention else None,
      prefix=request.prefix if request.prefix.strip() else None,
      alignment=nbest[0].alignment,
      constraints=constraints,
      constraints_met=True if constraints else None,  # every output holds them
    )


def format_result(
  index: int, result: Translation, *, as_json: bool, nbest: int, alignments: bool = False
) -> str:
  """A result as printed: JSON, the translation (with ' ||| alignment'), or n-best lines
  'i ||| translation ||| score' (with ' ||| alignment')."""
  if as_json:
    return json.dumps(result.to_json(), ensure_ascii=False)
  if nbest == 1:
    return result.translation + (f" ||| {result.alignment}" if alignments else "")
  rows = [
    f"{index} ||| {h.translation} ||| {h.score:.4f}" + (f" ||| {h.alignment}" if alignments else "")
    for h in result.nbest
  ]
  return "\n".join(rows) or f"{index} |||  ||| "


def _interactive(translator: Translator, args) -> Iterator[str]:
  print(
    f"jaxseq-translate: model of step {translator.step}; one sentence per line, Ctrl-D to quit",
    file=sys.stderr,
  )
  index = 0
  for number in itertools.count(1):
    try:
      print("> ", end="", file=sys.stderr, flush=True)  # stdout carries translations only
      line = input()
    except EOFError:
      print(file=sys.stderr)
      return
    except UnicodeDecodeError as e:  # the terminal sent bytes that are not UTF-8
      print(
        f"error: input line {number} is not valid UTF-8 (byte 0x{e.object[e.start]:02x}); "
        "give UTF-8 text",
        file=sys.stderr,
      )
      continue
    try:
      request = (
        parse_json_lines([line], "input", number)
        if args.json
        else [check_unicode(Request(line), f"input line {number}")]
      )[0]
      request = with_flags(request, args)
      result = translator.translate([request], batch_size=1, alignments=args.alignments)[0]
    except InputError as e:  # a bad line in a session: say so and go on
      print(f"error: {e}", file=sys.stderr)
      continue
    warn_unmet(number, result, args)
    yield format_result(
      index, result, as_json=args.json, nbest=args.nbest, alignments=args.alignments
    )
    index += 1


def _read_requests(args) -> list[Request] | None:
  """The lines to translate (None: an interactive session), each with its prefix."""
  if args.texts:  # bytes that are not UTF-8 arrive as lone surrogates (check_unicode)
    lines = list(args.texts)
  elif args.input:
    try:
      with open(args.input, "rb") as f:
        lines = read_lines(f, args.input)
    except OSError as e:
      raise InputError(f"--input {args.input!r} cannot be read: {e.strerror}") from None
  elif sys.stdin.isatty():
    return None
  else:
    lines = read_lines(sys.stdin.buffer, "stdin")
  check_unicode(Request("", args.prefix), "--prefix")
  name = args.input or ("arguments" if args.texts else "stdin")
  requests = (
    parse_json_lines(lines, name)
    if args.json
    else [check_unicode(Request(line), f"{name} line {n}") for n, line in enumerate(lines, 1)]
  )
  return [with_flags(r, args) for r in requests]


def with_flags(request: Request, args) -> Request:
  """A request with --prefix (where it has none) and the --constraint phrases added."""
  for n, phrase in enumerate(args.constraint):
    check_unicode(Request("", "", (phrase,)), f"--constraint {n + 1}")
  return request._replace(
    prefix=request.prefix or args.prefix,
    constraints=tuple(request.constraints) + tuple(args.constraint),
  )


def warn_unmet(number: int, result: Translation, args):
  """Plain output: a warning on stderr for a line whose constraints were not met (its
  output line is empty); --json says so in the line's "constraints_met"."""
  if result.constraints_met is False and not args.json:
    print(
      f"warning: line {number}: no translation contains every constraint within the output "
      "length limit; its output is empty",
      file=sys.stderr,
    )


def _apply_flags(translator: Translator, args):
  """The decoding flags over the workdir's config.decode, as the translator's new options;
  InputError when they conflict."""

  options = translator.options
  if args.sample:
    translator.options = decode_overrides(
      options,
      args,
      search=Search.SAMPLE,
      nbest=args.nbest,
      temperature=1.0 if args.temperature is None else args.temperature,
      top_k=args.top_k or 0,
      top_p=1.0 if args.top_p is None else args.top_p,
      seed=args.seed or 0,
    )
    return
  beam_size = options.beam_size if args.beam_size is None else args.beam_size
  if args.nbest > beam_size:
    raise InputError(
      f"--nbest={args.nbest} is not allowed; expected at most the beam size ({beam_size})"
    )
  translator.options = decode_overrides(options, args, nbest=args.nbest)


def run(argv: list[str]) -> int:
  args = parse_args(argv)
  if args.artifact:
    use_compilation_cache()  # later starts load the artifact's compiled searches
  try:
    requests = _read_requests(args)
    if args.attention_plot and (requests is None or len(requests) != 1):
      raise InputError(
        "--attention_plot draws one sentence; give exactly one "
        f"(got {'an interactive session' if requests is None else len(requests)})"
      )
    translator = Translator(args.workdir, args.artifact, command="jaxseq-translate")
    _apply_flags(translator, args)
    if requests is None:
      return cli.print_lines(_interactive(translator, args))
    results = translator.translate(
      requests,
      batch_size=args.batch_size,
      alignments=args.alignments,
      progress=len(requests) > args.batch_size,
    )
  except (InputError, CheckpointError, ArtifactError) as e:
    return cli.fail(str(e))
  for number, result in enumerate(results, 1):
    warn_unmet(number, result, args)
  status = cli.print_lines(
    format_result(index, result, as_json=args.json, nbest=args.nbest, alignments=args.alignments)
    for index, result in enumerate(results)
  )
  if status:
    return status
  if args.attention_plot:
    result = results[0]
    try:
      plots.save_attention(
        args.attention_plot,
        np.asarray(result.attention),
        result.source_tokens,
        result.output_tokens,
      )
    except OSError as e:
      return cli.fail(
        f"--attention_plot {args.attention_plot!r} cannot be written: "
        f"{e.strerror or e}; give a file in a writable folder"
      )
  return 0


def main() -> int:
  # Ctrl-C ends the command at once, as the signal's default does: Python's own handler
  # raises KeyboardInterrupt wherever the main thread is, and where that is one of JAX's
  # garbage-collection callbacks, the interpreter prints it as ignored and the command
  # goes on. Nothing is lost: every line printed so far was flushed.
  signal.signal(signal.SIGINT, signal.SIG_DFL)
  return run(sys.argv[1:])


if __name__ == "__main__":
  sys.exit(main())
