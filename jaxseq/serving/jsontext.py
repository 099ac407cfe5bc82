"""JSON from clients (service bodies, `--json` input lines), parsed within bounds.

`json.loads` alone lets one line cost a traceback: nesting deeper than the interpreter's
recursion limit raises RecursionError, and an integer of more than 4,300 digits raises
Python's int-string ValueError. `loads` turns both, and every other mistake, into one
`JsonError` whose message says what is wrong and what is allowed.
"""

import json

MAX_DEPTH = 32  # arrays and objects inside each other
MAX_DIGITS = 32  # characters of one number literal


class JsonError(ValueError):
  """Text that is not JSON within the bounds; the message is one line."""


def unicode_problem(text: str) -> str | None:
  """What makes text not Unicode (a lone surrogate, which JSON's \\uXXXX escapes and
  undecodable arguments can hold and no tokenizer can take), or None. Positions count
  characters from 1."""
  try:
    text.encode("utf-8")
  except UnicodeEncodeError as e:
    return f"the lone surrogate U+{ord(text[e.start]):04X} at character {e.start + 1}"
  return None


def _number(text: str, kind):
  if len(text) > MAX_DIGITS:
    raise JsonError(f"a number of {len(text)} characters; at most {MAX_DIGITS}")
  return kind(text)


def _constant(name: str):
  raise JsonError(f"{name} is not JSON; give a finite number")


def _depth(value, limit: int) -> int:
  """How deep value's arrays and objects nest, counted until limit is passed."""
  deepest, level = 0, [(value, 1)]
  while level:
    item, depth = level.pop()
    if isinstance(item, (list, dict)):
      if depth > limit:
        return depth
      deepest = max(deepest, depth)
      children = item.values() if isinstance(item, dict) else item
      level.extend((child, depth + 1) for child in children)
  return deepest


def loads(text: str):
  """The value of a JSON text; JsonError when it is not JSON, nests more than MAX_DEPTH
  levels, or holds a number literal longer than MAX_DIGITS characters (or NaN/Infinity)."""
  try:
    value = json.loads(
      text,
      parse_int=lambda s: _number(s, int),
      parse_float=lambda s: _number(s, float),
      parse_constant=_constant,
    )
  except json.JSONDecodeError as e:
    raise JsonError(f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
  except RecursionError:
    raise JsonError(f"nested too deeply; at most {MAX_DEPTH} levels") from None
  if _depth(value, MAX_DEPTH) > MAX_DEPTH:
    raise JsonError(f"nested too deeply; at most {MAX_DEPTH} levels")
  return value
