"""Subprocess body: one train step on several meshes of 8 simulated CPU devices.

Prints 'MESH <name> <loss> <grad_norm>' lines. Run with
XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402

from fun_asr_jax.train import loop  # noqa: E402
from tests.train.helpers import losses, tiny_config  # noqa: E402

MESHES = {"single": None, "data8": {"data": 8, "fsdp": 1, "tensor": 1},
          "fsdp8": {"data": 1, "fsdp": 8, "tensor": 1},
          "data2_fsdp2_tensor2": {"data": 2, "fsdp": 2, "tensor": 2}}


def main(corpus_json, workdir):
  corpus = json.loads(corpus_json)
  assert jax.device_count() == 8, jax.devices()
  # every run is configured for 3 steps (one program, which the compilation cache then
  # shares with the resharded run) and the mesh runs stop after 2
  common = {"data.batch_size": 8, "train.save_every": 0}
  for name, mesh in MESHES.items():
    cfg = tiny_config(corpus, steps=3, **common, **{"train.stop_after_steps": 2})
    if mesh is None:  # the reference: the whole batch on one device
      cfg.mesh.update({"data": 1, "fsdp": 1, "tensor": 1})
      devices = jax.devices()[:1]
    else:
      cfg.mesh.update(mesh)
      devices = None
    out = os.path.join(workdir, name)
    if devices is not None:
      with jax.default_device(devices[0]):
        _train_on(cfg, out, devices)
    else:
      loop.train(cfg, out)
    ls = losses(out)
    print("MESH", name, repr(ls[1]), repr(ls[2]), flush=True)
  # a checkpoint written on the fsdp=8 mesh resumes on a data=2 x fsdp=2 x tensor=2 mesh
  cfg = tiny_config(corpus, steps=3, **common)
  cfg.mesh.update({"data": 2, "fsdp": 2, "tensor": 2})
  result = loop.train(cfg, os.path.join(workdir, "fsdp8"))
  print("RESHARDED", result["step"], repr(losses(os.path.join(workdir, "fsdp8"))[3]), flush=True)


def _train_on(cfg, out, devices):
  from fun_asr_jax.parallel import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  original = mesh_lib.make_mesh
  mesh_lib.make_mesh = lambda c, devices_=None: original(c, devices)
  try:
    loop.train(cfg, out)
  finally:
    mesh_lib.make_mesh = original


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
