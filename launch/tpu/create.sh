#!/usr/bin/env bash
# Creates a TPU VM slice: launch/tpu/create.sh ACCELERATOR [--spot]
#   ACCELERATOR: v4-32, v5e-16 (gcloud: v5litepod-16), v5p-64, v6e-64, ...
set -euo pipefail
source "$(dirname "$0")/common.sh"
TYPE=${1:?accelerator type, e.g. v5p-64}
shift
case "$TYPE" in  # the TPU VM software version each generation boots
  v4-*) VERSION=tpu-ubuntu2204-base ;;
  v5e-*) TYPE=v5litepod-${TYPE#v5e-}; VERSION=v2-alpha-tpuv5-lite ;;
  v5litepod-*) VERSION=v2-alpha-tpuv5-lite ;;
  v5p-*) VERSION=v2-alpha-tpuv5 ;;
  v6e-*) VERSION=v2-alpha-tpuv6e ;;
  *) echo "unknown accelerator type $TYPE" >&2; exit 2 ;;
esac
gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$TPU_ZONE" \
  --accelerator-type="$TYPE" --version="${TPU_VERSION:-$VERSION}" "$@"
