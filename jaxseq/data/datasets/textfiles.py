"""Reading sentence-aligned text files, with one clear error or a counted skip per fault.

Policy for bad input (every case is either a DataError naming file, line and problem, or
a skip that is counted and logged; nothing is dropped silently):
  missing file, empty file, invalid UTF-8, mismatched line counts,
  a Tatoeba line without a tab                 -> DataError
  CRLF line ends                                -> the CR is removed, lines counted, logged
  an empty side, a line over MAX_LINE_CHARS     -> the pair is skipped, counted, logged
"""

import dataclasses
import itertools
import logging
import os
import socket
import urllib.parse
from collections.abc import Iterator

LOGGER = logging.getLogger("jaxseq.data.corpora")

MAX_LINE_CHARS = 4096  # longer lines are not sentences (a broken export); such pairs are skipped


class DataError(ValueError):
  """A corpus file is missing or malformed; the message names the file, line and problem."""


@dataclasses.dataclass
class ReadReport:
  """What reading changed or skipped, with the first line number of each kind."""

  crlf: int = 0
  empty: int = 0
  too_long: int = 0
  first_line: dict = dataclasses.field(default_factory=dict)

  def note(self, kind: str, line_number: int):
    setattr(self, kind, getattr(self, kind) + 1)
    self.first_line.setdefault(kind, line_number)

  def log(self, name: str, logger: logging.Logger = LOGGER) -> list[str]:
    """Logs one line per kind that occurred; returns the lines."""
    texts = {
      "crlf": "lines ended in CRLF (CR removed)",
      "empty": "pairs skipped: an empty side",
      "too_long": f"pairs skipped: a side over {MAX_LINE_CHARS} characters",
    }
    lines = [
      f"{name}: {getattr(self, k)} {texts[k]} (first at line {self.first_line[k]})"
      for k in texts
      if getattr(self, k)
    ]
    for line in lines:
      logger.warning(line)
    return lines


def reachable(host: str, timeout: float = 3.0) -> bool:
  """Whether an HTTPS connection to host opens (offline, it fails in seconds, not minutes)."""
  try:
    socket.create_connection((host, 443), timeout=timeout).close()
    return True
  except OSError:
    return False


def download(dl_manager, urls, local: str):
  """dl_manager.download_and_extract(urls), or a DataError saying what is missing locally."""
  first = next(iter(urls.values())) if isinstance(urls, dict) else urls
  host = urllib.parse.urlparse(first).hostname
  if not reachable(host):
    raise DataError(
      f"{local} is missing and {host} cannot be reached to download the corpus; "
      "point config.data_dir or $JAXSEQ_DATA_DIR at a local copy"
    )
  try:
    return dl_manager.download_and_extract(urls)
  except Exception as e:  # noqa: BLE001  (offline, the error types vary by transport)
    raise DataError(
      f"{local} is missing and downloading the corpus failed "
      f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
      "point config.data_dir or $JAXSEQ_DATA_DIR at a local copy"
    ) from None


def iter_lines(path: str, report: ReadReport | None = None) -> Iterator[str]:
  """The file's lines without line ends, read as they are asked for; CRLF ends are
  counted in report. A file without a non-blank line is a DataError once it is read."""
  if not os.path.isfile(path):
    raise DataError(f"{path}: file is missing")
  blank = True
  with open(path, "rb") as f:
    for number, line in enumerate(f, start=1):
      line = line[:-1] if line.endswith(b"\n") else line
      if line.endswith(b"\r"):
        line = line[:-1]
        if report is not None:
          report.note("crlf", number)
      try:
        text = line.decode("utf-8")
      except UnicodeDecodeError as e:
        raise DataError(f"{path}:{number}: invalid UTF-8 at byte {e.start} of the line") from None
      blank = blank and not text.strip()
      yield text
  if blank:
    raise DataError(f"{path}: file is empty")


def read_lines(path: str, report: ReadReport | None = None) -> list[str]:
  """All of iter_lines(path)."""
  if not os.path.isfile(path):
    raise DataError(f"{path}: file is missing")
  return list(iter_lines(path, report))


def _keep(report: ReadReport, number: int, *sides: str) -> bool:
  if any(not s.strip() for s in sides):
    report.note("empty", number)
    return False
  if any(len(s) > MAX_LINE_CHARS for s in sides):
    report.note("too_long", number)
    return False
  return True


def iter_parallel(src_path: str, tgt_path: str) -> Iterator[tuple[str, str]]:
  """Line-aligned pairs of two files, streamed (memory does not grow with the files); bad
  pairs are skipped and logged, a bad file is a DataError when reached (see module doc)."""
  for path in (src_path, tgt_path):
    if not os.path.isfile(path):
      raise DataError(f"{path}: file is missing")
  report = ReadReport()
  src, tgt = iter_lines(src_path, report), iter_lines(tgt_path, report)
  number = 0
  for number, (s, t) in enumerate(itertools.zip_longest(src, tgt), start=1):
    if s is None or t is None:
      src_count = number - 1 + (s is not None) + sum(1 for _ in src)
      tgt_count = number - 1 + (t is not None) + sum(1 for _ in tgt)
      raise DataError(
        f"{src_path} has {src_count} lines but {tgt_path} has {tgt_count}; "
        "line N of one must translate line N of the other"
      )
    if _keep(report, number, s, t):
      yield s.strip(), t.strip()
  report.log(f"{src_path} / {tgt_path}")


def read_parallel(src_path: str, tgt_path: str) -> list[tuple[str, str]]:
  """All of iter_parallel."""
  return list(iter_parallel(src_path, tgt_path))


def read_tab_pairs(path: str) -> list[tuple[str, str]]:
  """(first, second) field of each `first<TAB>second[<TAB>...]` line (manythings format)."""
  report = ReadReport()
  pairs = []
  for number, line in enumerate(read_lines(path, report), start=1):
    fields = line.split("\t")
    if len(fields) < 2:
      if not line.strip():
        report.note("empty", number)
        continue
      raise DataError(f"{path}:{number}: no tab in the line; expected English<TAB>French")
    if _keep(report, number, fields[0], fields[1]):
      pairs.append((fields[0].strip(), fields[1].strip()))
  report.log(path)
  return pairs
