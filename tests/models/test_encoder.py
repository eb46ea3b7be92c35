"""Encoders: padding invariance, streaming chunk masks, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fun_asr_jax.models import encoder as encoder_lib
from fun_asr_jax.models.encoder import EncoderConfig, build_encoder

SANM = EncoderConfig(input_dim=40, hidden=32, num_heads=2, mlp_dim=64, num_blocks=3,
                     tp_blocks=2)
CONFORMER = EncoderConfig(kind="conformer", input_dim=24, hidden=32, num_heads=4, mlp_dim=64,
                          num_blocks=2, kernel_size=5)


def run(cfg, x, pads, params=None):
  enc = build_encoder(cfg)
  if params is None:
    params = enc.init(jax.random.key(0), x, pads)
  y, yp = enc.apply(params, x, pads)
  return params, np.asarray(y), np.asarray(yp)


@pytest.mark.parametrize("cfg", [
    SANM,
    CONFORMER,
    EncoderConfig(**{**CONFORMER.__dict__, "position": "relative", "subsampling": 8}),
    EncoderConfig(**{**CONFORMER.__dict__, "subsampling": 2, "chunk_size": 3,
                     "causal_conv": True, "remat": "full"}),
], ids=["sanm", "conformer_rotary", "conformer_relative_8x", "conformer_chunked"])
def test_padding_invariance(cfg):
  """Valid outputs equal the unpadded run's, whatever garbage the padding holds."""
  rng = np.random.RandomState(0)
  t = 53
  x = rng.randn(1, t, cfg.input_dim).astype(np.float32)
  params, y, yp = run(cfg, x, np.zeros((1, t), np.float32))
  n = int((yp < 0.5).sum())
  garbage = rng.randn(1, 31, cfg.input_dim).astype(np.float32) * 5
  xp = np.concatenate([x, garbage], 1)
  pads = np.r_[np.zeros(t), np.ones(31)][None].astype(np.float32)
  _, y2, yp2 = run(cfg, xp, pads, params)
  assert int((yp2 < 0.5).sum()) == n
  np.testing.assert_allclose(y2[:, :n], y[:, :n], atol=1e-5)
  assert not y2[:, n:].any(), "padded frames must be zero"


def test_batch_rows_are_independent():
  rng = np.random.RandomState(1)
  x = rng.randn(2, 40, 24).astype(np.float32)
  pads = np.zeros((2, 40), np.float32)
  pads[1, 25:] = 1
  params, y, yp = run(CONFORMER, x, pads)
  _, y1, yp1 = run(CONFORMER, x[1:, :25], pads[1:, :25], params)
  n = int((yp1 < 0.5).sum())
  np.testing.assert_allclose(y[1, :n], y1[0, :n], atol=1e-5)


def test_chunked_conformer_does_not_see_the_future():
  cfg = EncoderConfig(**{**CONFORMER.__dict__, "subsampling": 2, "chunk_size": 4,
                         "causal_conv": True})
  rng = np.random.RandomState(2)
  x = rng.randn(1, 60, 24).astype(np.float32)
  pads = np.zeros((1, 60), np.float32)
  params, y, _ = run(cfg, x, pads)
  x2 = x.copy()
  x2[:, 41:] = rng.randn(1, 19, 24)  # frames >= 41 only reach subsampled frames >= 20
  _, y2, _ = run(cfg, x2, pads, params)
  np.testing.assert_allclose(y2[:, :20], y[:, :20], atol=1e-5)  # chunks 0..4 untouched
  assert np.abs(y2[:, 20:] - y[:, 20:]).max() > 1e-3
  # the offline encoder, by contrast, lets the future change the past
  offline = EncoderConfig(**{**cfg.__dict__, "chunk_size": 0, "causal_conv": False})
  p_off, z, _ = run(offline, x, pads)
  _, z2, _ = run(offline, x2, pads, p_off)
  assert np.abs(z2[:, :20] - z[:, :20]).max() > 1e-4


def test_left_context_limits_attention():
  from fun_asr_jax.layers.attention import chunk_mask
  m = np.asarray(chunk_mask(jnp.zeros((1, 8)), chunk_size=2, left_chunks=1))[0]
  assert m[5].tolist() == [False, False, True, True, True, True, False, False]
  assert m[0].tolist() == [True, True] + [False] * 6


@pytest.mark.parametrize("left_chunks,subsampling,frames", [(-1, 4, 8), (1, 4, 4), (2, 2, 6)])
def test_streaming_chunks_equal_the_offline_chunked_encoder(left_chunks, subsampling, frames):
  """Chunk by chunk with key/value and convolution caches, each encoder frame computed
  once, the outputs are the whole utterance's under its chunk mask."""
  cfg = EncoderConfig(**{**CONFORMER.__dict__, "chunk_size": 2, "left_chunks": left_chunks,
                         "causal_conv": True, "subsampling": subsampling,
                         "block_final_norm": False})
  assert encoder_lib.streamable(cfg)
  rng = np.random.RandomState(3)
  t = 181
  x = rng.randn(2, t, cfg.input_dim).astype(np.float32)
  params, ref, _ = run(cfg, x, np.zeros((2, t), np.float32))
  enc = build_encoder(cfg)
  step = jax.jit(lambda w, wp, cache, index: enc.apply(params, w, wp, True, cache, index))
  cache = encoder_lib.stream_cache(cfg, 2, 128)
  got, index = [], 0
  while True:
    a, b = encoder_lib.stream_window(cfg, index, frames)
    if b > t:
      break
    h, hp, cache = step(x[:, a:b], np.zeros((2, b - a), np.float32), cache, index)
    assert h.shape[1] == frames and not np.asarray(hp).any()
    got.append(np.asarray(h))
    index += frames
  got = np.concatenate(got, 1)
  assert got.shape[1] >= ref.shape[1] - frames and got.shape[1] > 3 * frames
  np.testing.assert_allclose(got, ref[:, : got.shape[1]], atol=2e-5)


def test_streaming_needs_a_causal_chunked_rotary_conformer():
  for change in ({"causal_conv": False}, {"chunk_size": 0}, {"position": "relative"}):
    cfg = EncoderConfig(**{**CONFORMER.__dict__, "chunk_size": 2, "causal_conv": True,
                           **change})
    assert not encoder_lib.streamable(cfg)
    x = np.zeros((1, 23, cfg.input_dim), np.float32)
    enc = build_encoder(cfg)
    params = enc.init(jax.random.key(0), x, np.zeros((1, 23), np.float32))
    with pytest.raises(ValueError, match="stream"):
      enc.apply(params, x, np.zeros((1, 23), np.float32), True,
                encoder_lib.stream_cache(cfg, 1, 32), 0)


def test_wrong_feature_dim_is_reported():
  with pytest.raises(ValueError, match="expects 40-dim features, got 80"):
    run(SANM, np.zeros((1, 10, 80), np.float32), np.zeros((1, 10), np.float32))


def test_unknown_encoder_kind():
  with pytest.raises(ValueError, match="'sanm' or 'conformer'"):
    build_encoder(EncoderConfig(kind="lstm"))
