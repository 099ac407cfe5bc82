import pytest

from configs import default
from jaxseq.model import attention
from jaxseq.training import configuration, steps


def test_the_default_config_is_valid():
  configuration.validate(default.get_config())


@pytest.mark.parametrize(
  "field, value, expected",
  [
    ("model.attention", "cosine", "one of none, tutorial, bahdanau"),
    ("model.readout", "softmax", "one of attentional, none"),
    ("model.dtype", "float16", "one of float32, bfloat16"),
    ("model.cell", "rnn", "one of gru, lstm"),
    ("model.hidden_size", 0, "an integer >= 1"),
    ("model.num_layers", -2, "an integer >= 1"),
    ("model.local_window", 0, "an integer >= 1"),
    ("coverage_loss_weight", -0.1, "a number in [0.0, inf)"),
    ("batch_size", 0, "an integer >= 1"),
    ("teacher_forcing_ratio", 1.5, "a number in [0.0, 1.0]"),
    ("teacher_forcing_ratio", -0.1, "a number in [0.0, 1.0]"),
    ("learning_rate", 0.0, "a number in (0.0, inf)"),
    ("model.dropout", 1.0, "a number in [0, 1)"),
    ("lr_schedule", "linear", "one of constant, warmup_cosine, warmup_rsqrt"),
    ("bucket_lengths", "8,12", "increasing lengths ending at model.max_length (16)"),
  ],
)
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


def test_input_feeding_needs_a_readout_of_the_context():
  config = default.get_config()
  config.model.readout, config.model.input_feeding = "none", True
  with pytest.raises(configuration.ConfigError, match="config.model.input_feeding=True"):
    configuration.validate(config)


def test_a_readout_that_drops_a_luong_context_is_named():
  config = default.get_config()
  config.model.attention, config.model.readout = "luong_general", "none"
  with pytest.raises(configuration.ConfigError, match="config.model.readout='none'.*attentional"):
    configuration.validate(config)


def test_a_new_table_row_is_allowed_without_editing_the_checks(monkeypatch):
  """Allowed names come from the library's tables, not from lists of their own."""
  row = attention.ATTENTIONS["luong_dot"]
  monkeypatch.setitem(attention.ATTENTIONS, "my_dot", row)
  monkeypatch.setitem(steps.SCHEDULES, "my_schedule", steps.SCHEDULES["constant"])
  config = default.get_config()
  config.model.attention, config.lr_schedule = "my_dot", "my_schedule"
  configuration.validate(config)
  monkeypatch.delitem(attention.ATTENTIONS, "my_dot")
  with pytest.raises(configuration.ConfigError, match="config.model.attention='my_dot'"):
    configuration.validate(config)


def test_fault_injection_is_no_field_of_the_product():
  # The tests inject NaN steps and signals from outside (tests/faults.py); a user's config
  # has no field for them, and train.py refuses one as it refuses any unknown field.
  import train as train_py

  fields = default.get_config().to_dict()
  assert not [name for name in fields if name.startswith("fault")]
  with pytest.raises(AttributeError, match="fault_signal"):
    train_py.parse(["train.py", "--config.fault_signal=KILL"])


@pytest.mark.parametrize(
  "other", ["bahdanau", "luong_local_m"]
)  # luong_local_m: a state, but no coverage
def test_a_coverage_loss_needs_an_attention_that_keeps_coverage(other):
  config = default.get_config()
  config.coverage_loss_weight, config.model.attention = 0.5, "coverage"
  assert configuration.validate(config).coverage_loss_weight == 0.5
  config.model.attention = other
  with pytest.raises(configuration.ConfigError) as info:
    configuration.validate(config)
  assert str(info.value) == (
    f"config.coverage_loss_weight=0.5 is not allowed; expected 0 (off) with "
    f"model.attention={other!r}, which keeps no coverage vector (a positive weight needs "
    "one of: coverage)"
  )
  config.coverage_loss_weight = 0.0  # off: any attention
  configuration.validate(config)
