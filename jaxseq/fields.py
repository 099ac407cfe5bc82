"""Config fields defined once: name, type, default, one-line meaning and check together.

Each part of the config is a frozen dataclass in the module that owns it (`seq2seq.ModelConfig`,
`corpora.DataConfig`, `options.DecodeConfig`, `configuration.TrainConfig`), built from
`Config` and `field`:

    hidden_size: int = fields.field(128, "recurrent state size", fields.at_least(1))

Building one checks every field against its annotated type (an int is not a bool; a float
field takes an int) and its check, then the class's own `check()` for rules between fields,
and raises `ConfigError` naming the dotted field, its value and what is allowed. `from_dict`
builds one from a possibly partial mapping (a ConfigDict, a workdir's config.json): a missing
field takes its default; `config_dict` gives the locked ConfigDict that a config file
returns. `python -m jaxseq.training.configuration` lists every field with its meaning.
"""

import dataclasses
import enum
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import ml_collections

from jaxseq.errors import ConfigError


class Check(NamedTuple):
  """A rule for one value: `ok(value)`, and `expected()`, the words for what is allowed
  (computed when asked, so that a table's new row shows up)."""

  ok: Callable[[Any], bool]
  expected: Callable[[], str]


def field(default, doc: str, check: Check | None = None):
  """A dataclass field with its default, its one-line meaning and its check (or None)."""
  metadata = {"doc": doc, "check": check}
  if isinstance(default, Config):
    return dataclasses.field(default_factory=type(default), metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def one_of(allowed) -> Check:
  """The value is one of `allowed`: a table (its keys) or a sequence, read when checked."""
  return Check(lambda value: value in allowed, lambda: "one of " + ", ".join(map(str, allowed)))


def at_least(minimum: int) -> Check:
  """An integer >= minimum."""
  return Check(lambda value: value >= minimum, lambda: f"an integer >= {minimum}")


def in_range(
  low, high=None, *, low_open: bool = False, high_open: bool = False, note: str = ""
) -> Check:
  """A number between low and high (None: no upper bound); the ends are included unless
  open. `note` is added to the words in brackets."""

  def ok(value):
    above = value > low if low_open else value >= low
    below = high is None or (value < high if high_open else value <= high)
    return above and below

  upper = "inf)" if high is None else f"{high}{')' if high_open else ']'}"
  words = f"a number in {'(' if low_open else '['}{low}, {upper}"
  return Check(ok, lambda: words + (f" ({note})" if note else ""))


_TYPE_WORDS = {bool: "True or False", int: "an integer", float: "a number", str: "a string"}


def _typed(kind: type, value):
  """value as `kind` (an int for a float field becomes a float, an enum's value its member),
  or None when it is not one."""
  if isinstance(kind, type) and issubclass(kind, enum.Enum) and not isinstance(value, kind):
    try:
      return kind(value)
    except ValueError:
      return None
  if kind is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else None
  if kind is int and isinstance(value, bool):
    return None
  return value if isinstance(value, kind) else None


class Config:
  """Base of the frozen config dataclasses: checks itself when built (see the module doc).

  `section` is the dotted place of the class in the whole config ("model", "decode", ...;
  "" at the top), used to name a field in an error.
  """

  section: ClassVar[str] = ""

  def __post_init__(self):
    hints = typing.get_type_hints(type(self))
    for f in dataclasses.fields(self):
      value, kind = getattr(self, f.name), hints[f.name]
      if isinstance(kind, type) and issubclass(kind, Config):
        if not isinstance(value, kind):
          raise ConfigError(self.dotted(f.name), value, f"the fields of config.{kind.section}")
        continue
      typed, check = _typed(kind, value), f.metadata.get("check")
      if typed is None or (check is not None and not check.ok(typed)):
        raise ConfigError(
          self.dotted(f.name), value, check.expected() if check else _TYPE_WORDS[kind]
        )
      object.__setattr__(self, f.name, typed)
    self.check()

  def check(self):
    """Rules between fields; raises ConfigError. None by default."""

  @classmethod
  def dotted(cls, field_name: str) -> str:
    """The dotted name of one of this class's fields, as an error names it."""
    return f"{cls.section}.{field_name}" if cls.section else field_name

  @classmethod
  def from_dict(cls, values: Mapping, *, strict: bool = True):
    """The config of a (partial) mapping: a missing field takes its default. An unknown
    key is a ConfigError when strict, else ignored (an older workdir's config.json)."""
    if hasattr(values, "to_dict"):  # an ml_collections.ConfigDict
      values = values.to_dict()
    if not isinstance(values, Mapping):
      raise ConfigError(cls.section, values, f"the fields of config.{cls.section}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(typing.cast(Any, cls))}
    if strict and (unknown := sorted(set(values) - known)):
      raise ConfigError(
        cls.dotted(unknown[0]),
        values[unknown[0]],
        "no such field; the fields are " + ", ".join(sorted(known)),
      )
    kwargs = {}
    for name in known & set(values):
      kind, value = hints[name], values[name]
      if isinstance(kind, type) and issubclass(kind, Config) and not isinstance(value, kind):
        value = kind.from_dict(value, strict=strict)
      kwargs[name] = value
    return cls(**kwargs)

  def to_dict(self) -> dict:
    """Every field as plain JSON-ready values (an enum member as its value), nested configs
    as dicts."""
    plain = lambda items: {k: v.value if isinstance(v, enum.Enum) else v for k, v in items}
    return dataclasses.asdict(typing.cast(Any, self), dict_factory=plain)


def describe(cls: type[Config]) -> list[str]:
  """One line per field (nested configs too): dotted name, type, default, meaning."""
  lines = []
  hints = typing.get_type_hints(cls)
  for f in dataclasses.fields(typing.cast(Any, cls)):
    kind = hints[f.name]
    if isinstance(kind, type) and issubclass(kind, Config):
      lines.extend(describe(kind))
      continue
    default = f.default
    lines.append(f"{cls.dotted(f.name)}: {kind.__name__} = {default!r}  # {f.metadata['doc']}")
  return lines


def config_dict(config: Config) -> ml_collections.ConfigDict:
  """A config as a locked ConfigDict, what a config file's get_config() returns: its fields
  take new values (`--config.FIELD=VALUE` included) but none can be added."""
  result = ml_collections.ConfigDict(config.to_dict())
  result.lock()
  return result
