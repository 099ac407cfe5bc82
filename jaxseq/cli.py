"""The command-line layer of every jaxseq command: the flag parser, the flags the commands
share, exit statuses, and errors reported as one line on stderr.

Exit status: 0 finished; 1 stdout's reader closed the pipe (`| head`), nothing is said
about it; 2 bad input (a flag, config, workdir, checkpoint, artifact or text) or a run that
cannot go on (non-finite steps); 3 interrupted by SIGTERM/SIGINT after saving a checkpoint:
run the same command again to resume.

Light on purpose (the standard library only): a command parses its flags, and answers
--help or a flag mistake, before the model's libraries are imported.
"""

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable

EXIT_READER_GONE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 3


def fail(message: str) -> int:
  """Reports a mistake as one line on stderr; returns exit status 2."""
  print(f"error: {message}", file=sys.stderr)
  return EXIT_BAD_INPUT


def interrupted(message: str) -> int:
  """Reports a run stopped by a signal after saving; returns exit status 3."""
  print(f"interrupted: {message}", file=sys.stderr)
  return EXIT_INTERRUPTED


class OneLineParser(argparse.ArgumentParser):
  """Flag mistakes as one line (what is wrong and what is allowed) and exit status 2; the
  flags the commands share, and their checks."""

  def error(self, message: str):
    self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")

  def require_positive(self, args: argparse.Namespace, *names: str):
    """The one-line error for the first of these integer flags that was given below 1."""
    for name in names:
      value = getattr(args, name)
      if value is not None and value < 1:
        self.error(f"--{name}={value} is not allowed; expected an integer >= 1")

  def require_not_negative(self, args: argparse.Namespace, *names: str):
    """The one-line error for the first of these number flags that was given below 0."""
    for name in names:
      value = getattr(args, name)
      if value is not None and value < 0:
        self.error(f"--{name}={value} is not allowed; expected a number >= 0")

  def add_model_flags(self, *, ensemble: bool = False, artifact: bool = False):
    """--workdir, the model to use (ensemble: given several times, a list of them); with
    artifact, --artifact as the other choice (check them with require_one_model)."""
    help = "directory written by jaxseq-train (train.py)"
    if ensemble:
      help += "; give it several times to use the ensemble of those models (same vocabularies)"
    self.add_argument(
      "--workdir", required=not artifact, action="append" if ensemble else "store", help=help
    )
    if artifact:
      self.add_argument(
        "--artifact", help="directory written by jaxseq-export (instead of --workdir)"
      )
    self._ensemble = ensemble

  def require_one_model(self, args: argparse.Namespace):
    """The one-line error unless exactly one of --workdir and --artifact was given."""
    if bool(args.workdir) == bool(args.artifact):
      several = " (one or more)" if self._ensemble else ""
      self.error(f"give --workdir{several} or --artifact, exactly one of the two")

  def add_decode_flags(self, *, nbest: bool = False):
    """--beam_size, --alpha and --coverage_penalty (None when not given: the workdir's
    config.decode holds the default), and with nbest --nbest (default 1); check them with
    check_decode_flags."""
    self.add_argument("--beam_size", type=int, help="default: config.decode.beam_size")
    self.add_argument("--alpha", type=float, help="length penalty; default: config.decode.alpha")
    self.add_argument(
      "--coverage_penalty",
      type=float,
      help="beam search's coverage penalty beta (0 = none; greedy search and sampling "
      "ignore it); default: config.decode.coverage_penalty",
    )
    if nbest:
      self.add_argument(
        "--nbest",
        type=int,
        default=1,
        help="translations per sentence (with --sample: samples drawn)",
      )

  def check_decode_flags(self, args: argparse.Namespace):
    """The one-line error for a --beam_size or --nbest below 1, or an --alpha or
    --coverage_penalty below 0."""
    self.require_positive(args, *[n for n in ("beam_size", "nbest") if hasattr(args, n)])
    self.require_not_negative(args, "alpha", "coverage_penalty")

  def add_beam_sizes_flag(self, help: str):
    """--beam_sizes, comma-separated (read it with beam_sizes)."""
    self.add_argument("--beam_sizes", default="", help=help)

  def beam_sizes(self, text: str) -> list[int]:
    """The sorted beam sizes of a --beam_sizes value ([] for ""); a mistake is the one-line
    error."""
    try:
      sizes = sorted({int(b) for b in text.split(",") if b.strip()})
    except ValueError:
      sizes = [0]
    if any(b < 1 for b in sizes):
      self.error(
        f"--beam_sizes={text!r} is not allowed; expected integers >= 1 separated by commas"
      )
    return sizes


def print_lines(lines: Iterable[str]) -> int:
  """Prints each line to stdout as it comes; returns the exit status: 0; 1 when the reader
  closed the pipe (e.g. `| head`: the rest is dropped without a word); 2, after one line
  on stderr, when stdout cannot be written (e.g. a full disk). What making the lines
  raises is raised."""
  for line in lines:
    try:
      print(line, flush=True)
    except BrokenPipeError:
      _drop_stdout()
      return EXIT_READER_GONE
    except OSError as e:
      _drop_stdout()
      return fail(f"the output cannot be written: {e.strerror or e}")
  return 0


def _drop_stdout():
  """Points stdout at /dev/null, so that the interpreter's last flush of what is still
  buffered does not fail again (with a traceback) at exit."""
  with contextlib.suppress(OSError, ValueError):  # no file descriptor (a test's capture)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
