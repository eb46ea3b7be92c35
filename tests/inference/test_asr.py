"""The Python API on a tiny checkpoint trained inside the test: batching, inputs, errors."""

import numpy as np
import pytest
import soundfile as sf

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.inference import hotwords as hw


def test_batched_equals_one_by_one_and_keeps_input_order(asr, clips):
  together = asr.transcribe(clips, batch_size=3, max_new_tokens=8)
  alone = [asr.transcribe([c], max_new_tokens=8)[0] for c in clips]
  assert [r.source for r in together] == clips
  assert [r.text for r in together] == [r.text for r in alone]
  assert [r.ctc_text for r in together] == [r.ctc_text for r in alone]
  for r in together:
    assert r.error is None
    ends = [w["end"] for w in r.timestamps]
    assert all(0 <= w["start"] <= w["end"] for w in r.timestamps)
    assert ends == sorted(ends) and (not ends or ends[-1] <= sf.info(r.source).duration + 0.1)


def test_any_rate_and_stereo_arrays_match_the_file(asr, clips, tmp_path):
  x, rate = audio_io.load(clips[0])
  stereo_8k = np.stack([audio_io.resample(x, rate, 8000)] * 2, axis=1)
  path = str(tmp_path / "stereo8k.wav")
  sf.write(path, stereo_8k, 8000, subtype="FLOAT")
  from_file = asr.transcribe([path], max_new_tokens=8)[0]
  from_array = asr.transcribe([stereo_8k], sample_rate=8000, max_new_tokens=8)[0]
  assert from_array.source == "array[0]" and from_file.text == from_array.text


def test_bad_items_get_errors_while_the_rest_succeed(asr, clips, tmp_path):
  corrupt = str(tmp_path / "corrupt.wav")
  with open(corrupt, "wb") as f:
    f.write(b"RIFF\x00\x00not really a wav")
  out = asr.transcribe([clips[0], corrupt, str(tmp_path / "missing.wav"),
                        np.zeros(0, np.float32), np.full(800, np.nan, np.float32)],
                       max_new_tokens=8)
  assert out[0].error is None
  assert "corrupt.wav" in out[1].error and "missing.wav" in out[2].error
  assert out[3].error is None and out[3].text == ""  # empty audio: empty text
  assert "array[4]" in out[4].error and "NaN" in out[4].error


def test_unknown_language_names_the_supported_ones(asr, clips):
  with pytest.raises(ValueError, match="en, ja, ko, yue, zh"):
    asr.transcribe(clips[:1], language="xx")


def test_hotwords_in_the_prompt_are_the_retrieved_ones(asr, clips):
  names = ["Calloway", "Zorbulax", "Kestrava", "", "Calloway"]
  out = asr.transcribe(clips, hotwords=names, max_new_tokens=8)
  index = hw.HotwordIndex(names)
  for r in out:
    assert r.hotwords == [w for w, _ in index.retrieve(r.ctc_text)]


def test_hotword_bias_writes_the_listed_name_and_leaves_other_rows_alone(asr, clips):
  """A bonus far above the logits' spread makes the decoder spell the one listed hotword
  (it starts with its first token, and only its next token is boosted after that); with no
  hotwords the bonus changes nothing."""
  biased = type(asr)(asr.cfg, asr.params, asr.tokenizer,
                     retrieval=hw.RetrievalConfig(bias=1e4))
  n = len(asr.tokenizer.encode("Calloway"))
  out = biased.transcribe(clips, hotwords=["Calloway"], retrieve=False, max_new_tokens=n)
  assert [r.text for r in out] == ["Calloway"] * len(clips)
  unbiased = type(asr)(asr.cfg, asr.params, asr.tokenizer,
                       retrieval=hw.RetrievalConfig(bias=0.0))
  plain = unbiased.transcribe(clips, hotwords=["Calloway"], retrieve=False, max_new_tokens=n)
  assert [r.text for r in plain] != ["Calloway"] * len(clips)
  assert [r.text for r in biased.transcribe(clips, max_new_tokens=8)] == \
      [r.text for r in unbiased.transcribe(clips, max_new_tokens=8)]


def test_a_ctc_compressed_model_transcribes_and_streams_as_its_training_forward(asr, clips):
  """With `ctc_compress` (and a cap) the adaptor reads only the frames CTC keeps: greedy
  transcription and a stream's final text are the tokens that re-running the model's
  training forward over the growing answer picks one at a time."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import flax  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.inference.asr import FunASR  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.inference.streaming import Stream  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.inference.transcribe import postprocess  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.models import fun_asr  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.text import prompts  # pylint: disable=import-outside-toplevel
  c = asr.cfg
  fbank = dataclasses.replace(c.frontend.fbank, dither=0.0)
  cfg = dataclasses.replace(
      c, ctc_compress=True, ctc_compress_cap=3,
      frontend=dataclasses.replace(c.frontend, fbank=fbank),
      adaptor=dataclasses.replace(c.adaptor, downsample=1),
      llm=dataclasses.replace(c.llm, scan_layers=True, out_major=False))
  params = flax.core.meta.unbox(fun_asr.init_params(cfg, jax.random.key(7)))
  model = FunASR(cfg, params["params"], asr.tokenizer)
  tok = asr.tokenizer
  x, rate = audio_io.load(clips[0])
  x = audio_io.resample(audio_io.to_mono(x), rate)

  forward = jax.jit(fun_asr.FunASR(cfg).apply)
  lay = prompts.layout(tok, fun_asr.num_audio_tokens(cfg, len(x)), prompts.task_prompt())
  ids = list(lay.tokens)
  wave = jnp.asarray(x)[None]
  answer = []
  for _ in range(6):
    n = len(ids)
    batch = {"tokens": jnp.asarray([ids], jnp.int32),
             "audio_mask": jnp.asarray([np.pad(lay.audio_mask, (0, n - len(lay.tokens)))]),
             "target_mask": jnp.zeros((1, n), bool), "paddings": jnp.zeros((1, n)),
             "waveform": wave, "wave_lengths": jnp.asarray([len(x)], jnp.int32)}
    nxt = int(jnp.argmax(forward(params, batch)["logits"][0, -1]))
    if nxt == tok.eos_id:
      break
    answer.append(nxt)
    ids.append(nxt)
  assert len(answer) >= 3  # a random model whose first token ends the answer tests nothing
  want = postprocess(tok.decode(answer))
  got = model.transcribe([x], max_new_tokens=len(answer))[0].text
  assert got == want
  stream = Stream(model, chunk_seconds=0.5)
  stream.accept(x)
  assert stream.finish().text == model.transcribe([x], max_new_tokens=256)[0].text
