"""GRPO rewards, in-graph: accuracy, keywords, hallucination, language match.

Every term is computed from token ids with `units` (Latin words and CJK characters, as the
host's mixed error rate counts them), so sampling, scoring and the update stay in one
jitted program.

    R1 accuracy      1 - (S + D + I) / N over units; for an empty reference, 1 when the
                     hypothesis is empty and 0 otherwise
    R2 keywords      mean of recall (reference hotwords found in the hypothesis) and
                     precision (hypothesis hotwords that are in the reference); 1 when
                     there are none of either
    R3 hallucination -1 for text on a noise-only or silent reference, -1 for a loop (an
                     n-gram of units repeated `loop_repeats` times in a row, or no end token);
                     optionally `hallucination_per_unit` more per unit of such text, so a
                     group whose samples all hallucinate still ranks them by length; and
                     `dropped` for an empty hypothesis on speech (the mirror failure: what
                     the noise clips teach, stopping at once, spreads to speech the policy
                     is unsure of, and R1 alone charges an empty answer no more than a poor
                     one)
    R4 language      1 - |CJK share of hypothesis units - CJK share of reference units|;
                     1 for an empty hypothesis (R1 already charges the deletion)
"""

import dataclasses

import jax
import jax.numpy as jnp

from fun_asr_jax.rl import units as units_lib


@dataclasses.dataclass(frozen=True)
class RewardConfig:
  accuracy: float = 1.0
  keywords: float = 0.5
  hallucination: float = 1.0
  language: float = 0.2
  hallucination_per_unit: float = 0.0  # extra R3 penalty per unit of text on silence
  dropped: float = 0.0  # R3 penalty for an empty hypothesis on a speech reference
  loop_max_ngram: int = 4
  loop_repeats: int = 4
  max_units: int = 0  # 0 -> 4 x the sampled length

  def validate(self, prefix: str = "rl.reward"):
    for f in ("accuracy", "keywords", "hallucination", "language", "hallucination_per_unit",
              "dropped"):
      if getattr(self, f) < 0:
        raise ValueError(f"config.{prefix}.{f}={getattr(self, f)}: reward weights must be "
                         ">= 0 (the hallucination term is already a penalty)")
    if self.loop_repeats < 2 or self.loop_max_ngram < 1:
      raise ValueError(f"config.{prefix}.loop_repeats must be >= 2 and loop_max_ngram >= 1")


def accuracy(hyp, hyp_n, ref, ref_n):
  """R1 `[N]` and the edit counts `[N]`."""
  errors = units_lib.edit_distance(hyp, hyp_n, ref, ref_n)
  r1 = jnp.where(ref_n > 0, 1.0 - errors / jnp.maximum(ref_n, 1),
                 (hyp_n == 0).astype(jnp.float32))
  return r1, errors


def contains(seq, seq_n, pats, pat_n):
  """Whether each pattern occurs contiguously: seq `[N, U]`, pats `[N, K, M]` -> `[N, K]`."""
  n, u = seq.shape
  m = pats.shape[-1]
  idx = jnp.arange(u)[:, None] + jnp.arange(m)[None]  # [U, M]: window start + offset
  padded = jnp.concatenate([seq, jnp.full((n, m), -2, seq.dtype)], 1)
  windows = jnp.where(idx[None] < seq_n[:, None, None], padded[:, idx], -2)  # [N, U, M]
  offset_ok = jnp.arange(m)[None, None] >= pat_n[..., None]  # offsets past the pattern
  eq = (windows[:, None] == pats[:, :, None]) | offset_ok[:, :, None]  # [N, K, U, M]
  return jnp.any(jnp.all(eq, -1), -1) & (pat_n > 0)


def keywords(hyp, hyp_n, ref, ref_n, kw, kw_n):
  """R2 `[N]` plus (recall hits, in-reference count, precision hits, in-hypothesis count)."""
  in_ref = contains(ref, ref_n, kw, kw_n)
  in_hyp = contains(hyp, hyp_n, kw, kw_n)
  n_ref, n_hyp = in_ref.sum(-1), in_hyp.sum(-1)
  hits = (in_ref & in_hyp).sum(-1)
  recall = jnp.where(n_ref > 0, hits / jnp.maximum(n_ref, 1), 1.0)
  precision = jnp.where(n_hyp > 0, hits / jnp.maximum(n_hyp, 1), 1.0)
  return 0.5 * (recall + precision), (hits, n_ref, hits, n_hyp)


