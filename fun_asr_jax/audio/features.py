"""Kaldi-compatible log-mel filterbank and low frame rate (LFR) stacking, in-graph.

Everything here is a pure jnp function of a padded batch, so the frontend runs inside
the jitted step on the accelerator instead of in the input pipeline. The numerics follow
Kaldi's `compute-fbank-feats` (and kaldi-native-fbank): per-frame dither, DC removal,
pre-emphasis, window, power spectrum on a power-of-two FFT, triangular mel banks on the
mel scale 1127·ln(1 + f/700) that ignore the Nyquist bin, and log with a float epsilon floor.

Conventions: waveforms are `[B, N]` float with `lengths` `[B]` (valid samples); features
come back with `paddings` `[B, T]` (1.0 at padded frames).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

_FLT_EPSILON = float(np.finfo(np.float32).eps)


@dataclasses.dataclass(frozen=True)
class FbankOptions:
  """Kaldi fbank options; defaults are Fun-ASR-Nano's frontend."""
  sample_rate: int = 16000
  num_mel_bins: int = 80
  frame_length_ms: float = 25.0
  frame_shift_ms: float = 10.0
  window_type: str = "hamming"  # hamming | povey | hanning | rectangular
  preemph_coeff: float = 0.97
  remove_dc_offset: bool = True
  # Kaldi's scale: stddev in waveform units. Without an rng key (inference) the noise is
  # `fixed_dither`'s: deterministic, as Kaldi dithers at decode time too.
  dither: float = 0.0
  low_freq: float = 20.0
  high_freq: float = 0.0  # <= 0 means offset from Nyquist
  snip_edges: bool = True

  @property
  def window_size(self) -> int:
    return int(self.sample_rate * self.frame_length_ms / 1000)

  @property
  def window_shift(self) -> int:
    return int(self.sample_rate * self.frame_shift_ms / 1000)

  @property
  def fft_size(self) -> int:
    return 1 << (self.window_size - 1).bit_length()


