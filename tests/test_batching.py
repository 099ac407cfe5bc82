"""batching.padded_sizes: the one rule behind source widths, training buckets and the
service's row counts."""

import pytest

from jaxseq.data import input_pipeline
from jaxseq.decoding import batching


@pytest.mark.parametrize("max_length", [1, 3, 4, 5, 8, 9, 16, 50, 64, 100])
def test_widths_are_every_width_a_source_can_get(max_length):
  every = {batching.source_width(n, max_length) for n in range(1, max_length + 1)}
  assert batching.widths(max_length) == sorted(every)


def test_padded_sizes_grow_by_the_factor_and_end_at_the_limit():
  assert batching.padded_sizes(1, 4, 32) == [1, 4, 16, 32]
  assert batching.padded_sizes(1, 4, 16) == [1, 4, 16]
  assert batching.padded_sizes(8, 2, 6) == [6]
  assert input_pipeline.bucket_lengths(64) == (8, 16, 32, 64)
  assert input_pipeline.bucket_lengths(50) == (8, 16, 32, 50)
