"""The translate command on the shared tiny trained workdir.

Two tests run the real command in a subprocess, as a user would (from stdin, and at a
terminal); the rest call its `run(argv)` in this process, where a subprocess would add only
its start-up.
"""

import io
import json
import os
import pathlib
import pty
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from jaxseq.serving import translate as translate_cli
from jaxseq.serving.translation import Candidate, Translation
from tests import runs
from tests.conftest import REPO, subprocess_env

SENTENCES = ["seven hundred and twelve", "forty one", "three thousand and six"]
LOADED = re.compile(r"^jaxseq-\w+: workdir .+, checkpoint step \d+$")


def translate_process(workdir, *args, stdin: bytes | None = b""):
  """jaxseq-translate in a subprocess: (exit status, stdout, stderr)."""
  proc = subprocess.run(
    [sys.executable, "-m", "jaxseq.serving.translate", f"--workdir={workdir}", *args],
    cwd=REPO,
    env=subprocess_env(),
    input=stdin,
    capture_output=True,
    timeout=300,
  )
  return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


@pytest.fixture
def translate(capsys, monkeypatch):
  """jaxseq.serving.translate.run in this process, stdin given as bytes: (status, stdout, stderr).
  workdir None: no --workdir (an artifact is given in args)."""

  def run(workdir, *args, stdin: bytes = b""):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    capsys.readouterr()
    try:
      status = translate_cli.run([f"--workdir={workdir}"] * (workdir is not None) + list(args))
    except SystemExit as e:  # argparse's answer to a flag mistake
      status = e.code
    out, err = capsys.readouterr()
    return status, out, err

  return run


def loaded_lines(err: str) -> list[str]:
  """The stderr lines in which a command names the workdir checkpoint it loaded."""
  return [line for line in err.splitlines() if LOADED.match(line)]


def _one_error_line(rc, out, err):
  """The one error line of a refused command; the lines naming a checkpoint that was
  loaded before the mistake was found are left aside."""
  assert rc == 2
  assert out == ""
  lines = [line for line in err.strip().splitlines() if not LOADED.match(line)]
  assert len(lines) == 1 and lines[0].startswith("error: "), err
  assert "Traceback" not in err
  return lines[0]


def test_arguments_stdin_and_file_agree_and_keep_order(trained_workdir, tmp_path, translate):
  rc, from_args, err = translate(trained_workdir, *SENTENCES)
  assert rc == 0, err
  assert len(from_args.splitlines()) == len(SENTENCES)

  lines = SENTENCES[:1] + [""] + SENTENCES[1:]
  # The real command, from stdin, as a user pipes text into it.
  rc, from_stdin, err = translate_process(trained_workdir, stdin=("\n".join(lines) + "\n").encode())
  assert rc == 0, err
  expected = from_args.splitlines()
  assert from_stdin.splitlines() == expected[:1] + [""] + expected[1:]

  path = tmp_path / "sources.txt"
  path.write_text("\n".join(lines[::-1]) + "\n", encoding="utf-8")
  # Batches of 2 split the file; the output follows the input order all the same.
  rc, from_file, err = translate(trained_workdir, f"--input={path}", "--batch_size=2")
  assert rc == 0, err
  assert from_file.splitlines() == from_stdin.splitlines()[::-1]


