"""Trains and evaluates a jaxseq translator.

    python train.py                                     # configs/default.py, ./workdir
    python train.py --config=configs/default.py --workdir=/tmp/run \
        --config.model.attention=luong_general --config.num_train_steps=500
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Python config file (get_config()); fields are overridden with --config.FIELD=VALUE.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "workdir", "Directory for everything the run writes.")


def main(argv: list[str]) -> int:
  try:
    flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
    print(f"train.py: bad flag: {e}", file=sys.stderr)
    return 2
  # Imported after flag parsing so that a bad flag is reported before JAX starts.
  from jaxseq import cli
  return cli.run_training(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
