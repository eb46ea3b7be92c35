"""Shared decoder: greedy vs step-by-step argmax, sampling filters, end-token handling."""

import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fun_asr_jax import decoding
from fun_asr_jax.layers import linear
from fun_asr_jax.models.llm import LLMConfig, Qwen3, decoding_layout

CFG = LLMConfig(vocab_size=40, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                head_dim=8, mlp_dim=48)


def setup_model(seed=0):
  model = Qwen3(CFG)
  emb = jnp.zeros((1, 1, 32))
  params = model.init(jax.random.key(seed), emb, jnp.zeros((1, 1), jnp.int32), jnp.zeros((1, 1)))
  params = jax.tree.map(lambda x: x * 8 if x.ndim == 2 else x,
                        __import__("flax").linen.meta.unbox(params))  # sharper distributions
  decoder = decoding.model_decoder(model, params)
  embed = lambda t: model.apply(params, t, method=Qwen3.embed)
  return model, params, decoder, embed


def full_forward_greedy(model, params, prompt, steps):
  seq = list(prompt)
  for _ in range(steps):
    ids = jnp.asarray([seq])
    e = model.apply(params, ids, method=Qwen3.embed)
    logits, _ = model.apply(params, e, jnp.arange(len(seq))[None], jnp.zeros((1, len(seq))))
    seq.append(int(jnp.argmax(logits[0, -1])))
  return seq[len(prompt):]


def test_last_position_logits_equal_that_row_of_the_full_logits():
  model, params, _, _ = setup_model()
  e = jax.random.normal(jax.random.key(1), (2, 5, 32))
  pads = jnp.asarray([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]], jnp.float32)
  pos = jnp.broadcast_to(jnp.arange(5), (2, 5))
  full, _ = model.apply(params, e, pos, pads)
  one, _ = model.apply(params, e, pos, pads, last=jnp.asarray([4, 2]))
  assert one.shape == (2, 1, 40)
  np.testing.assert_allclose(one[:, 0], full[jnp.arange(2), jnp.asarray([4, 2])], atol=1e-6)


@pytest.mark.parametrize("variant", ["plain", "lora_remat", "bf16_cache", "untied_head",
                                     "in_major"])
def test_decoding_layout_decodes_as_the_scanned_stack(variant):
  """The decoding layout (layers unrolled, weights output-major or not: what every decoder
  runs) against the scanned stack: same sampled tokens, same log-probabilities, and the
  unrolled module's own parameter tree has exactly the converted shapes (LoRA and remat
  included)."""
  out_major = variant != "in_major"
  cfg = {"lora_remat": dataclasses.replace(CFG, lora_rank=2, remat="full"),
         "untied_head": dataclasses.replace(CFG, tie_embeddings=False)}.get(variant, CFG)
  cache_dtype = jnp.bfloat16 if variant == "bf16_cache" else jnp.float32
  model = Qwen3(cfg)
  init = lambda m: flax.linen.meta.unbox(m.init(
      jax.random.key(0), jnp.zeros((1, 1, 32)), jnp.zeros((1, 1), jnp.int32),
      jnp.zeros((1, 1))))
  params = jax.tree.map(lambda x: x * 8 if x.ndim >= 2 else x, init(model))  # sharper
  params = jax.tree_util.tree_map_with_path(  # LoRA's B starts at zero: make it count
      lambda path, x: x + 0.5 if "lora_b" in jax.tree_util.keystr(path) else x, params)
  ucfg, uparams = decoding_layout(cfg, params["params"], out_major)
  assert not ucfg.scan_layers and ucfg.out_major == out_major
  umodel, uparams = Qwen3(ucfg), {"params": uparams}
  assert jax.tree.map(np.shape, init(umodel)) == jax.tree.map(np.shape, uparams)
  head = ["lm_head"] if variant == "untied_head" else []
  assert sorted(uparams["params"]) == ["embed_tokens", "layers_0", "layers_1"] + head + ["norm"]
  q_proj = uparams["params"]["layers_1"]["q_proj"]
  layer_1 = np.asarray(params["params"]["layers"]["q_proj"]["kernel"][1])
  if out_major:  # [out, in]: the scanned stack's layer 1 kernel, transposed
    np.testing.assert_array_equal(q_proj["kernel_t"], layer_1.T)
  else:
    np.testing.assert_array_equal(q_proj["kernel"], layer_1)
  if variant == "lora_remat":
    assert "lora_a" in q_proj

  ids = jnp.asarray([[1, 2, 3, 4, 5], [7, 8, 0, 0, 0]])
  pads = jnp.asarray([[0, 0, 0, 0, 0], [0, 0, 1, 1, 1]], jnp.float32)
  embed = lambda t: model.apply(params, t, method=Qwen3.embed)
  sampling = decoding.SamplingConfig(max_new_tokens=8, temperature=1.0)
  run = lambda m, v, c: decoding.generate(decoding.model_decoder(m, v), embed, c, embed(ids),
                                          pads, sampling, jax.random.key(7),
                                          cache_dtype=cache_dtype)
  a, b = run(model, params, cfg), run(umodel, uparams, ucfg)
  np.testing.assert_array_equal(a["tokens"], b["tokens"])
  # fp32 sums in another order (weights x8, log-probs of order 1): agree to ~1e-5
  np.testing.assert_allclose(a["logprobs"], b["logprobs"], atol=1e-5, rtol=1e-5)


