import pytest

from configs import default
from jaxseq import configuration


def test_the_default_config_is_valid():
  configuration.validate(default.get_config())


@pytest.mark.parametrize("field, value, expected", [
    ("model.attention", "cosine", "one of none, tutorial, bahdanau"),
    ("model.cell", "rnn", "one of gru, lstm"),
    ("model.hidden_size", 0, "an integer >= 1"),
    ("model.num_layers", -2, "an integer >= 1"),
    ("batch_size", 0, "an integer >= 1"),
    ("teacher_forcing_ratio", 1.5, "a number in [0.0, 1.0]"),
    ("teacher_forcing_ratio", -0.1, "a number in [0.0, 1.0]"),
    ("learning_rate", 0.0, "a number in (0.0, inf)"),
    ("model.dropout", 1.0, "a number in [0, 1)"),
    ("lr_schedule", "linear", "one of constant, warmup_cosine, warmup_rsqrt"),
])
def test_a_bad_value_names_field_value_and_what_is_allowed(field, value, expected):
  config = default.get_config()
  section, _, name = field.rpartition(".")
  (config[section] if section else config)[name] = value
  with pytest.raises(configuration.ConfigError) as info:
    configuration.validate(config)
  message = str(info.value)
  assert message.startswith(f"config.{field}={value!r} ")
  assert expected in message


def test_batch_must_split_over_devices():
  config = default.get_config()
  config.batch_size = 6
  with pytest.raises(configuration.ConfigError, match="multiple of the device count"):
    configuration.validate(config, num_devices=4)


def test_input_feeding_needs_an_attentional_state():
  config = default.get_config()
  config.model.attention, config.model.input_feeding = "tutorial", True
  with pytest.raises(configuration.ConfigError, match="input_feeding"):
    configuration.validate(config)
