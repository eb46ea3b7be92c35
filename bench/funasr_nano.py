r"""Fun-ASR-Nano geometry, same weights: JAX against funasr's PyTorch FunASRNano on this CPU.

  python bench/funasr_nano.py [--sizes=small,nano] [--seconds=10] [--new_tokens=32]

A random funasr FunASRNano (SAN-M encoder, Transformer adaptor, Qwen3 LLM with the real
151,936-token vocabulary) is built and saved in funasr's layout, then imported with
fun_asr_jax.convert.fun_asr_nano. On --seconds of audio, batch 1, fp32, both sides:
  forward   waveform -> fbank + LFR -> encoder -> adaptor -> inference prompt -> LLM logits
  train     a teacher-forced step (every parameter trained, AdamW) on prompt + 32 targets
  decode    greedy decoding of --new_tokens tokens with the KV cache, audio included
Medians of --repeats runs after a warm-up (compilation excluded). Outputs are checked:
the logits' largest difference, the two training losses, identical generated tokens.
Sizes: `nano` is Fun-ASR-Nano's geometry (SAN-M 512 x 50+20, Qwen3-0.6B); `small` the
same layout at a quarter of the widths and a few layers.
"""

import gc
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from absl import app, flags  # noqa: E402

from fun_asr_jax.convert import fun_asr_nano  # noqa: E402
from fun_asr_jax.inference.transcribe import transcribe_arrays  # noqa: E402
from fun_asr_jax.models.fun_asr import FunASR, decoding_layout, num_audio_tokens  # noqa: E402
from fun_asr_jax.text import prompts  # noqa: E402
from fun_asr_jax.text.tokenizer import Tokenizer  # noqa: E402
from fun_asr_jax.train import state as state_lib  # noqa: E402
from fun_asr_jax.train import steps  # noqa: E402
from tests.convert import funasr_reference as ref_lib  # noqa: E402

SIZES = {
    "small": dict(encoder=dict(output_size=128, attention_heads=4, linear_units=512,
                               num_blocks=6, tp_blocks=2),
                  adaptor=dict(encoder_dim=128, llm_dim=256, ffn_dim=512, n_layer=2),
                  qwen=dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=64)),
    "nano": dict(encoder=dict(output_size=512, attention_heads=4, linear_units=2048,
                              num_blocks=50, tp_blocks=20),
                 adaptor=dict(encoder_dim=512, llm_dim=1024, ffn_dim=2048, n_layer=2),
                 qwen=dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                           num_attention_heads=16, num_key_value_heads=8, head_dim=128)),
}
VOCAB = 151936
TARGET = "the quick brown fox jumps over"  # 30 byte tokens

_SIZES = flags.DEFINE_list("sizes", ["small", "nano"], "Geometries.")
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Audio length.")
_NEW = flags.DEFINE_integer("new_tokens", 32, "Decoded tokens.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs (median).")
_PARTS = flags.DEFINE_list("parts", ["forward", "train", "decode"], "What to time.")
_TARGET_TOKENS = flags.DEFINE_integer("target_tokens", 64, "Train step: LLM head at up to this "
                                      "many target positions (loss.target_tokens; 0 = all).")


def timed(fn, repeats):
  fn()
  times = []
  out = None
  for _ in range(repeats):
    t = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), out


