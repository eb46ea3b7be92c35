"""Best-RQ pretraining, LLM-seeded encoders and the CTC stage."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import pretrain_bestrq
from fun_asr_jax.models import bestrq
from fun_asr_jax.train import checkpoint, loop
from tests.train.helpers import losses, tiny_config


def test_quantizer_is_frozen_and_deterministic():
  cfg = bestrq.BestRQConfig(num_codebooks=2, codebook_size=16, codebook_dim=8)
  x = jax.random.normal(jax.random.key(0), (2, 10, 12))
  a, b = bestrq.quantize(x, cfg), bestrq.quantize(x, cfg)
  assert a.shape == (2, 10, 2) and jnp.array_equal(a, b)
  assert int(a.max()) < 16 and len(np.unique(np.asarray(a))) > 3
  # codes depend on the normalised frame only: scaling a frame keeps its codes
  np.testing.assert_array_equal(np.asarray(bestrq.quantize(3.0 * x + 1.0, cfg)), np.asarray(a))


def test_span_mask_covers_spans_inside_valid_frames():
  cfg = bestrq.BestRQConfig(mask_prob=0.2, mask_frames=3)
  pads = jnp.zeros((4, 50)).at[1, 30:].set(1.0)
  m = np.asarray(bestrq.span_mask(jax.random.key(1), pads, cfg))
  assert not m[1, 30:].any() and 0.2 < m.mean() < 0.8


def bestrq_config(corpus, steps=3):
  c = pretrain_bestrq.get_config("tiny")
  base = tiny_config(corpus, steps=steps)
  c.data, c.train, c.optim.warmup_steps = base.data, base.train, 1
  return c


def test_bestrq_trains_the_encoder_only(corpus, tmp_path):
  run = str(tmp_path / "bq")
  loop.train(bestrq_config(corpus, steps=4), run)
  assert all(np.isfinite(v) for v in losses(run).values())
  params, _ = checkpoint.restore_params(run)
  assert "bestrq" in params and "encoder" in params
  s0 = str(tmp_path / "s0")
  loop.train(tiny_config(corpus, steps=1, init_from=run), s0)  # the head is left behind
  after, _ = checkpoint.restore_params(s0)
  assert "bestrq" not in after


def test_encoder_seeded_from_llm_layers(corpus, tmp_path):
  transformers = pytest.importorskip("transformers")
  torch = pytest.importorskip("torch")
  from fun_asr_jax.convert import convert_folder
  torch.manual_seed(0)
  qwen = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(
      vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
      num_attention_heads=4, num_key_value_heads=4, head_dim=16))
  qwen.save_pretrained(str(tmp_path / "qwen"))
  convert_folder("hf_qwen3", str(tmp_path / "qwen"), str(tmp_path / "llm"))
  c = bestrq_config(corpus, steps=1)
  c.bestrq.init_from_llm = str(tmp_path / "llm")
  c.optim.lr = 1e-12  # keep the copied values measurable after one step
  run = str(tmp_path / "seeded")
  loop.train(c, run)
  params, _ = checkpoint.restore_params(run)
  q = params["encoder"]["layers"]["layer"]["self_attn"]["linear_q"]["kernel"]
  want = qwen.model.layers[1].self_attn.q_proj.weight.detach().numpy().T
  np.testing.assert_allclose(q[1], want, atol=1e-6)


def test_gradient_accumulation_updates_every_k_steps(corpus, tmp_path):
  run = str(tmp_path / "accum")
  loop.train(tiny_config(corpus, steps=3, **{"optim.grad_accum": 2, "optim.warmup_steps": 0,
                                             "train.save_every": 1,
                                             "train.keep": 5}), run)
  p1, _ = checkpoint.restore_params(run, 1)
  p2, _ = checkpoint.restore_params(run, 2)
  p3, _ = checkpoint.restore_params(run, 3)
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a),
                                                               jax.tree.leaves(b)))
  assert not same(p1, p2) and same(p2, p3)  # micro-steps 1 and 3 only accumulate


def test_copy_loss_is_the_llm_reading_its_own_token_embeddings():
  """configs/llm_copy.py's objective, against a prompt built without its holes: each row's
  audio slots hold the embeddings of its labels, spare slots are dropped from the sequence,
  and the loss is the next-token NLL of the answer, computed with NumPy."""
  from fun_asr_jax.models.fun_asr import FunASR, init_params  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.text import prompts  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.text.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.train import steps  # pylint: disable=import-outside-toplevel
  from configs import models  # pylint: disable=import-outside-toplevel
  tok = Tokenizer.byte_level()
  cfg = models.model_config("tiny")
  model = FunASR(cfg)
  params = flax.core.meta.unbox(init_params(cfg, jax.random.key(0)))["params"]
  texts, slots = ["hi", "seven 7"], [6, 9]
  lays = [prompts.layout(tok, n, prompts.task_prompt(), target=t) for n, t in zip(slots, texts)]
  batch = prompts.collate(lays, tok.pad_id)
  labels = [tok.encode(t) for t in texts]
  u = max(map(len, labels))
  batch["ctc_labels"] = np.asarray([l + [0] * (u - len(l)) for l in labels], np.int32)
  batch["ctc_label_paddings"] = np.asarray([[0.0] * len(l) + [1.0] * (u - len(l))
                                            for l in labels], np.float32)
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  lc = steps.LossConfig(objective="copy", copy_noise=0.0)
  got, metrics = steps.copy_loss(params, batch, jax.random.key(1), model, lc)

  v = {"params": params}
  nll, count = 0.0, 0
  for lay, lab in zip(lays, labels):
    ids = np.asarray(lay.tokens)
    emb = np.array(model.apply(v, jnp.asarray(ids)[None], method=FunASR.embed_tokens))[0]
    where = np.flatnonzero(lay.audio_mask)
    kept = min(len(lab), len(where))
    emb[where[:kept]] = np.asarray(model.apply(v, jnp.asarray(lab[:kept])[None],
                                               method=FunASR.embed_tokens))[0]
    keep = np.setdiff1d(np.arange(len(ids)), where[kept:])
    e, ids, tmask = emb[keep], ids[keep], np.asarray(lay.target_mask)[keep]
    logits, _ = model.apply(v, jnp.asarray(e)[None], jnp.arange(len(e))[None],
                            jnp.zeros((1, len(e))), method=FunASR.decoder)
    logits = np.asarray(logits[0], np.float64)
    m = logits.max(-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    for t in np.flatnonzero(tmask[1:]) + 1:
      nll -= logp[t - 1, ids[t]]
      count += 1
  assert int(metrics["target_tokens"]) == count
  np.testing.assert_allclose(float(got), nll / count, rtol=1e-5)


def test_copy_stage_trains_the_llm_only(corpus, tmp_path):
  from configs import llm_copy  # pylint: disable=import-outside-toplevel
  c = llm_copy.get_config("tiny")
  base = tiny_config(corpus, steps=4)
  c.data, c.train, c.optim.warmup_steps = base.data, base.train, 1
  run = str(tmp_path / "copy")
  loop.train(c, run)
  assert all(np.isfinite(v) for v in losses(run).values())
  early, _ = checkpoint.restore_params(run, step=2)
  late, _ = checkpoint.restore_params(run, step=4)
  for part in ("encoder", "adaptor", "ctc"):
    jax.tree.map(np.testing.assert_array_equal, early[part], late[part])
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(early["llm"]),
                                                      jax.tree.leaves(late["llm"])))


def test_slot_term_pulls_each_kept_frame_towards_its_ctc_label_embedding():
  """`loss.slot_weight`'s term against NumPy: the CTC best path (argmax, repeats merged,
  blanks dropped) over each row's valid frames, in order, gives the label of each audio
  slot; the term is the mean squared distance of a real slot to that label's row of the
  LLM's embedding table, over the mean squared norm of those rows."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from configs import models  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.models.fun_asr import FunASR, dummy_batch, init_params  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.train import steps  # pylint: disable=import-outside-toplevel
  base = models.model_config("tiny")
  cfg = dataclasses.replace(base, ctc_compress=True, ctc_compress_cap=0,
                            adaptor=dataclasses.replace(base.adaptor, downsample=1))
  model = FunASR(cfg)
  params = flax.core.meta.unbox(init_params(cfg, jax.random.key(3)))["params"]
  v = {"params": params}
  batch = dummy_batch(cfg, batch_size=2, seconds=1.0)
  rng = np.random.RandomState(0)
  batch["waveform"] = 0.1 * rng.randn(*batch["waveform"].shape).astype(np.float32)
  batch["wave_lengths"] = np.asarray([9000, 16000], np.int32)
  out = model.apply(v, batch)
  got = steps.slot_term(model, v, out)

  table = np.asarray(model.apply(v, jnp.arange(cfg.llm.vocab_size)[None],
                                 method=FunASR.embed_tokens)[0], np.float64)
  logits, valid = np.asarray(out["ctc_logits"]), np.asarray(out["ctc_paddings"]) < 0.5
  audio, real = np.asarray(out["audio"], np.float64), np.asarray(out["audio_paddings"]) < 0.5
  errs, norms = [], []
  for i in range(2):
    best = logits[i, valid[i]].argmax(-1)
    labels = [int(b) for t, b in enumerate(best)
              if b != cfg.ctc.blank_id and (t == 0 or b != best[t - 1])]
    assert int(real[i].sum()) == len(labels) > 2
    for a, lab in zip(audio[i, : len(labels)], labels):
      errs.append(np.sum((a - table[lab]) ** 2))
      norms.append(np.sum(table[lab] ** 2))
  np.testing.assert_allclose(float(got), np.mean(errs) / np.mean(norms), rtol=1e-4)
