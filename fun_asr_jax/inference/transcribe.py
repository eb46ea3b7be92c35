"""Batched transcription: waveforms -> prompt with audio -> KV-cache decoding -> text.

The jitted program covers frontend, encoder, adaptor, splice and decoding; the host only
pads audio and lays out prompts (whose audio slot count it knows from the sample count).
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax import decoding
from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.models import ctc as ctc_lib
from fun_asr_jax.models.fun_asr import FunASR, ModelConfig, decoding_layout, num_audio_tokens
from fun_asr_jax.text import prompts


@functools.partial(jax.jit, static_argnames=("cfg",))
def encode_audio(params, waveform, wave_lengths, cfg: ModelConfig):
  """The audio side once per batch: adaptor outputs for the prompt, and the CTC first pass.

  Returns a dict: `audio [B, A, D]`, `audio_paddings [B, A]`; with a CTC branch also its
  greedy path
  (`ctc_tokens [B, T]`, `ctc_lengths [B]`, `ctc_frames [B, T]` start frame per token),
  `ctc_valid_frames [B]`, and the posteriors for alignment (`ctc_log_probs [B, T, V]`,
  `ctc_paddings [B, T]`).
  """
  model = FunASR(cfg)
  v = {"params": params}
  feats, pads = model.apply(v, waveform, wave_lengths, method=FunASR.features)
  enc, enc_pads = model.apply(v, feats, pads, method=FunASR.encode)
  return _audio_side(params, enc, enc_pads, cfg)


@functools.partial(jax.jit, static_argnames=("cfg",))
def audio_side(params, enc, enc_pads, cfg: ModelConfig):
  """`encode_audio` from encoder frames `[B, T, E]` on (a stream encoded chunk by chunk)."""
  return _audio_side(params, enc, enc_pads, cfg)


def _audio_side(params, enc, enc_pads, cfg: ModelConfig):
  model = FunASR(cfg)
  v = {"params": params}
  logits, lpads = (model.apply(v, enc, enc_pads, method=FunASR.ctc_logits) if cfg.ctc.enabled
                   else (None, None))
  audio, audio_pads = model.apply(v, enc, enc_pads, True, logits, method=FunASR.adapt)
  out = {"audio": audio, "audio_paddings": audio_pads}
  if cfg.ctc.enabled:
    tokens, lengths, frames = ctc_lib.greedy_decode(logits, lpads, cfg.ctc.blank_id)
    out.update(ctc_tokens=tokens, ctc_lengths=lengths, ctc_frames=frames,
               ctc_valid_frames=jnp.sum(lpads < 0.5, -1), ctc_paddings=lpads,
               ctc_log_probs=jax.nn.log_softmax(logits.astype(jnp.float32), -1))
  return out


@functools.partial(jax.jit, static_argnames=("blank_id",))
def align_tokens(log_probs, paddings, labels, label_lengths, blank_id: int):
  """Where each known token sits in the audio: CTC forced alignment (Viterbi).

  log_probs `[B, T, V]`, labels `[B, U]` -> (starts `[B, U]` first frame of each token,
  ends `[B, U]` one past its last frame, ok `[B]` whether any alignment fits).
  """
  index, score = ctc_lib.forced_align(log_probs, paddings, labels, label_lengths, blank_id)
  t, u = index.shape[1], labels.shape[1]
  hit = index[:, :, None] == jnp.arange(u)[None, None, :]  # [B, T, U]
  frame = jnp.arange(t)[None, :, None]
  starts = jnp.min(jnp.where(hit, frame, t), axis=1)
  ends = jnp.max(jnp.where(hit, frame + 1, 0), axis=1)
  return starts, ends, jnp.isfinite(score)


@functools.partial(jax.jit, static_argnames=("cfg", "sampling"))
def decode_prompts(params, audio, batch, rng, cfg: ModelConfig,
                   sampling: decoding.SamplingConfig, bias_tokens=None, audio_paddings=None):
  """Prompt token ids with audio slots `[B, S]` + audio embeddings -> generated tokens
  (`bias_tokens [B, H, L]`: hotwords for `sampling.hotword_bonus`; `audio_paddings [B, A]`:
  the adaptor's, which mask the slots CTC compression left empty)."""
  cfg, params = decoding_layout(cfg, params)
  model = FunASR(cfg)
  v = {"params": params}
  embeds, pads = model.apply(v, batch["tokens"], batch["audio_mask"], batch["paddings"],
                             audio, audio_paddings, method=FunASR.prompt)
  decoder = decoding.model_decoder(model, v, FunASR.decoder)
  embed = lambda t: model.apply(v, t, method=FunASR.embed_tokens)
  return decoding.generate(decoder, embed, cfg.llm, embeds, pads, sampling, rng,
                           bias_tokens=bias_tokens)


def _generate(params, batch, rng, cfg: ModelConfig, sampling: decoding.SamplingConfig):
  """Audio and prompts of one batch -> generated tokens (and the CTC greedy path)."""
  enc = encode_audio(params, batch["waveform"], batch["wave_lengths"], cfg)
  out = dict(decode_prompts(params, enc["audio"], batch, rng, cfg, sampling,
                           audio_paddings=enc["audio_paddings"]))
  out.update({k: v for k, v in enc.items()
              if k.startswith("ctc_") and k not in ("ctc_log_probs", "ctc_paddings")})
  return out


def postprocess(text: str) -> str:
  """The release's clean-up: collapse whitespace runs."""
  return re.sub(r"\s+", " ", text.replace("/sil", " ")).strip()


def transcribe_arrays(cfg: ModelConfig, params, tokenizer, waveforms, sample_rate=16000,
                      language=None, hotwords=None, max_new_tokens=128, system=prompts.SYSTEM,
                      sampling: decoding.SamplingConfig | None = None, rng=None):
  """Greedy (or sampled) transcripts of a list of mono float waveforms.

  Returns:
    list of dicts with `text` and `tokens` (generated ids, end token excluded).
  """
  waves = [audio_io.check_waveform(w, sample_rate, name=f"audio[{i}]",
                                   max_seconds=cfg.max_audio_seconds)
           for i, w in enumerate(waveforms)]
  wave, lengths = audio_io.pad_batch(waves, multiple=1600)
  task = prompts.task_prompt(language=language, hotwords=hotwords)
  layouts = [prompts.layout(tokenizer, num_audio_tokens(cfg, len(w)), task, system=system)
             for w in waves]
  batch = prompts.collate(layouts, tokenizer.pad_id)
  batch.update(waveform=wave, wave_lengths=lengths)
  batch.pop("target_mask")
  sampling = sampling or decoding.greedy(tokenizer, max_new_tokens)
  out = _generate(params, {k: jnp.asarray(v) for k, v in batch.items()},
                  rng if rng is not None else jax.random.key(0), cfg, sampling)
  tokens, lens = np.asarray(out["tokens"]), np.asarray(out["lengths"])
  return [{"tokens": tokens[i, : lens[i]].tolist(),
           "text": postprocess(tokenizer.decode(tokens[i, : lens[i]]))}
          for i in range(len(waves))]