def test_json_nbest_unknown_words_long_and_empty_lines(trained_workdir, translate):
  long_line = " ".join(["seven"] * 30)
  lines = ["forty one", "zebra forty quux", long_line, ""]  # the last line ends with "\n"
  rc, out, err = translate(
    trained_workdir,
    "--json",
    "--nbest=3",
    "--beam_size=3",
    stdin=("\n".join(lines) + "\n").encode(),
  )
  assert rc == 0, err
  results = [json.loads(line) for line in out.splitlines()]
  assert [r["source"] for r in results] == lines
  for r in results[:3]:
    scores = [h["score"] for h in r["nbest"]]
    assert 1 <= len(scores) <= 3 and scores == sorted(scores, reverse=True)
    assert r["translation"] == r["nbest"][0]["translation"]
    assert r["score"] == scores[0]
    attention = r["attention"]
    assert len(attention) == len(r["output_tokens"])  # output words and EOS
    assert all(len(row) == len(r["source_tokens"]) for row in attention)
    assert all(abs(sum(row) - 1.0) < 1e-3 for row in attention)
  assert results[1]["source_tokens"] == ["<unk>", "forty", "<unk>"]
  assert "warning: sentence 3 has 30 tokens" in err
  config = json.loads((pathlib.Path(trained_workdir) / "config.json").read_text())
  assert len(results[2]["source_tokens"]) == config["model"]["max_length"]  # cut to it
  assert results[3]["translation"] == "" and results[3]["nbest"] == []


def test_plain_nbest_lists_each_hypothesis(trained_workdir, translate):
  rc, out, err = translate(trained_workdir, "--nbest=2", "--beam_size=3", *SENTENCES[:2])
  assert rc == 0, err
  rows = [line.split(" ||| ") for line in out.splitlines()]
  assert [int(r[0]) for r in rows] == [0, 0, 1, 1]
  assert float(rows[0][2]) >= float(rows[1][2])


def test_attention_plot_for_one_sentence(trained_workdir, tmp_path, translate):
  path = tmp_path / "attention.png"
  rc, out, err = translate(trained_workdir, f"--attention_plot={path}", SENTENCES[0])
  assert rc == 0, err
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  line = _one_error_line(*translate(trained_workdir, f"--attention_plot={path}", *SENTENCES))
  assert "one sentence" in line


def test_interactive_prompt_when_stdin_is_a_terminal(trained_workdir, translate):
  leader, follower = pty.openpty()
  proc = subprocess.Popen(
    [sys.executable, "-m", "jaxseq.serving.translate", f"--workdir={trained_workdir}"],
    cwd=REPO,
    env=subprocess_env(),
    stdin=follower,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
  )
  os.close(follower)
  try:
    os.write(leader, b"forty one\n")
    os.write(leader, b"\x04")  # Ctrl-D: end of input on a terminal
    out, err = proc.communicate(timeout=300)
  finally:
    os.close(leader)
  assert proc.returncode == 0, err
  assert b"Ctrl-D" in err  # the prompt's greeting
  assert len(out.decode().splitlines()) == 1
  rc, expected, _ = translate(trained_workdir, "forty one")
  assert out.decode() == expected


def test_invalid_utf8_on_stdin(trained_workdir, translate):
  line = _one_error_line(*translate(trained_workdir, stdin=b"forty one\nsi\xffx\n"))
  assert "stdin line 2 is not valid UTF-8" in line


def test_workdir_without_checkpoint(trained_workdir, tmp_path, translate):
  line = _one_error_line(*translate(str(tmp_path / "nothing"), "forty"))
  assert "config.json is missing" in line
  copy = tmp_path / "no_checkpoint"
  shutil.copytree(trained_workdir, copy, ignore=shutil.ignore_patterns("checkpoints"))
  line = _one_error_line(*translate(str(copy), "forty"))
  assert "checkpoints is missing" in line


def test_damaged_config(trained_workdir, tmp_path, translate):
  copy = tmp_path / "damaged"
  shutil.copytree(trained_workdir, copy, ignore=shutil.ignore_patterns("checkpoints"))
  (copy / "config.json").write_text("{not json")
  line = _one_error_line(*translate(str(copy), "forty"))
  assert "is not a jaxseq config" in line


