"""launch/convert.py end to end: converted folders load and reproduce the reference."""

import os
import subprocess
import sys

import numpy as np
import pytest

from fun_asr_jax import decoding
from fun_asr_jax.convert import convert_folder
from fun_asr_jax.inference.transcribe import transcribe_arrays
from fun_asr_jax.train import checkpoint
from tests.conftest import ROOT
from tests.convert import funasr_reference as ref_lib

torch = pytest.importorskip("torch")
pytest.importorskip("funasr")


def run_convert(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "launch", "convert.py"), *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_funasr_nano_cli_roundtrip(tmp_path, monkeypatch):
  src, dst = str(tmp_path / "src"), str(tmp_path / "ckpt")
  ref, hf_tok, frontend = ref_lib.build_funasr_nano(src, with_ctc=True)
  proc = run_convert("--format=funasr_nano", f"--src={src}", f"--dst={dst}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  cfg, params, tok, meta = checkpoint.load_model(dst)
  assert meta["source_format"] == "funasr_nano" and "ctc" in meta["components"]
  assert tok is not None and cfg.ctc.enabled
  import funasr.models.fun_asr_nano.model as fm
  monkeypatch.setattr(fm, "forced_align", lambda *a, **k: [])
  wave = ref_lib.test_waveforms(seed=5, seconds=(1.4,))[0]
  generated = []
  original = ref.llm.generate
  monkeypatch.setattr(ref.llm, "generate",
                      lambda *a, **k: generated.append(original(*a, **k)) or generated[-1])
  with torch.no_grad():
    ref.inference([torch.tensor(wave)], key=["u"], tokenizer=hf_tok, frontend=frontend,
                  device="cpu", max_length=10)
  ours = transcribe_arrays(cfg, params, tok, [wave],
                           sampling=decoding.greedy(tok, 10, loop_repeats=0))  # as funasr's
  assert ours[0]["tokens"] == [t for t in generated[0][0].tolist() if t != tok.eos_id]


def test_failed_conversion_leaves_nothing(tmp_path):
  src, dst = str(tmp_path / "src"), str(tmp_path / "out" / "ckpt")
  ref_lib.build_funasr_nano(src, with_ctc=False)
  state = torch.load(os.path.join(src, "model.pt"))
  del state["audio_adaptor.linear2.bias"]
  torch.save(state, os.path.join(src, "model.pt"))
  proc = run_convert("--format=funasr_nano", f"--src={src}", f"--dst={dst}")
  assert proc.returncode != 0
  assert "audio_adaptor.linear2.bias" in proc.stderr
  assert not os.path.exists(dst)
  assert not os.path.exists(os.path.dirname(dst)) or not os.listdir(os.path.dirname(dst))


def test_existing_destination_is_not_touched(tmp_path):
  src, dst = str(tmp_path / "hf"), str(tmp_path / "ckpt")
  ref_lib.build_hf_fun_asr_nano(src)
  os.makedirs(dst)
  open(os.path.join(dst, "keep.txt"), "w").write("x")
  with pytest.raises(FileExistsError, match="already exists"):
    convert_folder("hf_fun_asr_nano", src, dst)
  assert os.listdir(dst) == ["keep.txt"]


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
  """A save that dies half-way leaves the old folder intact and no partial folder."""
  src, dst = str(tmp_path / "hf"), str(tmp_path / "ckpt")
  ref_lib.build_hf_fun_asr_nano(src)
  convert_folder("hf_fun_asr_nano", src, dst)
  before = sorted(os.listdir(dst))
  import orbax.checkpoint as ocp

  def boom(*a, **k):
    raise OSError("disk full")
  monkeypatch.setattr(ocp.PyTreeCheckpointer, "save", boom)
  with pytest.raises(OSError, match="disk full"):
    convert_folder("hf_fun_asr_nano", src, dst, overwrite=True)
  assert sorted(os.listdir(dst)) == before
  assert [p for p in os.listdir(tmp_path) if "partial" in p] == []
  cfg, params, _, _ = checkpoint.load_model(dst)
  assert not cfg.ctc.enabled and "llm" in params


def test_hf_qwen3_cli(tmp_path):
  transformers = pytest.importorskip("transformers")
  src, dst = str(tmp_path / "qwen"), str(tmp_path / "ckpt")
  torch.manual_seed(0)
  model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**dict(
      ref_lib.TINY_QWEN, vocab_size=100))).eval()
  model.save_pretrained(src)
  proc = run_convert("--format=hf_qwen3", f"--src={src}", f"--dst={dst}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  cfg, params, _, meta = checkpoint.load_model(dst)
  assert meta["components"] == ["llm"] and cfg.llm.num_layers == 2
  emb = np.asarray(params["llm"]["embed_tokens"]["embedding"])
  np.testing.assert_array_equal(emb, model.model.embed_tokens.weight.detach().numpy())