def main(argv):
  del argv
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(os.cpu_count() or 1)
  wave = (0.1 * np.random.default_rng(0).standard_normal(int(_SECONDS.value * 16000))
          ).astype(np.float32)
  print(f"{'size':<6}{'part':<9}{'JAX s':>9}{'funasr s':>10}{'speed-up':>10}  check")
  for size in _SIZES.value:
    folder = tempfile.mkdtemp(prefix=f"funasr_{size}_")
    ref, hf_tok, frontend = ref_lib.build_funasr_nano(folder, with_ctc=False, vocab_size=VOCAB,
                                                      **SIZES[size])
    cfg, params, llm_dir = fun_asr_nano.load_funasr(folder)
    params = jax.tree.map(jnp.asarray, params)
    tok = Tokenizer.from_folder(llm_dir)
    model = FunASR(cfg)
    task = prompts.task_prompt()
    n_audio = num_audio_tokens(cfg, len(wave))
    lay = prompts.layout(tok, n_audio, task, target=TARGET)
    batch = prompts.collate([lay], tok.pad_id)
    batch.update(waveform=wave[None], wave_lengths=np.array([len(wave)], np.int32))
    jbatch = {k: jnp.asarray(v) for k, v in batch.items()}
    chat = ref.generate_chatml(task, torch.tensor(wave))
    with torch.no_grad():
      _, _, rbatch, source_ids, _ = ref.inference_prepare(
          [chat], None, key=["u"], tokenizer=hf_tok, frontend=frontend, device="cpu")
    beg = int(rbatch["fbank_beg"][0, 0])
    ids = torch.tensor(batch["tokens"], dtype=torch.long)
    assert int(np.flatnonzero(batch["audio_mask"][0])[0]) == beg

    def their_inputs():
      return dict(speech=rbatch["speech"], speech_lengths=rbatch["speech_lengths"],
                  input_ids=ids.clone(), attention_mask=torch.ones_like(ids),
                  labels_ids=torch.where(torch.tensor(batch["target_mask"]), ids,
                                         torch.full_like(ids, -100)),
                  fbank_beg=rbatch["fbank_beg"].clone(),
                  fake_token_len=rbatch["fake_token_len"].clone())

    if "forward" in _PARTS.value:  # the inference prompt on both sides, no target tokens
      prompt = prompts.collate([prompts.layout(tok, n_audio, task)], tok.pad_id)
      prompt.update(waveform=wave[None], wave_lengths=np.array([len(wave)], np.int32))
      prompt = {k: jnp.asarray(v) for k, v in prompt.items()}
      fwd = jax.jit(lambda p, b: model.apply({"params": p}, b)["logits"])
      t_ours, ours = timed(lambda: np.asarray(fwd(params, prompt)), _REPEATS.value)

      def theirs():
        with torch.no_grad():
          embeds, _, _, _, _ = ref.inference_prepare(
              [chat], None, key=["u"], tokenizer=hf_tok, frontend=frontend, device="cpu")
          return ref.llm(inputs_embeds=embeds).logits.numpy()
      t_ref, ref_logits = timed(theirs, _REPEATS.value)
      assert ours.shape == ref_logits.shape, (ours.shape, ref_logits.shape)
      diff = float(np.abs(ours - ref_logits).max())
      print(f"{size:<6}{'forward':<9}{t_ours:>9.3f}{t_ref:>10.3f}{t_ref / t_ours:>9.2f}x"
            f"  max |logit diff| {diff:.1e}", flush=True)

    if "train" in _PARTS.value:
      tx = state_lib.finite_guard(optax.adamw(1e-5), max_consecutive_errors=1_000_000)
      # as launch/train.py runs it: state donated; with --target_tokens the head projects
      # only the target positions (loss.target_tokens)
      lc = steps.LossConfig(objective="sft", llm_weight=1.0, ctc_weight=0.0,
                            target_tokens=_TARGET_TOKENS.value)
      step = jax.jit(lambda s, b: steps.train_step(s, b, model=model, lc=lc, tx=tx,
                                                   lr_fn=lambda _: 1e-5), donate_argnums=0)
      # the state takes the imported weights (donated by the step) and is dropped after
      # timing, so that at nano size one side's AdamW state is alive at a time (both at
      # once exceed 24 GB); the weights are re-imported below
      state = state_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                   opt_state=tx.init(params), rng=jax.random.key(0))
      params = None
      first = {}

      def ours_step():
        nonlocal state
        state, m = step(state, jbatch)
        first.setdefault("loss", float(m["llm_loss"]))
        return jax.block_until_ready(state.params)
      t_ours, _ = timed(ours_step, _REPEATS.value)
      state = None
      gc.collect()
      for p in ref.parameters():
        p.requires_grad_(True)
      ref.train()
      opt = torch.optim.AdamW(ref.parameters(), lr=1e-5)
      ref_first = {}

      def their_step():
        loss = ref(**their_inputs())[0]
        ref_first.setdefault("loss", float(loss))
        loss.backward()
        opt.step()
        opt.zero_grad()
      t_ref, _ = timed(their_step, _REPEATS.value)
      ref.eval()
      del opt
      gc.collect()
      print(f"{size:<6}{'train':<9}{t_ours:>9.3f}{t_ref:>10.3f}{t_ref / t_ours:>9.2f}x"
            f"  first loss {first['loss']:.5f} vs {ref_first['loss']:.5f}", flush=True)
      # the weights moved on both sides: rebuild (same seed, same weights) and re-import
      ref, hf_tok, frontend = ref_lib.build_funasr_nano(
          folder, with_ctc=False, vocab_size=VOCAB, **SIZES[size])
      cfg, params, _ = fun_asr_nano.load_funasr(folder)
      params = jax.tree.map(jnp.asarray, params)

    if "decode" in _PARTS.value:
      import funasr.models.fun_asr_nano.model as fm  # pylint: disable=import-outside-toplevel
      fm.forced_align = lambda *a, **k: []  # torchaudio-only timestamps
      generated = []
      original = ref.llm.generate

      def capture(*a, **k):
        k.update(min_new_tokens=_NEW.value)  # decode every token, as ours does below
        generated.append(original(*a, **k))
        return generated[-1]
      ref.llm.generate = capture

      def theirs():
        with torch.no_grad():
          ref.inference([torch.tensor(wave)], key=["u"], tokenizer=hf_tok, frontend=frontend,
                        device="cpu", max_length=_NEW.value)
      from fun_asr_jax import decoding  # pylint: disable=import-outside-toplevel
      sampling = decoding.SamplingConfig(max_new_tokens=_NEW.value, eos_ids=(), pad_id=tok.pad_id)
      # as inference.asr.FunASR holds them: the LLM's layers unrolled once, at load
      dcfg, dparams = decoding_layout(cfg, params)
      t_ours, out = timed(lambda: transcribe_arrays(dcfg, dparams, tok, [wave],
                                                    sampling=sampling), _REPEATS.value)
      t_ref, _ = timed(theirs, _REPEATS.value)
      theirs_ids = [t for t in generated[-1][0].tolist() if t != tok.eos_id][: _NEW.value]
      same = out[0]["tokens"][: len(theirs_ids)] == theirs_ids
      print(f"{size:<6}{'decode':<9}{t_ours:>9.3f}{t_ref:>10.3f}{t_ref / t_ours:>9.2f}x"
            f"  identical tokens: {same} ({len(theirs_ids)})", flush=True)


if __name__ == "__main__":
  app.run(main)
