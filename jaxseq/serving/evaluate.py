"""Scores trained workdirs on their corpus's held-out and test splits; several as an ensemble.

    jaxseq-evaluate --workdir=run1 --split=test2016
    jaxseq-evaluate --workdir=run1 --workdir=run2 --out=ensemble/   # the two as one ensemble
    jaxseq-evaluate --workdir=run1 --split=test2016 --constraints=terms.jsonl

The corpus, the decoding settings (config.decode) and the tokenizers are those of the
first workdir; every model must share its vocabularies. Per split one JSON line goes to
stdout: sacreBLEU BLEU (cased, detokenized, with its signature), lowercased BLEU, chrF,
held-out loss and perplexity (of the ensemble's combined distribution), the number of
sentences and the seconds it took. With --out, DIR gets SPLIT.hyp.txt,
SPLIT.ref*.txt, SPLIT.align.txt (Pharaoh word alignments) and evaluation.json. With
--constraints FILE (one split, beam search), FILE has one JSON list of target phrases per
sentence of the split (an empty line: none), which its translation must contain
(lexically constrained beam search); the split is scored as usual, and its line adds
"constraints_met", the share of those phrases the translations contain (a sentence whose
constraints cannot be met within the output length limit scores as an empty translation,
counted in "constrained_sentences_unmet"). Mistakes (missing or mismatched checkpoints,
vocabularies that differ, an unknown split, a corpus that cannot be read, a constraints
file that does not fit the split) are one line on stderr and exit status 2.
"""

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING

from jaxseq import cli, quiet
from jaxseq.errors import CheckpointError
from jaxseq.serving import jsontext
from jaxseq.serving.translate import DECODE_FLAGS, decode_overrides

if TYPE_CHECKING:  # not imported at run time: flag mistakes answer before JAX starts
  from jaxseq.data import corpora
  from jaxseq.decoding import trained
  from jaxseq.decoding.options import DecodeOptions

HELDOUT = "heldout"


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = cli.OneLineParser(
    prog="jaxseq-evaluate", description="Score trained jaxseq workdirs (one, or an ensemble)."
  )
  parser.add_model_flags(ensemble=True)
  parser.add_argument(
    "--split", action="append", help=f"'{HELDOUT}' or a test split of the corpus (default: all)"
  )
  parser.add_argument("--search", choices=("beam", "greedy"), default="beam")
  parser.add_decode_flags()
  parser.add_argument(
    "--batch_size",
    type=int,
    help="sentences per batch; default: the first workdir's config.batch_size",
  )
  parser.add_argument("--out", help="directory for hypothesis, reference and alignment files")
  parser.add_argument(
    "--constraints",
    metavar="FILE",
    help="one JSON list of target phrases per sentence of the (one) --split, which its "
    "translation must contain (beam search)",
  )
  args = parser.parse_args(argv)
  parser.check_decode_flags(args)
  parser.require_positive(args, "batch_size")
  if args.constraints:
    if args.search != "beam":
      parser.error(f"--constraints needs beam search; --search={args.search} cannot take them")
    if not args.split or len(args.split) != 1:
      parser.error("--constraints applies to one split; give exactly one --split")
  return args


def read_constraints(path: str) -> list[list[str]]:
  """The phrases of each line of a constraints file (a JSON list of strings; an empty line:
  none); ValueError (one line) names a line that is not such a list."""
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    why = getattr(e, "strerror", None) or e
    raise ValueError(f"--constraints {path!r} cannot be read: {why}") from None
  result = []
  for number, line in enumerate(lines, 1):
    try:
      item = jsontext.loads(line) if line.strip() else []
    except jsontext.JsonError as e:
      raise ValueError(f"--constraints {path!r} line {number} is not JSON ({e})") from None
    if not isinstance(item, list) or not all(isinstance(p, str) for p in item):
      raise ValueError(
        f'--constraints {path!r} line {number} is not a JSON list of strings like ["red helmet"]'
      )
    result.append(item)
  return result


def select_splits(corpus, wanted: list[str] | None) -> dict:
  """name -> (pairs, references or None), in the order asked; ValueError for an unknown one."""
  available = {HELDOUT: (corpus.eval, corpus.eval_references)}
  available.update({name: (pairs, None) for name, pairs in corpus.test.items()})
  for name in wanted or []:
    if name not in available:
      raise ValueError(
        f"--split={name!r} is not a split of this corpus; allowed: {', '.join(available)}"
      )
  return {name: available[name] for name in (wanted or available)}


