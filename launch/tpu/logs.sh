#!/usr/bin/env bash
# Follows the training log of worker 0 (process 0 prints the progress lines):
#   launch/tpu/logs.sh RUN_NAME
set -euo pipefail
source "$(dirname "$0")/common.sh"
on_workers 0 "tail -n 50 -f ~/train_${1:?run name}.log"