@pytest.mark.parametrize("change", ["vocabulary", "config"])
def test_checkpoint_that_does_not_fit(trained_workdir, tmp_path, change, translate):
  copy = tmp_path / "changed"
  shutil.copytree(trained_workdir, copy)
  if change == "vocabulary":
    path = copy / "tgt_vocab.json"
    tokenizer = json.loads(path.read_text(encoding="utf-8"))
    tokenizer["words"].append("neu")
    path.write_text(json.dumps(tokenizer), encoding="utf-8")
  else:
    path = copy / "config.json"
    config = json.loads(path.read_text())
    config["model"]["hidden_size"] = 24
    path.write_text(json.dumps(config))
  line = _one_error_line(*translate(str(copy), "forty"))
  assert "does not fit" in line
  assert "in the checkpoint" in line and "for this config" in line  # names the parameter


@pytest.mark.parametrize(
  "flags, named",
  [
    (["--beam_size=0"], "--beam_size=0"),
    (["--alpha=-1"], "--alpha=-1"),
    (["--coverage_penalty=-0.5"], "--coverage_penalty=-0.5 is not allowed; expected a number >= 0"),
    (["--input=/nonexistent/file.txt"], "cannot be read"),
  ],
)
def test_flag_mistakes(trained_workdir, flags, named, translate):
  line = _one_error_line(*translate(trained_workdir, *flags))
  assert named in line


@pytest.mark.parametrize(
  "flags, says",
  [
    (["--sample", "--beam_size=2"], "--beam_size=2 is not allowed"),
    (["--sample", "--temperature=-0.5"], "expected a number >= 0"),
    (["--sample", "--top_p=0"], "expected a number in (0, 1]"),
    (["--sample", "--top_p=1.5"], "expected a number in (0, 1]"),
    (["--sample", "--top_k=-1"], "expected an integer >= 0"),
    (["--top_k=3"], "--top_k applies only with --sample"),
    (["--seed=1"], "--seed applies only with --sample"),
  ],
)
def test_invalid_decoding_combinations(trained_workdir, translate, flags, says):
  assert says in _one_error_line(*translate(trained_workdir, *flags, "forty one"))


def test_alignments_one_link_per_output_word(trained_workdir, translate):
  rc, out, err = translate(trained_workdir, "--alignments", *SENTENCES)
  assert rc == 0, err
  for source, line in zip(SENTENCES, out.splitlines()):
    translation, links = line.split(" ||| ")
    pairs = [tuple(map(int, link.split("-"))) for link in links.split()]
    assert [t for _, t in pairs] == list(range(len(translation.split())))
    assert all(0 <= s < len(source.split()) for s, _ in pairs)
  rc, out, err = translate(
    trained_workdir, "--alignments", "--json", "--nbest=2", "--beam_size=2", SENTENCES[0]
  )
  result = json.loads(out)
  assert result["alignment"] == result["nbest"][0]["alignment"]
  assert all(len(h["alignment"].split()) == len(h["translation"].split()) for h in result["nbest"])


def test_forced_prefix_from_the_flag_and_per_json_line(trained_workdir, translate):
  rc, out, err = translate(trained_workdir, "--prefix=neun hundert", *SENTENCES)
  assert rc == 0, err
  assert all(line.startswith("neun hundert") for line in out.splitlines())
  lines = [
    json.dumps({"text": SENTENCES[0], "prefix": "drei"}),
    SENTENCES[1],
    json.dumps({"text": SENTENCES[2]}),
  ]
  rc, out, err = translate(
    trained_workdir, "--json", "--prefix=acht", stdin=("\n".join(lines) + "\n").encode()
  )
  assert rc == 0, err
  results = [json.loads(line) for line in out.splitlines()]
  assert [r["translation"].split()[0] for r in results] == ["drei", "acht", "acht"]
  assert [r["source"] for r in results] == SENTENCES
  line = _one_error_line(*translate(trained_workdir, "--prefix=zebra drei", "forty one"))
  assert "'zebra' is not in it" in line
  line = _one_error_line(
    *translate(trained_workdir, "--json", stdin=b'{"text": "forty one", "prefx": "drei"}\n')
  )
  assert "stdin line 1" in line and "'prefx'" in line


