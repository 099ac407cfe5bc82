"""config.decode: the defaults pass validation; each wrong value is named."""

import pytest

from configs import default
from jaxseq.decoding import evaluation
from jaxseq.training import configuration


def test_defaults_are_valid_and_every_search_is_allowed():
  config = default.get_config()
  configuration.validate(config)
  for search in evaluation.SEARCHES:
    config.decode.eval_search = search
    configuration.validate(config)


@pytest.mark.parametrize(
  "field, value",
  [
    ("beam_size", 0),
    ("alpha", -0.5),
    ("coverage_penalty", -0.1),
    ("nbest", 5),
    ("max_length_ratio", -1.0),
    ("max_length_offset", 0),
    ("eval_search", "sampling"),
  ],
)
def test_bad_decode_values_are_named(field, value):
  config = default.get_config()
  config.decode[field] = value
  with pytest.raises(configuration.ConfigError) as error:
    configuration.validate(config)
  assert error.value.field == f"decode.{field}"