def test_decoding_layout_picks_the_measured_kernel_layout():
  """By default the kernel layout is the one this machine measured faster for 16 rows."""
  model = Qwen3(CFG)
  params = flax.linen.meta.unbox(model.init(jax.random.key(0), jnp.zeros((1, 1, 32)),
                                            jnp.zeros((1, 1), jnp.int32), jnp.zeros((1, 1))))
  ucfg, uparams = decoding_layout(CFG, params["params"])
  faster = linear.out_major_is_faster(16, CFG.hidden_size, CFG.mlp_dim)
  assert isinstance(faster, bool) and ucfg.out_major == faster
  assert ("kernel_t" in uparams["layers_0"]["up_proj"]) == faster


def test_greedy_matches_recomputing_the_full_sequence():
  model, params, decoder, embed = setup_model()
  prompts = [[1, 2, 3, 4, 5], [7, 8]]
  s = 5
  ids = np.zeros((2, s), np.int32)
  pads = np.ones((2, s), np.float32)
  for i, p in enumerate(prompts):
    ids[i, : len(p)], pads[i, : len(p)] = p, 0
  out = decoding.generate(decoder, embed, CFG, embed(jnp.asarray(ids)), jnp.asarray(pads),
                          decoding.SamplingConfig(max_new_tokens=6))
  for i, p in enumerate(prompts):
    assert np.asarray(out["tokens"][i]).tolist() == full_forward_greedy(model, params, p, 6)


def test_holes_in_a_prompt_decode_as_the_prompt_without_them():
  """Masked positions inside a prompt (audio slots left empty by CTC compression) are
  skipped: the same greedy tokens and log-probs as the prompt with them removed."""
  _, _, decoder, embed = setup_model()
  e = jax.random.normal(jax.random.key(3), (2, 7, 32))
  holes = np.asarray([[0, 0, 1, 1, 0, 0, 0], [0, 1, 0, 0, 1, 1, 1]], np.float32)
  greedy = decoding.SamplingConfig(max_new_tokens=6)
  got = decoding.generate(decoder, embed, CFG, e, jnp.asarray(holes), greedy)
  for i in range(2):
    keep = np.flatnonzero(holes[i] < 0.5)
    want = decoding.generate(decoder, embed, CFG, e[i:i + 1, keep], jnp.zeros((1, len(keep))),
                             greedy)
    np.testing.assert_array_equal(got["tokens"][i], want["tokens"][0])
    np.testing.assert_allclose(got["logprobs"][i], want["logprobs"][0], atol=1e-5)


def test_end_token_stops_a_row_and_lengths_exclude_it():
  model, params, decoder, embed = setup_model()
  ids = jnp.asarray([[1, 2, 3]])
  greedy = full_forward_greedy(model, params, [1, 2, 3], 6)
  eos = greedy[2]
  first = greedy.index(eos)
  out = decoding.generate(decoder, embed, CFG, embed(ids), jnp.zeros((1, 3)),
                          decoding.SamplingConfig(max_new_tokens=6, eos_ids=(eos,), pad_id=0))
  assert int(out["lengths"][0]) == first
  assert np.asarray(out["tokens"][0, :first]).tolist() == greedy[:first]
  assert (np.asarray(out["tokens"][0, first:]) == 0).all() and bool(out["done"][0])


