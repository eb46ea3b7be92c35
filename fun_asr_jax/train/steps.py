"""Losses and the jitted train step for each objective (sft, ctc, bestrq, copy).

One function per objective computes `(loss, metrics)` from params and a batch; `train_step`
differentiates it, applies the optimizer (frozen leaves get zero updates, non-finite
gradients skip the update) and returns the new state and metrics. The per-step rng is
`fold_in(state.rng, step)`, so a resumed run draws the same randomness as an unbroken one.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fun_asr_jax.audio.specaugment import SpecAugmentConfig, spec_augment
from fun_asr_jax.models import bestrq as bestrq_lib
from fun_asr_jax.models import ctc as ctc_lib
from fun_asr_jax.models.encoder import output_length
from fun_asr_jax.models.fun_asr import FunASR, ModelConfig
from fun_asr_jax.train import state as state_lib


@dataclasses.dataclass(frozen=True)
class LossConfig:
  objective: str = "sft"
  llm_weight: float = 1.0
  ctc_weight: float = 0.0
  spec_augment: bool = False
  specaug: SpecAugmentConfig = SpecAugmentConfig()
  vtln_warp: float = 0.0  # per-utterance VTLN factor ~ U[1 - x, 1 + x] (0 = off)
  target_tokens: int = 0  # > 0: LLM logits only at up to this many target positions per row
  copy_noise: float = 0.5  # copy: Gaussian noise on the slot embeddings, x their RMS
  slot_weight: float = 0.0  # sft with CTC compression: weight of `slot_term`
  bestrq: bestrq_lib.BestRQConfig | None = None


def training_model(cfg: ModelConfig, dither: float) -> FunASR:
  """The model with the training frontend (Kaldi dither on)."""
  fbank = dataclasses.replace(cfg.frontend.fbank, dither=dither)
  return FunASR(dataclasses.replace(cfg, frontend=dataclasses.replace(cfg.frontend, fbank=fbank)))


def _features(model, params, batch, rng, lc: LossConfig):
  """Training features: dither, VTLN warping (other voices) and SpecAugment, all in-graph."""
  k_dither, k_spec, k_warp = jax.random.split(rng, 3)
  dither_rng = k_dither if model.cfg.frontend.fbank.dither > 0 else None
  warp = None
  if lc.vtln_warp > 0:
    b = batch["waveform"].shape[0]
    warp = jax.random.uniform(k_warp, (b,), minval=1.0 - lc.vtln_warp,
                              maxval=1.0 + lc.vtln_warp)
  feats, pads = model.apply(params, batch["waveform"], batch["wave_lengths"], dither_rng,
                            warp, method=FunASR.features)
  if lc.spec_augment:
    feats = spec_augment(feats, pads, k_spec, lc.specaug)
  return feats, pads


def token_cross_entropy(logits, tokens, target_mask):
  """Next-token CE over target positions: (mean loss, accuracy, count)."""
  return _cross_entropy(logits[:, :-1], tokens[:, 1:], target_mask[:, 1:])


def _cross_entropy(logits, labels, w):
  """logits `[B, T, V]` predicting labels `[B, T]` where w `[B, T]`."""
  w = w.astype(jnp.float32)
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  nll = -jnp.take_along_axis(logp, labels[..., None], -1)[..., 0]
  n = jnp.maximum(w.sum(), 1.0)
  acc = ((jnp.argmax(logits, -1) == labels) * w).sum() / n
  return (nll * w).sum() / n, acc, w.sum()


def target_cross_entropy(logits_fn, hidden, tokens, target_mask, k: int):
  """`token_cross_entropy` with the vocabulary projection at target positions only.

  In an ASR prompt most positions are audio slots and instructions that are never
  predicted; projecting only the (up to `k`) target positions of each row onto a large
  vocabulary saves most of the head's FLOPs and its `[B, S, V]` logits. A batch with a
  row of more than `k` targets takes the full projection instead (both are compiled; one
  runs), so the loss never drops a token.
  """
  h, labels, w = hidden[:, :-1], tokens[:, 1:], target_mask[:, 1:]
  k = min(k, h.shape[1])
  # target positions first, in order: a stable sort of "not a target"
  order = jnp.argsort(jnp.logical_not(w), axis=1, stable=True)[:, :k]  # [B, K]
  take = lambda x: jnp.take_along_axis(x, order.reshape(order.shape + (1,) * (x.ndim - 2)), 1)

  def sparse():
    return _cross_entropy(logits_fn(take(h)), take(labels), take(w))

  def dense():
    return token_cross_entropy(logits_fn(hidden), tokens, target_mask)

  return jax.lax.cond(jnp.max(jnp.sum(w, axis=1)) <= k, sparse, dense)


def ctc_term(logits, paddings, batch, blank_id):
  per_utt = ctc_lib.ctc_loss(logits, paddings, batch["ctc_labels"],
                             batch["ctc_label_paddings"], blank_id)
  n_labels = jnp.sum(1.0 - batch["ctc_label_paddings"])
  return per_utt.sum() / jnp.maximum(n_labels + per_utt.shape[0], 1.0)


def slot_term(model: FunASR, v, out):
  """Pulls each audio slot towards the LLM's embedding of the label CTC emits there.

  With CTC compression each slot is the frame where CTC's best path starts a label, so
  there is about one slot per token; an adaptor whose slots look like the tokens' own
  embeddings hands the LLM something it can copy from the first step that CTC is right,
  instead of waiting for the LLM to learn reading audio (bench/RESULTS.md, issue 4 item 7).
  Only the adaptor learns from it: the embeddings are the LLM's (not pulled towards audio),
  and the encoder, which learns its acoustics from CTC, gets no gradient (through it, the
  pull towards early, mostly wrong labels held CTC back: bench/RESULTS.md). The adaptor runs
  again, deterministic, on the stop-gradient encoder output. Returns the mean over real
  slots of |slot - target|^2 / mean |target|^2.
  """
  ctc_logits = jax.lax.stop_gradient(out["ctc_logits"])
  labels, _, _ = ctc_lib.greedy_decode(ctc_logits, out["ctc_paddings"],
                                       model.cfg.ctc.blank_id)  # [B, T']
  audio, pads = model.apply(v, jax.lax.stop_gradient(out["enc"]), out["enc_paddings"], True,
                            ctc_logits, method=FunASR.adapt)
  audio, w = audio.astype(jnp.float32), 1.0 - pads  # [B, A, D], [B, A]
  labels = jnp.clip(labels[:, :audio.shape[1]], 0, model.cfg.llm.vocab_size - 1)  # [B, A]
  target = jax.lax.stop_gradient(
      model.apply(v, labels, method=FunASR.embed_tokens).astype(jnp.float32))
  n = jnp.maximum(w.sum(), 1.0)
  scale = jnp.maximum(jnp.sum(jnp.mean(jnp.square(target), -1) * w) / n, 1e-6)
  err = jnp.mean(jnp.square(audio - target), -1) / scale  # [B, A]
  return jnp.sum(err * w) / n


def sft_loss(params, batch, rng, model: FunASR, lc: LossConfig):
  k_feat, k_drop = jax.random.split(rng)
  v = {"params": params}
  feats, pads = _features(model, v, batch, k_feat, lc)
  inputs = dict(batch, feats=feats, feat_paddings=pads)
  sparse = lc.target_tokens > 0
  out = model.apply(v, inputs, deterministic=False, rngs={"dropout": k_drop},
                    return_hidden=sparse)
  if sparse:
    logits_fn = lambda h: model.apply(v, h, method=FunASR.llm_logits)
    ce, acc, n = target_cross_entropy(logits_fn, out["hidden"], batch["tokens"],
                                      batch["target_mask"], lc.target_tokens)
  else:
    ce, acc, n = token_cross_entropy(out["logits"], batch["tokens"], batch["target_mask"])
  metrics = {"llm_loss": ce, "llm_acc": acc, "target_tokens": n}
  loss = lc.llm_weight * ce
  if model.cfg.ctc.enabled and lc.ctc_weight > 0:
    c = ctc_term(out["ctc_logits"], out["ctc_paddings"], batch, model.cfg.ctc.blank_id)
    metrics["ctc_loss"] = c
    loss = loss + lc.ctc_weight * c
  if lc.slot_weight > 0:
    s = slot_term(model, v, out)
    metrics["slot_loss"] = s
    loss = loss + lc.slot_weight * s
  return loss, metrics


def ctc_loss(params, batch, rng, model: FunASR, lc: LossConfig):
  k_feat, k_drop = jax.random.split(rng)
  v = {"params": params}
  feats, pads = _features(model, v, batch, k_feat, lc)
  enc, enc_pads = model.apply(v, feats, pads, False, method=FunASR.encode,
                              rngs={"dropout": k_drop})
  logits, lpads = model.apply(v, enc, enc_pads, False, method=FunASR.ctc_logits,
                              rngs={"dropout": k_drop})
  c = ctc_term(logits, lpads, batch, model.cfg.ctc.blank_id)
  return c, {"ctc_loss": c}


def bestrq_loss(params, batch, rng, model: FunASR, lc: LossConfig):
  k_feat, k_mask, k_noise, k_drop = jax.random.split(rng, 4)
  v = {"params": params}
  feats, pads = _features(model, v, batch, k_feat,
                          dataclasses.replace(lc, spec_augment=False, vtln_warp=0.0))
  ec = model.cfg.encoder
  stride = ec.subsampling if ec.kind == "conformer" else 1
  lengths = jnp.sum(1.0 - pads, -1).astype(jnp.int32)
  t_enc = int(output_length(ec, np.int64(feats.shape[1])))
  enc_valid = jnp.arange(t_enc)[None] < output_length(ec, lengths)[:, None]
  mask = bestrq_lib.span_mask(k_mask, 1.0 - enc_valid.astype(jnp.float32), lc.bestrq)
  codes = bestrq_lib.quantize(bestrq_lib.stack_frames(feats, stride, t_enc), lc.bestrq)
  masked = bestrq_lib.mask_inputs(feats, mask, stride, k_noise)
  enc, _ = model.apply(v, masked, pads, False, method=FunASR.encode, rngs={"dropout": k_drop})
  logits = bestrq_lib.BestRQHead(lc.bestrq).apply({"params": params["bestrq"]}, enc)
  loss, acc = bestrq_lib.loss(logits, codes, mask)
  return loss, {"bestrq_loss": loss, "bestrq_acc": acc,
                "masked_frames": mask.sum().astype(jnp.float32)}


def copy_loss(params, batch, rng, model: FunASR, lc: LossConfig):
  """The LLM alone learns to read its audio slots, before the encoder has anything to say.

  The slots hold the (noisy) embeddings of the transcript's own tokens, one per slot (the
  CTC labels: what CTC compression hands the adaptor once the encoder works), the rest are
  holes; the LLM writes the answer out. A pretrained LLM arrives with such copying heads; a
  from-scratch one otherwise grows them only after CTC has converged, ~1000 steps late
  (bench/RESULTS.md). No audio is read, so the encoder and adaptor get no gradient.
  """
  k_noise, k_drop = jax.random.split(rng)
  v = {"params": params}
  labels, label_pads = batch["ctc_labels"], batch["ctc_label_paddings"]  # [B, U]
  s = batch["tokens"].shape[1]
  emb = model.apply(v, labels, method=FunASR.embed_tokens).astype(jnp.float32)  # [B, U, D]
  rms = jnp.sqrt(jnp.mean(jnp.square(jax.lax.stop_gradient(emb))))
  emb = emb + lc.copy_noise * rms * jax.random.normal(k_noise, emb.shape)
  # at least as many entries as any row has slots; those past a row's labels are holes
  audio = jnp.pad(emb, ((0, 0), (0, s), (0, 0)))
  audio_pads = jnp.pad(label_pads, ((0, 0), (0, s)), constant_values=1.0)
  logits = model.apply(v, batch["tokens"], batch["audio_mask"], batch["paddings"], audio,
                       audio_pads, deterministic=False, method=FunASR.read,
                       rngs={"dropout": k_drop})
  ce, acc, n = token_cross_entropy(logits, batch["tokens"], batch["target_mask"])
  return ce, {"llm_loss": ce, "llm_acc": acc, "target_tokens": n}


LOSSES = {"sft": sft_loss, "ctc": ctc_loss, "bestrq": bestrq_loss, "copy": copy_loss}


def train_step(state: state_lib.TrainState, batch, *, model: FunASR, lc: LossConfig,
               tx: optax.GradientTransformation, lr_fn, trainable=None,
               ema_decay: float = 0.0):
  """One update; `trainable` (the optimizer's bool mask) skips frozen parts' gradients."""
  loss_fn = LOSSES[lc.objective]
  rng = jax.random.fold_in(state.rng, state.step)
  (loss, metrics), grads = jax.value_and_grad(
      lambda p: loss_fn(state_lib.freeze(p, trainable), batch, rng, model, lc), has_aux=True)(
          state.params)
  params, opt_state = state_lib.apply_update(tx, grads, state.opt_state, state.params)
  consecutive, total = state_lib.nonfinite_counts(opt_state)
  metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads),
                 lr=lr_fn(state.step), nonfinite_consecutive=consecutive,
                 nonfinite_total=total)
  ema = state_lib.update_ema(state.ema, params, ema_decay, state.step, trainable)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                       ema=ema), metrics
