"""Bad corpus files: one clear DataError naming file, line and problem, or a logged skip."""

import logging

import pytest

from jaxseq.data.datasets import textfiles
from jaxseq.data.datasets.textfiles import DataError


def write(path, data: bytes):
  path.write_bytes(data)
  return str(path)


def test_mismatched_line_counts_name_both_files(tmp_path):
  a = write(tmp_path / "train.de", b"eins\nzwei\n")
  b = write(tmp_path / "train.en", b"one\n")
  with pytest.raises(DataError, match=r"train\.de has 2 lines but .*train\.en has 1"):
    textfiles.read_parallel(a, b)


def test_missing_file_is_named(tmp_path):
  a = write(tmp_path / "train.de", b"eins\n")
  with pytest.raises(DataError, match=r"train\.en: file is missing"):
    textfiles.read_parallel(a, str(tmp_path / "train.en"))


def test_empty_file_is_named(tmp_path):
  a = write(tmp_path / "train.de", b"eins\n")
  b = write(tmp_path / "train.en", b"\n\n")
  with pytest.raises(DataError, match=r"train\.en: file is empty"):
    textfiles.read_parallel(a, b)


def test_invalid_utf8_names_file_and_line(tmp_path):
  a = write(tmp_path / "train.de", b"eins\nzw\xffei\n")
  b = write(tmp_path / "train.en", b"one\ntwo\n")
  with pytest.raises(DataError, match=r"train\.de:2: invalid UTF-8"):
    textfiles.read_parallel(a, b)


def test_empty_lines_are_skipped_counted_and_logged(tmp_path, caplog):
  a = write(tmp_path / "train.de", b"eins\n\ndrei\nvier\n")
  b = write(tmp_path / "train.en", b"one\ntwo\nthree\n \n")
  with caplog.at_level(logging.WARNING):
    pairs = textfiles.read_parallel(a, b)
  assert pairs == [("eins", "one"), ("drei", "three")]
  assert "2 pairs skipped: an empty side (first at line 2)" in caplog.text


def test_crlf_line_ends_are_removed_and_logged(tmp_path, caplog):
  a = write(tmp_path / "train.de", b"eins\r\nzwei\r\n")
  b = write(tmp_path / "train.en", b"one\ntwo\n")
  with caplog.at_level(logging.WARNING):
    pairs = textfiles.read_parallel(a, b)
  assert pairs == [("eins", "one"), ("zwei", "two")]
  assert "2 lines ended in CRLF" in caplog.text


def test_megabyte_line_is_skipped_and_logged(tmp_path, caplog):
  a = write(tmp_path / "train.de", b"eins\n" + b"x" * (1 << 20) + b"\n")
  b = write(tmp_path / "train.en", b"one\ntwo\n")
  with caplog.at_level(logging.WARNING):
    pairs = textfiles.read_parallel(a, b)
  assert pairs == [("eins", "one")]
  assert "1 pairs skipped: a side over" in caplog.text and "line 2" in caplog.text


def test_tatoeba_line_without_tab_names_file_and_line(tmp_path):
  path = write(tmp_path / "eng-fra.txt", b"Go.\tVa !\nHi. Salut !\n")
  with pytest.raises(DataError, match=r"eng-fra\.txt:2: no tab"):
    textfiles.read_tab_pairs(path)


def test_tatoeba_extra_fields_are_ignored(tmp_path):
  path = write(tmp_path / "eng-fra.txt", b"Go.\tVa !\tCC-BY 2.0\n")
  assert textfiles.read_tab_pairs(path) == [("Go.", "Va !")]


def test_tatoeba_empty_and_crlf_lines_are_counted_and_logged(tmp_path, caplog):
  path = write(tmp_path / "eng-fra.txt", b"Go.\tVa !\r\n\r\nHi.\t\nRun!\tCours !\n")
  with caplog.at_level(logging.WARNING):
    pairs = textfiles.read_tab_pairs(path)
  assert pairs == [("Go.", "Va !"), ("Run!", "Cours !")]
  assert "2 pairs skipped: an empty side (first at line 2)" in caplog.text
  assert "2 lines ended in CRLF" in caplog.text