def run(argv: list[str]) -> int:
  args = parse_args(argv)
  # Imported after parsing: with the corpora (TFDS) and the model code (JAX, Flax, orbax)
  # imported first, --help and flag mistakes would take 3.8 s instead of 0.4 s.
  from jaxseq.data import corpora
  from jaxseq.decoding import options as options_lib
  from jaxseq.decoding import trained

  started = time.time()
  try:
    with quiet.absl_errors_only():  # orbax's notes on read-only restores
      loaded = trained.Loaded(args.workdir, command="jaxseq-evaluate")
    members, first = loaded.members, loaded.members[0]
    corpus = corpora.load_corpus(first.config, first.workdir)
    splits = select_splits(corpus, args.split)
    if args.constraints:
      phrases = read_constraints(args.constraints)
      splits = {name: (*value, phrases) for name, value in splits.items()}
      check_constraints(loaded, splits)
    if args.out:
      os.makedirs(args.out, exist_ok=True)
  except (CheckpointError, corpora.DataError, ValueError) as e:
    return cli.fail(str(e))
  except OSError as e:
    return cli.fail(f"--out {args.out!r} cannot be made: {e.strerror}")
  search = options_lib.Search(args.search)
  # One translation per source is scored (evaluation.evaluate_split).
  options = options_lib.DecodeOptions.from_config(first.config.decode, search)
  options = decode_overrides(options, args, nbest=1)
  batch_size = args.batch_size or first.config.batch_size
  given = {k: getattr(options, k) for k in DECODE_FLAGS}
  report = {
    "workdirs": [m.workdir for m in members],
    "steps": [m.step for m in members],
    "dataset": first.config.dataset,
    "search": args.search,
    "settings": dict(first.config.decode.to_dict(), **given),
    **({"constraints": args.constraints} if args.constraints else {}),
    "load_seconds": time.time() - started,
    "splits": {},
  }
  try:
    status = cli.print_lines(
      _report_lines(
        report,
        score_splits(loaded, corpus, splits, options, batch_size=batch_size, out=args.out),
      )
    )
    if status:
      return status
    if args.out:
      with open(os.path.join(args.out, "evaluation.json"), "w") as f:
        json.dump(report, f, indent=2)
  except OSError as e:  # the files of --out (stdout's own errors are print_lines')
    return cli.fail(
      f"--out {args.out!r} cannot be written: {e.strerror or e}; give a writable directory"
    )
  return 0


def check_constraints(loaded: "trained.Loaded", splits: dict):
  """ValueError (one line) when a split's constraints do not fit it: another number of
  lines than sentences, an empty phrase, one the target vocabulary cannot write, or too
  many tokens."""
  from jaxseq.decoding import evaluation  # imported here, not at the top: see run

  for name, (pairs, _, constraints) in splits.items():
    if len(constraints) != len(pairs):
      raise ValueError(
        f"--constraints has {len(constraints)} lines but the split {name!r} has "
        f"{len(pairs)} sentences; give one line per sentence"
      )
    try:
      evaluation.split_constraints(
        loaded.vocabularies(), evaluation.Split(pairs, constraints=constraints)
      )
    except ValueError as e:
      raise ValueError(f"--constraints: {e}") from None


def _report_lines(report: dict, scores):
  """Adds each (split, metrics) of scores to report["splits"] and yields its JSON line."""
  for name, metrics in scores:
    report["splits"][name] = metrics
    yield json.dumps({"split": name, **metrics})


def score_splits(
  loaded: "trained.Loaded",
  corpus: "corpora.Corpus",
  splits: dict,
  options: "DecodeOptions",
  *,
  batch_size: int,
  out: str | None = None,
):
  """Yields (split name, metrics with the seconds it took) for each of `splits` (from
  select_splits; a value may add the split's constraints, one phrase list per sentence),
  decoded by `loaded` in batches of batch_size with these options; with
  `out`, the split's hypothesis, reference and alignment files are written there."""
  from jaxseq.data import corpora  # imported here, not at the top: see run
  from jaxseq.decoding import evaluation

  language = corpora.target_language(loaded.members[0].config)
  for name, (pairs, references, *constraints) in splits.items():
    started = time.time()
    result = evaluation.score_split(
      loaded.searcher(batch_size),
      loaded.vocabularies(),
      evaluation.Split(
        pairs, references, corpus.exact_match, language, constraints[0] if constraints else None
      ),
      options,
      written=evaluation.Written(out, name) if out else None,
      progress=f"evaluate {name}",
    )
    yield name, dict(result.metrics, seconds=time.time() - started)


def main() -> int:
  return run(sys.argv[1:])


if __name__ == "__main__":
  sys.exit(main())
