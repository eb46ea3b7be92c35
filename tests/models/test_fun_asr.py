"""The composite model: audio slots, splicing, batch/padding invariance end to end."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import models
from fun_asr_jax.models import adaptor as adaptor_lib
from fun_asr_jax.models.fun_asr import (FunASR, ModelConfig, fake_token_len, init_params,
                                        num_audio_tokens, splice_audio)
from fun_asr_jax.text import prompts
from fun_asr_jax.text.tokenizer import Tokenizer

TOK = Tokenizer.byte_level()


def make_batch(cfg, waves, task="语音转写：", slots=None):
  from fun_asr_jax.audio.io import pad_batch
  slots = slots or [num_audio_tokens(cfg, len(w)) for w in waves]
  lays = [prompts.layout(TOK, n, task, target="hi 你好") for n in slots]
  b = prompts.collate(lays, TOK.pad_id)
  b["waveform"], b["wave_lengths"] = pad_batch(waves)
  return b


def test_splice_places_frames_in_order():
  embeds = jnp.zeros((2, 6, 3))
  mask = jnp.array([[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0]], bool)
  audio = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3) + 1
  out = np.asarray(splice_audio(embeds, mask, audio))
  np.testing.assert_array_equal(out[0, 1:4], np.asarray(audio[0, :3]))
  np.testing.assert_array_equal(out[1, 2:4], np.asarray(audio[1, :2]))
  assert not out[0, [0, 4, 5]].any() and not out[1, [0, 1, 4, 5]].any()


def test_fake_token_len_rule():
  # o1 = 1 + (L-1)//2; o2 = 1 + (o1-1)//2; n = (o2-1)//2 + 1 (REFERENCE.md)
  for lfr, want in [(1, 1), (8, 1), (9, 2), (17, 3), (37, 5), (167, 21)]:
    assert int(fake_token_len(lfr)) == want


@pytest.mark.parametrize("size", ["tiny"])
def test_audio_slot_count_matches_adaptor_output(size):
  cfg = models.model_config(size)
  model = FunASR(cfg)
  params = init_params(cfg, jax.random.key(0))
  @jax.jit
  def adapted_paddings(params, wave, lengths):
    feats, fp = model.apply(params, wave, lengths, method=FunASR.features)
    enc, ep = model.apply(params, feats, fp, method=FunASR.encode)
    return model.apply(params, enc, ep, method=FunASR.adapt)[1]
  lengths = np.array([4000, 16000, 23456, 400, 12345])
  ap = adapted_paddings(params, np.zeros((5, 24000), np.float32), lengths)
  for i, n in enumerate(lengths):
    assert int((np.asarray(ap[i]) < 0.5).sum()) == num_audio_tokens(cfg, int(n))


@pytest.mark.parametrize("cap", [0, 6])
def test_ctc_compression_equals_a_prompt_with_only_the_kept_frames(cap):
  """`ctc_compress`: the LLM reads the adaptor over the frames where the CTC best path
  starts a label (chosen here with NumPy; with `ctc_compress_cap` the first ceil(T / cap)
  of them for T encoder frames) and nothing of the spare audio slots, so the target logits
  equal those of the plain model given a prompt with exactly as many slots, whose adaptor
  ran on those frames alone."""
  cfg = dataclasses.replace(models.model_config("tiny"), ctc_compress=True,
                            ctc_compress_cap=cap)
  plain = FunASR(dataclasses.replace(cfg, ctc_compress=False))
  params = init_params(cfg, jax.random.key(2))
  rng = np.random.RandomState(1)
  waves = [0.1 * rng.randn(n).astype(np.float32) for n in (9000, 16000)]
  batch = make_batch(cfg, waves)
  got = jax.jit(FunASR(cfg).apply)(params, batch)

  feats, fp = plain.apply(params, batch["waveform"], batch["wave_lengths"],
                          method=FunASR.features)
  enc, ep = plain.apply(params, feats, fp, method=FunASR.encode)
  logits, lp = plain.apply(params, enc, ep, method=FunASR.ctc_logits)
  enc, logits, valid = np.asarray(enc), np.asarray(logits), np.asarray(lp) < 0.5
  kept, slots, dropped = [], [], 0
  for i in range(len(waves)):
    best = logits[i].argmax(-1)
    frames = int(valid[i].sum())
    keep = [t for t in range(frames) if best[t] != cfg.ctc.blank_id
            and (t == 0 or best[t] != best[t - 1])]
    if cap:
      dropped += len(keep) > -(-frames // cap)
      keep = keep[: -(-frames // cap)]
    kept.append(enc[i, keep])
    slots.append(int(adaptor_lib.output_length(cfg.adaptor, len(keep))))
  assert 0 < min(len(k) for k in kept)
  assert max(slots) < num_audio_tokens(cfg, 16000) or cap  # spare slots: holes
  assert (dropped > 0) == (cap > 0)  # the cap drops labels of some row here
  width = max(len(k) for k in kept)
  short = np.zeros((len(waves), width, enc.shape[-1]), np.float32)
  short_pads = np.ones((len(waves), width), np.float32)
  for i, k in enumerate(kept):
    short[i, : len(k)], short_pads[i, : len(k)] = k, 0.0
  audio, _ = plain.apply(params, short, short_pads, method=FunASR.adapt)
  ref = make_batch(cfg, waves, slots=slots)
  embeds, _ = plain.apply(params, ref["tokens"], ref["audio_mask"], ref["paddings"], audio,
                          method=FunASR.prompt)
  positions = np.maximum(np.cumsum(1.0 - ref["paddings"], 1) - 1, 0).astype(np.int32)
  want, _ = plain.apply(params, embeds, positions, ref["paddings"], method=FunASR.decoder)
  after = lambda b, i: slice(np.flatnonzero(b["audio_mask"][i])[-1] + 1,
                            int((b["paddings"][i] < 0.5).sum()))
  for i in range(len(waves)):  # every position after the audio: the prompt's end + target
    g, w = np.asarray(got["logits"][i, after(batch, i)]), np.asarray(want[i, after(ref, i)])
    assert g.shape == w.shape and len(g) > int(ref["target_mask"][i].sum())
    np.testing.assert_allclose(g, w, atol=1e-4)


def test_batched_forward_equals_single_examples():
  cfg = models.model_config("tiny")
  params = init_params(cfg, jax.random.key(1))
  rng = np.random.RandomState(0)
  waves = [0.1 * rng.randn(n).astype(np.float32) for n in (9000, 16000, 5000)]
  apply = jax.jit(FunASR(cfg).apply)
  batched = apply(params, make_batch(cfg, waves))
  b = make_batch(cfg, waves)
  for i, w in enumerate(waves):
    single = apply(params, make_batch(cfg, [w]))
    s = int((b["paddings"][i] < 0.5).sum())
    np.testing.assert_allclose(np.asarray(batched["logits"][i, :s]),
                               np.asarray(single["logits"][0, :s]), atol=1e-4)
    t = int((np.asarray(single["ctc_paddings"][0]) < 0.5).sum())
    np.testing.assert_allclose(np.asarray(batched["ctc_logits"][i, :t]),
                               np.asarray(single["ctc_logits"][0, :t]), atol=1e-4)


def test_bf16_compute_stays_close_to_fp32():
  cfg = models.model_config("tiny")
  bf = ModelConfig.from_dict({**cfg.to_dict(),
                              "encoder": {**cfg.to_dict()["encoder"], "dtype": "bfloat16"},
                              "adaptor": {**cfg.to_dict()["adaptor"], "dtype": "bfloat16"},
                              "llm": {**cfg.to_dict()["llm"], "dtype": "bfloat16"}})
  params = init_params(cfg, jax.random.key(2))
  wave = [0.1 * np.random.RandomState(3).randn(12000).astype(np.float32)]
  a = jax.jit(FunASR(cfg).apply)(params, make_batch(cfg, wave))["logits"]
  b = jax.jit(FunASR(bf).apply)(params, make_batch(cfg, wave))["logits"]
  assert b.dtype == jnp.float32  # logits are always fp32
  assert float(jnp.abs(a - b).max()) < 0.1 * float(jnp.abs(a).max())


def with_stacks(cfg, **fields):
  """cfg with `fields` set on every layer stack's config (encoder, adaptor, CTC, LLM)."""
  d = cfg.to_dict()
  for part in (d["encoder"], d["adaptor"], d["ctc"]["decoder"], d["llm"]):
    part.update(fields)
  return ModelConfig.from_dict(d)


