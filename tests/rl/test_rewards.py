"""In-graph units and rewards against the host path (tokenizer.decode, normalize, jiwer)."""

import random

import jax
import jax.numpy as jnp
import jiwer
import numpy as np
import pytest

from fun_asr_jax.rl import rewards as R
from fun_asr_jax.rl import units as U
from fun_asr_jax.text import normalize as norm
from fun_asr_jax.text.tokenizer import Tokenizer, train_sentencepiece

WORDS = ["hello", "World", "北京", "我们的", "meeting", "Don't", "三", "x-ray", "ＡＢＣ", ",", "。",
         "café", "zhang", "san", "的", "OK!", "１２", "naïve", "数据集", "GPU"]


def sentences(rng, n):
  return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 9))) +
          rng.choice(["", "!", "？", "…"]) for _ in range(n)]


@pytest.fixture(scope="module", params=["byte_level", "sentencepiece"])
def tok(request, tmp_path_factory):
  if request.param == "byte_level":
    return Tokenizer.byte_level()
  texts = sentences(random.Random(1), 400)
  return train_sentencepiece(texts, str(tmp_path_factory.mktemp("sp")), 300)


def encode(tok, texts, width=64):
  ids = [tok.encode(t)[:width] for t in texts]
  arr = np.zeros((len(ids), width), np.int32)
  for k, i in enumerate(ids):
    arr[k, : len(i)] = i
  return jnp.asarray(arr), jnp.asarray([len(i) for i in ids], jnp.int32), \
      [tok.decode(i) for i in ids]


def test_in_graph_accuracy_equals_one_minus_jiwer_rate(tok):
  rng = random.Random(0)
  tables = U.build_tables(tok).as_arrays()
  refs, ref_n, ref_text = encode(tok, sentences(rng, 48))
  hyps, hyp_n, hyp_text = encode(tok, sentences(rng, 48))
  f = jax.jit(lambda a, n: U.units(a, n, tables, 160)[:2])
  (ru, rn), (hu, hn) = f(refs, ref_n), f(hyps, hyp_n)
  r1, errors = jax.device_get(R.accuracy(hu, hn, ru, rn))
  scored = 0
  for k in range(48):
    r_units, h_units = norm.mixed_units(ref_text[k]), norm.mixed_units(hyp_text[k])
    assert int(rn[k]) == len(r_units) and int(hn[k]) == len(h_units)
    if not r_units:
      assert r1[k] == float(not h_units)
      continue
    m = jiwer.process_words(" ".join(r_units), " ".join(h_units))
    assert int(errors[k]) == m.substitutions + m.deletions + m.insertions
    assert r1[k] == pytest.approx(1.0 - m.wer, abs=1e-6)
    scored += 1
  assert scored > 30


def rewards_for(tok, hyps, refs, hotwords=None, noise=None, done=None, cfg=R.RewardConfig()):
  tables = U.build_tables(tok).as_arrays()
  h, hn, _ = encode(tok, hyps)
  r, rn, _ = encode(tok, refs)
  k = max(1, max(len(x) for x in (hotwords or [[]])))
  kw = np.zeros((len(hyps), k, 16), np.int32)
  kw_n = np.zeros((len(hyps), k), np.int32)
  for i, words in enumerate(hotwords or [[]] * len(hyps)):
    for j, w in enumerate(words):
      ids = tok.encode(w)
      kw[i, j, : len(ids)], kw_n[i, j] = ids, len(ids)
  noise = jnp.asarray(noise if noise is not None else [False] * len(hyps))
  done = jnp.asarray(done if done is not None else [True] * len(hyps))
  fn = jax.jit(R.compute, static_argnames=("cfg",))
  total, terms = fn(h, hn, done, r, rn, jnp.asarray(kw), jnp.asarray(kw_n), noise, tables,
                    cfg=cfg)
  return np.asarray(total), jax.device_get(terms)


