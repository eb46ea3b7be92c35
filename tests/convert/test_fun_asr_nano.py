"""Fun-ASR-Nano import: numerical parity with funasr's FunASRNano and transformers'
FunAsrNanoForConditionalGeneration on tiny random models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fun_asr_jax import decoding
from fun_asr_jax.convert import fun_asr_nano
from fun_asr_jax.convert.tensors import CheckpointMismatchError
from fun_asr_jax.inference.transcribe import transcribe_arrays
from fun_asr_jax.models.fun_asr import FunASR, decoding_layout, num_audio_tokens
from fun_asr_jax.text import prompts
from fun_asr_jax.text.tokenizer import Tokenizer
from tests.convert import funasr_reference as ref_lib

torch = pytest.importorskip("torch")
pytest.importorskip("funasr")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def funasr_model(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp("funasr_nano"))
  model, hf_tok, frontend = ref_lib.build_funasr_nano(folder, with_ctc=True)
  cfg, params, llm_dir = fun_asr_nano.load_funasr(folder)
  return dict(folder=folder, ref=model, hf_tok=hf_tok, frontend=frontend, cfg=cfg,
              params=params, tok=Tokenizer.from_folder(llm_dir))


def test_funasr_encoder_adaptor_ctc_match(funasr_model):
  m, cfg = funasr_model["ref"], funasr_model["cfg"]
  assert cfg.ctc.enabled and cfg.audio_tokens == "fake_token_len"
  model, v = FunASR(cfg), {"params": funasr_model["params"]}
  rng = np.random.RandomState(0)
  lens = np.array([37, 29])
  x = rng.randn(2, 37, 560).astype(np.float32)
  pads = (np.arange(37)[None] >= lens[:, None]).astype(np.float32)
  with torch.no_grad():
    enc, enc_lens = m.audio_encoder(torch.tensor(x).clone(), torch.tensor(lens))
    ada, _ = m.audio_adaptor(enc, enc_lens)
    ctc = m.ctc.log_softmax(m.ctc_decoder(enc, enc_lens)[0])
  e, ep = model.apply(v, x, pads, method=FunASR.encode)
  a, _ = model.apply(v, e, ep, method=FunASR.adapt)
  c = jax.nn.log_softmax(model.apply(v, e, ep, method=FunASR.ctc_logits)[0])
  for i, n in enumerate(lens):
    assert np.abs(np.asarray(e[i, :n]) - enc[i, :n].numpy()).max() < 1e-4
    assert np.abs(np.asarray(a[i, :n]) - ada[i, :n].numpy()).max() < 1e-4
    assert np.abs(np.asarray(c[i, :n]) - ctc[i, :n].numpy()).max() < 1e-4


@pytest.mark.parametrize("hotwords,language,itn", [
    ([], None, True), (["阿里巴巴", "Qwen"], None, True), ([], "中文", False)])
def test_funasr_prompt_tokens_and_logits_match(funasr_model, hotwords, language, itn):
  """Same audio and prompt through funasr's own splice code and through ours."""
  m, cfg, tok = funasr_model["ref"], funasr_model["cfg"], funasr_model["tok"]
  wave = ref_lib.test_waveforms()[0]
  task = m.get_prompt(hotwords, language, itn)
  assert task == prompts.task_prompt(language=language, hotwords=hotwords, itn=itn)
  chat = m.generate_chatml(task, torch.tensor(wave))
  with torch.no_grad():
    embeds, _, batch, source_ids, _ = m.inference_prepare(
        [chat], None, key=["u"], tokenizer=funasr_model["hf_tok"],
        frontend=funasr_model["frontend"], device="cpu")
    ref_logits = m.llm(inputs_embeds=embeds).logits.numpy()[0]
  n_audio = num_audio_tokens(cfg, len(wave))
  assert n_audio == int(batch["fake_token_len"][0, 0])
  lay = prompts.layout(tok, n_audio, task)
  theirs = source_ids[0].numpy()
  beg = int(batch["fbank_beg"][0, 0])
  np.testing.assert_array_equal(np.flatnonzero(lay.audio_mask), np.arange(beg, beg + n_audio))
  np.testing.assert_array_equal(lay.tokens[~lay.audio_mask], theirs[~lay.audio_mask])
  b = prompts.collate([lay], tok.pad_id)
  b.update(waveform=wave[None], wave_lengths=np.array([len(wave)]))
  out = FunASR(cfg).apply({"params": funasr_model["params"]}, b)
  assert np.abs(np.asarray(out["logits"][0]) - ref_logits).max() < 1e-4


def test_funasr_greedy_transcripts_identical(funasr_model, monkeypatch):
  m = funasr_model["ref"]
  import funasr.models.fun_asr_nano.model as fm
  monkeypatch.setattr(fm, "forced_align", lambda *a, **k: [])  # torchaudio-only timestamps
  generated = []
  original = m.llm.generate
  monkeypatch.setattr(m.llm, "generate",
                      lambda *a, **k: generated.append(original(*a, **k)) or generated[-1])
  waves = ref_lib.test_waveforms(seed=3, seconds=(1.7, 0.9, 1.2))
  texts = []
  for w in waves:
    with torch.no_grad():
      res, _ = m.inference([torch.tensor(w)], key=["u"], tokenizer=funasr_model["hf_tok"],
                           frontend=funasr_model["frontend"], device="cpu", max_length=16)
    texts.append(res[0]["text"])
  ours = transcribe_arrays(funasr_model["cfg"], funasr_model["params"], funasr_model["tok"],
                           waves, sampling=decoding.greedy(funasr_model["tok"], 16,
                                                           loop_repeats=0))  # as funasr's
  for i, g in enumerate(generated):
    ids = [t for t in g[0].tolist() if t != funasr_model["tok"].eos_id]
    assert ours[i]["tokens"] == ids
    assert len(set(ids)) > 2, "degenerate reference; the comparison would prove little"
    assert ours[i]["text"] == texts[i].strip()


