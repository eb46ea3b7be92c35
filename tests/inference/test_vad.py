"""VAD on real recordings with known pauses; long-form transcription stitched in order."""

import json
import os

import numpy as np

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.inference import vad


def fsdd_clips(shared_data, n, seed=0):
  rows = [json.loads(l) for l in open(os.path.join(shared_data, "fsdd", "manifest.jsonl"))]
  rng = np.random.default_rng(seed)
  out = []
  for r in rng.choice(rows, n, replace=False):
    x, rate = audio_io.load(os.path.join(shared_data, "fsdd", r["audio"]))
    out.append(audio_io.resample(audio_io.to_mono(x), rate))
  return out


def recording(clips, gaps_s, rng, noise=3e-4):
  """Clips joined by pauses of low noise; returns audio and each clip's sample range."""
  parts, spans, pos = [], [], 0
  for clip, gap in zip(clips, gaps_s):
    pause = rng.normal(0, noise, int(gap * 16000)).astype(np.float32)
    parts += [pause, clip + rng.normal(0, noise, len(clip)).astype(np.float32)]
    spans.append((pos + len(pause), pos + len(pause) + len(clip)))
    pos += len(pause) + len(clip)
  return np.concatenate(parts), spans


def test_segments_follow_the_pauses_between_real_clips(shared_data):
  rng = np.random.default_rng(0)
  clips = fsdd_clips(shared_data, 8)
  x, spans = recording(clips, [1.0] * 8, rng)
  segs = vad.segments(x)
  assert len(segs) == len(spans)
  for (a, b), (sa, sb) in zip(segs, spans):
    assert a <= sa + 0.1 * 16000 and b >= sb - 0.1 * 16000  # the clip's speech is inside
    assert a >= sa - 0.4 * 16000 and b <= sb + 0.4 * 16000  # and little of the pause


def test_long_speech_is_cut_below_the_limit_without_losing_any(shared_data):
  rng = np.random.default_rng(1)
  clips = fsdd_clips(shared_data, 120, seed=1)
  x, spans = recording(clips, [0.1] * len(clips), rng)  # gaps too short to split at
  assert len(x) > 40 * 16000
  segs = vad.segments(x, cfg=vad.VADConfig(max_segment_s=10.0))
  assert all(b - a <= 10.0 * 16000 for a, b in segs)
  covered = np.zeros(len(x), bool)
  for a, b in segs:
    covered[a:b] = True
  for clip, (sa, _) in zip(clips, spans):  # every clip's loudest 20 ms is in a segment
    loudest = int(np.argmax(vad.frame_energy_db(clip, 320))) * 320
    assert covered[sa + loudest: sa + loudest + 320].all()


def test_silence_and_tiny_inputs_have_no_segments():
  assert vad.segments(np.zeros(16000 * 3, np.float32)) == []
  assert vad.segments(np.zeros(100, np.float32)) == []


def test_long_recording_is_segmented_and_stitched_in_order(asr, shared_data):
  rng = np.random.default_rng(2)
  clips = fsdd_clips(shared_data, 40, seed=2)
  x, spans = recording(clips, rng.uniform(0.5, 3.0, len(clips)), rng)
  out = asr.transcribe([x], max_new_tokens=4, segment_seconds=10.0)[0]
  assert out.error is None
  starts = [w["start"] for w in out.timestamps]
  assert starts == sorted(starts) and (not starts or out.timestamps[-1]["end"] <= len(x) / 16000)
  pieces = vad.segments(x, cfg=vad.VADConfig(max_segment_s=10.0))
  alone = asr.transcribe([x[a:b] for a, b in pieces], max_new_tokens=4)
  assert out.text == " ".join(r.text for r in alone if r.text)
