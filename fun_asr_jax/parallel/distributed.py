"""Multi-process start-up: `jax.distributed` when several processes run (TPU pods, or
CPU processes on one machine with the coordinator given by environment)."""

import os

import jax
from absl import logging


def maybe_initialize():
  """Initialises jax.distributed when the environment says there are several processes.

  On Cloud TPU slices set FUN_ASR_DISTRIBUTED=auto (launch/tpu/train.sh does):
  `jax.distributed.initialize()` then discovers the workers from the TPU metadata itself.
  Elsewhere set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
  """
  coordinator = os.environ.get("JAX_COORDINATOR_ADDRESS")
  num = int(os.environ.get("JAX_NUM_PROCESSES", "1"))
  if coordinator and num > 1:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num,
                               process_id=int(os.environ["JAX_PROCESS_ID"]))
  elif (os.environ.get("FUN_ASR_DISTRIBUTED") == "auto" or os.environ.get("TPU_WORKER_HOSTNAMES")
        or os.environ.get("MEGASCALE_COORDINATOR_ADDRESS")):
    jax.distributed.initialize()
  if jax.process_count() > 1:
    logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count())


def barrier(name: str, timeout_s: float = 900.0):
  """Waits until every process reaches `name`, through the coordination service.

  Call it before the first cross-process collective: on CPU that collective creates the gloo
  context, which gives the other processes only 30 s to arrive, and a loaded host still
  building its pipelines can miss that (a two-process test failed so under a busy CI run).
  """
  if jax.process_count() > 1:
    from jax._src import distributed as jax_distributed  # pylint: disable=import-outside-toplevel
    jax_distributed.global_state.client.wait_at_barrier(name, int(timeout_s * 1000))
