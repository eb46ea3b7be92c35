"""CTC n-best + LLM rescoring: beam search against brute force, LLM scores against the
teacher-forced forward pass, and the choice against the combined score."""

import itertools

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.inference import rescore
from fun_asr_jax.inference.transcribe import encode_audio
from fun_asr_jax.models.fun_asr import FunASR, num_audio_tokens
from fun_asr_jax.text import prompts


def random_log_probs(rng, t, v, sharp=1.0):
  x = rng.standard_normal((t, v)) * sharp
  return x - np.logaddexp.reduce(x, axis=-1, keepdims=True)


def brute_force(log_probs, blank):
  """P(labels) by summing every frame path that collapses to them."""
  t, v = log_probs.shape
  out = {}
  for path in itertools.product(range(v), repeat=t):
    labels, prev = [], None
    for c in path:
      if c != blank and c != prev:
        labels.append(c)
      prev = c
    logp = sum(log_probs[i, c] for i, c in enumerate(path))
    out[tuple(labels)] = np.logaddexp(out.get(tuple(labels), -np.inf), logp)
  return out


@pytest.mark.parametrize("blank", [0, 2])
def test_prefix_beam_search_is_exact_with_a_wide_beam(blank):
  rng = np.random.default_rng(blank)
  lp = random_log_probs(rng, 6, 3)
  exact = brute_force(lp, blank)
  found = rescore.prefix_beam_search(lp, blank, beam=len(exact) + 5, token_beam=3)
  assert {k for k, _ in found} == set(exact)
  for labels, logp in found:
    np.testing.assert_allclose(logp, exact[labels], rtol=0, atol=1e-9)
  assert [p for _, p in found] == sorted((p for _, p in found), reverse=True)


def test_prefix_beam_search_scores_equal_optax_ctc_loss():
  rng = np.random.default_rng(7)
  lp = random_log_probs(rng, 30, 6, sharp=5.0)
  for labels, logp in rescore.prefix_beam_search(lp, 5, beam=64, token_beam=6)[:3]:
    lab = np.zeros((1, 30), np.int32)
    lab[0, : len(labels)] = labels
    lab_pad = (np.arange(30) >= len(labels)).astype(np.float32)[None]
    nll = optax.ctc_loss(jnp.asarray(lp[None], jnp.float32), jnp.zeros((1, 30)),
                         jnp.asarray(lab), jnp.asarray(lab_pad), blank_id=5)
    # a pruned beam may miss some paths of a prefix: never more probable than the truth,
    # and close to it when the beam is wide
    assert logp <= -float(nll[0]) + 1e-4
    np.testing.assert_allclose(logp, -float(nll[0]), atol=0.01)


def _prompt_batch(asr, waves):
  task = prompts.task_prompt()
  layouts = [prompts.layout(asr.tokenizer, num_audio_tokens(asr.cfg, len(w)), task)
             for w in waves]
  batch = prompts.collate(layouts, asr.tokenizer.pad_id)
  batch.pop("target_mask")
  wave, lengths = audio_io.pad_batch(waves, multiple=1600)
  return {k: jnp.asarray(v) for k, v in batch.items()}, jnp.asarray(wave), jnp.asarray(lengths)


def reference_log_prob(asr, wave, text):
  """log P(text) from the model's own teacher-forced forward on the full layout."""
  lay = prompts.layout(asr.tokenizer, num_audio_tokens(asr.cfg, len(wave)),
                       prompts.task_prompt(), target=text)
  batch = {k: jnp.asarray(v) for k, v in prompts.collate([lay], asr.tokenizer.pad_id).items()}
  batch.update(waveform=jnp.asarray(wave[None]), wave_lengths=jnp.asarray([len(wave)]))
  logits = np.asarray(FunASR(asr.cfg).apply({"params": asr.params}, batch)["logits"][0],
                      np.float64)
  logp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
  toks, mask = lay.tokens, lay.target_mask
  return sum(logp[i - 1, toks[i]] for i in range(1, len(toks)) if mask[i])


def test_llm_scores_and_choice(asr, clips):
  waves = []
  for path in clips[:2]:
    x, rate = audio_io.load(path)
    waves.append(audio_io.resample(audio_io.to_mono(x), rate).astype(np.float32))
  batch, wave, lengths = _prompt_batch(asr, waves)
  enc = encode_audio(asr.params, wave, lengths, asr.cfg)
  nbest = [[("hello world", -1.0), ("", -3.0), ("yellow", -0.5)], [("one two", -2.0)]]
  texts = [t for row in nbest for t, _ in row]
  rows = [b for b, row in enumerate(nbest) for _ in row]
  ref = [reference_log_prob(asr, waves[b], t) for b, t in zip(rows, texts)]
  picked_llm = rescore.rescore(asr.cfg, asr.params, asr.tokenizer, enc["audio"], batch, nbest,
                               ctc_weight=0.0)
  best = int(np.argmax(ref[:3]))
  assert picked_llm[0]["text"] == texts[best]
  np.testing.assert_allclose(picked_llm[0]["llm"], ref[best], atol=2e-3)
  np.testing.assert_allclose(picked_llm[1]["llm"], ref[3], atol=2e-3)
  # a dominant CTC weight follows the CTC scores; a moderate one adds them to the LLM's
  assert rescore.rescore(asr.cfg, asr.params, asr.tokenizer, enc["audio"], batch, nbest,
                         ctc_weight=1e6)[0]["text"] == "yellow"
  combined = [r + 0.7 * p for r, (_, p) in zip(ref[:3], nbest[0])]
  got = rescore.rescore(asr.cfg, asr.params, asr.tokenizer, enc["audio"], batch, nbest,
                        ctc_weight=0.7)[0]
  assert got["text"] == texts[int(np.argmax(combined))]


def test_proposals_pool_label_sequences_that_read_the_same():
  class Tok:
    vocab_size = 3

    def decode(self, ids):
      return "".join("ab"[i % 2] for i in ids)  # ids 0 and 2 both read "a"

  lp = np.log(np.array([[0.5, 0.05, 0.4, 0.05]] * 1))  # blank 3
  (props,) = rescore.proposals(lp[None], np.zeros((1, 1)), Tok(), blank_id=3, beam=4)
  got = dict(props)
  np.testing.assert_allclose(np.exp(got["a"]), 0.9, rtol=1e-9)
  np.testing.assert_allclose(np.exp(got[""]), 0.05, rtol=1e-9)
