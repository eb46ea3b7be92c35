"""Chunked streaming: partial text after every chunk of audio, the full result at the end.

    stream = Stream(asr, chunk_seconds=0.64)
    for piece in microphone():              # any chunking of the incoming samples
      for p in stream.accept(piece):        # one Partial per completed chunk
        show(p.stable, p.text)
    final = stream.finish()                 # a Transcript, as FunASR.transcribe gives

A chunk-trained Conformer (`encoder.chunk_size > 0`, causal convolution, a per-frame
frontend) is encoded incrementally: each chunk's frames run through the encoder once,
attending to the cached keys and values of the frames before them, with the same outputs
as encoding the whole utterance under its chunk mask (`models.encoder.streamable`); a
partial comes as soon as a chunk and the convolutions' 45 ms lookahead are in. Other models
(SAN-M, full-context Conformers, per-utterance normalisation) re-encode the audio received
so far at every chunk (padded to a few fixed lengths, so a stream compiles a handful of
programs). Either way the light CTC branch reads all frames so far and its greedy path is
the partial; its decoder layer attends both ways, so the last `rollback_words` words stay
tentative (Fun-ASR's re-encode-with-rollback). A model without a usable CTC branch gets
LLM partials. The LLM decodes once, at the end: over the frames already encoded plus the
tail's when the stream was encoded incrementally, so no audio is encoded twice.
"""

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.inference.asr import FunASR, Transcript
from fun_asr_jax.inference.transcribe import audio_side, postprocess
from fun_asr_jax.models import ctc as ctc_lib
from fun_asr_jax.models import encoder as encoder_lib
from fun_asr_jax.models.fun_asr import FunASR as Model, ModelConfig

_SHIFT, _WINDOW = 160, 400  # fbank frame shift and length in samples (10 ms / 25 ms)


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
               hotwords=None, language: str | None = None, max_new_tokens: int = 256,
               reencode: bool = False):
    """`reencode=True` re-encodes the audio so far at every chunk even where the model
    could be encoded incrementally (a reference for benchmarks and tests)."""
    if chunk_seconds <= 0:
      raise ValueError(f"chunk_seconds={chunk_seconds}: must be positive")
    self.asr, self.hotwords, self.language = asr, hotwords, language
    self.max_new_tokens = max_new_tokens
    self.chunk = int(round(chunk_seconds * audio_io.TARGET_RATE))
    self.rollback = rollback_words  # the CTC branch's decoder layer reads all frames
    self.incremental = asr.has_ctc_text and incremental(asr.cfg) and not reencode
    self._encoder = Incremental(asr, chunk_seconds) if self.incremental else None
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
    while len(self._audio) >= self._next():
      self._done = self._next()
      out.append(self._partial(self._audio[: self._done]))
    return out

  def _next(self) -> int:
    """Samples the next partial needs: a chunk more, or (incremental) the next encoder
    chunk's window, which reaches 45 ms past the chunk (the convolutions' lookahead)."""
    return self._encoder.samples_needed() if self._encoder else self._done + self.chunk

  def _hypothesis(self, audio: np.ndarray) -> str:
    asr = self.asr
    if self._encoder is not None:
      return self._encoder.hypothesis(audio)
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

  def finish(self, segment_seconds: float = 30.0) -> Transcript:
    """The final result on all the audio (LLM decoding, hotwords, timestamps): from the
    frames encoded so far plus the tail when the stream was encoded incrementally (and is
    no longer than `segment_seconds`), else `FunASR.transcribe` on the whole audio."""
    if not len(self._audio):
      return Transcript(source="stream")
    if self._encoder is not None and \
        _WINDOW <= len(self._audio) <= segment_seconds * audio_io.TARGET_RATE:
      out = self._encoder.finish(self._audio, self.hotwords, self.language,
                                 self.max_new_tokens)
    else:
      out = self.asr.transcribe([self._audio], hotwords=self.hotwords, language=self.language,
                                max_new_tokens=self.max_new_tokens,
                                segment_seconds=segment_seconds)[0]
    out.source = "stream"
    return out


def incremental(cfg: ModelConfig) -> bool:
  """Whether a model's audio side can be encoded chunk by chunk (see module doc)."""
  fc = cfg.frontend
  return (encoder_lib.streamable(cfg.encoder) and not fc.utterance_norm
          and fc.lfr_m == 1 and fc.lfr_n == 1 and fc.fbank.snip_edges
          and fc.fbank.frame_shift_ms == 10.0 and fc.fbank.frame_length_ms == 25.0)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _encode_chunk(params, samples, length, cache, index, first_frame, cfg: ModelConfig):
  """The samples of one chunk's feature window `[1, N]`, of which `length` are audio (less
  than N only at the stream's end), starting at fbank frame `first_frame` of the stream ->
  (frames `[1, C, D]`, paddings, new cache)."""
  model, v = Model(cfg), {"params": params}
  feats, pads = model.apply(v, samples, jnp.reshape(length, (1,)), None, None, first_frame,
                            method=Model.features)
  return model.apply(v, feats, pads, True, cache, index, method=Model.encode)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _ctc_path(params, frames, paddings, cfg: ModelConfig):
  model = Model(cfg)
  logits, lpads = model.apply({"params": params}, frames, paddings, method=Model.ctc_logits)
  tokens, lengths, _ = ctc_lib.greedy_decode(logits, lpads, cfg.ctc.blank_id)
  return tokens, lengths


