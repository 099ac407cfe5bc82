#!/usr/bin/env bash
# Downloads into .whl/ the wheels that benchmarks/gpu/requirements.txt pins, for the GPU
# machine's Python 3.12 on x86-64 Linux (no network there), and builds the two that PyPI has
# as source only (marked "sdist"; pure Python). Run here, from anywhere:
#
#   bash benchmarks/gpu/fetch_wheels.sh     # then: du -sh .whl  (about 11 MiB)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
requirements=benchmarks/gpu/requirements.txt
rm -rf .whl
mkdir -p .whl
# "name==version" of every line, without comments; the sdist ones apart.
binary=$(grep -v '^#' "$requirements" | grep -v 'sdist' | sed 's/#.*//' | xargs)
source=$(grep -v '^#' "$requirements" | grep 'sdist' | sed 's/#.*//' | xargs)
"$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl $binary
if [ -n "$source" ]; then
  "$PYTHON" -m pip wheel --no-deps -w .whl $source
fi
count=$(ls .whl/*.whl | wc -l)
expected=$(grep -v '^#' "$requirements" | sed 's/#.*//' | grep -c '==')
if [ "$count" -ne "$expected" ]; then
  echo "fetch_wheels.sh: $count wheels in .whl/, $expected pinned in $requirements" >&2
  exit 1
fi
echo "$count wheels in .whl/ ($(du -sh .whl | cut -f1))"
