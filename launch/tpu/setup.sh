#!/usr/bin/env bash
# Installs the project on every worker and mounts the bucket at ~/gcs:
#   launch/tpu/setup.sh REPO_URL BUCKET     (BUCKET without gs://)
set -euo pipefail
source "$(dirname "$0")/common.sh"
REPO=${1:?git URL of this repository}
BUCKET=${2:?GCS bucket for data and workdirs}
on_workers all "
set -e
if ! command -v gcsfuse >/dev/null; then
  echo 'deb https://packages.cloud.google.com/apt gcsfuse-'\$(lsb_release -cs)' main' |
    sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null
  curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add - >/dev/null
  sudo apt-get update -qq && sudo apt-get install -y -qq gcsfuse
fi
mkdir -p ~/gcs
mountpoint -q ~/gcs || gcsfuse --implicit-dirs --rename-dir-limit=1000000 $BUCKET ~/gcs
[ -d ~/fun_asr_jax ] || git clone -q $REPO ~/fun_asr_jax
cd ~/fun_asr_jax && git pull -q
python3 -m pip install -q -U 'jax[tpu]' -e .
python3 -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())'
"
