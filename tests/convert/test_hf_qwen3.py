"""Qwen3 import and numerical parity against transformers' Qwen3ForCausalLM."""

import dataclasses
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from fun_asr_jax.convert import hf_qwen3
from fun_asr_jax.convert.tensors import CheckpointMismatchError
from fun_asr_jax.models.llm import Qwen3, init_cache

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def make_hf(tmp_path, tie=True, shard=None, seed=0):
  torch.manual_seed(seed)
  cfg = transformers.Qwen3Config(
      vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
      num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=tie,
      rope_theta=10000.0)
  model = transformers.Qwen3ForCausalLM(cfg).eval()
  folder = str(tmp_path / f"hf_tie{tie}")
  kwargs = {"max_shard_size": shard} if shard else {}
  model.save_pretrained(folder, **kwargs)
  return model, folder


def jax_logits(cfg, params, ids, paddings=None):
  model = Qwen3(cfg)
  b, t = ids.shape
  emb = model.apply({"params": params}, jnp.asarray(ids), method=Qwen3.embed)
  pos = jnp.broadcast_to(jnp.arange(t), (b, t))
  pads = jnp.zeros((b, t)) if paddings is None else paddings
  return np.asarray(model.apply({"params": params}, emb, pos, pads)[0])


@pytest.mark.parametrize("tie,unroll", [(True, 1), (False, 1), (True, 0), (False, 2)])
def test_logits_match_transformers(tmp_path, tie, unroll):
  """Also with the layer loop unrolled (0) and two of the three layers per iteration."""
  model, folder = make_hf(tmp_path, tie=tie)
  cfg, params = hf_qwen3.load(folder)
  cfg = dataclasses.replace(cfg, scan_unroll=unroll)
  assert cfg.tie_embeddings == tie
  ids = np.random.RandomState(0).randint(0, 160, (2, 11))
  with torch.no_grad():
    ref = model(torch.tensor(ids)).logits.numpy()
  assert np.abs(jax_logits(cfg, params, ids) - ref).max() < 1e-4


def test_sharded_safetensors_load(tmp_path):
  model, folder = make_hf(tmp_path, shard="20KB")
  assert os.path.exists(os.path.join(folder, "model.safetensors.index.json"))
  cfg, params = hf_qwen3.load(folder)
  ids = np.arange(7)[None]
  with torch.no_grad():
    ref = model(torch.tensor(ids)).logits.numpy()
  assert np.abs(jax_logits(cfg, params, ids) - ref).max() < 1e-4


def test_kv_cache_decoding_matches_full_forward_with_ragged_prompts(tmp_path):
  """Prefill right-padded prompts of different lengths, then decode token by token."""
  model, folder = make_hf(tmp_path)
  cfg, params = hf_qwen3.load(folder)
  rng = np.random.RandomState(1)
  lens, steps = [4, 7], 5
  seqs = [rng.randint(0, 160, n + steps) for n in lens]
  qwen = Qwen3(cfg)
  p = {"params": params}
  prefill = max(lens)
  ids = np.zeros((2, prefill), np.int64)
  pads = np.ones((2, prefill), np.float32)
  for i, n in enumerate(lens):
    ids[i, :n], pads[i, :n] = seqs[i][:n], 0
  pos = np.maximum(np.cumsum(1 - pads, 1) - 1, 0)
  cache = init_cache(cfg, 2, prefill + steps)
  emb = qwen.apply(p, jnp.asarray(ids), method=Qwen3.embed)
  logits, cache = qwen.apply(p, emb, jnp.asarray(pos), jnp.asarray(pads), cache=cache, index=0)
  got = [[np.asarray(logits[i, n - 1])] for i, n in enumerate(lens)]
  for s in range(steps - 1):
    tok = np.array([[seqs[i][n + s]] for i, n in enumerate(lens)])
    emb = qwen.apply(p, jnp.asarray(tok), method=Qwen3.embed)
    step_pos = np.array([[n + s] for n in lens])
    logits, cache = qwen.apply(p, emb, jnp.asarray(step_pos), jnp.zeros((2, 1)), cache=cache,
                               index=prefill + s)
    for i in range(2):
      got[i].append(np.asarray(logits[i, 0]))
  for i, n in enumerate(lens):
    with torch.no_grad():
      ref = model(torch.tensor(seqs[i][None, : n + steps - 1])).logits.numpy()[0, n - 1:]
    assert np.abs(np.stack(got[i]) - ref).max() < 1e-4


def test_padding_does_not_change_valid_logits(tmp_path):
  _, folder = make_hf(tmp_path)
  cfg, params = hf_qwen3.load(folder)
  ids = np.random.RandomState(2).randint(0, 160, (1, 9))
  full = jax_logits(cfg, params, ids)
  padded_ids = np.concatenate([ids, np.zeros((1, 4), int)], 1)
  pads = jnp.asarray(np.r_[np.zeros(9), np.ones(4)][None], jnp.float32)
  np.testing.assert_allclose(jax_logits(cfg, params, padded_ids, pads)[:, :9], full, atol=1e-5)


def test_mismatched_checkpoint_is_reported(tmp_path):
  _, folder = make_hf(tmp_path)
  with open(os.path.join(folder, "config.json")) as f:
    hf = json.load(f)
  hf["intermediate_size"] = 128  # the tensors say 96
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(hf, f)
  with pytest.raises(CheckpointMismatchError, match="misshaped.*gate_proj"):
    hf_qwen3.load(folder)
  hf["intermediate_size"], hf["num_hidden_layers"] = 96, 4
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(hf, f)
  with pytest.raises(CheckpointMismatchError, match="layers.3"):
    hf_qwen3.load(folder)


def test_missing_folder_is_reported(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    hf_qwen3.load(str(tmp_path))
