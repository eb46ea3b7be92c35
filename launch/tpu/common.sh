# shellcheck shell=bash
# Shared by the launch/tpu scripts: NAME and ZONE from the environment, one ssh helper.
: "${TPU_NAME:?set TPU_NAME, e.g. export TPU_NAME=fun-asr-v5p}"
: "${TPU_ZONE:?set TPU_ZONE, e.g. export TPU_ZONE=us-east5-a}"

on_workers() {  # on_workers WORKERS 'shell command'  (WORKERS: all, or 0)
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$TPU_ZONE" --worker="$1" --command="$2"
}
