"""`jaxseq-translate --json` input lines, fuzzed: each line is read as a request or refused
with one InputError line, whatever it holds; through the command, any bytes on stdin end
in one error line and exit status 2 (no model is loaded: the lines are read first, and the
workdir given does not exist)."""

import contextlib
import io
import json
import sys
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jaxseq.serving import translate as translate_cli

# Characters the commands meet in practice and at their edges: surrogates (lone, from a
# JSON escape or undecodable bytes), NUL and other controls, combining marks, line and
# paragraph separators, the byte-order mark, private use and astral characters.
EDGE_CHARACTERS = st.sampled_from(
  [
    "\ud800",
    "\udfff",
    "\udcff",
    "\x00",
    "\x1b",
    "\x7f",
    "\u0301",
    "\u200b",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ue000",
    "\U0001f600",
    "\x85",
    "{",
    "}",
    "[",
    '"',
    "\\",
  ]
)
TEXT = st.text(st.one_of(st.characters(), EDGE_CHARACTERS), max_size=40)
NUMBER = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))
JSON_VALUES = st.recursive(
  st.one_of(st.none(), st.booleans(), NUMBER, TEXT),
  lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["text", "prefix", "x"]) | TEXT, inner, max_size=4),
  ),
  max_leaves=12,
)


def _deep(depth: int, kind: str) -> str:
  return "[" * depth + "]" * depth if kind == "array" else '{"a": ' * depth + "1" + "}" * depth


ADVERSARIAL = st.one_of(
  st.builds(
    lambda d, k: '{"text": ' + _deep(d, k) + "}",
    st.integers(30, 20000),
    st.sampled_from(["array", "object"]),
  ),
  st.builds(lambda n: '{"text": "one", "x": ' + "9" * n + "}", st.integers(1, 6000)),
  st.builds(lambda n: '{"text": "one", "x": 1e' + "9" * n + "}", st.integers(1, 400)),
  st.builds(lambda t: "{" + t, TEXT),
  st.builds(lambda c: json.dumps({"text": f"a{c}b"}), EDGE_CHARACTERS),
  st.builds(lambda c: json.dumps({"text": "a", "prefix": c}), EDGE_CHARACTERS),
  st.sampled_from(
    [
      '{"text": NaN}',
      '{"text": -Infinity}',
      '{"text": "a"} x',
      '{"text": "\\ud800"}',
      '{"text": "\\u0000"}',
      "{}",
      '{"text": null}',
    ]
  ),
)


def _read(lines: list[str]):
  """The requests of lines, or the one-line message of the InputError they raise."""
  try:
    return translate_cli.parse_json_lines(lines, "stdin")
  except translate_cli.InputError as e:
    message = str(e)
    assert message and len(message.splitlines()) == 1, message
    assert message.startswith("stdin line "), message
    message.encode("utf-8")  # printable as it is: no lone surrogate of the input in it
    return message


def _assert_valid_requests(result, count: int):
  if isinstance(result, str):
    return
  assert len(result) == count
  for request in result:
    assert isinstance(request, translate_cli.Request)
    assert isinstance(request.text, str) and isinstance(request.prefix, str)
    (request.text + request.prefix).encode("utf-8")  # what gets through is valid Unicode


@settings(max_examples=300, deadline=None)
@given(
  st.lists(
    st.one_of(
      TEXT,
      ADVERSARIAL,
      JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False)),
      JSON_VALUES.map(json.dumps),
    ),
    min_size=1,
    max_size=3,
  )
)
@example(["[" * 60000 + "]" * 60000])
@example(['{"text": ' + "[" * 5000 + "]" * 5000 + "}"])
@example(['{"text": "one", "x": ' + "9" * 5000 + "}"])
def test_every_line_is_a_request_or_one_input_error(lines):
  _assert_valid_requests(_read(lines), len(lines))


@pytest.mark.parametrize(
  "line, says",
  [
    ('{"text": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ('{"text": ' + "[" * 60000 + "]" * 60000 + "}", "nested too deeply"),
    ('{"text": "one", "x": ' + "9" * 5000 + "}", "a number of 5000 characters"),
    ('{"text": "\\ud800 x"}', "lone surrogate U+D800 at character 1"),
    ('{"text": "one", "prefix": "zwei\\udfff"}', "its prefix holds the lone surrogate U+DFFF"),
  ],
)
def test_a_bad_line_is_named_with_what_is_wrong(line, says):
  message = _read(["forty one", line])
  assert isinstance(message, str) and message.startswith("stdin line 2 "), message
  assert says in message


def test_plain_lines_keep_nul_control_and_combining_characters():
  lines = ["vier\x00zig", "e\u0301\x1b[31m\u200b", "[" * 60000 + "]" * 60000]
  assert translate_cli.parse_json_lines(lines, "stdin") == [
    translate_cli.Request(line) for line in lines
  ]


def _run_command(stdin: bytes) -> tuple[int, str, str]:
  """jaxseq-translate --json over a workdir that does not exist, stdin given as bytes."""
  out, err = io.StringIO(), io.StringIO()
  with (
    mock.patch.object(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")),
    contextlib.redirect_stdout(out),
    contextlib.redirect_stderr(err),
  ):
    status = translate_cli.run(["--workdir=/nonexistent/jaxseq-workdir", "--json"])
  return status, out.getvalue(), err.getvalue()


LINE_BYTES = st.one_of(
  st.binary(max_size=40),
  ADVERSARIAL.map(lambda line: line.encode("utf-8", "surrogatepass")),
  TEXT.map(lambda text: text.encode("utf-8", "surrogatepass")),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(LINE_BYTES, min_size=1, max_size=3))
def test_any_bytes_through_the_command_are_one_error_line(lines):
  status, out, err = _run_command(b"\n".join(lines) + b"\n")
  assert status == 2 and out == ""
  lines = err.splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), err
  # A bad line is named before the missing workdir is noticed.
  assert "stdin line " in lines[0] or "config.json is missing" in lines[0], lines[0]
