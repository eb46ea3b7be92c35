"""The trainer: exact resume, preemption, freezing, init_from, NaN policy, config checks."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from fun_asr_jax.train import checkpoint, loop
from tests.conftest import ROOT
from tests.train.helpers import losses, tiny_config


def params_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_resume_is_exact(corpus, tmp_path):
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  loop.train(tiny_config(corpus, steps=6), straight)
  first = loop.train(tiny_config(corpus, steps=6, **{"train.stop_after_steps": 3}), resumed)
  assert first["step"] == 3 and first["preempted"]
  loop.train(tiny_config(corpus, steps=6), resumed)
  a, sa = checkpoint.restore_params(straight)
  b, sb = checkpoint.restore_params(resumed)
  assert sa == sb == 6
  assert params_equal(a, b)
  import json
  rows = [json.loads(l) for l in open(os.path.join(straight, "metrics.jsonl"))]
  assert all("data_corrupt_records" in r and "compiled_programs" in r for r in rows)
  la, lb = losses(straight), losses(resumed)
  assert [la[s] for s in range(1, 7)] == [lb[s] for s in range(1, 7)]


def test_stage_freezes_and_init_from(corpus, tmp_path):
  s0, s1 = str(tmp_path / "s0"), str(tmp_path / "s1")
  loop.train(tiny_config(corpus, steps=2), s0)
  loop.train(tiny_config(corpus, stage="s1", steps=3, init_from=s0), s1)
  before, _ = checkpoint.restore_params(s0)
  after, _ = checkpoint.restore_params(s1)
  for comp in ("encoder", "llm", "ctc"):
    assert params_equal(before[comp], after[comp]), f"{comp} changed in s1"
  assert not params_equal(before["adaptor"], after["adaptor"]), "s1 must train the adaptor"


def test_lora_stage_trains_only_adapters(corpus, tmp_path):
  s0, s3 = str(tmp_path / "s0"), str(tmp_path / "s3")
  loop.train(tiny_config(corpus, steps=2), s0)
  loop.train(tiny_config(corpus, stage="s3", steps=3, init_from=s0,
                         **{"model.llm.lora_dropout": 0.0}), s3)
  before, _ = checkpoint.restore_params(s0)
  after, _ = checkpoint.restore_params(s3)
  q = after["llm"]["layers"]["q_proj"]
  assert "lora_a" in q and np.abs(q["lora_b"]).sum() > 0
  np.testing.assert_array_equal(q["kernel"], before["llm"]["layers"]["q_proj"]["kernel"])
  assert params_equal(before["encoder"], after["encoder"])


def test_repeated_nonfinite_losses_stop_with_a_clear_message(corpus, tmp_path):
  cfg = tiny_config(corpus, steps=20, **{"optim.lr": 1e30, "optim.warmup_steps": 0,
                                         "optim.clip_norm": 0.0, "train.max_nan_steps": 3})
  with pytest.raises(loop.NonFiniteLossError, match="consecutive steps had non-finite"):
    loop.train(cfg, str(tmp_path / "nan"))
  rows = losses(str(tmp_path / "nan"))
  assert any(not np.isfinite(v) for v in rows.values())


@pytest.mark.parametrize("field,value,message", [
    ("objective", "gan", "config.objective"),
    ("data.batch_size", 0, "config.data.batch_size"),
    ("data.bucket_tokens", (64, 128), "config.data.bucket_tokens"),
    ("trainable", ("nothing_here",), "config.trainable"),
    ("mesh.tensor", 3, "config.mesh"),
    ("data.distractor_prompt_prob", 1.5, "config.data.distractor_prompt_prob"),
    ("model.llm.scan_layers", False, "config.model.llm.scan_layers"),
    ("model.llm.out_major", True, "config.model.llm.out_major"),
    ("model.ctc.decoder.scan_unroll", -1, "config.model.ctc.decoder.scan_unroll"),
    ("objective", "copy", "config.trainable"),  # the copy objective reads no audio
    ("loss.slot_weight", -1.0, "config.loss.slot_weight"),
    ("loss.slot_weight", 1.0, "config.loss.slot_weight"),  # without CTC compression
])
def test_invalid_config_is_rejected_at_start(corpus, tmp_path, field, value, message):
  with pytest.raises(ValueError, match=message):
    loop.train(tiny_config(corpus, **{field: value}), str(tmp_path / "bad"))


def test_sigterm_saves_and_resumes(corpus, tmp_path):
  workdir = str(tmp_path / "run")
  args = [sys.executable, os.path.join(ROOT, "launch", "train.py"),
          "--config=" + os.path.join(ROOT, "configs", "sft.py") + ":s0,tiny",
          f"--workdir={workdir}", f"--config.data.train={corpus['shards']}",
          "--config.data.tokenizer=byte", "--config.data.batch_size=4",
          "--config.data.bucket_seconds=(8.0,)", "--config.data.bucket_tokens=(256,)",
          "--config.train.log_every=1", "--config.train.save_every=1000"]
  proc = subprocess.Popen(args + ["--config.train.num_steps=100000"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  metrics = os.path.join(workdir, "metrics.jsonl")
  deadline = time.time() + 240
  while time.time() < deadline and (not os.path.exists(metrics) or
                                    sum(1 for _ in open(metrics)) < 3):
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=240)
  assert proc.returncode == 0, out[-3000:]
  saved = checkpoint.TrainCheckpointer(workdir).latest_step()
  assert saved is not None and saved >= 3
  target = saved + 2
  proc = subprocess.run(args + [f"--config.train.num_steps={target}"], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "resumed from" in proc.stderr and f"finished at step {target}" in proc.stderr


def test_parameter_ema_resumes_exactly_and_is_what_gets_exported(corpus, tmp_path):
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  ema = {"optim.ema_decay": 0.8}
  loop.train(tiny_config(corpus, steps=4, **ema), straight)
  loop.train(tiny_config(corpus, steps=4, **ema, **{"train.stop_after_steps": 2}), resumed)
  loop.train(tiny_config(corpus, steps=4, **ema), resumed)
  a, _ = checkpoint.restore_params(straight)
  b, _ = checkpoint.restore_params(resumed)
  assert params_equal(a, b)
  import orbax.checkpoint as ocp
  raw = ocp.StandardCheckpointer().restore(os.path.join(straight, "checkpoints", "4", "params"))
  assert not params_equal(a, raw), "exports must be the EMA, not the raw parameters"
  cfg, exported, _, _ = checkpoint.load_model(straight)
  assert params_equal(exported, a)
