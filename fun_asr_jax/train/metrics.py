"""Scoring (WER / CER / MER with jiwer after normalisation) and metric writers
(console, JSONL, TensorBoard event files via tensorboardX, no TensorFlow)."""

import json
import os
import time

import jiwer
import numpy as np
from absl import logging

from fun_asr_jax.text import normalize as norm


def _join_cjk(text: str) -> str:
  """Normalised text with CJK characters joined into runs (one word per run)."""
  out, prev_cjk = [], False
  for tok in text.split():
    is_cjk = norm.has_cjk(tok) and len(tok) == 1
    if is_cjk and prev_cjk:
      out[-1] += tok
    else:
      out.append(tok)
    prev_cjk = is_cjk
  return " ".join(out)


def error_rates(refs: list[str], hyps: list[str]) -> dict:
  """WER, CER, MER (+ S/D/I) over non-empty references; hallucination on empty ones.

  MER counts CJK characters and Latin words as units (code-switching); CER counts
  characters without spaces; WER counts Latin words and CJK runs.
  """
  pairs = [(r, h) for r, h in zip(refs, hyps) if norm.normalize(r)]
  empty = [(r, h) for r, h in zip(refs, hyps) if not norm.normalize(r)]
  out = {"num_utterances": len(refs), "num_scored": len(pairs),
         "num_empty_refs": len(empty),
         "hallucination_rate": (float(np.mean([bool(norm.normalize(h)) for _, h in empty]))
                                if empty else 0.0)}
  if not pairs:
    out.update(wer=0.0, cer=0.0, mer=0.0, substitutions=0, deletions=0, insertions=0, hits=0)
    return out
  r_units = [" ".join(norm.mixed_units(r)) for r, _ in pairs]
  h_units = [" ".join(norm.mixed_units(h)) for _, h in pairs]
  m = jiwer.process_words(r_units, h_units)
  out.update(mer=float(m.wer), substitutions=int(m.substitutions),
             deletions=int(m.deletions), insertions=int(m.insertions), hits=int(m.hits))
  out["wer"] = float(jiwer.wer([_join_cjk(norm.normalize(r)) for r, _ in pairs],
                               [_join_cjk(norm.normalize(h)) for _, h in pairs]))
  r_chars = [norm.normalize(r).replace(" ", "") for r, _ in pairs]
  h_chars = [norm.normalize(h).replace(" ", "") for _, h in pairs]
  out["cer"] = float(jiwer.cer(r_chars, h_chars))
  return out


class MetricWriter:
  """Writes scalars to the console, `metrics.jsonl` and TensorBoard (process 0 only)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
    except ImportError:
      logging.warning("tensorboardX is not installed: no TensorBoard event files")

  def write(self, step: int, scalars: dict, prefix: str = "train"):
    if not self.enabled:
      return
    clean = {k: float(v) for k, v in scalars.items() if np.ndim(v) == 0}
    self._jsonl.write(json.dumps({"step": int(step), "time": time.time(), "split": prefix,
                                  **clean}) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in clean.items():
        self._tb.add_scalar(f"{prefix}/{k}", v, int(step))
      self._tb.flush()

  def close(self):
    if self._jsonl:
      self._jsonl.close()
    if self._tb:
      self._tb.close()


def progress_line(step: int, total: int, m: dict, steps_per_s: float, eta_s: float) -> str:
  keys = [k for k in ("loss", "llm_loss", "llm_acc", "ctc_loss", "bestrq_loss", "bestrq_acc")
          if k in m]
  parts = [f"step {step}/{total}"] + [f"{k} {float(m[k]):.4f}" for k in keys]
  parts.append(f"lr {float(m.get('lr', 0)):.2e}")
  parts.append(f"{steps_per_s:.2f} steps/s")
  for k, fmt in (("audio_hours_per_s", "{:.4f} audio h/s"), ("tokens_per_s", "{:.0f} tok/s"),
                 ("mfu", "MFU {:.1%}")):
    if k in m:
      parts.append(fmt.format(float(m[k])))
  parts.append(f"ETA {eta_s / 60:.1f} min")
  return " | ".join(parts)
