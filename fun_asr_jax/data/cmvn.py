"""Global CMVN: per-bin feature mean and inverse std estimated from a run's training data.

Models trained from scratch normalise each utterance by its own statistics
(`frontend.utterance_norm`), which needs the whole utterance: a streaming model cannot
wait for it. Global statistics, fixed before training and stored in the model config
(`frontend.cmvn_mean` / `cmvn_istd`, Fun-ASR's am.mvn convention), normalise every frame
on its own. `data.global_cmvn=N` estimates them from N training utterances spread over
each source; a resumed run keeps its workdir's statistics and `init_from` keeps the
earlier stage's, so a model never sees features normalised two ways.
"""

import dataclasses
import json
import os

import jax
import numpy as np
from absl import logging

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.data import schema
from fun_asr_jax.data.pipeline import open_source, parse_mixture, resolve
from fun_asr_jax.models.fun_asr import FunASR, ModelConfig


def sample_waveforms(spec: str, cache_dir: str, num: int) -> list[np.ndarray]:
  """About `num` 16 kHz waveforms spread evenly over each source of a data spec (a
  manifest may be sorted by speaker or length); unreadable records are skipped."""
  sources = [open_source(resolve(path, cache_dir)) for path, _ in parse_mixture(spec)]
  waves = []
  for ds in sources:
    take = min(len(ds), -(-num // len(sources)))
    for i in np.linspace(0, len(ds) - 1, take).round().astype(int):
      try:
        raw = ds[int(i)]
        u = raw if isinstance(raw, schema.Utterance) else schema.decode(raw)
      except schema.RecordError as e:
        logging.warning("global CMVN: skipping record #%d: %s", i, e)
        continue
      if u.audio.size:
        waves.append(audio_io.resample(u.float_audio(), u.sample_rate))
  return waves


def estimate(waves: list[np.ndarray], cfg: ModelConfig, eps: float = 1e-5):
  """(mean, inverse std) per feature bin, over every valid frame of `waves`, of the
  frontend's features before any normalisation -> two tuples of floats."""
  raw = dataclasses.replace(cfg.frontend, utterance_norm=False, cmvn_mean=(), cmvn_istd=())
  model = FunASR(dataclasses.replace(cfg, frontend=raw))
  feats_fn = jax.jit(lambda w, n: model.apply({}, w, n, method=FunASR.features))
  total, sq, count = 0.0, 0.0, 0
  for w in waves:
    padded = np.zeros((1, -(-len(w) // 16000) * 16000), np.float32)  # few shapes compile
    padded[0, : len(w)] = w
    feats, pads = jax.device_get(feats_fn(padded, np.asarray([len(w)], np.int32)))
    valid = feats[0][pads[0] < 0.5].astype(np.float64)  # [T, F]
    total, sq, count = total + valid.sum(0), sq + np.square(valid).sum(0), count + len(valid)
  if count == 0:
    raise ValueError("global CMVN: no valid feature frames in the sampled training audio")
  mean = total / count
  var = np.maximum(sq / count - np.square(mean), 0.0)
  return tuple(map(float, mean)), tuple(map(float, 1.0 / np.sqrt(var + eps)))


def _saved(folder: str):
  path = os.path.join(folder, "model_config.json") if folder else ""
  if path and os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      fc = json.load(f).get("frontend", {})
    if fc.get("cmvn_mean"):
      return tuple(fc["cmvn_mean"]), tuple(fc["cmvn_istd"])
  return None


def for_run(cfg, mc: ModelConfig, workdir: str, cache_dir: str) -> ModelConfig:
  """`mc` with global CMVN when `cfg.data.global_cmvn` asks for it: the workdir's (resume),
  else the init_from checkpoint's, else estimated now from the training data."""
  num = cfg.data.global_cmvn
  if num <= 0 or mc.frontend.cmvn_mean:
    return mc
  stats = _saved(workdir) or _saved(cfg.init_from)
  if stats is None:
    waves = sample_waveforms(cfg.data.train, cache_dir, num)
    stats = estimate(waves, mc)
    logging.info("global CMVN estimated from %d training utterances", len(waves))
  fc = dataclasses.replace(mc.frontend, cmvn_mean=stats[0], cmvn_istd=stats[1])
  return dataclasses.replace(mc, frontend=fc)