def num_frames(num_samples, opts: FbankOptions):
  """Frames Kaldi produces for `num_samples` (works on ints and arrays)."""
  if not opts.snip_edges:
    return (num_samples + opts.window_shift // 2) // opts.window_shift
  frames = 1 + (num_samples - opts.window_size) // opts.window_shift
  return jnp.maximum(frames, 0) if isinstance(frames, jax.Array) else max(frames, 0)


def window_function(opts: FbankOptions) -> np.ndarray:
  n = opts.window_size
  a = 2 * math.pi / (n - 1)
  i = np.arange(n, dtype=np.float64)
  if opts.window_type == "hamming":
    w = 0.54 - 0.46 * np.cos(a * i)
  elif opts.window_type == "povey":
    w = (0.5 - 0.5 * np.cos(a * i)) ** 0.85
  elif opts.window_type == "hanning":
    w = 0.5 - 0.5 * np.cos(a * i)
  elif opts.window_type == "rectangular":
    w = np.ones(n)
  else:
    raise ValueError(f"FbankOptions.window_type={opts.window_type!r}: expected "
                     "hamming, povey, hanning or rectangular")
  return w.astype(np.float32)


def _mel(freq):
  return 1127.0 * np.log(1.0 + freq / 700.0)


def mel_banks(opts: FbankOptions) -> np.ndarray:
  """Triangular mel filters, `[fft_size // 2 + 1, num_mel_bins]` (Nyquist row is zero)."""
  nyquist = 0.5 * opts.sample_rate
  high = opts.high_freq if opts.high_freq > 0 else nyquist + opts.high_freq
  if not 0 <= opts.low_freq < high <= nyquist:
    raise ValueError(f"FbankOptions: need 0 <= low_freq ({opts.low_freq}) < high_freq "
                     f"({high}) <= Nyquist ({nyquist})")
  num_fft_bins = opts.fft_size // 2
  mel_low, mel_high = _mel(opts.low_freq), _mel(high)
  delta = (mel_high - mel_low) / (opts.num_mel_bins + 1)
  mel = _mel(np.arange(num_fft_bins) * opts.sample_rate / opts.fft_size)  # [F]
  left = mel_low + delta * np.arange(opts.num_mel_bins)[:, None]  # [M, 1]
  center, right = left + delta, left + 2 * delta
  up = (mel - left) / (center - left)
  down = (right - mel) / (right - center)
  weights = np.where((mel > left) & (mel < right), np.where(mel <= center, up, down), 0.0)
  banks = np.zeros((num_fft_bins + 1, opts.num_mel_bins), np.float32)
  banks[:num_fft_bins] = weights.T
  return banks


def _inverse_mel(mel):
  return 700.0 * (jnp.exp(mel / 1127.0) - 1.0)


def vtln_warp_freq(freq, warp, low: float, high: float, vtln_low: float, vtln_high: float):
  """Kaldi's piecewise-linear VTLN frequency warp (`VtlnWarpFreq`), broadcasting.

  Between the cutoffs frequencies scale by 1/warp; outside them straight lines keep
  `low` and `high` fixed, so the filterbank's band stays where it was.
  """
  lo_cut, hi_cut = vtln_low * jnp.maximum(1.0, warp), vtln_high * jnp.minimum(1.0, warp)
  scale = 1.0 / warp
  left = low + (scale * lo_cut - low) / (lo_cut - low) * (freq - low)
  right = high + (high - scale * hi_cut) / (high - hi_cut) * (freq - high)
  out = jnp.where(freq < lo_cut, left, jnp.where(freq < hi_cut, scale * freq, right))
  return jnp.where((freq < low) | (freq > high), freq, out)


def warped_mel_banks(opts: FbankOptions, warp, vtln_low: float = 100.0,
                     vtln_high: float = -500.0):
  """`mel_banks` with Kaldi's VTLN warp of the filter edges, one warp per row.

  warp `[B]` -> `[B, fft_size // 2 + 1, num_mel_bins]`. Warping the filters (vocal tract
  length perturbation) simulates other speakers' formant positions; Kaldi's cutoff
  defaults (100 Hz, Nyquist - 500 Hz) apply.
  """
  nyquist = 0.5 * opts.sample_rate
  high = opts.high_freq if opts.high_freq > 0 else nyquist + opts.high_freq
  vtln_high = vtln_high if vtln_high > 0 else nyquist + vtln_high
  num_fft_bins = opts.fft_size // 2
  mel_low, mel_high = _mel(opts.low_freq), _mel(high)
  delta = (mel_high - mel_low) / (opts.num_mel_bins + 1)
  warp = jnp.asarray(warp, jnp.float32)[:, None, None]  # [B, 1, 1]

  def edge(offset):  # [B, 1, M] warped edge on the mel scale
    m = jnp.asarray(mel_low + delta * (np.arange(opts.num_mel_bins) + offset), jnp.float32)
    f = vtln_warp_freq(_inverse_mel(m)[None, None, :], warp, opts.low_freq, high,
                       vtln_low, vtln_high)
    return 1127.0 * jnp.log1p(f / 700.0)

  left, center, right = edge(0), edge(1), edge(2)
  mel = _mel(np.arange(num_fft_bins) * opts.sample_rate / opts.fft_size)
  mel = jnp.asarray(mel, jnp.float32)[None, :, None]  # [1, F, 1]
  up, down = (mel - left) / (center - left), (right - mel) / (right - center)
  weights = jnp.where((mel > left) & (mel < right), jnp.where(mel <= center, up, down), 0.0)
  return jnp.pad(weights, ((0, 0), (0, 1), (0, 0)))  # the Nyquist row is zero


def _frame(waveform, opts: FbankOptions, max_frames: int):
  """[B, N] -> [B, max_frames, window_size] by gathering strided windows."""
  if opts.snip_edges:
    starts = np.arange(max_frames) * opts.window_shift
    idx = starts[:, None] + np.arange(opts.window_size)[None, :]
    return waveform[:, idx]
  raise NotImplementedError("snip_edges=False is not supported: Fun-ASR uses snip_edges=True")


def fixed_dither(first_frame, num_frames: int, window_size: int):
  """Dither noise `[num_frames, window_size]` that depends on the absolute frame index
  alone: every run, every batch row and every streaming chunk sees the same noise at the
  same frame.

  Why inference dithers at all: a model trained with dither never sees a frame of exact
  digital silence, whose mel energies hit the log floor (log FLT_EPSILON = -15.9 against
  ~+7 for dither); utterances with zero-filled gaps then decode badly (bench/RESULTS.md).
  """
  key = jax.random.key(0x5EED)
  frames = first_frame + jnp.arange(num_frames)
  return jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (window_size,)))(
      frames)


