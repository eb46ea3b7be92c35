"""CTC branch: a small transformer over the encoder output, a linear layer over a CTC
vocabulary, the loss, greedy decoding and forced alignment (timestamps), all jittable.

Fun-ASR uses it as a fast first pass: its greedy text drives hotword retrieval and its
alignment gives timestamps (60 ms per SAN-M frame).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from fun_asr_jax.layers.linear import Linear
from fun_asr_jax.models.adaptor import Adaptor, AdaptorConfig

_NEG = -1e30


@dataclasses.dataclass(frozen=True)
class CTCConfig:
  """Defaults are Fun-ASR-Nano's CTC branch (SenseVoice tiktoken vocabulary)."""
  enabled: bool = True
  vocab_size: int = 60515
  blank_id: int = 60514
  decoder: AdaptorConfig = AdaptorConfig(hidden=512, num_layers=5, num_heads=8, mlp_dim=128)


class CTCHead(nn.Module):
  cfg: CTCConfig

  @nn.compact
  def __call__(self, enc, paddings, deterministic=True):  # [B, T, E] -> logits [B, T', V]
    h, paddings = Adaptor(self.cfg.decoder, name="decoder")(enc, paddings, deterministic)
    logits = Linear(self.cfg.vocab_size, ("embed", "ctc_vocab"), dtype=jnp.float32,
                    name="ctc_lo")(h.astype(jnp.float32))
    return logits, paddings


def ctc_loss(logits, paddings, labels, label_paddings, blank_id: int):
  """Per-utterance CTC negative log-likelihood `[B]` (optax; labels `[B, U]`)."""
  return optax.ctc_loss(logits, paddings, labels, label_paddings, blank_id=blank_id)


def _emissions(logits, paddings, blank_id: int):
  """Best-path labels `[B, T]` and where a label starts `[B, T]` bool (not blank, not a
  repeat of the frame before, not padding)."""
  best = jnp.argmax(logits, -1)
  valid = paddings < 0.5
  prev = jnp.pad(best, ((0, 0), (1, 0)), constant_values=-1)[:, :-1]
  return best, valid & (best != blank_id) & (best != prev)


def capped_length(frames, cap: int):
  """Frames a compressed sequence of `frames` keeps at most: ceil(frames / cap) (0 = all)."""
  return -(-frames // cap) if cap > 0 else frames


def compress(frames, paddings, logits, blank_id: int, cap: int = 0):
  """CTC compression: only the frames where the best path starts a label, in order.

  A decoder reading the encoder through these sees about one frame per token instead of
  ~4-6 mostly-blank ones per token (Tsunoo et al. 2023, "Decoder-only architecture for
  speech recognition with CTC prompts"): the alignment is the CTC branch's. Shapes stay
  static: kept frames move to the front and the rest become padding.

  `cap > 0` keeps at most `capped_length(T_i, cap)` frames of a row with T_i valid frames
  (its own count, so a row keeps the same frames in any batch) and returns
  `capped_length(T, cap)` of them: a reader of the result costs what downsampling by `cap`
  would, and labels past the cap are dropped.

  frames `[B, T, E]`, paddings `[B, T]`, logits `[B, T, V]` -> (frames `[B, T', E]`,
  paddings `[B, T']`), T' = capped_length(T, cap). No gradient flows through the choice.
  """
  _, keep = _emissions(jax.lax.stop_gradient(logits), paddings, blank_id)
  order = jnp.argsort(~keep, axis=1, stable=True)  # kept frames first, in time order
  width = capped_length(frames.shape[1], cap)
  kept = jnp.take_along_axis(frames, order[:, :width, None], axis=1)
  count = jnp.minimum(jnp.sum(keep, -1), capped_length(jnp.sum(paddings < 0.5, -1), cap))
  new_pads = (jnp.arange(width)[None] >= count[:, None]).astype(paddings.dtype)
  return kept * (1.0 - new_pads)[..., None].astype(kept.dtype), new_pads


def greedy_decode(logits, paddings, blank_id: int):
  """Best path: argmax, merge repeats, drop blanks.

  Returns:
    `(tokens [B, T], lengths [B], frames [B, T])`: tokens left-aligned (pad -1) and the
    frame at which each token starts.
  """
  best, keep = _emissions(logits, paddings, blank_id)
  pos = jnp.cumsum(keep, -1) - 1
  b, t = best.shape
  dest = jnp.where(keep, pos, t)  # dropped items go to a scratch column
  rows = jnp.arange(b)[:, None]
  tokens = jnp.full((b, t + 1), -1, best.dtype).at[rows, dest].set(best)[:, :t]
  frames = jnp.full((b, t + 1), -1, jnp.int32).at[rows, dest].set(
      jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t)))[:, :t]
  return tokens, keep.sum(-1), frames


