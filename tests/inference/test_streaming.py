"""Chunked streaming: partials per chunk whatever the piece sizes, a final full result."""

import numpy as np
import pytest

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.inference.streaming import Stream


def test_partials_do_not_depend_on_how_audio_arrives(asr, clips):
  x, rate = audio_io.load(clips[0])
  x = audio_io.resample(audio_io.to_mono(x), rate)
  whole = Stream(asr, chunk_seconds=0.5)
  by_chunk = whole.accept(x)
  pieces = Stream(asr, chunk_seconds=0.5)
  by_piece = [p for i in range(0, len(x), 1234) for p in pieces.accept(x[i: i + 1234])]
  assert len(by_chunk) == len(x) // 8000 >= 1
  assert [p.text for p in by_chunk] == [p.text for p in by_piece]
  assert [p.seconds for p in by_chunk] == [0.5 * (i + 1) for i in range(len(by_chunk))]
  stable = [p.stable.split() for p in by_chunk]
  for before, after, p in zip(stable, stable[1:], by_chunk[1:]):
    assert after[: len(before)] == before  # stable words are never retracted
    assert p.text.split()[: len(after)] == after
  final = whole.finish()
  assert final.text == asr.transcribe([x], max_new_tokens=256)[0].text


def test_stream_takes_other_rates_and_rejects_bad_settings(asr):
  s = Stream(asr, chunk_seconds=0.25)
  assert len(s.accept(np.zeros(8000, np.float32), sample_rate=8000)) == 4
  assert Stream(asr).finish().text == ""
  with pytest.raises(ValueError, match="chunk_seconds"):
    Stream(asr, chunk_seconds=0)


@pytest.fixture(scope="module")
def streaming_asr(asr):
  """A chunk-trainable tiny model (random weights): chunked causal Conformer, per-frame
  frontend, the fixture model's tokenizer and vocabulary."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import flax  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.inference.asr import FunASR  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.models import fun_asr  # pylint: disable=import-outside-toplevel
  c = asr.cfg
  cfg = dataclasses.replace(
      c, frontend=dataclasses.replace(c.frontend, utterance_norm=False),
      encoder=dataclasses.replace(c.encoder, chunk_size=4, left_chunks=-1, causal_conv=True))
  params = flax.core.meta.unbox(fun_asr.init_params(cfg, jax.random.key(1)))["params"]
  return FunASR(cfg, params, asr.tokenizer)


def test_incremental_stream_encodes_each_frame_once_as_offline(streaming_asr, clips):
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.inference.transcribe import postprocess  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.models.fun_asr import FunASR as Model  # pylint: disable=import-outside-toplevel
  asr = streaming_asr
  x, rate = audio_io.load(clips[0])
  x = audio_io.resample(audio_io.to_mono(x), rate)
  stream = Stream(asr, chunk_seconds=0.32)  # 8 encoder frames of 40 ms
  assert stream.incremental
  partials = [p for i in range(0, len(x), 999) for p in stream.accept(x[i: i + 999])]
  frames = np.concatenate(stream._encoder.outputs)  # pylint: disable=protected-access
  # a partial as soon as a chunk and its 45 ms of convolution lookahead are in
  assert [round(p.seconds, 3) for p in partials] == [
      round((5120 * (k + 1) + 720) / 16000, 3) for k in range(len(partials))]
  assert len(frames) == 8 * len(partials) and len(partials) >= 3
  model, v = Model(asr.cfg), {"params": asr.params}
  feats, pads = model.apply(v, jnp.asarray(x[None]), jnp.asarray([len(x)]),
                            method=Model.features)
  offline, _ = model.apply(v, feats, pads, method=Model.encode)
  np.testing.assert_allclose(frames, np.asarray(offline)[0, : len(frames)], atol=1e-4)
  # the last hypothesis is the CTC greedy path (NumPy here) over all frames so far
  logits, _ = model.apply(v, jnp.asarray(frames[None]), jnp.zeros((1, len(frames))),
                          method=Model.ctc_logits)
  best = np.asarray(logits)[0].argmax(-1)
  path = [int(t) for i, t in enumerate(best) if t != asr.cfg.ctc.blank_id
          and (i == 0 or t != best[i - 1]) and t < asr.tokenizer.vocab_size]
  latest = stream._previous  # pylint: disable=protected-access
  assert latest == postprocess(asr.tokenizer.decode(path)).split()
  # the final result from the cached frames and the tail equals offline transcription
  final, offline = stream.finish(), asr.transcribe([x], max_new_tokens=256)[0]
  assert final.text == offline.text and final.ctc_text == offline.ctc_text
  assert final.timestamps == offline.timestamps
