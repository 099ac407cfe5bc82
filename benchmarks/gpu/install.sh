#!/usr/bin/env bash
# The GPU run's first step (run.sh): where the imports jaxseq needs fail (the GPU machine's
# image lacks tensorflow-datasets, grain, ml_collections, ...), installs the wheels carried in
# .whl/ (fetch_wheels.sh) into SITE, which run.sh has put on PYTHONPATH; then records the
# environment (python -m benchmarks.gpu.steps environment).
#
#   bash benchmarks/gpu/install.sh SITE OUT_JSON [--dry_run]    # --dry_run: never installs
set -u
cd "$(dirname "$0")/../.." || exit 2
site="$1" out="$2" dry="${3:-}"
PYTHON="${PYTHON:-python3}"
imports="import tensorflow_datasets, array_record, grain, ml_collections, tensorboardX, num2words"
if [ -z "$dry" ] && ! "$PYTHON" -c "$imports" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "install.sh: no wheels in .whl/; run benchmarks/gpu/prepare.sh first, carry .whl" >&2
    exit 1
  fi
  echo "install.sh: $(ls .whl/*.whl | wc -l) wheels from .whl/ into $site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" .whl/*.whl || exit 1
fi
exec "$PYTHON" -m benchmarks.gpu.steps environment --out "$out" ${dry:+--dry_run}
