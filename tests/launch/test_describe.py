"""launch/describe.py --topology: the real train step AOT-compiled for a TPU slice on CPU."""

import json
import os
import subprocess
import sys

import pytest

from configs import sft
from fun_asr_jax.models import describe
from fun_asr_jax.train import aot
from tests.conftest import ROOT

pytest.importorskip("libtpu", reason="AOT compilation for TPU needs `pip install libtpu`")


def run_describe(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "launch", "describe.py"), *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=900)


def test_tiny_sft_step_compiles_for_a_v5e_slice_and_holds_the_sharded_state(tmp_path):
  report = str(tmp_path / "r.json")
  proc = run_describe("--config=configs/sft.py:s0,tiny", "--topology=v5e-4", "--batch_size=8",
                      "--seconds=4", "--config.mesh.data=1", "--config.mesh.fsdp=-1",
                      f"--json={report}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "HBM per device" in proc.stdout and "DOES NOT FIT" not in proc.stdout
  r = json.load(open(report))
  assert r["devices"] == 4 and r["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1} and r["fits"]
  # arguments: fp32 params + two Adam moments, split 4 ways (small leaves are replicated,
  # so at least a quarter of the total), plus the batch shard
  n = describe.parameter_counts(aot.model_config(sft.get_config("s0,tiny")))["total"]
  assert r["arguments_gib"] * 2**30 >= 12 * n / 4
  assert 0 < r["hbm_per_device_gib"] < r["hbm_capacity_gib"]
  assert r["executed_flops"] >= r["model_flops"] > 0


def test_a_step_that_cannot_fit_exits_1_naming_the_slice():
  proc = run_describe("--config=configs/sft.py:s0,tiny", "--topology=v5e-4",
                      "--batch_size=16384", "--seconds=30", "--config.mesh.data=1",
                      "--config.mesh.fsdp=-1")
  assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
  assert "DOES NOT FIT on v5e-4" in proc.stderr


def test_unknown_topology_is_rejected_with_the_known_ones():
  with pytest.raises(ValueError, match="v5p-64"):
    aot.slice_devices("v9-8")