def test_sampling_repeats_with_its_seed_and_draws_nbest(trained_workdir, translate):
  flags = ["--sample", "--nbest=3", "--temperature=2", "--seed=5", *SENTENCES[:2]]
  rc, first, err = translate(trained_workdir, *flags)
  assert rc == 0, err
  rows = [line.split(" ||| ") for line in first.splitlines()]
  assert [int(r[0]) for r in rows] == [0, 0, 0, 1, 1, 1]  # 3 draws > beam size 2 is fine
  assert translate(trained_workdir, *flags)[1] == first


def test_ensemble_of_a_model_with_itself_and_a_vocabulary_mismatch(
  trained_workdir, tmp_path, translate
):
  rc, alone, err = translate(trained_workdir, "--json", *SENTENCES)
  assert rc == 0, err
  rc, pair, err = translate(trained_workdir, f"--workdir={trained_workdir}", "--json", *SENTENCES)
  assert rc == 0, err
  for a, b in zip(map(json.loads, alone.splitlines()), map(json.loads, pair.splitlines())):
    assert a["translation"] == b["translation"]
    assert a["score"] == pytest.approx(b["score"], abs=1e-4)
  other = tmp_path / "other"
  shutil.copytree(trained_workdir, other)
  vocab = json.loads((other / "tgt_vocab.json").read_text())
  vocab["words"][7] = "zebra"
  (other / "tgt_vocab.json").write_text(json.dumps(vocab))
  line = _one_error_line(*translate(trained_workdir, f"--workdir={other}", "forty one"))
  assert "one target vocabulary" in line and str(other) in line and "'zebra'" in line


@pytest.mark.parametrize(
  "line, says",
  [
    ('{"text": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ('{"text": "one", "x": ' + "9" * 5000 + "}", "a number of 5000 characters"),
    ('{"text": "\\ud800 x"}', "not valid Unicode"),
  ],
)
def test_json_lines_past_the_bounds_or_not_unicode_are_one_line(
  trained_workdir, translate, line, says
):
  stdin = ("forty one\n" + line + "\n").encode()
  message = _one_error_line(*translate(trained_workdir, "--json", stdin=stdin))
  assert message.startswith("error: stdin line 2 ") and says in message


def test_an_argument_that_is_not_utf8_is_one_line(trained_workdir, translate):
  # What Python makes of the bytes "vier\xffzig" in sys.argv.
  argument = b"vier\xffzig".decode("utf-8", "surrogateescape")
  message = _one_error_line(*translate(trained_workdir, "forty one", argument))
  assert "arguments line 2 is not valid Unicode" in message and "U+DCFF" in message


def test_nul_and_control_characters_are_translated(trained_workdir, translate):
  lines = ["vier\x00zig one", "\x1b[31mforty\u0301 one\u200b"]
  rc, out, err = translate(trained_workdir, "--json", stdin="\n".join(lines).encode())
  assert rc == 0, err
  assert [json.loads(line)["source"] for line in out.splitlines()] == lines


class _EchoTranslator:
  """Stands in for a Translator in the interactive loop: echoes each request."""

  step = 1

  def translate(self, requests, **options):
    return [
      Translation(r.text, [Candidate(r.text, 0.0)], [], [], prefix=r.prefix) for r in requests
    ]


def test_interactive_json_lines_report_each_bad_line_and_go_on(monkeypatch, capsys):
  lines = iter(
    [
      "one",
      '{"text": ' + "[" * 5000 + "]" * 5000 + "}",
      '{"text": "\\udc00"}',
      '{"text": "two", "prefix": "zwei"}',
    ]
  )

  def type_line(prompt=""):
    try:
      return next(lines)
    except StopIteration:
      raise EOFError from None

  monkeypatch.setattr("builtins.input", type_line)
  args = translate_cli.parse_args(["--workdir=unused", "--json"])
  outputs = [json.loads(o) for o in translate_cli._interactive(_EchoTranslator(), args)]
  assert [(o["translation"], o["prefix"]) for o in outputs] == [("one", ""), ("two", "zwei")]
  errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
  assert len(errors) == 2
  assert "input line 2 " in errors[0] and "nested too deeply" in errors[0]
  assert "input line 3 " in errors[1] and "not valid Unicode" in errors[1]


def test_the_loaded_checkpoint_is_named_and_a_damaged_newest_one_is_warned(
  trained_workdir, tmp_path, translate
):
  rc, expected, err = translate(trained_workdir, "forty one")
  assert rc == 0, err
  newest, previous = (
    max(runs.checkpoint_steps(trained_workdir)),
    min(runs.checkpoint_steps(trained_workdir)),
  )
  assert loaded_lines(err) == [
    f"jaxseq-translate: workdir {trained_workdir}, checkpoint step {newest}"
  ]
  copy = tmp_path / "damaged"
  shutil.copytree(trained_workdir, copy)
  state = copy / "checkpoints" / str(newest) / "state"
  largest = sorted(state.rglob("d/*"), key=lambda p: p.stat().st_size)[-1]
  largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 2])
  rc, out, err = translate(str(copy), "forty one")
  assert rc == 0, err
  warnings = [line for line in err.splitlines() if "warning:" in line]
  assert len(warnings) == 1, err
  assert warnings[0].startswith(
    "jaxseq-translate: warning: the checkpoint of step "
    f"{newest} ({copy / 'checkpoints' / str(newest)}) is damaged"
  )
  assert warnings[0].endswith(f"using step {previous}")
  assert loaded_lines(err) == [f"jaxseq-translate: workdir {copy}, checkpoint step {previous}"]
  assert "Traceback" not in err
  assert (copy / "checkpoints" / str(newest)).is_dir()  # inference moves nothing