def has_loop(seq, seq_n, max_ngram: int, repeats: int):
  """`[N]` True where some n-gram (n <= max_ngram) repeats `repeats` times back to back."""
  n, u = seq.shape
  pos = jnp.arange(u)[None]
  found = jnp.zeros((n,), bool)
  for g in range(1, max_ngram + 1):
    span = g * repeats
    if span > u:
      break
    # unit i equals unit i + g for every i in a window of (repeats - 1) * g positions
    shifted = jnp.concatenate([seq[:, g:], jnp.full((n, g), -3, seq.dtype)], 1)
    same = (seq == shifted) & (pos + g < seq_n[:, None])
    need = (repeats - 1) * g
    run = jax.lax.associative_scan(  # run length of consecutive `same`
        lambda x, y: (x[0] * y[0], x[1] * y[0] + y[1]),
        (same.astype(jnp.int32), same.astype(jnp.int32)), axis=1)[1]
    found = found | jnp.any(run >= need, -1)
  return found


def compute(hyp_tokens, hyp_len, done, ref_tokens, ref_len, kw_tokens, kw_len, is_noise,
            tables: dict, cfg: RewardConfig):
  """Rewards for sampled hypotheses.

  Args:
    hyp_tokens: `[N, T]` sampled ids (end token excluded), `hyp_len [N]`, `done [N]`
      (emitted an end token).
    ref_tokens: `[N, R]` reference ids, `ref_len [N]`.
    kw_tokens: `[N, K, H]` hotword ids, `kw_len [N, K]` (0 = no hotword).
    is_noise: `[N]` bool, noise-only or silent reference.

  Returns:
    (total `[N]`, dict of per-term `[N]` arrays).
  """
  max_units = cfg.max_units or 4 * hyp_tokens.shape[1]
  hyp, hyp_n, hyp_kind = units_lib.units(hyp_tokens, hyp_len, tables, max_units)
  ref, ref_n, ref_kind = units_lib.units(ref_tokens, ref_len, tables, 4 * ref_tokens.shape[1])
  n, k, h = kw_tokens.shape
  kw, kw_n, _ = units_lib.units(kw_tokens.reshape(n * k, h), kw_len.reshape(-1), tables, 2 * h)
  kw, kw_n = kw.reshape(n, k, -1), kw_n.reshape(n, k)

  r1, errors = accuracy(hyp, hyp_n, ref, ref_n)
  r2, (hits, n_ref_kw, _, n_hyp_kw) = keywords(hyp, hyp_n, ref, ref_n, kw, kw_n)
  silent_ref = is_noise | (ref_n == 0)
  loop = has_loop(hyp, hyp_n, cfg.loop_max_ngram, cfg.loop_repeats) | ~done
  hallucinated = silent_ref & (hyp_n > 0)
  r3 = -(hallucinated | loop).astype(jnp.float32)
  r3 = r3 - cfg.hallucination_per_unit * jnp.where(hallucinated, hyp_n, 0).astype(jnp.float32)
  dropped = ~silent_ref & (hyp_n == 0)
  r3 = r3 - cfg.dropped * dropped.astype(jnp.float32)
  share = lambda kind, num: kind["cjk"] / jnp.maximum(num, 1)
  r4 = jnp.where(hyp_n > 0, 1.0 - jnp.abs(share(hyp_kind, hyp_n) - share(ref_kind, ref_n)), 1.0)
  total = cfg.accuracy * r1 + cfg.keywords * r2 + cfg.hallucination * r3 + cfg.language * r4
  terms = {"accuracy": r1, "keywords": r2, "hallucination": r3, "language": r4,
           "errors": errors.astype(jnp.float32), "ref_units": ref_n.astype(jnp.float32),
           "silent_ref": silent_ref.astype(jnp.float32),
           "hallucinated": hallucinated.astype(jnp.float32), "loop": loop.astype(jnp.float32),
           "dropped": dropped.astype(jnp.float32),
           "keyword_hits": hits.astype(jnp.float32),
           "keywords_in_ref": n_ref_kw.astype(jnp.float32),
           "keywords_in_hyp": n_hyp_kw.astype(jnp.float32)}
  return total, terms
