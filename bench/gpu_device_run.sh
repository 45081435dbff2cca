#!/usr/bin/env bash
# The GPU check on the lent device machine, in one `run` call (see ../shared/gpu/README.md):
#   run(command="set -o pipefail; bash bench/gpu_device_run.sh 2>&1 | tee $OUT/log", carry=[".gpu"],
#       timeout_s=540)
# Unpacks the bundles bench/gpu_bundle.sh built into a fresh site folder, then runs bench/gpu_check.sh (the
# suite on CUDA, notebooks 00-05 and 07 at the cpu budget, the SFW/SGD benchmark) into $OUT; commit $OUT under
# bench/results/gpu/ afterwards.
set -u
cd "$(dirname "$0")/.."
ls .gpu/*.tar.xz >/dev/null 2>&1 || { echo "no .gpu bundles: run bash bench/gpu_bundle.sh first"; exit 2; }
site=$(mktemp -d)
for bundle in .gpu/*.tar.xz; do tar -xJf "$bundle" -C "$site"; done
export PYTHONPATH=$PWD:$site
OUT=${OUT:-reports/gpu-check} PYTHON=python3 SUITE_TIMEOUT=${SUITE_TIMEOUT:-240} NB_TIMEOUT=${NB_TIMEOUT:-35} \
  bash bench/gpu_check.sh