def test_sampling_is_reproducible_and_top_k_1_is_greedy():
  _, _, decoder, embed = setup_model()
  e, pads = embed(jnp.asarray([[1, 2, 3], [4, 5, 6]])), jnp.zeros((2, 3))
  hot = decoding.SamplingConfig(max_new_tokens=8, temperature=1.5)
  a = decoding.generate(decoder, embed, CFG, e, pads, hot, jax.random.key(3))["tokens"]
  b = decoding.generate(decoder, embed, CFG, e, pads, hot, jax.random.key(3))["tokens"]
  c = decoding.generate(decoder, embed, CFG, e, pads, hot, jax.random.key(4))["tokens"]
  assert jnp.array_equal(a, b) and not jnp.array_equal(a, c)
  k1 = decoding.SamplingConfig(max_new_tokens=8, temperature=1.0, top_k=1)
  greedy = decoding.SamplingConfig(max_new_tokens=8)
  assert jnp.array_equal(decoding.generate(decoder, embed, CFG, e, pads, k1, jax.random.key(5))["tokens"],
                         decoding.generate(decoder, embed, CFG, e, pads, greedy)["tokens"])


def test_top_p_keeps_the_smallest_sufficient_set():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
  cfg = decoding.SamplingConfig(temperature=1.0, top_p=0.8)
  kept = np.isfinite(np.asarray(decoding._filter_logits(logits, cfg)))[0]
  assert kept.tolist() == [True, True, False, False]
  cfg = decoding.SamplingConfig(temperature=1.0, top_p=0.81)
  kept = np.isfinite(np.asarray(decoding._filter_logits(logits, cfg)))[0]
  assert kept.tolist() == [True, True, True, False]


def scripted(scripts, vocab=40):
  """A decoder whose argmax follows `scripts[b]` step by step (the loop guard's input)."""
  table = jax.nn.one_hot(jnp.asarray(scripts), vocab) * 10.0  # [B, T, V]

  def decoder(embeds, positions, paddings, cache, index, last=None):
    s = embeds.shape[1]
    step = jnp.clip(index - 3 + s, 0, table.shape[1] - 1)  # prompt length 3
    rows = 1 if last is not None else s
    return jnp.broadcast_to(table[:, step][:, None], (len(scripts), rows, vocab)), cache
  return decoder


def guard_reference(seq, eos, repeats, max_unit):
  """NumPy/Python statement of the rule: emit tokens one by one; stop at the end token, or
  when the output ends in more than `repeats` copies of a unit of <= max_unit tokens (the
  shortest such unit), keeping one copy."""
  out = []
  for t in seq:
    if t == eos:
      return out, False
    out.append(t)
    for n in range(1, max_unit + 1):
      tail = out[-n * (repeats + 1):]
      if len(tail) == n * (repeats + 1) and all(tail[i] == tail[i % n] for i in range(len(tail))):
        return out[: len(out) - n * repeats], True
  return out, False


def test_loop_guard_matches_the_rule_on_random_and_looping_rows():
  rng = np.random.default_rng(0)
  eos, n_new = 39, 24
  scripts = [[5, 6, 7, 8, 8, 8, 8, 8, 8, 8, 9] + [8] * 13,  # 1-token loop after real text
             [3, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5] + [1] * 11,  # 2-token loop
             [2, 2, 2, 2, 3, 2, 2, 2, 2, eos] + [0] * 14,  # four copies: allowed
             [1, 2, 3] * 8,  # 3-token loop
             [1, 2, 3, 4, 5, 6, 7, 8] * 3]  # 8-token unit, 3 copies: allowed
  scripts += [rng.integers(1, 4, n_new).tolist() for _ in range(11)]  # random repeats
  e = jnp.zeros((len(scripts), 3, 8))
  cfg = decoding.SamplingConfig(max_new_tokens=n_new, eos_ids=(eos,), loop_repeats=4,
                                loop_unit=8)
  out = jax.device_get(decoding.generate(scripted(scripts), lambda t: jnp.zeros(t.shape + (8,)),
                                         CFG, e, jnp.zeros(e.shape[:2]), cfg))
  for i, seq in enumerate(scripts):
    want, looped = guard_reference(seq, eos, 4, 8)
    assert out["tokens"][i, : out["lengths"][i]].tolist() == want, (i, seq)
    assert bool(out["looped"][i]) == looped, i
    assert (out["tokens"][i, len(want):] == 0).all() and (out["logprobs"][i, len(want) + 1:] == 0).all()
  assert out["looped"][:2].all() and out["looped"][3] and not out["looped"][[2, 4]].any()
  off = jax.device_get(decoding.generate(scripted(scripts), lambda t: jnp.zeros(t.shape + (8,)),
                                         CFG, e, jnp.zeros(e.shape[:2]),
                                         dataclasses.replace(cfg, loop_repeats=0)))
  assert off["lengths"][0] == n_new and not off["looped"].any()  # off: the loop runs on


