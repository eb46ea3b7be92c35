#!/usr/bin/env bash
# Deletes the slice (the bucket, with checkpoints and metrics, stays).
set -euo pipefail
source "$(dirname "$0")/common.sh"
gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$TPU_ZONE" --quiet
