#!/usr/bin/env bash
# Everything the GPU run needs beside the working tree, made here once before the device
# call: the wheels (.whl/, fetch_wheels.sh) and the Multi30k raw files (.gpu_data/multi30k,
# about 4 MiB), since ../shared does not travel. Both folders are git-ignored; the device
# call carries them (see docs/gpu.md).
#
#   bash benchmarks/gpu/prepare.sh          # JAXSEQ_DATA_DIR picks another corpus folder
set -euo pipefail
cd "$(dirname "$0")/../.."
bash benchmarks/gpu/fetch_wheels.sh
source="${JAXSEQ_DATA_DIR:-../shared/data}/multi30k"
for stem in train val test2016 test2017; do
  for lang in de en; do
    if [ ! -f "$source/$stem.$lang" ]; then
      echo "prepare.sh: $source/$stem.$lang is missing" >&2
      exit 1
    fi
  done
done
rm -rf .gpu_data
mkdir -p .gpu_data/multi30k
cp "$source"/{train,val,test2016,test2017}.{de,en} .gpu_data/multi30k/
echo ".gpu_data/multi30k: $(du -sh .gpu_data/multi30k | cut -f1); carry .whl and .gpu_data"