def forced_align(log_probs, paddings, labels, label_lengths, blank_id: int):
  """CTC Viterbi alignment of known labels.

  Args:
    log_probs: `[B, T, V]` log-softmax outputs; paddings `[B, T]`.
    labels: `[B, U]` token ids; label_lengths `[B]`.

  Returns:
    `(token_index [B, T], score [B])`: per frame, the index (0..U-1) of the label it emits,
    or -1 for blank/padding; score is the best path's log-probability (-inf if none fits).
  """
  b, t, _ = log_probs.shape
  u = labels.shape[1]
  s = 2 * u + 1
  ext = jnp.full((b, s), blank_id, labels.dtype).at[:, 1::2].set(labels)  # [B, S]
  n_states = 2 * label_lengths + 1
  state = jnp.arange(s)[None]
  in_range = state < n_states[:, None]
  skip_ok = (state % 2 == 1) & (state >= 2) & (ext != jnp.roll(ext, 2, axis=1))
  emit = jnp.take_along_axis(log_probs, ext[:, None, :].repeat(t, 1), axis=2)  # [B, T, S]
  lengths = jnp.sum(paddings < 0.5, -1)

  init = jnp.where((state <= 1) & in_range, emit[:, 0], _NEG)

  def step(alpha, inputs):
    e, tt = inputs  # e: [B, S]
    stay = alpha
    one = jnp.pad(alpha, ((0, 0), (1, 0)), constant_values=_NEG)[:, :-1]
    two = jnp.where(skip_ok, jnp.pad(alpha, ((0, 0), (2, 0)), constant_values=_NEG)[:, :-2], _NEG)
    cands = jnp.stack([stay, one, two], -1)  # [B, S, 3]
    back = jnp.argmax(cands, -1)
    new = jnp.where(in_range, jnp.max(cands, -1) + e, _NEG)
    active = (tt < lengths)[:, None]
    return jnp.where(active, new, alpha), jnp.where(active, back, 0)

  alpha, backs = jax.lax.scan(step, init, (jnp.moveaxis(emit[:, 1:], 1, 0), jnp.arange(1, t)))
  last = n_states - 1
  end_vals = jnp.stack([jnp.take_along_axis(alpha, last[:, None], 1)[:, 0],
                        jnp.take_along_axis(alpha, jnp.maximum(last - 1, 0)[:, None], 1)[:, 0]])
  end_state = jnp.where(end_vals[0] >= end_vals[1], last, jnp.maximum(last - 1, 0))
  score = jnp.maximum(end_vals[0], end_vals[1])

  def back_step(st, inputs):
    bk, tt = inputs  # bk: [B, S] back-pointers used to reach frame tt
    active = tt < lengths
    prev = st - jnp.take_along_axis(bk, st[:, None], 1)[:, 0]
    out = jnp.where(tt < lengths, st, -1)
    return jnp.where(active, prev, st), out

  st0, path_rev = jax.lax.scan(back_step, end_state,
                               (backs[::-1], jnp.arange(t - 1, 0, -1)))
  path = jnp.concatenate([st0[None], path_rev[::-1]], 0).T  # [B, T] state per frame
  path = jnp.where(jnp.arange(t)[None] < lengths[:, None], path, -1)
  token_index = jnp.where((path >= 0) & (path % 2 == 1), path // 2, -1)
  return token_index, jnp.where(score < _NEG / 2, -jnp.inf, score)
