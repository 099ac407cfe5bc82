"""DecodeOptions: made from config.decode, refuses bad values with one line, and the
translate and evaluate flags make a new one of it."""

import dataclasses
import types

import pytest

from jaxseq.decoding.options import DecodeConfig, DecodeOptions, Search
from jaxseq.errors import ConfigError
from jaxseq.serving import evaluate, translate


def test_options_of_a_config_keep_its_fields_and_take_a_search():
  config = DecodeConfig(beam_size=6, alpha=1.0, nbest=2)
  options = DecodeOptions.from_config(config)
  assert options.search is Search.BEAM
  assert (options.beam_size, options.alpha, options.nbest) == (6, 1.0, 2)
  assert options.max_length_ratio == config.max_length_ratio
  greedy = DecodeOptions.from_config(config, Search.GREEDY)
  assert greedy.search is Search.GREEDY and greedy.beam_size == 6
  assert DecodeOptions(search="sample").search is Search.SAMPLE  # a value becomes its member
  assert DecodeOptions(search=Search.SAMPLE).to_dict()["search"] == "sample"  # JSON-ready
  stored = dict(config.to_dict(), unknown=1)  # an artifact's manifest: config.decode's dict
  assert DecodeOptions.from_dict(stored, strict=False) == options


@pytest.mark.parametrize(
  "changes, message",
  [
    ({"temperature": -0.5}, "config.decode.temperature=-0.5 is not allowed; expected a number"),
    ({"top_k": -1}, "config.decode.top_k=-1 is not allowed; expected an integer >= 0"),
    ({"top_p": 0.0}, "config.decode.top_p=0.0 is not allowed; expected a number in (0.0, 1.0]"),
    ({"top_p": 1.5}, "config.decode.top_p=1.5 is not allowed"),
    ({"search": "viterbi"}, "config.decode.search='viterbi' is not allowed; expected one of "),
    ({"beam_size": 0}, "config.decode.beam_size=0 is not allowed; expected an integer >= 1"),
    ({"alpha": -1.0}, "config.decode.alpha=-1.0 is not allowed"),
    ({"coverage_penalty": -0.2}, "config.decode.coverage_penalty=-0.2 is not allowed"),
    ({"nbest": 5}, "config.decode.nbest=5 is not allowed; expected an integer in [1, "),
    ({"seed": 1.5}, "config.decode.seed=1.5 is not allowed; expected an integer"),
  ],
)
def test_bad_values_are_refused_with_one_line(changes, message):
  with pytest.raises(ConfigError) as error:
    dataclasses.replace(DecodeOptions(), **changes)
  assert str(error.value).startswith(message)
  assert "\n" not in str(error.value)


def test_sampling_draws_nbest_whatever_the_beam_size():
  options = DecodeOptions(beam_size=1, nbest=5, search=Search.SAMPLE)
  assert options.nbest == 5
  with pytest.raises(ConfigError, match="decode.nbest=5"):
    dataclasses.replace(options, search=Search.BEAM)


def _flags(*flags):
  """The decoding options jaxseq-translate makes of flags, over a config.decode of beam 4."""
  args = translate.parse_args(["--workdir=unused", *flags, "text"])
  translator = types.SimpleNamespace(options=DecodeOptions.from_config(DecodeConfig()))
  translate._apply_flags(translator, args)
  return translator.options


def test_translate_flags_make_new_options():
  base = DecodeOptions.from_config(DecodeConfig())
  assert _flags() == base
  assert _flags("--beam_size=8", "--alpha=1", "--nbest=3") == dataclasses.replace(
    base, beam_size=8, alpha=1.0, nbest=3
  )
  assert base.coverage_penalty == 0.0
  assert _flags("--coverage_penalty=0.2") == dataclasses.replace(base, coverage_penalty=0.2)
  sampled = _flags("--sample", "--nbest=5", "--top_p=0.9", "--seed=7")
  assert sampled == dataclasses.replace(
    base, search=Search.SAMPLE, nbest=5, temperature=1.0, top_k=0, top_p=0.9, seed=7
  )
  with pytest.raises(translate.InputError, match=r"^--nbest=5 is not allowed; expected at most"):
    _flags("--nbest=5")


def test_evaluate_flags_override_beam_size_alpha_and_coverage_penalty():
  args = evaluate.parse_args(
    ["--workdir=unused", "--beam_size=2", "--alpha=0", "--coverage_penalty=0.4"]
  )
  options = DecodeOptions.from_config(DecodeConfig(beam_size=4), Search.GREEDY)
  overridden = translate.decode_overrides(options, args, nbest=1)
  assert overridden == dataclasses.replace(
    options, beam_size=2, alpha=0.0, coverage_penalty=0.4, nbest=1
  )
  assert overridden.search is Search.GREEDY


@pytest.mark.parametrize("parse", [translate.parse_args, evaluate.parse_args])
def test_a_negative_coverage_penalty_is_one_line_and_exit_status_2(parse, capsys):
  with pytest.raises(SystemExit) as done:
    parse(["--workdir=unused", "--coverage_penalty=-1"])
  assert done.value.code == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1
  assert "--coverage_penalty=-1.0 is not allowed; expected a number >= 0" in err


def test_a_bad_flag_is_one_line_and_exit_status_2(capsys):
  with pytest.raises(SystemExit) as done:
    translate.parse_args(["--workdir=unused", "--sample", "--top_p=2", "text"])
  assert done.value.code == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "--top_p=2.0 is not allowed; expected a number in (0, 1]" in err
