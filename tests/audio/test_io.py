"""Audio entry checks: every bad input is an error that names the item and the problem."""

import os

import numpy as np
import pytest
import soundfile as sf

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.inference.transcribe import transcribe_arrays
from configs import models


def test_wrong_sample_rate():
  with pytest.raises(audio_io.AudioError, match=r"clip7: sample rate 8000 Hz, expected 16000"):
    audio_io.check_waveform(np.zeros(800, np.float32), 8000, name="clip7")


def test_stereo_is_rejected_until_mixed_down():
  x = np.zeros((1600, 2), np.float32)
  with pytest.raises(audio_io.AudioError, match=r"expected mono.*\(1600, 2\)"):
    audio_io.check_waveform(x, 16000)
  assert audio_io.check_waveform(audio_io.to_mono(x), 16000).shape == (1600,)


def test_dtypes():
  ints = (np.ones(10) * 16384).astype(np.int16)
  np.testing.assert_allclose(audio_io.check_waveform(ints, 16000), 0.5)
  with pytest.raises(audio_io.AudioError, match="dtype int32 is not supported"):
    audio_io.check_waveform(np.zeros(10, np.int32), 16000)
  with pytest.raises(audio_io.AudioError, match="NaN"):
    audio_io.check_waveform(np.array([0.0, np.nan], np.float32), 16000)


def test_empty_and_too_long():
  with pytest.raises(audio_io.AudioError, match="empty audio"):
    audio_io.check_waveform(np.zeros(0, np.float32), 16000)
  with pytest.raises(audio_io.AudioError, match=r"31.0 s is longer than the configured maximum of 30.0 s"):
    audio_io.check_waveform(np.zeros(31 * 16000, np.float32), 16000, max_seconds=30)


def test_unreadable_and_missing_files(tmp_path):
  bad = tmp_path / "bad.wav"
  bad.write_bytes(b"RIFF not really")
  with pytest.raises(audio_io.AudioError, match="bad.wav: unreadable audio"):
    audio_io.load(str(bad))
  with pytest.raises(audio_io.AudioError, match="no such file"):
    audio_io.load(str(tmp_path / "nope.flac"))


def test_load_and_resample_roundtrip(tmp_path):
  t = np.arange(8000) / 8000
  tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
  path = os.path.join(tmp_path, "tone.flac")
  sf.write(path, tone, 8000)
  x, rate = audio_io.load(path)
  y = audio_io.resample(x, rate)
  assert rate == 8000 and y.shape == (16000,)
  spec = np.abs(np.fft.rfft(y))
  assert abs(np.argmax(spec) * 16000 / len(y) - 440) < 2


def test_transcribe_rejects_bad_item_by_index():
  cfg = models.model_config("tiny")
  with pytest.raises(audio_io.AudioError, match=r"audio\[1\]: empty audio"):
    transcribe_arrays(cfg, {}, None, [np.zeros(1600, np.float32), np.zeros(0, np.float32)])
