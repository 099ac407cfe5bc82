"""Trains and evaluates one config, and writes its results JSON for the results tables.

    python -m benchmarks.quality.quality --name=numbers_de --workdir=/tmp/numbers_de
    JAXSEQ_DATA_DIR=../shared/data python -m benchmarks.quality.quality \
        --config=configs/multi30k_de_en.py --name=multi30k_de_en --workdir=/tmp/m30k

Writes benchmarks/results/NAME.json (--out_dir): the config file and the command, the recipe
and direction, held-out and test-split BLEU (cased and lowercased), chrF and perplexity, the
scores of the averaged checkpoints where config.average_last_checkpoints is on, the held-out
learning curve, parameter count, training wall time, steps and the hardware
(benchmarks/quality/driver.py). benchmarks/quality/results_table.py turns these files into
the tables.
"""

import sys

from benchmarks.quality import driver


def main(argv: list[str]) -> int:
  """Trains the --config into --workdir and writes --out_dir/NAME.json; 2 after an error."""
  parsed, stop = driver.parse_flags(argv)
  if stop is not None:
    return stop
  record = driver.train_from_flags("benchmarks.quality.quality", argv, parsed)
  if record is None:
    return 2
  print(f"wrote {driver.write_record(parsed.out_dir, parsed.name, record)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
