"""Trains and evaluates a jaxseq translator: the command jaxseq-train
(jaxseq/training/main.py), run from the project's folder.

    python train.py                                     # configs/default.py, ./workdir
    python train.py --config=configs/default.py --workdir=/tmp/run \
        --config.model.attention=luong_general --config.num_train_steps=500
"""

import sys

from jaxseq.training.main import main, parse  # noqa: F401  (parse: read configs as train.py)

if __name__ == "__main__":
  sys.exit(main())
