"""Record schema round-trip and corruption detection."""

import numpy as np
import pytest

from fun_asr_jax.data import schema


def make(**kw):
  base = dict(id="utt-1", audio=np.array([0, 1, -1, 32767, -32768], np.int16),
              sample_rate=8000, text="你好 world", lang="mix", hotwords=["阙梓萱", "Zorbulax"],
              speaker="spk9", kind="speech")
  base.update(kw)
  return schema.Utterance(**base)


def test_every_field_round_trips():
  u = make()
  v = schema.decode(schema.encode(u))
  for f in ("id", "sample_rate", "text", "lang", "hotwords", "speaker", "kind"):
    assert getattr(v, f) == getattr(u, f), f
  np.testing.assert_array_equal(v.audio, u.audio)
  assert v.duration == pytest.approx(5 / 8000)


def test_float_audio_is_converted_to_int16():
  v = schema.decode(schema.encode(make(audio=np.array([0.5, -1.0, 2.0], np.float32))))
  np.testing.assert_array_equal(v.audio, [16384, -32768, 32767])


def test_empty_noise_clip():
  v = schema.decode(schema.encode(make(text="", kind="noise", audio=np.zeros(3, np.int16))))
  assert v.text == "" and v.kind == "noise"


@pytest.mark.parametrize("mutate,message", [
    (lambda b: b"XXXX" + b[4:], "bad magic"),
    (lambda b: b[:-2], "audio bytes"),
    (lambda b: b.replace(b'"version": 1', b'"version": 9'), "schema version 9"),
    (lambda b: b[:10] + b"\xff\xfe" + b[12:], "corrupt record header"),
])
def test_corruption_is_reported(mutate, message):
  with pytest.raises(schema.RecordError, match=message):
    schema.decode(mutate(schema.encode(make())))


def test_bad_kind_rejected():
  with pytest.raises(schema.RecordError, match="kind"):
    schema.encode(make(kind="music"))
