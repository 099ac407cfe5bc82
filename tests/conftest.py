"""Fixtures shared by the tests that run train.py in a subprocess (see tests/runs.py)."""

import pytest

from tests import runs


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory):
  return tmp_path_factory.mktemp("compile_cache")


@pytest.fixture(scope="session")
def reference(tmp_path_factory, compile_cache):
  """The workdir of one uninterrupted tiny run (runs.TINY); tests must not change it."""
  workdir = tmp_path_factory.mktemp("reference")
  result = runs.train(workdir, compile_cache)
  assert result.returncode == 0, result.stderr
  return workdir
