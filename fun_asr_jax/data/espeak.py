"""Speech synthesis with espeak-ng through the `espeakng-loader` wheel (no system install).

The library is driven through ctypes in synchronous mode: `espeak_Synth` calls our callback
with int16 chunks, which we collect. espeak-ng keeps global state, so one `Synthesizer`
per process; parallelism comes from processes.
"""

import ctypes
import os
import threading

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)
_lock = threading.Lock()
_instance = None


class Synthesizer:
  """Text -> int16 waveform at `sample_rate` (22.05 kHz for espeak-ng)."""

  def __init__(self):
    try:
      import espeakng_loader  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ImportError("speech synthesis needs the espeakng-loader package: "
                        "pip install espeakng-loader") from e
    self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
    data = espeakng_loader.get_data_path()
    self._lib.espeak_Initialize.restype = ctypes.c_int
    rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                       os.path.dirname(data).encode(), 0)
    if rate <= 0:
      raise RuntimeError(f"espeak_Initialize failed with data at {data}")
    self.sample_rate = rate
    self._chunks: list[np.ndarray] = []
    self._cb = _CALLBACK(self._collect)  # keep a reference: C holds only the pointer
    self._lib.espeak_SetSynthCallback(self._cb)
    self._lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                       ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                       ctypes.c_void_p, ctypes.c_void_p]

  def _collect(self, wav, n, events):
    del events
    if n > 0 and wav:
      self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
    return 0

  def synth(self, text: str, voice: str = "en", rate: int = 175, pitch: int = 50,
            pitch_range: int = 50, word_gap: int = 0, seed: int = 0) -> np.ndarray:
    """int16 samples of `text` spoken by `voice` ('en', 'cmn', 'en-us+f3', ...)."""
    with _lock:
      if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"espeak-ng has no voice {voice!r}")
      for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range),
                           (_WORDGAP, word_gap)):
        self._lib.espeak_SetParameter(param, int(value), 0)
      self._chunks = []
      self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))  # espeak-ng jitters voices
      data = text.encode("utf-8")
      err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                   None, None)
      if err != 0:
        raise RuntimeError(f"espeak_Synth failed ({err}) for {text!r}")
      self._lib.espeak_Synchronize()
      return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def synthesizer() -> Synthesizer:
  """The process-wide synthesizer."""
  global _instance  # pylint: disable=global-statement
  with _lock:
    if _instance is None:
      _instance = Synthesizer()
  return _instance