def _padded(frames: np.ndarray):
  """Frames `[T, D]` -> (`[1, T', D]`, paddings `[1, T']`), T' a multiple of 64: a stream's
  growing frame count compiles one program per 64 frames (2.56 s), not one per chunk."""
  width = -(-len(frames) // 64) * 64
  x = np.zeros((1, width, frames.shape[1]), np.float32)
  x[0, : len(frames)] = frames
  return jnp.asarray(x), jnp.asarray((np.arange(width) >= len(frames)).astype(np.float32)[None])


class Incremental:
  """The audio side of one stream, chunk by chunk: encoder frames computed once each."""

  def __init__(self, asr: FunASR, chunk_seconds: float):
    self.asr, cfg = asr, asr.cfg.encoder
    frame_s = cfg.subsampling * _SHIFT / audio_io.TARGET_RATE  # seconds per encoder frame
    self.frames = max(1, int(round(chunk_seconds / frame_s / cfg.chunk_size))) * cfg.chunk_size
    self.index = 0  # encoder frames done
    self.slots = 0
    self.cache = None
    self.outputs: list[np.ndarray] = []  # [C, D] per chunk

  def _grow(self, needed: int):
    """Cache slots double when full (one compiled program per size)."""
    if needed <= self.slots:
      return
    slots = max(256, self.slots)
    while slots < needed:
      slots *= 2
    fresh = encoder_lib.stream_cache(self.asr.cfg.encoder, 1, slots)
    if self.cache is not None:
      fresh = {k: (jax.lax.dynamic_update_slice(fresh[k], v, (0,) * v.ndim)
                   if k != "conv" else v) for k, v in self.cache.items()}
    self.cache, self.slots = fresh, slots

  def _window(self) -> tuple[int, int]:
    """Samples [start, stop) the next chunk's feature window is computed from."""
    a, b = encoder_lib.stream_window(self.asr.cfg.encoder, self.index, self.frames)
    return a * _SHIFT, (b - 1) * _SHIFT + _WINDOW

  def samples_needed(self) -> int:
    return self._window()[1]

  def _encode(self, audio: np.ndarray) -> np.ndarray:
    """The next chunk's valid frames `[n, D]` from what `audio` holds of its window."""
    start, stop = self._window()
    samples = np.zeros((1, stop - start), np.float32)
    piece = audio[start: stop]
    samples[0, : len(piece)] = piece
    self._grow(self.index + self.frames)
    h, pads, self.cache = _encode_chunk(self.asr.params, jnp.asarray(samples), len(piece),
                                        self.cache, self.index, start // _SHIFT, self.asr.cfg)
    self.index += self.frames
    return np.asarray(h)[0, : int(np.sum(np.asarray(pads)[0] < 0.5))]

  def advance(self, audio: np.ndarray) -> int:
    """Encodes every whole chunk `audio` now covers; -> encoder frames done."""
    while len(audio) >= self.samples_needed():
      self.outputs.append(self._encode(audio))
    return self.index

  def finish(self, audio: np.ndarray, hotwords, language, max_new_tokens) -> Transcript:
    """The whole stream's result from its encoded frames and the tail's: no re-encoding."""
    self.advance(audio)
    frames = np.concatenate(self.outputs + [self._encode(audio)])
    enc = audio_side(self.asr.params, *_padded(frames), self.asr.cfg)
    lengths = np.array([len(audio)], np.int32)
    index, static = self.asr.hotword_plan(hotwords)
    return self.asr.decode(enc, lengths, self.asr.ctc_passes(enc, lengths), index, static,
                           language, max_new_tokens)[0]

  def hypothesis(self, audio: np.ndarray) -> str:
    """CTC greedy text over all frames encoded so far."""
    self.advance(audio)
    if not self.outputs:
      return ""
    tokens, lengths = jax.device_get(_ctc_path(self.asr.params,
                                               *_padded(np.concatenate(self.outputs)),
                                               self.asr.cfg))
    toks = [int(t) for t in tokens[0, : lengths[0]] if t < self.asr.tokenizer.vocab_size]
    return postprocess(self.asr.tokenizer.decode(toks))