def test_hf_logits_match(tmp_path):
  folder = str(tmp_path / "hf")
  ref = ref_lib.build_hf_fun_asr_nano(folder, audio_token_id=199)
  cfg, params, _ = fun_asr_nano.load_hf(folder)
  assert not cfg.ctc.enabled and cfg.audio_tokens == "all"
  model, v = FunASR(cfg), {"params": params}
  rng = np.random.RandomState(0)
  waves = ref_lib.test_waveforms(seed=1, seconds=(1.0, 0.6))
  for wave in waves:
    feats, fp = model.apply(v, wave[None], np.array([len(wave)]), method=FunASR.features)
    n_audio = num_audio_tokens(cfg, len(wave))
    ids = np.array([list(rng.randint(0, 199, 7)) + [199] * n_audio + list(rng.randint(0, 199, 5))])
    with torch.no_grad():
      expected = ref(input_ids=torch.tensor(ids),
                     input_features=torch.tensor(np.asarray(feats)),
                     input_features_mask=torch.tensor((np.asarray(fp) < 0.5).astype(np.int64))
                     ).logits.numpy()
    got = model.apply(v, {"feats": feats, "feat_paddings": fp, "tokens": ids,
                          "audio_mask": ids == 199, "paddings": np.zeros(ids.shape, np.float32)})
    assert np.abs(np.asarray(got["logits"]) - expected).max() < 1e-4


def test_hf_greedy_matches_transformers_generate(tmp_path):
  folder = str(tmp_path / "hf")
  ref = ref_lib.build_hf_fun_asr_nano(folder, audio_token_id=199)
  cfg, params, _ = fun_asr_nano.load_hf(folder)
  cfg, params = decoding_layout(cfg, params)  # what every decoder runs: LLM layers unrolled
  model, v = FunASR(cfg), {"params": params}
  wave = ref_lib.test_waveforms(seed=2, seconds=(1.1,))[0]
  feats, fp = model.apply(v, wave[None], np.array([len(wave)]), method=FunASR.features)
  n_audio = num_audio_tokens(cfg, len(wave))
  ids = np.array([[5, 6, 7] + [199] * n_audio + [8, 9]])
  with torch.no_grad():
    gen = ref.generate(input_ids=torch.tensor(ids), input_features=torch.tensor(np.asarray(feats)),
                       input_features_mask=torch.tensor((np.asarray(fp) < 0.5).astype(np.int64)),
                       max_new_tokens=10, do_sample=False, eos_token_id=None,
                       attention_mask=torch.ones(ids.shape, dtype=torch.long)
                       )[0, ids.shape[1]:].tolist()
  from fun_asr_jax import decoding
  emb, _ = model.apply(v, jnp.asarray(ids), jnp.asarray(ids == 199), jnp.zeros(ids.shape),
                       model.apply(v, *model.apply(v, feats, fp, method=FunASR.encode),
                                   method=FunASR.adapt)[0], method=FunASR.prompt)
  out = decoding.generate(
      decoding.model_decoder(model, v, FunASR.decoder),
      lambda t: model.apply(v, t, method=FunASR.embed_tokens), cfg.llm, emb,
      jnp.zeros(ids.shape), decoding.SamplingConfig(max_new_tokens=10))
  assert np.asarray(out["tokens"][0]).tolist() == gen


@pytest.mark.parametrize("damage,message", [
    ("misshape", r"misshaped 1: adaptor/linear1/kernel"),
    ("drop", r"missing tensor audio_encoder.tp_norm.bias"),
    ("extra", r"unexpected tensors \['something.extra'\]"),
])
def test_mismatched_funasr_checkpoint_is_reported(tmp_path, damage, message):
  folder = str(tmp_path / "bad")
  ref_lib.build_funasr_nano(folder, with_ctc=False)
  state = torch.load(f"{folder}/model.pt")
  if damage == "misshape":
    state["audio_adaptor.linear1.weight"] = state["audio_adaptor.linear1.weight"][:, :5]
  elif damage == "drop":
    del state["audio_encoder.tp_norm.bias"]
  else:
    state["something.extra"] = torch.zeros(3)
  torch.save(state, f"{folder}/model.pt")
  with pytest.raises(CheckpointMismatchError, match=message):
    fun_asr_nano.load_funasr(folder)


def test_hf_missing_tensor_is_reported(tmp_path):
  folder = str(tmp_path / "hf")
  ref_lib.build_hf_fun_asr_nano(folder)
  import glob
  import safetensors.numpy
  path = glob.glob(f"{folder}/*.safetensors")[0]
  tensors = safetensors.numpy.load_file(path)
  del tensors["model.multi_modal_projector.linear_2.bias"]
  safetensors.numpy.save_file(tensors, path, metadata={"format": "pt"})
  with pytest.raises(CheckpointMismatchError, match="linear_2.bias"):
    fun_asr_nano.load_hf(folder)
