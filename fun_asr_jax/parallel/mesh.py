"""The device mesh ('data', 'fsdp', 'tensor') from config, and batch placement on it."""

import math

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from fun_asr_jax.parallel.sharding import MESH_AXES


def mesh_shape(cfg: dict, num_devices: int) -> tuple[int, int, int]:
  """Sizes for (data, fsdp, tensor); one entry may be -1 to take the remaining devices."""
  sizes = [int(cfg.get(a, 1)) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f"config.mesh: at most one axis may be -1, got {dict(zip(MESH_AXES, sizes))}")
  known = math.prod(s for s in sizes if s != -1)
  if any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"config.mesh: sizes must be positive or -1, got {dict(zip(MESH_AXES, sizes))}")
  if -1 in sizes:
    if num_devices % known:
      raise ValueError(f"config.mesh: {num_devices} devices are not divisible by {known}")
    sizes[sizes.index(-1)] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ValueError(f"config.mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} "
                     f"devices, {num_devices} are available")
  return tuple(sizes)


def make_mesh(cfg: dict, devices=None) -> jax.sharding.Mesh:
  """Auto axis types: Linen's logical partitioning needs them (make_mesh defaults to Explicit)."""
  devices = devices if devices is not None else jax.devices()
  shape = mesh_shape(cfg, len(devices))
  return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def batch_sharding(mesh) -> NamedSharding:
  """Leading (batch) axis over data x fsdp, the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def global_batch(host_batch: dict, mesh) -> dict:
  """Host-local numpy batch -> global jax.Arrays sharded over the batch axis.

  Each process passes its own slice; the global batch is their concatenation.
  """
  sharding = batch_sharding(mesh)
  out = {}
  for k, v in host_batch.items():
    if k == "meta":
      continue
    v = np.asarray(v)
    if jax.process_count() == 1:
      out[k] = jax.device_put(v, sharding)
    else:
      out[k] = jax.make_array_from_process_local_data(sharding, v)
  return out