def biased_greedy_reference(step_logits, hotwords, bonus, eos):
  """Greedy over per-step logits `[T, V]` with the biasing rule stated plainly: before each
  choice, `bonus` goes to the next token of every hotword (its first token when the output
  does not end in a proper prefix of it); a completed or broken match starts over."""
  out, match = [], [0] * len(hotwords)
  for logits in step_logits:
    scores = logits.copy()
    for h, m in zip(hotwords, match):
      if h:
        scores[h[m]] = logits[h[m]] + bonus
    tok = int(np.argmax(scores))
    if tok == eos:
      break
    out.append(tok)
    for i, h in enumerate(hotwords):
      if h and tok == h[match[i]]:
        match[i] += 1
      else:
        match[i] = 1 if h and tok == h[0] else 0
      if h and match[i] == len(h):
        match[i] = 0
  return out


def test_hotword_bias_matches_the_rule_and_leaves_logprobs_unbiased():
  rng = np.random.default_rng(1)
  b, t, v, eos = 6, 20, 12, 11
  table = rng.uniform(0, 1, (b, t + 1, v)).astype(np.float32)
  table[:, :, eos] -= 0.3  # ends happen, not at once
  hot = [[[3, 4, 5], [7], []], [[2, 2, 9], [5, 6, 5, 6], [1, 3]], [[], [], []],
         [[4, 8, 1, 0], [0, 4], [9]], [[6, 6, 6], [10, 2], []], [[1], [2], [3]]]
  bias = np.full((b, 3, 4), -1, np.int32)
  for i, row in enumerate(hot):
    for h, toks in enumerate(row):
      bias[i, h, : len(toks)] = toks

  def decoder(embeds, positions, paddings, cache, index, last=None):
    step = jnp.clip(index - 3 + embeds.shape[1], 0, t)
    rows = 1 if last is not None else embeds.shape[1]
    return jnp.broadcast_to(jnp.asarray(table)[:, step][:, None], (b, rows, v)), cache

  embed = lambda tok: jnp.zeros(tok.shape + (8,))
  e = jnp.zeros((b, 3, 8))
  for bonus in (0.0, 0.35, 2.0):
    cfg = decoding.SamplingConfig(max_new_tokens=t, eos_ids=(eos,), hotword_bonus=bonus)
    out = jax.device_get(decoding.generate(decoder, embed, CFG, e, jnp.zeros((b, 3)), cfg,
                                           bias_tokens=bias))
    for i in range(b):
      want = biased_greedy_reference(table[i, :t], hot[i], bonus, eos)
      assert out["tokens"][i, : out["lengths"][i]].tolist() == want, (bonus, i)
      logp = table[i] - np.logaddexp.reduce(table[i], -1, keepdims=True)
      np.testing.assert_allclose(out["logprobs"][i, : len(want)],
                                 logp[np.arange(len(want)), want], rtol=1e-5, atol=1e-6)
  strong = jax.device_get(decoding.generate(
      decoder, embed, CFG, e, jnp.zeros((b, 3)),
      decoding.SamplingConfig(max_new_tokens=t, eos_ids=(eos,), hotword_bonus=2.0),
      bias_tokens=bias))
  plain = jax.device_get(decoding.generate(
      decoder, embed, CFG, e, jnp.zeros((b, 3)),
      decoding.SamplingConfig(max_new_tokens=t, eos_ids=(eos,)), bias_tokens=bias))
  # a bonus above the logits' spread: row 5 writes only its one-token hotwords, to the end;
  # the row without hotwords is untouched
  assert set(strong["tokens"][5].tolist()) <= {1, 2, 3} and strong["lengths"][5] == t
  assert strong["tokens"][2].tolist() == plain["tokens"][2].tolist()
