"""Chunked streaming: partial text after every chunk of audio, the full result at the end.

    stream = Stream(asr, chunk_seconds=0.64)
    for piece in microphone():              # any chunking of the incoming samples
      for p in stream.accept(piece):        # one Partial per completed chunk
        show(p.stable, p.text)
    final = stream.finish()                 # a Transcript, as FunASR.transcribe gives

Each chunk re-encodes the audio received so far (padded to a few fixed lengths, so a
stream compiles a handful of programs) and reads the CTC greedy path: the first pass is
cheap enough to run per chunk, and the LLM decodes once, at the end. With an encoder
trained with chunk masks (`encoder.chunk_size > 0`) frames never see the future, so the
past's hypothesis is stable; with a full-context encoder (SAN-M, offline Conformers) the
tail may change as audio arrives, so the last `rollback_words` words stay tentative
(Fun-ASR's re-encode-with-rollback). A model without a usable CTC branch gets LLM partials.
"""

import dataclasses
import time

import numpy as np

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.inference.asr import FunASR, Transcript


@dataclasses.dataclass
class Partial:
  text: str  # the whole current hypothesis
  stable: str  # its prefix that later chunks will not change
  seconds: float  # audio received so far
  compute_seconds: float  # time this update took


def _common_prefix(a: list[str], b: list[str]) -> int:
  n = 0
  while n < min(len(a), len(b)) and a[n] == b[n]:
    n += 1
  return n


class Stream:
  """One utterance arriving in pieces."""

  def __init__(self, asr: FunASR, chunk_seconds: float = 0.64, rollback_words: int = 2,
               hotwords=None, language: str | None = None, max_new_tokens: int = 256):
    if chunk_seconds <= 0:
      raise ValueError(f"chunk_seconds={chunk_seconds}: must be positive")
    self.asr, self.hotwords, self.language = asr, hotwords, language
    self.max_new_tokens = max_new_tokens
    self.chunk = int(round(chunk_seconds * audio_io.TARGET_RATE))
    self.rollback = 0 if asr.cfg.encoder.chunk_size > 0 else rollback_words
    self._audio = np.zeros(0, np.float32)
    self._done = 0  # samples covered by the last partial
    self._stable: list[str] = []
    self._previous: list[str] = []

  def accept(self, samples, sample_rate: int = audio_io.TARGET_RATE) -> list[Partial]:
    """Adds audio (mono or `[N, C]`, any rate); returns a Partial per completed chunk."""
    x = audio_io.to_mono(np.asarray(samples, np.float32), "stream chunk")
    if sample_rate != audio_io.TARGET_RATE:
      x = audio_io.resample(x, sample_rate)
    self._audio = np.concatenate([self._audio, x.astype(np.float32)])
    out = []
    while len(self._audio) - self._done >= self.chunk:
      self._done += self.chunk
      out.append(self._partial(self._audio[: self._done]))
    return out

  def _hypothesis(self, audio: np.ndarray) -> str:
    asr = self.asr
    if not asr.has_ctc_text:
      return asr.transcribe([audio], hotwords=self.hotwords, language=self.language,
                            max_new_tokens=self.max_new_tokens)[0].text
    return asr.first_pass([audio])[2][0]["text"]

  def _partial(self, audio: np.ndarray) -> Partial:
    t = time.perf_counter()
    words = self._hypothesis(audio).split()
    # stable: what two consecutive hypotheses agree on, minus the rollback window; once
    # stable, words stay (the display never retracts them)
    agreed = _common_prefix(self._previous, words)
    keep = max(len(self._stable), min(agreed, len(words) - self.rollback))
    if _common_prefix(self._stable, words) == len(self._stable):
      self._stable = words[:keep]
    self._previous = words
    text = " ".join(self._stable + words[_common_prefix(self._stable, words):])
    return Partial(text=text, stable=" ".join(self._stable),
                   seconds=len(audio) / audio_io.TARGET_RATE,
                   compute_seconds=time.perf_counter() - t)

  def finish(self) -> Transcript:
    """The final result on all the audio (LLM decoding, hotwords, timestamps)."""
    if not len(self._audio):
      return Transcript(source="stream")
    out = self.asr.transcribe([self._audio], hotwords=self.hotwords, language=self.language,
                              max_new_tokens=self.max_new_tokens)[0]
    out.source = "stream"
    return out
