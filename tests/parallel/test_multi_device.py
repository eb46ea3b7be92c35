"""Sharded training on 8 simulated devices and on two processes matches one device."""

import json
import os
import socket
import subprocess
import sys

from tests.conftest import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))


def env_with(**kw):
  env = dict(os.environ)
  env.update(kw)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return env


def test_meshes_of_8_devices_give_the_single_device_loss(corpus, tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(HERE, "run_meshes.py"), json.dumps(corpus), str(tmp_path)],
      env=env_with(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
      capture_output=True, text=True, timeout=900, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-4000:]
  rows = {l.split()[1]: [float(x) for x in l.split()[2:]]
          for l in proc.stdout.splitlines() if l.startswith("MESH")}
  assert set(rows) == {"single", "data8", "fsdp8", "data2_fsdp2_tensor2"}
  resharded = [l for l in proc.stdout.splitlines() if l.startswith("RESHARDED")]
  assert resharded and resharded[0].split()[1] == "3"
  for name, (l1, l2) in rows.items():
    assert abs(l1 - rows["single"][0]) < 1e-5, (name, l1, rows["single"][0])
    assert abs(l2 - rows["single"][1]) < 1e-4, (name, l2, rows["single"][1])


def free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_train_and_checkpoint(corpus, tmp_path):
  workdir = str(tmp_path / "run")
  port = free_port()
  args = [sys.executable, os.path.join(ROOT, "launch", "train.py"),
          "--config=" + os.path.join(ROOT, "configs", "sft.py") + ":s0,tiny",
          f"--workdir={workdir}", f"--config.data.train={corpus['shards']}",
          "--config.data.tokenizer=byte", "--config.data.batch_size=4",
          "--config.data.bucket_seconds=(8.0,)", "--config.data.bucket_tokens=(256,)",
          "--config.train.log_every=1", "--config.train.num_steps=3",
          "--config.train.save_every=2", "--config.train.async_checkpoint=False"]
  procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env_with(
                                JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                                JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i),
                                JAX_PLATFORMS="cpu"))
           for i in range(2)]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]
  assert "process 0 of 2" in outs[0] and "process 1 of 2" in outs[1]
  from fun_asr_jax.train import checkpoint
  params, step = checkpoint.restore_params(workdir)
  assert step == 3 and "llm" in params
