"""Word timestamps: forced alignment of known text to CTC posteriors, and grouping into words."""

import jax.numpy as jnp
import numpy as np

from fun_asr_jax.inference.asr import word_timestamps
from fun_asr_jax.inference.transcribe import align_tokens
from fun_asr_jax.text.tokenizer import Tokenizer

BLANK = 9


def peaky_log_probs(t: int, peaks: dict[int, int], vocab: int = 10):
  """Posteriors that are blank everywhere except `{frame: token}`; the alignment is obvious."""
  p = np.full((t, vocab), 0.01 / (vocab - 1), np.float32)
  p[:, BLANK] = 0.99
  for frame, tok in peaks.items():
    p[frame] = 0.01 / (vocab - 1)
    p[frame, tok] = 0.99
  return np.log(p)


def test_align_tokens_finds_the_spikes_and_reports_misfits():
  t = 20
  rows = [(peaky_log_probs(t, {2: 5, 6: 7, 7: 7, 11: 7, 15: 3}), [5, 7, 7, 3], t),
          (peaky_log_probs(t, {1: 4}), [4], 12),  # 8 padded frames
          (peaky_log_probs(t, {}), [1, 2, 3, 4, 5, 6], 5)]  # 6 tokens cannot fit 5 frames
  logp = np.stack([r[0] for r in rows])
  pads = np.stack([(np.arange(t) >= r[2]).astype(np.float32) for r in rows])
  labels = np.zeros((3, 8), np.int32)
  for i, r in enumerate(rows):
    labels[i, : len(r[1])] = r[1]
  starts, ends, ok = align_tokens(jnp.asarray(logp), jnp.asarray(pads), jnp.asarray(labels),
                                  jnp.asarray([4, 1, 6], jnp.int32), blank_id=BLANK)
  starts, ends, ok = np.asarray(starts), np.asarray(ends), np.asarray(ok)
  # "7 7" needs a blank between the two 7s: frames 6-7 are one token, 11 the second
  assert starts[0, :4].tolist() == [2, 6, 11, 15] and ends[0, :4].tolist() == [3, 8, 12, 16]
  assert starts[1, 0] == 1 and ends[1, 0] == 2
  assert ok.tolist() == [True, True, False]


def test_word_timestamps_group_tokens_into_words():
  tok = Tokenizer.byte_level()
  text = "hi big 天气"
  ids = tok.encode(text)
  # byte-level: one token per byte; "天" and "气" are three bytes each
  pieces = [tok.decode(ids[: i + 1]) for i in range(len(ids))]
  assert pieces[-1] == text
  starts = list(range(0, 2 * len(ids), 2))  # token i starts at frame 2i
  words = word_timestamps(tok, ids, starts, last_end=2 * len(ids) + 3, seconds_per_frame=0.04)
  assert [w["text"] for w in words] == ["hi", "big", "天", "气"]
  # each word starts at its first token's frame and ends where the next word starts
  # byte tokens: h i _ b i g _ 天(3) 气(3); a word starts at its first character's token
  first = [0, 3, 7, 10]
  assert [w["start"] for w in words] == [round(2 * k * 0.04, 3) for k in first]
  assert [w["end"] for w in words[:-1]] == [w["start"] for w in words[1:]]
  assert words[-1]["end"] == round((2 * len(ids) + 3) * 0.04, 3)