def test_output_that_cannot_be_written_is_one_line_and_a_reader_that_leaves_is_quiet(
  trained_workdir,
):
  command = [
    sys.executable,
    "-m",
    "jaxseq.serving.translate",
    f"--workdir={trained_workdir}",
    *SENTENCES,
  ]
  with open("/dev/full", "w") as full:  # every write: "No space left on device"
    proc = subprocess.run(
      command,
      cwd=REPO,
      env=subprocess_env(),
      stdout=full,
      stderr=subprocess.PIPE,
      text=True,
      timeout=300,
    )
  assert "No space left on device" in _one_error_line(proc.returncode, "", proc.stderr)
  reader = subprocess.Popen(
    command,
    cwd=REPO,
    env=subprocess_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  reader.stdout.close()  # as `| head -0` would, before the first translation
  err = reader.stderr.read()
  assert reader.wait(timeout=300) == 1
  assert "Traceback" not in err and "Exception" not in err, err


def test_an_attention_plot_that_cannot_be_written_is_one_line(trained_workdir, tmp_path, translate):
  path = tmp_path / "missing" / "attention.png"
  rc, out, err = translate(trained_workdir, f"--attention_plot={path}", SENTENCES[0])
  assert rc == 2
  assert len(out.splitlines()) == 1  # the translation was printed before
  errors = [line for line in err.splitlines() if not LOADED.match(line)]
  assert len(errors) == 1 and errors[0].startswith(f"error: --attention_plot '{path}'"), err
  assert "No such file or directory" in errors[0]


def test_ctrl_c_ends_the_command_at_once(trained_workdir):
  proc = subprocess.Popen(
    [sys.executable, "-m", "jaxseq.serving.translate", f"--workdir={trained_workdir}"],
    cwd=REPO,
    env=subprocess_env(),
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
  )
  try:
    # Once it waits for its input (its stdin stays open and empty), as a user's Ctrl-C
    # finds a command that reads a slow pipe.
    wchan = pathlib.Path(f"/proc/{proc.pid}/wchan")  # where the kernel holds it
    for _ in range(30000):
      if proc.poll() is not None or "pipe_read" in wchan.read_text():
        break
      time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
  finally:
    proc.kill()
  assert proc.returncode == -signal.SIGINT, err
  assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
