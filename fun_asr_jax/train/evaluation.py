"""Decoding a prompt-only eval pipeline and scoring it (shared by training and eval.py)."""

import functools

import jax

from fun_asr_jax import decoding
from fun_asr_jax.inference import rescore as rescore_lib
from fun_asr_jax.inference.transcribe import _generate, encode_audio, postprocess
from fun_asr_jax.models import ctc as ctc_lib
from fun_asr_jax.models.fun_asr import FunASR, ModelConfig, decoding_layout
from fun_asr_jax.train.metrics import error_rates


@functools.partial(jax.jit, static_argnames=("cfg",))
def _ctc_greedy(params, batch, cfg: ModelConfig):
  model = FunASR(cfg)
  v = {"params": params}
  feats, pads = model.apply(v, batch["waveform"], batch["wave_lengths"], method=FunASR.features)
  enc, enc_pads = model.apply(v, feats, pads, method=FunASR.encode)
  logits, lpads = model.apply(v, enc, enc_pads, method=FunASR.ctc_logits)
  return ctc_lib.greedy_decode(logits, lpads, cfg.ctc.blank_id)[:2]


PATHS = ("llm", "ctc", "rescore")


def decode_batch(cfg: ModelConfig, params, tokenizer, batch: dict, path: str = "llm",
                 max_new_tokens: int = 64, ctc_weight: float = 1.0) -> list[str]:
  """Hypotheses for a prompt-only batch (from `Pipeline(..., include_targets=False)`).

  path: 'llm' greedy LLM decoding, 'ctc' the CTC branch's best path, 'rescore' the CTC
  n-best rescored by the LLM (inference/rescore.py; `ctc_weight` weighs the CTC score).
  """
  if path not in PATHS:
    raise ValueError(f"path={path!r}: expected one of {PATHS}")
  arrays = {k: batch[k] for k in ("waveform", "wave_lengths", "tokens", "audio_mask",
                                  "paddings")}
  if path in ("ctc", "rescore") and not cfg.ctc.enabled:
    raise ValueError(f"--path={path}: this model has no CTC branch")
  if path == "rescore":
    enc = encode_audio(params, arrays["waveform"], arrays["wave_lengths"], cfg)
    nbest = rescore_lib.proposals(enc["ctc_log_probs"], enc["ctc_paddings"], tokenizer,
                                  cfg.ctc.blank_id, postprocess=postprocess)
    picked = rescore_lib.rescore(cfg, params, tokenizer, enc["audio"], arrays, nbest,
                                 ctc_weight, enc["audio_paddings"])
    return [p["text"] for p in picked]
  if path == "ctc":
    toks, lens = jax.device_get(_ctc_greedy(params, arrays, cfg))
    return [postprocess(tokenizer.decode([t for t in toks[i, : lens[i]]
                                          if t < tokenizer.vocab_size]))
            for i in range(len(lens))]
  sampling = decoding.greedy(tokenizer, max_new_tokens)
  out = jax.device_get(_generate(params, arrays, jax.random.key(0), cfg, sampling))
  return [postprocess(tokenizer.decode(out["tokens"][i, : out["lengths"][i]]))
          for i in range(len(out["lengths"]))]


def evaluate(cfg: ModelConfig, params, tokenizer, pipeline, path: str = "llm",
             max_new_tokens: int = 64, max_batches: int = 0, ctc_weight: float = 1.0) -> dict:
  """Decodes every batch (or `max_batches`) and scores; returns metrics and rows."""
  if path != "ctc":  # unroll the LLM's layers once for the whole pass, not once per batch
    cfg, params = decoding_layout(cfg, params)
  rows = []
  for i, batch in enumerate(pipeline):
    if max_batches and i >= max_batches:
      break
    hyps = decode_batch(cfg, params, tokenizer, batch, path, max_new_tokens, ctc_weight)
    meta = batch["meta"]
    for j, hyp in enumerate(hyps):
      if meta["id"][j] is None:  # padding rows of a short last batch
        continue
      rows.append({"id": meta["id"][j], "ref": meta["text"][j], "hyp": hyp,
                   "lang": meta["lang"][j], "kind": meta["kind"][j],
                   "hotwords": meta["hotwords"][j]})
  scores = error_rates([r["ref"] for r in rows], [r["hyp"] for r in rows])
  return {**scores, "utterances": rows}


def hotword_recall(rows: list[dict]) -> float:
  """Share of reference hotwords that appear in the hypothesis."""
  hits = total = 0
  for r in rows:
    for h in r.get("hotwords") or []:
      if h in r["ref"]:
        total += 1
        hits += h.lower() in r["hyp"].lower()
  return hits / total if total else float("nan")


__all__ = ["decode_batch", "evaluate", "hotword_recall"]