def test_keyword_recall_and_precision():
  tok = Tokenizer.byte_level()
  refs = ["please call Zhang San now"] * 3 + ["nothing here"]
  hyps = ["please call zhang san now", "please call li si now", "please call", "nothing here"]
  hot = [["Zhang San", "Li Si"]] * 3 + [[]]
  _, t = rewards_for(tok, hyps, refs, hot)
  # recall, precision: (1, 1), (0, 0: li si is not in the reference), (0, 1: none claimed)
  np.testing.assert_allclose(t["keywords"], [1.0, 0.0, 0.5, 1.0])
  np.testing.assert_array_equal(t["keywords_in_ref"], [1, 1, 1, 0])


def test_hallucination_loops_and_language():
  tok = Tokenizer.byte_level()
  refs = ["", "", "one two three", "one two three", "one two three", "hello world"]
  hyps = ["", "thank you", "one two one two one two one two", "one two three",
          "one two three", "你好世界"]
  total, t = rewards_for(tok, hyps, refs, noise=[True, True, False, False, False, False],
                         done=[True, True, True, True, False, True])
  np.testing.assert_array_equal(t["hallucination"], [0, -1, -1, 0, -1, 0])
  np.testing.assert_array_equal(t["accuracy"][:2], [1.0, 0.0])  # empty refs: no NaN
  np.testing.assert_allclose(t["language"], [1, 1, 1, 1, 1, 0])
  assert np.all(np.isfinite(total))


def test_graded_hallucination_penalty_counts_units_of_text_on_silence():
  """-1 - w * units for text on a silent reference; speech references are not charged."""
  tok = Tokenizer.byte_level()
  cfg = R.RewardConfig(hallucination_per_unit=0.25)
  hyps = ["", "thank you", "thank you for watching", "one two three", "一二"]
  refs = ["", "", "", "one two three", ""]
  _, t = rewards_for(tok, hyps, refs, noise=[True, True, True, False, True], cfg=cfg)
  np.testing.assert_allclose(t["hallucination"], [0, -1.5, -2.0, 0, -1.5])


def test_dropped_utterance_penalty_charges_empty_answers_on_speech_only():
  """An empty (or punctuation-only) answer on speech costs `dropped`; on silence it is right."""
  tok = Tokenizer.byte_level()
  cfg = R.RewardConfig(dropped=0.75)
  hyps = ["", " ,. ", "one", "", "thank you", ""]
  refs = ["one two three", "hello", "one two three", "", "", "ok"]
  total, t = rewards_for(tok, hyps, refs, noise=[False, False, False, True, True, False],
                         done=[True, True, True, True, True, False], cfg=cfg)
  np.testing.assert_array_equal(t["dropped"], [1, 1, 0, 0, 0, 1])
  # the last one also never ended: the loop penalty and the dropped penalty both apply
  np.testing.assert_allclose(t["hallucination"], [-0.75, -0.75, 0, 0, -1, -1.75])
  _, plain = rewards_for(tok, hyps, refs, noise=[False, False, False, True, True, False],
                         done=[True, True, True, True, True, False])
  np.testing.assert_allclose(total - plain["accuracy"] - 0.5 * plain["keywords"]
                             - 0.2 * plain["language"], t["hallucination"], atol=1e-6)


def test_units_of_empty_and_whitespace_only_text():
  tok = Tokenizer.byte_level()
  _, t = rewards_for(tok, ["", " ,. ", "ok"], ["", "", "ok"])
  np.testing.assert_array_equal(t["ref_units"], [0, 0, 1])
  np.testing.assert_array_equal(t["accuracy"], [1.0, 1.0, 1.0])


def test_negative_weights_are_rejected_by_name():
  with pytest.raises(ValueError, match="rl.reward.keywords"):
    R.RewardConfig(keywords=-1.0).validate()
  with pytest.raises(ValueError, match="rl.reward.dropped"):
    R.RewardConfig(dropped=-0.5).validate()