@pytest.mark.parametrize("remat", ["none", "dots"])
def test_unrolled_stacks_equal_the_rolled_loop(remat):
  """Same parameters, same logits and gradients whether the stacks run as a loop or not."""
  rolled = with_stacks(models.model_config("tiny"), scan_unroll=1, remat=remat)
  unrolled = with_stacks(rolled, scan_unroll=0)
  params = init_params(rolled, jax.random.key(4))
  assert jax.tree.structure(params) == jax.tree.structure(init_params(unrolled,
                                                                     jax.random.key(4)))
  wave = [0.1 * np.random.RandomState(5).randn(n).astype(np.float32) for n in (11000, 7000)]
  batch = make_batch(rolled, wave)

  def loss(cfg):
    def f(p):
      out = FunASR(cfg).apply(p, batch)
      return jnp.sum(jnp.sin(out["logits"])) + jnp.sum(jnp.cos(out["ctc_logits"]))
    return jax.jit(jax.value_and_grad(f))(params)
  (la, ga), (lb, gb) = loss(rolled), loss(unrolled)
  np.testing.assert_allclose(float(la), float(lb), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4 * (1 + np.abs(a).max()))


def test_config_roundtrip_and_unknown_field():
  cfg = models.model_config("nano")
  assert ModelConfig.from_dict(cfg.to_dict()) == cfg
  with pytest.raises(ValueError, match="unknown field"):
    ModelConfig.from_dict({"encoder": {"hiden": 3}})