def fbank(waveform, lengths, opts: FbankOptions = FbankOptions(), rng=None, warp=None,
          first_frame=0):
  """Kaldi log-mel filterbank of a padded batch.

  Args:
    waveform: `[B, N]` float samples in Kaldi's scale (int16 range; Fun-ASR multiplies
      [-1, 1] audio by 32768).
    lengths: `[B]` number of valid samples per row.
    opts: frontend options.
    rng: PRNG key for training's random dither (`opts.dither > 0`); None: `fixed_dither`.
    warp: optional `[B]` VTLN warp factors (training augmentation; None = no warp).
    first_frame: absolute index of the first frame (a streaming chunk's offset), for
      `fixed_dither`.

  Returns:
    `(features [B, T, num_mel_bins], paddings [B, T])`; T = frames of the longest row.
  """
  waveform = jnp.asarray(waveform, jnp.float32)
  lengths = jnp.asarray(lengths, jnp.int32)
  max_frames = num_frames(waveform.shape[1], opts)
  if max_frames == 0:
    raise ValueError(f"fbank: {waveform.shape[1]} samples is shorter than one "
                     f"{opts.window_size}-sample window")
  frames = _frame(waveform, opts, max_frames)  # [B, T, W]
  if opts.dither > 0:
    noise = (jax.random.normal(rng, frames.shape, frames.dtype) if rng is not None else
             fixed_dither(first_frame, max_frames, opts.window_size)[None])
    frames = frames + opts.dither * noise
  if opts.remove_dc_offset:
    frames = frames - frames.mean(axis=-1, keepdims=True)
  if opts.preemph_coeff:
    prev = jnp.concatenate([frames[..., :1], frames[..., :-1]], axis=-1)
    frames = frames - opts.preemph_coeff * prev
  frames = frames * window_function(opts)
  spec = jnp.fft.rfft(frames, n=opts.fft_size, axis=-1)  # [B, T, F+1]
  power = spec.real**2 + spec.imag**2
  if warp is None:
    mel = jnp.einsum("btf,fm->btm", power, mel_banks(opts), precision=jax.lax.Precision.HIGHEST)
  else:
    mel = jnp.einsum("btf,bfm->btm", power, warped_mel_banks(opts, warp),
                     precision=jax.lax.Precision.HIGHEST)
  feats = jnp.log(jnp.maximum(mel, _FLT_EPSILON))
  valid = jnp.arange(max_frames)[None, :] < num_frames(lengths, opts)[:, None]
  paddings = 1.0 - valid.astype(jnp.float32)
  return feats * valid[..., None], paddings


def lfr_length(lengths, lfr_n: int):
  """Frames after LFR: ceil(T / n)."""
  return (lengths + lfr_n - 1) // lfr_n


def apply_lfr(features, paddings, lfr_m: int = 7, lfr_n: int = 6):
  """Low frame rate stacking with FunASR's edge rule.

  The sequence is left-padded with (m-1)//2 copies of frame 0; output i stacks m frames
  starting at i*n, repeating the last valid frame past the end; T_out = ceil(T / n).

  Args:
    features: `[B, T, D]`; paddings: `[B, T]`.

  Returns:
    `(stacked [B, ceil(T/n), m*D], paddings [B, ceil(T/n)])`.
  """
  b, t, d = features.shape
  lengths = jnp.sum(1.0 - paddings, axis=-1).astype(jnp.int32)  # [B]
  t_out = -(-t // lfr_n)
  base = np.arange(t_out)[:, None] * lfr_n + np.arange(lfr_m)[None, :] - (lfr_m - 1) // 2
  idx = jnp.clip(base[None], 0, jnp.maximum(lengths - 1, 0)[:, None, None])  # [B, T', m]
  stacked = jnp.take_along_axis(features, idx.reshape(b, -1, 1), axis=1)
  stacked = stacked.reshape(b, t_out, lfr_m * d)
  valid = jnp.arange(t_out)[None, :] < lfr_length(lengths, lfr_n)[:, None]
  return stacked * valid[..., None], 1.0 - valid.astype(jnp.float32)


def apply_cmvn(features, paddings, mean, inv_std):
  """Global CMVN: (x + shift) * scale in FunASR's am.mvn convention is (x - mean) * inv_std."""
  out = (features - jnp.asarray(mean)) * jnp.asarray(inv_std)
  return out * (1.0 - paddings)[..., None]


def utterance_norm(features, paddings, eps: float = 1e-5):
  """Per-utterance, per-bin mean/variance normalisation over valid frames."""
  valid = (1.0 - paddings)[..., None]
  n = jnp.maximum(valid.sum(axis=1, keepdims=True), 1.0)
  mean = (features * valid).sum(axis=1, keepdims=True) / n
  var = (jnp.square(features - mean) * valid).sum(axis=1, keepdims=True) / n
  return (features - mean) * jax.lax.rsqrt(var + eps) * valid
