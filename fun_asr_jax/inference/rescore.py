"""CTC n-best rescored by the LLM: the two passes of the model voting on one answer.

The CTC branch proposes (prefix beam search over its posteriors, the n most probable
label sequences); the LLM scores each proposal teacher-forced against the same audio
(log P(text | audio, prompt), one forward pass for all of them); the answer maximises

    score = log P_llm(text) + ctc_weight * log P_ctc(text)

This is the attention-rescoring of two-pass CTC/attention recognisers (WeNet), with the
LLM as the attention decoder. The CTC branch is good at what was said acoustically and
never invents words; the LLM is good at what reads as language. Proposals are text, so
the CTC vocabulary need not be the LLM's (Fun-ASR-Nano's is not).
"""

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax.models.fun_asr import FunASR, ModelConfig
from fun_asr_jax.text import prompts

NEG_INF = -np.inf


def prefix_beam_search(log_probs: np.ndarray, blank_id: int, beam: int = 8,
                       token_beam: int = 8) -> list[tuple[tuple[int, ...], float]]:
  """The `beam` most probable label sequences of one utterance's CTC posteriors.

  log_probs `[T, V]` (valid frames only). Each prefix keeps the log-probability of the
  paths that end in a blank and of those that end in its last label, so a repeated label
  needs a blank in between while a repeated frame of the same label merges. Per frame only
  the `token_beam` likeliest labels extend a prefix.

  Returns:
    [(labels, log P(labels | audio)), ...], best first.
  """
  beams = {(): (0.0, NEG_INF)}  # prefix -> (log p ending in blank, ... ending in a label)
  for lp in np.asarray(log_probs, np.float64):
    top = np.argpartition(-lp, min(token_beam, len(lp) - 1))[:token_beam]
    nxt = collections.defaultdict(lambda: [NEG_INF, NEG_INF])
    for prefix, (pb, pl) in beams.items():
      total = np.logaddexp(pb, pl)
      stay = nxt[prefix]
      stay[0] = np.logaddexp(stay[0], total + lp[blank_id])
      for c in top:
        c = int(c)
        if c == blank_id:
          continue
        grown = nxt[prefix + (c,)]
        if prefix and prefix[-1] == c:
          grown[1] = np.logaddexp(grown[1], pb + lp[c])  # a new c after a blank
          stay[1] = np.logaddexp(stay[1], pl + lp[c])  # the same c held for another frame
        else:
          grown[1] = np.logaddexp(grown[1], total + lp[c])
    live = [kv for kv in nxt.items() if np.logaddexp(*kv[1]) > NEG_INF]  # unreachable: out
    ranked = sorted(live, key=lambda kv: -np.logaddexp(*kv[1]))[:beam]
    beams = {k: tuple(v) for k, v in ranked}
  return [(k, float(np.logaddexp(*v))) for k, v in
          sorted(beams.items(), key=lambda kv: -np.logaddexp(*kv[1]))]


def proposals(log_probs, paddings, tokenizer, blank_id: int, beam: int = 8,
              postprocess=lambda t: t) -> list[list[tuple[str, float]]]:
  """Per utterance, the CTC n-best as text: log_probs `[B, T, V]`, paddings `[B, T]`.

  Label sequences that read the same (one text, two tokenisations) pool their probability.
  """
  log_probs, valid = np.asarray(log_probs), np.asarray(paddings) < 0.5
  out = []
  for b in range(log_probs.shape[0]):
    texts: dict[str, float] = {}
    for labels, logp in prefix_beam_search(log_probs[b, valid[b]], blank_id, beam):
      text = postprocess(tokenizer.decode([t for t in labels if t < tokenizer.vocab_size]))
      texts[text] = float(np.logaddexp(texts.get(text, NEG_INF), logp))
    out.append(sorted(texts.items(), key=lambda kv: -kv[1]))
  return out


@functools.partial(jax.jit, static_argnames=("cfg",))
def target_log_probs(params, audio, rows, batch, cfg: ModelConfig, audio_paddings=None):
  """Teacher-forced log P(target | audio, prompt) per row.

  audio `[B, A, D]` adaptor outputs, encoded once per utterance (`audio_paddings [B, A]`
  theirs); rows `[N]` which utterance each row is; batch `tokens`, `audio_mask`,
  `target_mask`, `paddings` `[N, S]` (right-padded layouts with the target). Returns `[N]`.
  """
  model = FunASR(cfg)
  v = {"params": params}
  logits = model.apply(v, batch["tokens"], batch["audio_mask"], batch["paddings"],
                       audio[rows], None if audio_paddings is None else audio_paddings[rows],
                       method=FunASR.read)
  logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), -1)
  picked = jnp.take_along_axis(logp, batch["tokens"][:, 1:, None], -1)[..., 0]
  return jnp.sum(picked * batch["target_mask"][:, 1:], -1)


def _bucket(n: int, step: int = 32) -> int:
  return -(-n // step) * step


def rescore(cfg: ModelConfig, params, tokenizer, audio, prompt_batch: dict,
            nbest: list[list[tuple[str, float]]], ctc_weight: float = 1.0,
            audio_paddings=None) -> list[dict]:
  """Picks each utterance's answer among its CTC proposals.

  audio `[B, A, D]` (`audio_paddings [B, A]`); prompt_batch: the inference prompts
  (`tokens`, `audio_mask`, `paddings` `[B, S]`, right-padded); nbest[b]: (text, CTC
  log-prob) proposals.
  Returns per utterance {'text', 'llm', 'ctc', 'score'} of the winner ('' for none).
  """
  tokens, audio_mask = np.asarray(prompt_batch["tokens"]), np.asarray(prompt_batch["audio_mask"])
  lengths = (np.asarray(prompt_batch["paddings"]) < 0.5).sum(-1)
  layouts, rows, owners = [], [], []
  for b, candidates in enumerate(nbest):
    n = int(lengths[b])
    for text, _ in candidates:
      answer = tokenizer.encode(f"{text}<|im_end|>")
      mask = np.zeros(n + len(answer), bool)
      mask[n:] = True
      layouts.append(prompts.PromptLayout(
          np.concatenate([tokens[b, :n], np.asarray(answer, np.int32)]),
          np.concatenate([audio_mask[b, :n], np.zeros(len(answer), bool)]), mask))
      rows.append(b)
      owners.append((b, text))
  out = [{"text": "", "llm": 0.0, "ctc": 0.0, "score": NEG_INF} for _ in nbest]
  if not layouts:
    return out
  # pad rows and length to buckets: a handful of compiled programs per run
  width = _bucket(max(len(l.tokens) for l in layouts))
  count = _bucket(len(layouts), 8)
  layouts += [layouts[0]] * (count - len(layouts))
  batch = prompts.collate(layouts, tokenizer.pad_id, length=width)
  llm = np.asarray(target_log_probs(
      params, audio, jnp.asarray(rows + [0] * (count - len(rows))),
      {k: jnp.asarray(v) for k, v in batch.items()}, cfg,
      None if audio_paddings is None else jnp.asarray(audio_paddings)))
  ctc = [p for candidates in nbest for _, p in candidates]
  for i, (b, text) in enumerate(owners):
    score = llm[i] + ctc_weight * ctc[i]
    if score > out[b]["score"]:
      out[b] = {"text": text, "llm": float(llm[i]), "ctc": float(ctc[i]), "score": float(score)}
  return out
