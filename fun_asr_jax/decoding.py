"""Autoregressive decoding with the KV cache, shared by eval, inference and GRPO rollouts.

One jittable function: prefill the right-padded prompt batch (audio already spliced into
the embeddings), then a `lax.while_loop` that emits one token per row per step until every
row has produced an end token or `max_new_tokens` is reached. Greedy when temperature is 0,
otherwise temperature / top-k / top-p sampling from the given rng. An optional loop guard
stops a row whose last tokens are one short unit repeated many times (the looping failure
LLM recognisers are known for) and keeps a single copy of the unit; optional hotword
biasing adds a bonus to the next token of each listed hotword before the choice.

    prompt_embeds [B, S, D], prompt_paddings [B, S]
      -> tokens [B, max_new_tokens] (pad_id after the end), lengths [B] (end token excluded)
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from fun_asr_jax.models.llm import LLMConfig, init_cache, last_index
from fun_asr_jax.models.llm import positions as llm_positions


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  max_new_tokens: int = 128
  temperature: float = 0.0  # 0 = greedy
  top_k: int = 0  # 0 = off
  top_p: float = 1.0
  eos_ids: tuple[int, ...] = ()
  pad_id: int = 0
  # Loop guard: a unit of 1..loop_unit tokens occurring more than loop_repeats times in a
  # row ends the row, keeping one copy. 0 = off (GRPO samples must stay the policy's own).
  loop_repeats: int = 0
  loop_unit: int = 8
  # Hotword biasing: added to the logit of the next token of each listed hotword (its first
  # token, or the one that continues a hotword the output is in the middle of). 0 = off.
  hotword_bonus: float = 0.0


def greedy(tokenizer, max_new_tokens: int, loop_repeats: int = 4,
           hotword_bonus: float = 0.0) -> SamplingConfig:
  """The transcription default: greedy, the loop guard on (a unit 5 times in a row is a
  loop; a real utterance rarely says the same word or phrase five times running)."""
  return SamplingConfig(max_new_tokens=max_new_tokens, eos_ids=(tokenizer.eos_id,),
                        pad_id=tokenizer.pad_id, loop_repeats=loop_repeats,
                        hotword_bonus=hotword_bonus)


def model_decoder(model, variables, method=None):
  """`generate`'s decoder from a Flax module: Qwen3 itself, or FunASR with
  `method=FunASR.decoder` (embeddings in, logits and the updated cache out)."""
  def decoder(embeds, positions, paddings, cache, index, last=None):
    return model.apply(variables, embeds, positions, paddings, cache=cache, index=index,
                       last=last, method=method)
  return decoder


def _filter_logits(logits, cfg: SamplingConfig):
  """Temperature, top-k and nucleus filtering of `[B, V]` fp32 logits."""
  logits = logits / cfg.temperature
  if cfg.top_k > 0:
    kth = jax.lax.top_k(logits, cfg.top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if cfg.top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    cum = jnp.cumsum(probs, axis=-1)
    # keep the smallest prefix whose mass reaches top_p (always at least one token)
    cutoff_idx = jnp.sum(cum - probs < cfg.top_p, axis=-1, keepdims=True) - 1
    cutoff = jnp.take_along_axis(sorted_logits, cutoff_idx, axis=-1)
    logits = jnp.where(logits < cutoff, -jnp.inf, logits)
  return logits


def choose(logits, cfg: SamplingConfig, rng):
  """Next token `[B]` from last-position logits `[B, V]`."""
  if cfg.temperature <= 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  return jax.random.categorical(rng, _filter_logits(logits, cfg), axis=-1).astype(jnp.int32)


def loop_unit(tokens, step, cfg: SamplingConfig):
  """Length `[B]` of the shortest unit repeated more than `loop_repeats` times at the end of
  `tokens[:, :step + 1]` (0 where none): position t-k equals t-k-n for k < n * repeats."""
  found = jnp.zeros(tokens.shape[:1], jnp.int32)
  for n in range(cfg.loop_unit, 0, -1):  # the shortest unit wins
    back = step - jnp.arange(n * cfg.loop_repeats)  # [n * R]
    same = tokens[:, jnp.maximum(back, 0)] == tokens[:, jnp.maximum(back - n, 0)]
    hit = jnp.all(same, axis=1) & (step + 1 >= n * (cfg.loop_repeats + 1))
    found = jnp.where(hit, n, found)
  return found


def _next_tokens(bias_tokens, match):  # [B, H, L], [B, H] -> [B, H] (-1: none)
  return jnp.take_along_axis(bias_tokens, match[..., None], axis=2)[..., 0]


def bias_logits(logits, bias_tokens, match, bonus: float):
  """Contextual biasing: `bonus` on the next token of each hotword.

  logits `[B, V]`; bias_tokens `[B, H, L]` (hotword token ids, -1 padding; an all -1 row is
  no hotword); match `[B, H]`: how many of its tokens the output currently ends with.
  """
  nxt = _next_tokens(bias_tokens, match)
  rows = jnp.arange(logits.shape[0])[:, None]
  boost = jnp.zeros_like(logits).at[rows, jnp.maximum(nxt, 0)].max(
      jnp.where(nxt >= 0, bonus, 0.0))
  return logits + boost


def advance_match(bias_tokens, match, tok):
  """Hotword prefix lengths `[B, H]` after emitting `tok [B]`: one more where `tok` continues
  a hotword, else 1 where it starts one, else 0; a completed hotword starts over."""
  nxt = _next_tokens(bias_tokens, match)
  first = bias_tokens[..., 0]
  match = jnp.where((nxt >= 0) & (nxt == tok[:, None]), match + 1,
                    jnp.where((first >= 0) & (first == tok[:, None]), 1, 0))
  length = jnp.sum(bias_tokens >= 0, axis=2)
  return jnp.where(match >= length, 0, match)


def generate(decoder: Callable, embed: Callable, llm_cfg: LLMConfig, prompt_embeds,
             prompt_paddings, cfg: SamplingConfig, rng=None, cache_dtype=jnp.float32,
             bias_tokens=None):
  """Decodes continuations of a prompt batch.

  Args:
    decoder: `(embeds, positions, paddings, cache, index, last=None) -> (logits, cache)`,
      e.g. a partial of `FunASR.apply(..., method=FunASR.decoder)` (`last [B]`: logits at
      that position only, `[B, 1, V]`), preferably of the `fun_asr.decoding_layout` model.
    embed: `tokens [B, 1] -> [B, 1, D]`.
    llm_cfg: the decoder's geometry (for the cache).
    prompt_embeds: `[B, S, D]`; prompt_paddings `[B, S]` (right padding; holes inside a
      prompt, such as audio slots left empty, are skipped).
    cfg: sampling options; rng: PRNG key (needed when temperature > 0).
    bias_tokens: `[B, H, L]` hotword token ids per row (-1 padding) for
      `cfg.hotword_bonus`; the logprobs stay those of the unbiased distribution.

  Returns:
    dict: `tokens [B, N]`, `lengths [B]`, `logprobs [B, N]` (of the chosen tokens under the
    unfiltered distribution at temperature 1; what GRPO needs), `done [B]`, `looped [B]`
    (rows the loop guard ended).
  """
  b, s, _ = prompt_embeds.shape
  n = cfg.max_new_tokens
  if rng is None:
    rng = jax.random.key(0)
  eos = jnp.asarray(cfg.eos_ids or (-1,), jnp.int32)
  prompt_len = jnp.sum(prompt_paddings < 0.5, axis=1).astype(jnp.int32)  # [B]
  positions = llm_positions(prompt_paddings)
  cache = init_cache(llm_cfg, b, s + n, cache_dtype)
  logits, cache = decoder(prompt_embeds, positions, prompt_paddings, cache, 0,
                          last=last_index(prompt_paddings))
  last = logits[:, 0]

  biased = bias_tokens is not None and cfg.hotword_bonus != 0
  if biased:  # a spare -1 column: the lookup after a hotword that fills all L slots
    bias_tokens = jnp.pad(jnp.asarray(bias_tokens, jnp.int32), ((0, 0), (0, 0), (0, 1)),
                          constant_values=-1)

  def emit(carry_logits, step, key, done, match):
    scores = (bias_logits(carry_logits, bias_tokens, match, cfg.hotword_bonus) if biased
              else carry_logits)
    tok = choose(scores, cfg, key)
    lp = jnp.take_along_axis(jax.nn.log_softmax(carry_logits, -1), tok[:, None], 1)[:, 0]
    is_end = jnp.any(tok[:, None] == eos[None], axis=-1)
    tok = jnp.where(done, cfg.pad_id, tok)
    return tok, jnp.where(done, 0.0, lp), done | is_end, is_end & ~done

  state0 = dict(step=jnp.int32(0), logits=last, cache=cache, rng=rng,
                tokens=jnp.full((b, n), cfg.pad_id, jnp.int32),
                logprobs=jnp.zeros((b, n), jnp.float32),
                lengths=jnp.zeros((b,), jnp.int32), done=jnp.zeros((b,), bool),
                looped=jnp.zeros((b,), bool),
                match=jnp.zeros((b, bias_tokens.shape[1] if biased else 0), jnp.int32))

  def write(st):  # the next token from the carried logits, and the row bookkeeping
    rng, key = jax.random.split(st["rng"])
    tok, lp, done, ended_now = emit(st["logits"], st["step"], key, st["done"], st["match"])
    match = advance_match(bias_tokens, st["match"], tok) if biased else st["match"]
    emitted = ~st["done"] & ~ended_now  # a real text token (not the end, not after it)
    tokens = st["tokens"].at[:, st["step"]].set(jnp.where(ended_now, cfg.pad_id, tok))
    logprobs = st["logprobs"].at[:, st["step"]].set(lp)
    lengths, looped = st["lengths"] + emitted.astype(jnp.int32), st["looped"]
    if cfg.loop_repeats > 0:  # a looping row ends here with one copy of its unit
      unit = jnp.where(emitted, loop_unit(tokens, st["step"], cfg), 0)
      lengths = lengths - unit * cfg.loop_repeats
      done, looped = done | (unit > 0), looped | (unit > 0)
    return dict(st, step=st["step"] + 1, rng=rng, tokens=tokens, logprobs=logprobs,
                lengths=lengths, done=done, looped=looped, match=match), tok

  def body(st):  # write a token, then run the decoder on it for the next one's logits
    step = st["step"]
    st, tok = write(st)
    x = embed(jnp.where(st["done"], cfg.pad_id, tok)[:, None])
    pos = (prompt_len + step)[:, None]
    step_pad = st["done"].astype(jnp.float32)[:, None]
    logits, cache = decoder(x, pos, step_pad, st["cache"], s + step)
    return dict(st, logits=logits[:, 0], cache=cache)

  # the last token needs no decoder step after it: n - 1 steps, then one more write (a
  # no-op on rows already done)
  st = jax.lax.while_loop(lambda st: (st["step"] < n - 1) & ~jnp.all(st["done"]), body,
                          state0)
  st, _ = write(st)
  # drop what the loop guard cut
  cut = st["looped"][:, None] & (jnp.arange(n)[None] >= st["lengths"][:, None])
  return {"tokens": jnp.where(cut, cfg.pad_id, st["tokens"]), "lengths": st["lengths"],
          "logprobs": jnp.where(cut, 0.0, st["logprobs"]), "done": st["done"],
          "looped": st["looped"]}
