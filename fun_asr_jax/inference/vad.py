"""Energy VAD: cuts long recordings into speech segments of bounded length.

Frame log-energies are compared with the recording's own noise floor (a low percentile)
and its loud frames, so level and microphone do not matter; short gaps are bridged, short blips dropped, and a
segment longer than the limit is cut at its quietest frame. Cheap (one numpy pass), and
what a 10-minute file needs before a model whose prompts hold at most ~30 s of audio.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class VADConfig:
  frame_ms: float = 20.0
  margin_db: float = 12.0  # speech: this far above the noise floor
  floor_percentile: float = 10.0
  min_speech_s: float = 0.12  # shorter bursts are noise
  min_silence_s: float = 0.35  # shorter gaps stay inside a segment
  pad_s: float = 0.15  # kept around each segment
  max_segment_s: float = 30.0
  min_level_db: float = -60.0  # quieter frames (dBFS) are never speech: digital silence


def frame_energy_db(x: np.ndarray, frame: int, block: int = 4096) -> np.ndarray:
  """Mean power per frame in dB, `block` frames at a time: a long recording costs no
  full-length float64 copies."""
  n = len(x) // frame
  frames = x[: n * frame].reshape(n, frame)
  power = np.empty(n, np.float64)
  for a in range(0, n, block):
    f = frames[a: a + block].astype(np.float64)
    power[a: a + block] = np.mean(f * f, axis=1)
  return 10 * np.log10(power + 1e-10)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
  """[start, end) index runs where flags is True."""
  d = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
  return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def segments(x: np.ndarray, rate: int = 16000, cfg: VADConfig = VADConfig()):
  """Mono waveform -> [(start, end)] sample ranges of speech, each <= max_segment_s."""
  frame = int(rate * cfg.frame_ms / 1000)
  if len(x) < frame:
    return []
  db = frame_energy_db(x, frame)
  floor = np.percentile(db, cfg.floor_percentile)
  # a recording that is mostly speech has its floor at the speech level: then the
  # threshold falls back to 30 dB under the loud frames
  loud = np.percentile(db, 95)
  speech = db > max(min(floor + cfg.margin_db, loud - 30.0), cfg.min_level_db)
  per_s = 1000 / cfg.frame_ms
  runs = [r for r in _runs(speech) if (r[1] - r[0]) / per_s >= cfg.min_speech_s]
  merged: list[list[int]] = []
  for a, b in runs:
    if merged and (a - merged[-1][1]) / per_s < cfg.min_silence_s:
      merged[-1][1] = b
    else:
      merged.append([a, b])
  pad = int(cfg.pad_s * per_s)
  limit = int(cfg.max_segment_s * per_s) - 2 * pad
  out = []
  for a, b in merged:
    a, b = max(0, a - pad), min(len(db), b + pad)
    while b - a > limit + 2 * pad:  # cut at the quietest frame of the window's last half
      lo, hi = a + limit // 2, a + limit + 2 * pad
      cut = lo + int(np.argmin(db[lo:hi]))
      out.append((a, cut))
      a = cut
    out.append((a, b))
  return [(a * frame, min(b * frame, len(x))) for a, b in out]
