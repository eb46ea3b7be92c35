"""The on-disk record of one utterance (an ArrayRecord entry), versioned.

    bytes = b"FAR1" | uint32 header length | UTF-8 JSON header | int16 little-endian PCM

The header holds every field but the audio; the PCM follows as raw bytes so decoding is a
`np.frombuffer`. Version 1 fields: id, sample_rate, text, lang, hotwords, speaker, duration,
kind ('speech' | 'noise' | 'silence'). Readers reject unknown versions by name.
"""

import dataclasses
import json
import struct

import numpy as np

MAGIC = b"FAR1"
VERSION = 1
KINDS = ("speech", "noise", "silence")


class RecordError(ValueError):
  """A record that cannot be decoded."""


@dataclasses.dataclass
class Utterance:
  id: str
  audio: np.ndarray  # [N] int16
  sample_rate: int
  text: str = ""
  lang: str = ""
  hotwords: list[str] = dataclasses.field(default_factory=list)
  speaker: str = ""
  kind: str = "speech"

  @property
  def duration(self) -> float:
    return len(self.audio) / float(self.sample_rate)

  def float_audio(self) -> np.ndarray:
    return self.audio.astype(np.float32) / 32768.0


def to_int16(x: np.ndarray) -> np.ndarray:
  """Float in [-1, 1] (clipped) or int16 -> int16."""
  if x.dtype == np.int16:
    return x
  return np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def encode(u: Utterance) -> bytes:
  if u.kind not in KINDS:
    raise RecordError(f"record {u.id}: kind {u.kind!r}, expected one of {KINDS}")
  audio = to_int16(np.asarray(u.audio))
  if audio.ndim != 1:
    raise RecordError(f"record {u.id}: audio must be 1-D, got shape {audio.shape}")
  header = {"version": VERSION, "id": u.id, "sample_rate": int(u.sample_rate),
            "text": u.text, "lang": u.lang, "hotwords": list(u.hotwords),
            "speaker": u.speaker, "kind": u.kind,
            "duration": round(len(audio) / float(u.sample_rate), 4),
            "num_samples": int(len(audio))}
  h = json.dumps(header, ensure_ascii=False).encode("utf-8")
  return MAGIC + struct.pack("<I", len(h)) + h + audio.astype("<i2").tobytes()


def decode(data: bytes) -> Utterance:
  """bytes -> Utterance; raises RecordError naming what is wrong."""
  if len(data) < 8 or data[:4] != MAGIC:
    raise RecordError("not a fun_asr_jax record (bad magic)")
  (n,) = struct.unpack("<I", data[4:8])
  try:
    header = json.loads(data[8: 8 + n].decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise RecordError(f"corrupt record header ({e})") from e
  rid = header.get("id", "?")
  if header.get("version") != VERSION:
    raise RecordError(f"record {rid}: schema version {header.get('version')}, this code reads "
                      f"version {VERSION}")
  pcm = data[8 + n:]
  if len(pcm) != 2 * header.get("num_samples", -1):
    raise RecordError(f"record {rid}: {len(pcm)} audio bytes, header says "
                      f"{header.get('num_samples')} samples")
  return Utterance(id=rid, audio=np.frombuffer(pcm, "<i2").astype(np.int16),
                   sample_rate=header["sample_rate"], text=header["text"], lang=header["lang"],
                   hotwords=list(header["hotwords"]), speaker=header["speaker"],
                   kind=header["kind"])
