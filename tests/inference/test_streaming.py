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
