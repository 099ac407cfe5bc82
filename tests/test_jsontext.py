"""jsontext.loads: client JSON within bounds, every mistake one JsonError line."""

import pytest

from jaxseq.serving import jsontext


@pytest.mark.parametrize(
  "text, says",
  [
    ("[" * 60000 + "]" * 60000, "nested too deeply"),
    ('{"text": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ("[" * (jsontext.MAX_DEPTH + 1) + "]" * (jsontext.MAX_DEPTH + 1), "nested too deeply"),
    ('{"text": "one", "beam_size": ' + "9" * 5000 + "}", "a number of 5000 characters"),
    ('{"x": 1' + "0" * 400 + ".5}", "a number of"),
    ('{"x": NaN}', "NaN is not JSON"),
    ('{"x": -Infinity}', "-Infinity is not JSON"),
    ('{"x": 1', "not valid JSON"),
  ],
)
def test_refused_in_one_line(text, says):
  with pytest.raises(jsontext.JsonError, match=says) as info:
    jsontext.loads(text)
  assert "\n" not in str(info.value)


def test_within_bounds_is_plain_json():
  depth = jsontext.MAX_DEPTH
  nested = "[" * depth + "]" * depth
  assert jsontext.loads(nested) == eval(nested)
  assert jsontext.loads('{"a": 12, "b": [1.5, "\\ud800"], "c": null}') == {
    "a": 12,
    "b": [1.5, "\ud800"],
    "c": None,
  }
