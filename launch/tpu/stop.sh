#!/usr/bin/env bash
# Sends SIGTERM to every worker's trainer: each saves a checkpoint and exits (the same path
# a preemption takes); launch/tpu/train.sh with the same RUN_NAME resumes.
set -euo pipefail
source "$(dirname "$0")/common.sh"
on_workers all "pkill -TERM -f 'launch/train.py' || true"
