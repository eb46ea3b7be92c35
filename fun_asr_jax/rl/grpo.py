"""GRPO: group rollouts, in-graph rewards and the clipped policy loss, in one jitted step.

    batch [B] ─▶ frontend + encoder + adaptor (once per utterance) ─▶ prompt embeddings
      ─▶ repeated G times ─▶ sampled with the shared KV-cache decoder ─▶ [B·G, N] responses
      ─▶ rewards (rl/rewards.py) ─▶ group-normalised advantages
      ─▶ `num_updates` optimizer steps on  max(−A·ρ, −A·clip(ρ, 1−ε_low, 1+ε_high)) + β·KL

ρ = exp(logp − logp_old) per response token; KL is the k3 estimator against a frozen
reference policy. With `guide` > 0 that share of groups has its last sample replaced by
the reference transcript: a group whose G samples all hallucinate on noise (a confident
model's usual case) has equal rewards and no advantage, but with the right answer among
them it has both (the empty answer on noise, the transcript on speech). With `hotword_bonus`
> 0 the second half of each group whose prompt lists hotwords is sampled with that bonus on
the next token of each listed hotword (the decoder's contextual biasing): a model that does
not yet copy names from its prompt then writes them in some samples, and the keyword and
accuracy rewards teach the unbiased policy to do so (or, for distractors, not to). Both hints
make off-policy samples; the loss treats them as the policy's (ρ from the policy's own
log-probs), and metrics count the policy's own samples only. With `sft_weight` > 0 the loss
also carries that weight times the teacher-forced NLL of the reference on speech utterances
(InstructGPT's "PPO-ptx" mix): the noise clips teach the policy to stop at once, and without
an anchor that lesson leaks onto speech that opens with an unfamiliar word, which greedy
decoding then drops whole. `empty_unlikelihood` > 0 aims at that leak alone: it adds
that weight times −log(1 − P(end token first)) on speech utterances, an unlikelihood term
(Welleck et al., 2019) on the one decision the leak is, whose gradient vanishes while the
policy does not stop at once on speech, so unlike the NLL anchor it does not dilute the
rewards' signal elsewhere. Rollouts run deterministically
(no dropout) so ρ is exactly 1 on the first update. Responses include the end token when one
was sampled, so stopping (what silences hallucinations on noise) is itself rewarded.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from fun_asr_jax import decoding
from fun_asr_jax.models import llm as llm_lib
from fun_asr_jax.models.fun_asr import FunASR, audio_slot_paddings, decoding_layout
from fun_asr_jax.rl import rewards as rewards_lib
from fun_asr_jax.train import state as state_lib


@dataclasses.dataclass(frozen=True)
class GRPOConfig:
  group_size: int = 4
  max_new_tokens: int = 32
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  epsilon_low: float = 0.2
  epsilon_high: float = 0.2
  beta: float = 0.04  # KL weight; 0 = no reference policy
  aggregation: str = "sequence"  # sequence: mean over sequences of token means | token
  num_updates: int = 1  # optimizer updates per rollout batch
  guide: float = 0.0  # share of groups whose last sample is the reference transcript
  hotword_bonus: float = 0.0  # nats on the prompt's hotwords in half of each group; 0 = off
  sft_weight: float = 0.0  # weight of the reference's NLL on speech utterances; 0 = off
  empty_unlikelihood: float = 0.0  # weight of −log(1 − P(end first)) on speech; 0 = off
  reward: rewards_lib.RewardConfig = rewards_lib.RewardConfig()

  def validate(self, prefix: str = "rl"):
    def need(cond, field, msg):
      if not cond:
        raise ValueError(f"config.{prefix}.{field}={getattr(self, field)!r}: {msg}")
    need(self.group_size >= 2, "group_size", "GRPO compares samples within a group; need >= 2")
    need(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
    need(self.temperature > 0, "temperature", "sampling needs a temperature > 0")
    need(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
    need(self.top_k >= 0, "top_k", "must be >= 0 (0 = off)")
    need(0 <= self.epsilon_low < 1, "epsilon_low", "must be in [0, 1)")
    need(self.epsilon_high >= 0, "epsilon_high", "must be >= 0")
    need(self.beta >= 0, "beta", "must be >= 0")
    need(self.aggregation in ("sequence", "token"), "aggregation", "expected sequence or token")
    need(self.num_updates >= 1, "num_updates", "must be >= 1")
    need(0.0 <= self.guide <= 1.0, "guide", "a share of groups: must be in [0, 1]")
    need(self.hotword_bonus >= 0, "hotword_bonus", "a bonus in nats: must be >= 0 (0 = off)")
    need(self.sft_weight >= 0, "sft_weight", "a loss weight: must be >= 0 (0 = off)")
    need(self.empty_unlikelihood >= 0, "empty_unlikelihood",
         "a loss weight: must be >= 0 (0 = off)")
    self.reward.validate(f"{prefix}.reward")


# -- advantages and loss --------------------------------------------------------------------
def group_advantages(rewards, group_size: int):
  """(r − mean) / (std + 1e-6) within each group of `group_size` consecutive rows.

  std uses ddof=1. Rewards are first shifted by the group's first value, which changes
  nothing mathematically but makes a group of equal rewards give exactly zero.
  """
  r = rewards.reshape(-1, group_size)
  r = r - r[:, :1]
  mean = r.mean(-1, keepdims=True)
  std = jnp.sqrt(jnp.sum((r - mean) ** 2, -1, keepdims=True) / (group_size - 1))
  return ((r - mean) / (std + 1e-6)).reshape(-1)


def policy_loss(logp, old_logp, ref_logp, advantages, mask, cfg: GRPOConfig):
  """Clipped surrogate + β·k3 KL over response tokens `[N, T]`; (loss, metrics)."""
  adv = advantages[:, None]
  ratio = jnp.exp(logp - old_logp)
  unclipped = -adv * ratio
  clipped = -adv * jnp.clip(ratio, 1.0 - cfg.epsilon_low, 1.0 + cfg.epsilon_high)
  per_token = jnp.maximum(unclipped, clipped)
  delta = ref_logp - logp
  kl = jnp.exp(delta) - delta - 1.0
  if cfg.beta > 0:
    per_token = per_token + cfg.beta * kl
  m = mask.astype(jnp.float32)
  n_tok = jnp.maximum(m.sum(), 1.0)
  if cfg.aggregation == "token":
    loss = (per_token * m).sum() / n_tok
  else:
    per_seq = (per_token * m).sum(-1) / jnp.maximum(m.sum(-1), 1.0)
    has = (m.sum(-1) > 0).astype(jnp.float32)
    loss = (per_seq * has).sum() / jnp.maximum(has.sum(), 1.0)
  metrics = {"kl": (kl * m).sum() / n_tok,
             "clip_fraction": ((clipped > unclipped) * m).sum() / n_tok,
             "ratio": (ratio * m).sum() / n_tok}
  return loss, metrics


# -- model pieces ---------------------------------------------------------------------------
def encode(model: FunASR, params, batch):
  """Frontend + encoder on the `[B]` utterances: (enc `[B, Te, E]`, paddings `[B, Te]`)."""
  v = {"params": params}
  feats, pads = model.apply(v, batch["waveform"], batch["wave_lengths"], method=FunASR.features)
  return model.apply(v, feats, pads, method=FunASR.encode)


def audio_embeddings(model: FunASR, params, batch, encoded=None):
  """Adaptor output `[B, Ta, D]` and its paddings; `encoded` (from `encode`) skips the
  encoder when given."""
  enc, enc_pads = encode(model, params, batch) if encoded is None else encoded
  return model.apply({"params": params}, enc, enc_pads, method=FunASR.adapt)


def prompt_only(batch):
  """The training layout without its answer: tokens, audio mask and paddings `[B, S]`."""
  pads = jnp.maximum(batch["paddings"], batch["target_mask"].astype(jnp.float32))
  return batch["tokens"], batch["audio_mask"] & (pads < 0.5), pads


def hinted_samples(prompt_hotword_ids, group_size: int):
  """`[B·G]`: the samples drawn with the hotword bonus: those at group index >= G // 2 of
  each utterance whose prompt lists a hotword (`prompt_hotword_ids [B, P, H]`, -1 padding)."""
  listed = jnp.any(prompt_hotword_ids >= 0, axis=(1, 2))  # [B]
  half = jnp.arange(group_size) >= group_size // 2  # [G]
  return (listed[:, None] & half[None]).reshape(-1)


def rollout(model: FunASR, params, batch, rng, cfg: GRPOConfig, eos_id: int, pad_id: int,
            encoded=None):
  """G sampled responses per utterance; the audio is encoded once and shared by its group.

  Returns:
    dict: `tokens [B·G, N]` (end token excluded, pad after), `lengths`, `done [B·G]`,
    `hinted [B·G]` (samples drawn with `cfg.hotword_bonus`).
  """
  g = cfg.group_size
  dcfg, dparams = decoding_layout(model.cfg, params)  # the LLM unrolled: one weight copy
  dmodel, dv = FunASR(dcfg), {"params": dparams}
  audio, audio_pads = audio_embeddings(dmodel, dparams, batch, encoded)  # [B, Ta, D]
  embeds, pads = dmodel.apply(dv, *prompt_only(batch), audio, audio_pads,
                              method=FunASR.prompt)
  embeds, pads = jnp.repeat(embeds, g, axis=0), jnp.repeat(pads, g, axis=0)  # [B·G, S, ...]
  sampling = decoding.SamplingConfig(
      max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k,
      top_p=cfg.top_p, eos_ids=(eos_id,), pad_id=pad_id, hotword_bonus=cfg.hotword_bonus)
  hinted, bias = jnp.zeros(pads.shape[:1], bool), None
  if cfg.hotword_bonus > 0 and "prompt_hotword_ids" in batch:
    hinted = hinted_samples(batch["prompt_hotword_ids"], g)
    bias = jnp.where(hinted[:, None, None],
                     jnp.repeat(batch["prompt_hotword_ids"], g, axis=0), -1)  # [B·G, P, H]
  decoder = decoding.model_decoder(dmodel, dv, FunASR.decoder)
  embed = lambda t: dmodel.apply(dv, t, method=FunASR.embed_tokens)
  out = decoding.generate(decoder, embed, dcfg.llm, embeds, pads, sampling, rng,
                          cache_dtype=jnp.dtype(dcfg.llm.dtype), bias_tokens=bias)
  return {"tokens": out["tokens"], "lengths": out["lengths"], "done": out["done"],
          "hinted": hinted}


def reference_responses(batch, n: int, pad_id: int):
  """The transcripts as responses: ids `[B, n]` (pad after), lengths `[B]`, `fits [B]`.

  The reference is the CTC label sequence (the tokenised transcript; empty on noise); with
  its end token it must fit in `n`, so one of `n` tokens or more does not fit.
  """
  labels = batch["ctc_labels"]
  labels = jnp.pad(labels, ((0, 0), (0, max(0, n - labels.shape[1]))))[:, :n]
  ref_len = jnp.sum(1.0 - batch["ctc_label_paddings"], -1).astype(jnp.int32)  # [B]
  ref = jnp.where(jnp.arange(n)[None] < ref_len[:, None], labels, pad_id)
  return ref, ref_len, ref_len < n


def guide_with_reference(ro, batch, rng, cfg: GRPOConfig, pad_id: int):
  """Puts the reference in place of the last sample of a `cfg.guide` share of groups.

  A reference too long to be a finished response is not used. Returns the rollout and
  `guided [B·G]`.
  """
  n, g = ro["tokens"].shape[1], cfg.group_size
  ref, ref_len, fits = reference_responses(batch, n, pad_id)
  b = ref_len.shape[0]
  pick = (jax.random.uniform(rng, (b,)) < cfg.guide) & fits  # [B]
  guided = jnp.zeros((b, g), bool).at[:, g - 1].set(pick).reshape(-1)  # [B·G]
  rep = lambda x: jnp.repeat(x, g, axis=0)
  out = dict(ro, tokens=jnp.where(guided[:, None], rep(ref), ro["tokens"]),
             lengths=jnp.where(guided, rep(ref_len), ro["lengths"]), done=ro["done"] | guided)
  if "hinted" in ro:
    out["hinted"] = ro["hinted"] & ~guided
  return out, guided


def speech_utterances(batch):
  """`[B]`: utterances with something to say (not a noise clip, non-empty reference)."""
  ref_len = jnp.sum(1.0 - batch["ctc_label_paddings"], -1)
  return (ref_len > 0) & ~batch.get("is_noise", jnp.zeros(ref_len.shape, bool))


def speech_anchor(batch, n: int, eos_id: int, pad_id: int):
  """What the `sft_weight` term scores: reference responses (end token included) and their
  mask `[B, n]`, and `use [B]`: speech utterances (not noise, non-empty) whose reference fits."""
  ref, ref_len, fits = reference_responses(batch, n, pad_id)
  tokens, mask = response_layout({"tokens": ref, "lengths": ref_len, "done": fits}, eos_id)
  return tokens, mask, fits & speech_utterances(batch)


def mean_over(x, use):
  """Mean of `x [B]` over the rows where `use [B]` holds; 0 where none does."""
  w = use.astype(jnp.float32)
  return (x * w).sum() / jnp.maximum(w.sum(), 1.0)


def anchor_nll(logp, mask, use):
  """Mean over the used utterances of the per-token NLL of their reference (0 without any)."""
  m = mask.astype(jnp.float32)
  return mean_over(-(logp * m).sum(-1) / jnp.maximum(m.sum(-1), 1.0), use)


def empty_unlikelihood(first_eos_logp, use):
  """Mean over the `use [B]` utterances of −log(1 − P(end token first)), from the log-prob
  of the end token at the first response position `[B]` (0 without any)."""
  return mean_over(-jnp.log(-jnp.expm1(jnp.minimum(first_eos_logp, -1e-6))), use)


def response_layout(ro, eos_id: int):
  """Response ids with the end token put back where it was sampled, and their mask."""
  n = ro["tokens"].shape[1]
  pos = jnp.arange(n)[None]
  at_end = (pos == ro["lengths"][:, None]) & ro["done"][:, None]
  tokens = jnp.where(at_end, eos_id, ro["tokens"])
  mask = pos < (ro["lengths"] + ro["done"].astype(jnp.int32))[:, None]
  return tokens, mask


def response_distributions(model: FunASR, params, batch, response, mask, group_size: int,
                           encoded=None):
  """Teacher-forced next-token log-softmax `[B·G, N, V]` at each response position.

  Sequence = [prompt (right-padded to S) | response]; the first response token is predicted
  from the last real prompt position, the others from the position before them.
  """
  v = {"params": params}
  audio, audio_pads = audio_embeddings(model, params, batch, encoded)
  audio, audio_pads = (jnp.repeat(x, group_size, axis=0) for x in (audio, audio_pads))
  tokens, audio_mask, pads = (jnp.repeat(x, group_size, axis=0) for x in prompt_only(batch))
  bg, s = tokens.shape
  n = response.shape[1]
  full = jnp.concatenate([tokens, response], 1)  # [B·G, S + N]
  full_pads = jnp.concatenate([pads, 1.0 - mask.astype(jnp.float32)], 1)
  full_audio = jnp.concatenate([audio_mask, jnp.zeros((bg, n), bool)], 1)
  logits = model.apply(v, full, full_audio, full_pads, audio, audio_pads, method=FunASR.read)
  pads = audio_slot_paddings(pads, audio_mask, audio_pads)  # the prompt's holes
  src = jnp.concatenate([llm_lib.last_index(pads)[:, None],
                         s + jnp.broadcast_to(jnp.arange(n - 1)[None], (bg, n - 1))], 1)
  picked = jnp.take_along_axis(logits, src[..., None], axis=1).astype(jnp.float32)  # [BG,N,V]
  return jax.nn.log_softmax(picked, -1)


def token_logprobs(logp_all, response, mask):
  """Log-probs of the response tokens and the entropies `[B·G, N]` from `logp_all`."""
  logp = jnp.take_along_axis(logp_all, response[..., None], -1)[..., 0]
  entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, -1)
  return jnp.where(mask, logp, 0.0), entropy


def response_logprobs(model: FunASR, params, batch, response, mask, group_size: int,
                      encoded=None):
  """Teacher-forced log-probs and entropies `[B·G, N]` of the responses."""
  return token_logprobs(response_distributions(model, params, batch, response, mask,
                                               group_size, encoded), response, mask)


# -- the step -------------------------------------------------------------------------------
def batch_rewards(ro, batch, tables, cfg: GRPOConfig):
  """Rewards `[B·G]` and terms for a rollout; references repeat over each group."""
  g = cfg.group_size
  rep = lambda x: jnp.repeat(x, g, axis=0)
  ref_len = jnp.sum(1.0 - batch["ctc_label_paddings"], -1).astype(jnp.int32)
  if "hotword_tokens" in batch:
    kw, kw_len = batch["hotword_tokens"], batch["hotword_lengths"]
  else:
    kw = jnp.zeros((batch["tokens"].shape[0], 1, 1), jnp.int32)
    kw_len = jnp.zeros((batch["tokens"].shape[0], 1), jnp.int32)
  is_noise = batch.get("is_noise", jnp.zeros((batch["tokens"].shape[0],), bool))
  return rewards_lib.compute(ro["tokens"], ro["lengths"], ro["done"], rep(batch["ctc_labels"]),
                             rep(ref_len), rep(kw), rep(kw_len), rep(is_noise), tables,
                             cfg.reward)


def train_step(state: state_lib.TrainState, ref_params, batch, tables, *, model: FunASR,
               cfg: GRPOConfig, tx: optax.GradientTransformation, lr_fn, eos_id: int,
               pad_id: int, trainable=None, encoder_frozen: bool | None = None,
               ema_decay: float = 0.0):
  """One rollout batch: sample, score, then `num_updates` clipped-policy updates.

  `trainable` is the optimizer's bool mask. When the encoder is frozen (by default: no
  encoder leaf in `trainable`), policy and reference share it, so the frontend and encoder
  run once for the whole step instead of once per pass.
  """
  if encoder_frozen is None:
    encoder_frozen = trainable is not None and not any(jax.tree.leaves(trainable["encoder"]))
  rng = jax.random.fold_in(state.rng, state.step)
  params0 = jax.lax.stop_gradient(state.params)
  enc = jax.lax.stop_gradient(encode(model, params0, batch)) if encoder_frozen else None
  ro = rollout(model, params0, batch, rng, cfg, eos_id, pad_id, enc)
  guided = jnp.zeros(ro["lengths"].shape, bool)
  if cfg.guide > 0:
    ro, guided = guide_with_reference(ro, batch, jax.random.fold_in(rng, 1), cfg, pad_id)
  reward, terms = batch_rewards(ro, batch, tables, cfg)
  adv = group_advantages(reward, cfg.group_size)
  response, mask = response_layout(ro, eos_id)
  g = cfg.group_size
  # one update per rollout: the sampling policy is the current one, so old = sg(logp)
  old_logp = (response_logprobs(model, params0, batch, response, mask, g, enc)[0]
              if cfg.num_updates > 1 else None)
  ref_logp = (jax.lax.stop_gradient(
      response_logprobs(model, ref_params, batch, response, mask, g, enc)[0])
              if cfg.beta > 0 else None)

  if cfg.sft_weight > 0:
    anchor, anchor_mask, anchor_use = speech_anchor(batch, response.shape[1], eos_id, pad_id)

  def loss_fn(params):
    params = state_lib.freeze(params, trainable)
    logp_all = response_distributions(model, params, batch, response, mask, g, enc)
    logp, entropy = token_logprobs(logp_all, response, mask)
    first_eos = logp_all[::g, 0, eos_id]  # [B]: a group shares its prompt
    old = jax.lax.stop_gradient(logp) if old_logp is None else old_logp
    ref = jax.lax.stop_gradient(logp) if ref_logp is None else ref_logp
    loss, m = policy_loss(logp, old, ref, adv, mask, cfg)
    m["entropy"] = (entropy * mask).sum() / jnp.maximum(mask.sum(), 1)
    # P(the answer is empty) on speech and on silent references (0 without any)
    p_empty = jax.lax.stop_gradient(jnp.exp(first_eos))
    speech = speech_utterances(batch)
    m["empty_prob_speech"] = mean_over(p_empty, speech)
    m["empty_prob_silent"] = mean_over(p_empty, ~speech)
    if cfg.empty_unlikelihood > 0:
      m["empty_unlikelihood"] = empty_unlikelihood(first_eos, speech)
      loss = loss + cfg.empty_unlikelihood * m["empty_unlikelihood"]
    if cfg.sft_weight > 0:
      m["anchor_nll"] = anchor_nll(
          response_logprobs(model, params, batch, anchor, anchor_mask, 1, enc)[0],
          anchor_mask, anchor_use)
      loss = loss + cfg.sft_weight * m["anchor_nll"]
    return loss, m

  def update(carry, _):
    params, opt_state = carry
    (loss, m), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    m = dict(m, loss=loss, grad_norm=optax.global_norm(grads))
    return state_lib.apply_update(tx, grads, opt_state, params), m

  (params, opt_state), ms = jax.lax.scan(update, (state.params, state.opt_state), None,
                                         length=cfg.num_updates)
  ms = jax.tree.map(lambda x: x[-1], ms)
  consecutive, total = state_lib.nonfinite_counts(opt_state)
  # metrics describe the policy's own samples
  sampled = 1.0 - (guided | ro["hinted"]).astype(jnp.float32)
  mean = lambda x: jnp.sum(x.astype(jnp.float32) * sampled) / jnp.maximum(sampled.sum(), 1)
  total_of = lambda x: jnp.sum(x.astype(jnp.float32) * sampled)
  metrics = dict(ms, lr=lr_fn(state.step), nonfinite_consecutive=consecutive,
                 nonfinite_total=total, reward=mean(reward),
                 reward_std=jnp.mean(jnp.std(reward.reshape(-1, g), -1)),
                 response_length=mean(ro["lengths"]), ended=mean(ro["done"]),
                 **{f"reward_{k}": mean(terms[k]) for k in
                    ("accuracy", "keywords", "hallucination", "language")},
                 hallucinated=mean(terms["hallucinated"]), loops=mean(terms["loop"]),
                 # share of samples on speech references that wrote nothing (0 without any)
                 dropped_rate=total_of(terms["dropped"]) / jnp.maximum(
                     total_of(1.0 - terms["silent_ref"]), 1),
                 # share of samples on silent references that wrote text (0 without any)
                 hallucination_rate=total_of(terms["hallucinated"]) / jnp.maximum(
                     total_of(terms["silent_ref"]), 1),
                 unit_error_rate=total_of(terms["errors"]) / jnp.maximum(
                     total_of(terms["ref_units"]), 1),
                 guided=jnp.mean(guided.astype(jnp.float32)),
                 hinted=jnp.mean(ro["hinted"].astype(jnp.float32)),
                 # does the hint work: the utterances' hotwords the hinted samples wrote (a
                 # count, so that averages over a log interval stay ratios of totals)
                 hinted_keyword_hits=jnp.sum(terms["keyword_hits"] * ro["hinted"]))
  ema = state_lib.update_ema(state.ema, params, ema_decay, state.step, trainable)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                       ema=ema), metrics
