"""The error a wrong config value raises, shared by the modules that check one."""


class ConfigError(ValueError):
  """A config field holds a value that is not allowed."""

  def __init__(self, field: str, value, allowed: str):
    super().__init__(f"config.{field}={value!r} is not allowed; expected {allowed}")
    self.field = field
