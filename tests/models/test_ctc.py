"""CTC branch: loss, greedy decode and forced alignment against NumPy brute force / torch."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fun_asr_jax.models import ctc


def brute_force_alignment(logp, labels, blank):
  """Best CTC path by enumerating every frame labelling that collapses to `labels`."""
  t, v = logp.shape
  best, best_path = -np.inf, None
  for path in itertools.product(range(v), repeat=t):
    collapsed = [p for i, p in enumerate(path) if p != blank and (i == 0 or p != path[i - 1])]
    if collapsed != list(labels):
      continue
    score = sum(logp[i, p] for i, p in enumerate(path))
    if score > best:
      best, best_path = score, path
  return best, best_path


def token_index_of_path(path, blank):
  """Frame -> label index (or -1) for a frame labelling."""
  out, k = [], -1
  for i, p in enumerate(path):
    if p == blank:
      out.append(-1)
      continue
    if i == 0 or p != path[i - 1] or (i > 0 and out[-1] == -1):
      k += 1
    out.append(k)
  return out


def test_forced_align_matches_brute_force():
  rng = np.random.RandomState(0)
  blank = 3
  cases = [(6, [0, 1]), (5, [2, 2]), (7, [1, 0, 1]), (4, [0])]
  t_max, u_max = 7, 3
  logits = rng.randn(len(cases), t_max, 4).astype(np.float32) * 2
  logp = np.asarray(jax.nn.log_softmax(logits, -1))
  pads = np.ones((len(cases), t_max), np.float32)
  labels = np.zeros((len(cases), u_max), np.int32)
  lens = np.zeros(len(cases), np.int32)
  for i, (t, lab) in enumerate(cases):
    pads[i, :t] = 0
    labels[i, : len(lab)] = lab
    lens[i] = len(lab)
  idx, score = jax.jit(ctc.forced_align, static_argnums=4)(
      jnp.asarray(logp), jnp.asarray(pads), jnp.asarray(labels), jnp.asarray(lens), blank)
  for i, (t, lab) in enumerate(cases):
    ref_score, ref_path = brute_force_alignment(logp[i, :t], lab, blank)
    assert abs(float(score[i]) - ref_score) < 1e-4
    assert list(np.asarray(idx[i, :t])) == token_index_of_path(ref_path, blank)
    assert (np.asarray(idx[i, t:]) == -1).all()


def test_greedy_decode_collapses_and_drops_blanks():
  blank = 0
  best = np.array([[0, 2, 2, 0, 2, 3, 3, 1], [1, 1, 1, 0, 0, 0, 0, 0]])
  logits = np.eye(4)[best].astype(np.float32)
  pads = np.array([[0] * 8, [0] * 3 + [1] * 5], np.float32)
  toks, lens, frames = ctc.greedy_decode(jnp.asarray(logits), jnp.asarray(pads), blank)
  assert list(np.asarray(lens)) == [4, 1]
  assert list(np.asarray(toks[0, :4])) == [2, 2, 3, 1]
  assert list(np.asarray(frames[0, :4])) == [1, 4, 5, 7]
  assert list(np.asarray(toks[1, :1])) == [1] and (np.asarray(toks[1, 1:]) == -1).all()


def test_ctc_loss_matches_torch():
  torch = pytest.importorskip("torch")
  rng = np.random.RandomState(1)
  b, t, v, u = 3, 12, 6, 4
  logits = rng.randn(b, t, v).astype(np.float32)
  t_lens, u_lens = np.array([12, 9, 7]), np.array([4, 2, 3])
  labels = rng.randint(1, v, (b, u)).astype(np.int32)
  pads = (np.arange(t)[None] >= t_lens[:, None]).astype(np.float32)
  lpads = (np.arange(u)[None] >= u_lens[:, None]).astype(np.float32)
  ours = ctc.ctc_loss(jnp.asarray(logits), jnp.asarray(pads), jnp.asarray(labels),
                      jnp.asarray(lpads), blank_id=0)
  ref = torch.nn.functional.ctc_loss(
      torch.log_softmax(torch.tensor(logits), -1).transpose(0, 1), torch.tensor(labels),
      torch.tensor(t_lens), torch.tensor(u_lens), blank=0, reduction="none")
  np.testing.assert_allclose(np.asarray(ours), ref.numpy(), rtol=1e-4, atol=1e-4)


def test_compress_keeps_the_frames_where_labels_start_in_order():
  """Against a loop over frames: keep frame t when its argmax is not blank, differs from
  frame t-1's and t is not padding; kept frames first, zeros and padding after."""
  rng = np.random.RandomState(3)
  b, t, v, e, blank = 3, 12, 5, 4, 4
  logits = rng.randn(b, t, v).astype(np.float32)
  logits[..., blank] += 0.8  # blanks common, so runs and gaps both occur
  logits[1, :] = -5.0
  logits[1, :, blank] = 5.0  # all blank: nothing kept
  frames = rng.randn(b, t, e).astype(np.float32)
  lengths = np.array([12, 7, 9])
  pads = (np.arange(t)[None] >= lengths[:, None]).astype(np.float32)
  got, got_pads = ctc.compress(jnp.asarray(frames), jnp.asarray(pads), jnp.asarray(logits),
                               blank)
  for i in range(b):
    best = logits[i].argmax(-1)
    kept = [s for s in range(lengths[i])
            if best[s] != blank and (s == 0 or best[s] != best[s - 1])]
    want = np.zeros((t, e), np.float32)
    want[: len(kept)] = frames[i, kept]
    np.testing.assert_array_equal(np.asarray(got[i]), want)
    np.testing.assert_array_equal(np.asarray(got_pads[i]), np.arange(t) >= len(kept))
  assert np.asarray(got_pads[1]).all()
  # gradients reach the kept frames only
  grad = jax.grad(lambda f: jnp.sum(ctc.compress(f, jnp.asarray(pads), jnp.asarray(logits),
                                                 blank)[0]))(jnp.asarray(frames))
  assert (np.asarray(grad)[1] == 0).all() and np.asarray(grad)[0].any()
