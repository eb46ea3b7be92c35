"""Golden sharding baselines: every parameter's logical axes, mesh spec and shard shape for
nano and full on two TPU slices. A diff means the layout changed: if on purpose, regenerate

    python -m tests.parallel.test_golden_shardings

and commit the JSON with the change that caused it.
"""

import json
import os

import jax
import pytest

from configs import sft
from fun_asr_jax.models import describe
from fun_asr_jax.models.fun_asr import param_shapes
from fun_asr_jax.parallel import sharding
from fun_asr_jax.train import aot

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
# (size, slice, mesh): pure FSDP over a v5p-64 (32 chips), FSDP x tensor on a v5e-16
CASES = [("nano", "v5p-64", {"data": 1, "fsdp": 32, "tensor": 1}),
         ("nano", "v5e-16", {"data": 1, "fsdp": 4, "tensor": 4}),
         ("full", "v5p-64", {"data": 1, "fsdp": 32, "tensor": 1}),
         ("full", "v5e-16", {"data": 1, "fsdp": 4, "tensor": 4})]


def table(size: str, mesh: dict) -> dict:
  cfg = sft.get_config(f"s4,{size}")  # s4 carries the LoRA leaves too
  return sharding.sharding_table(param_shapes(aot.model_config(cfg)), mesh)


def path_of(size, slice_name):
  return os.path.join(GOLDEN, f"{size}_{slice_name}.json")


@pytest.mark.parametrize("size,slice_name,mesh", CASES)
def test_parameter_shardings_match_the_golden_file(size, slice_name, mesh):
  golden = json.load(open(path_of(size, slice_name)))
  assert golden["mesh"] == mesh
  now = table(size, mesh)
  assert sorted(now) == sorted(golden["params"]), "parameters added or removed"
  changed = [p for p in now if now[p] != golden["params"][p]]
  assert not changed, f"{len(changed)} parameters changed layout, e.g. {changed[:3]}"


@pytest.mark.parametrize("size,slice_name,mesh", CASES)
def test_every_split_is_even(size, slice_name, mesh):
  """jax.Arrays cannot be split unevenly: every sharded dimension must divide by its ways
  (SenseVoice's 60515-entry CTC vocabulary over a tensor axis of 4 did not)."""
  del slice_name
  for path, row in table(size, mesh).items():
    for dim, shard, axes in zip(row["shape"], row["shard_shape"], row["spec"]):
      assert dim % shard == 0 and (axes is None or dim // shard > 1 or dim == shard), \
          (path, row)


@pytest.mark.parametrize("size", ["nano", "full"])
def test_large_parameters_are_split_over_the_whole_slice(size):
  """Nothing big stays replicated: every tensor over 4M entries (16 MB in fp32) is split at
  least 16 ways under pure FSDP on 32 chips, so per-chip memory falls with the slice size.
  (Below that sit e.g. full's first encoder projection and the q LoRA B, ~1.7M each.)"""
  mesh = dict(CASES[0][2])
  for path, row in table(size, mesh).items():
    entries = 1
    for d in row["shape"]:
      entries *= d
    shard = 1
    for d in row["shard_shape"]:
      shard *= d
    if entries > 4_000_000:
      assert entries / shard >= 16, (path, row)


def test_optimizer_moments_are_sharded_like_their_parameters():
  """The Adam moments carry the same boxes as the params, so the same rules shard them."""
  import optax  # pylint: disable=import-outside-toplevel
  boxed = param_shapes(aot.model_config(sft.get_config("s4,nano")))
  moments = jax.eval_shape(optax.adam(1e-3).init, boxed)
  mesh = dict(CASES[1][2])
  params = sharding.sharding_table(boxed, mesh)
  mu = sharding.sharding_table(moments[0].mu, mesh)
  assert mu == params
  assert len(describe.flat_boxed(boxed)) == len(params)


if __name__ == "__main__":
  os.makedirs(GOLDEN, exist_ok=True)
  for size, slice_name, mesh in CASES:
    with open(path_of(size, slice_name), "w") as f:
      json.dump({"size": size, "slice": slice_name, "mesh": mesh,
                 "params": table(size, mesh)}, f, indent=1, sort_keys=True)
    print("wrote", path_of(size, slice_name))
