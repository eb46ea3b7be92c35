#!/usr/bin/env bash
# Starts launch/train.py on every worker (one process per host, jax.distributed joins them):
#   launch/tpu/train.sh RUN_NAME --config=configs/grpo.py:full --config.init_from=... [...]
# The workdir is ~/gcs/runs/RUN_NAME (the bucket, on every worker), so checkpoints, metrics
# and TensorBoard events land on GCS and a restarted run resumes from them. Data shards are
# cached on each host's local disk.
set -euo pipefail
source "$(dirname "$0")/common.sh"
RUN=${1:?run name}
shift
ARGS=$(printf ' %q' "$@")
on_workers all "
cd ~/fun_asr_jax && FUN_ASR_DISTRIBUTED=auto nohup python3 launch/train.py \
  --workdir=\$HOME/gcs/runs/$RUN --config.data.cache_dir=/tmp/fun_asr_data_cache $ARGS \
  > ~/train_$RUN.log 2>&1 < /dev/null &
echo started on \$(hostname)"
