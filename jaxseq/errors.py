"""The errors that the commands turn into one line and exit status 2 (jaxseq/cli.py), shared
by the modules that raise them (kept free of imports, so that a command can catch them
cheaply)."""


class ConfigError(ValueError):
  """A config field holds a value that is not allowed."""

  def __init__(self, field: str, value, allowed: str):
    super().__init__(f"config.{field}={value!r} is not allowed; expected {allowed}")
    self.field = field


class CheckpointError(RuntimeError):
  """A checkpoint is missing, damaged, or does not fit the model asked for."""


class ArtifactError(ValueError):
  """An exported translator cannot be used; the message names the file."""


class InputError(ValueError):
  """The text to translate cannot be read."""
