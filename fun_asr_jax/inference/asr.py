"""`FunASR`: the Python API. Files or arrays in, transcripts with CTC text, hotwords used,
timestamps and language out.

  from fun_asr_jax import FunASR
  asr = FunASR.load("runs/s5")                    # a training workdir or a model folder
  for r in asr.transcribe(["a.wav", "b.flac"], hotwords=["Calloway", "龚霁川"]):
    print(r.text, r.timestamps)

Per batch: the encoder runs once; its CTC greedy pass gives `ctc_text`, token timestamps
and, when a hotword list is given, the retrieval query (`hotwords.HotwordIndex`); each
utterance's prompt then carries only the hotwords it probably mentions. Clips are sorted
by length and padded to a few fixed lengths, so a folder of files compiles a handful of
programs. An unreadable item gets an `error` and the rest of the batch goes on.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax import decoding
from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.inference import hotwords as hotwords_lib
from fun_asr_jax.inference import vad
from fun_asr_jax.inference.transcribe import decode_prompts, encode_audio, postprocess
from fun_asr_jax.models.fun_asr import ModelConfig, num_audio_tokens
from fun_asr_jax.text import prompts
from fun_asr_jax.text.normalize import script_of

_RATE = audio_io.TARGET_RATE
_MIN_SAMPLES = 400
_PAD_SECONDS = (2.0, 4.0, 8.0, 16.0, 30.0)  # batch lengths; longer clips round up to 10 s


@dataclasses.dataclass
class Transcript:
  source: str  # the path, or 'array[i]'
  text: str = ""
  ctc_text: str = ""
  language: str = ""  # the requested code, else the script of the text: zh | en | mix
  hotwords: list[str] = dataclasses.field(default_factory=list)  # put into the prompt
  timestamps: list[dict] = dataclasses.field(default_factory=list)  # {text, start, end} (s)
  error: str | None = None


def padded_samples(n: int) -> int:
  for sec in _PAD_SECONDS:
    if n <= sec * _RATE:
      return int(sec * _RATE)
  return int(np.ceil(n / (10 * _RATE)) * 10 * _RATE)


def ctc_words(tokenizer, tokens, frames, end_frame: int, seconds_per_frame: float):
  """CTC greedy tokens + start frames -> word timestamps [{text, start, end}].

  A token whose decoded text starts a new word (a leading space, or a CJK character)
  opens a word; a word ends where the next one starts (or at the last valid frame).
  """
  words, prev_text = [], ""
  for i, (tok, frame) in enumerate(zip(tokens, frames)):
    text = tokenizer.decode(list(tokens[: i + 1]))
    piece = text[len(prev_text):]
    prev_text = text
    if not piece.strip():
      continue
    if not words or piece[:1].isspace() or script_of(piece.strip()) == "zh":
      words.append({"text": piece.strip(), "start": frame * seconds_per_frame})
    else:
      words[-1]["text"] += piece
  starts = [w["start"] for w in words[1:]] + [end_frame * seconds_per_frame]
  for w, end in zip(words, starts):
    w["end"] = round(max(end, w["start"]), 3)
    w["start"] = round(w["start"], 3)
  return words


class FunASR:
  """A loaded recognizer: config, parameters and tokenizer, plus decoding settings."""

  def __init__(self, cfg: ModelConfig, params, tokenizer,
               retrieval: hotwords_lib.RetrievalConfig = hotwords_lib.RetrievalConfig()):
    if tokenizer is None:
      raise ValueError("FunASR needs a tokenizer (the checkpoint folder has no tokenizer/)")
    self.cfg, self.tokenizer, self.retrieval = cfg, tokenizer, retrieval
    self.params = {k: v for k, v in params.items() if k != "bestrq"}
    # the CTC vocabulary is ours (+ blank) for models trained here; a converted release
    # model's CTC branch uses another tokenizer, so it gives no first-pass text
    ours = -(-(tokenizer.vocab_size + 1) // 32) * 32  # configs.models.resolve_vocab's rule
    self.has_ctc_text = cfg.ctc.enabled and tokenizer.vocab_size < cfg.ctc.vocab_size <= ours
    self._index_cache: dict[tuple, hotwords_lib.HotwordIndex] = {}

  @classmethod
  def load(cls, folder: str, **kwargs) -> "FunASR":
    from fun_asr_jax.train import checkpoint  # pylint: disable=import-outside-toplevel
    cfg, params, tokenizer, _ = checkpoint.load_model(folder)
    return cls(cfg, params, tokenizer, **kwargs)

  # -- inputs ---------------------------------------------------------------------------
  def _load(self, item, i: int, sample_rate: int):
    """One input -> (name, 16 kHz mono float32) ; AudioError names the item."""
    if isinstance(item, (str, bytes)) or hasattr(item, "__fspath__"):
      name = str(item)
      x, rate = audio_io.load(name)
    else:
      name, x, rate = f"array[{i}]", np.asarray(item), sample_rate
    x = audio_io.to_mono(x, name)
    x = audio_io.resample(x.astype(np.float32), rate) if rate != _RATE else x
    return name, audio_io.check_waveform(x, _RATE, name=name, allow_empty=True)

  def _index(self, hotwords) -> hotwords_lib.HotwordIndex:
    key = tuple(hotwords)
    if key not in self._index_cache:
      self._index_cache = {key: hotwords_lib.HotwordIndex(hotwords, self.retrieval)}
    return self._index_cache[key]

  # -- transcription --------------------------------------------------------------------
  def transcribe(self, inputs, hotwords=None, language: str | None = None,
                 sample_rate: int = _RATE, batch_size: int = 8, max_new_tokens: int = 256,
                 segment_seconds: float = 30.0) -> list[Transcript]:
    """Transcripts in input order.

    `inputs`: paths, arrays (at `sample_rate`, mono `[N]` or `[N, C]`), or a mix;
    `hotwords`: a list of strings. Recordings longer than `segment_seconds` are cut by
    the VAD into pieces of at most that length, decoded in the same batches as the rest,
    and stitched back with their timestamps shifted.
    """
    prompts.language_name(language)  # an unknown code fails here, naming the supported ones
    if isinstance(inputs, (str, np.ndarray)):
      inputs = [inputs]
    if isinstance(hotwords, str):
      hotwords = [hotwords]
    results, pieces = [], []  # pieces: (result index, offset in samples, waveform)
    for i, item in enumerate(inputs):
      try:
        name, wave = self._load(item, i, sample_rate)
      except audio_io.AudioError as e:
        results.append(Transcript(source=str(item) if isinstance(item, str) else f"array[{i}]",
                                  error=str(e)))
        continue
      results.append(Transcript(source=name))
      limit = min(segment_seconds, self.cfg.max_audio_seconds)
      if len(wave) > limit * _RATE:
        cfg = vad.VADConfig(max_segment_s=limit)
        pieces += [(i, a, wave[a:b]) for a, b in vad.segments(wave, _RATE, cfg)]
      elif len(wave) >= _MIN_SAMPLES:  # shorter than one 25 ms window: the text stays empty
        pieces.append((i, 0, wave))
    index = self._index(hotwords) if hotwords and self.has_ctc_text else None
    static_hotwords = (hotwords_lib.clean_hotwords(hotwords, self.retrieval.max_chars)
                       if hotwords and index is None else [])
    order = sorted(range(len(pieces)), key=lambda k: len(pieces[k][2]))
    decoded = {}
    for start in range(0, len(order), batch_size):
      ids = order[start: start + batch_size]
      outs = self._batch([pieces[k][2] for k in ids], index, static_hotwords, language,
                         max_new_tokens)
      decoded.update(zip(ids, outs))
    for k in range(len(pieces)):  # pieces are in time order within each input
      i, offset, _ = pieces[k]
      _stitch(results[i], decoded[k], offset / _RATE)
    return results

  def _batch(self, waves, index, static_hotwords, language, max_new_tokens):
    """Decodes one batch of waveforms -> a Transcript per waveform.

    Rows are padded to a power of two (copies of the first clip, dropped afterwards) and
    prompts to a multiple of 32 tokens, so few distinct programs get compiled.
    """
    real = len(waves)
    waves = waves + [waves[0]] * ((1 << (real - 1).bit_length()) - real)
    out = [Transcript(source="") for _ in waves]
    n = padded_samples(max(len(w) for w in waves))
    wave = np.zeros((len(waves), n), np.float32)
    for j, w in enumerate(waves):
      wave[j, : len(w)] = w
    lengths = np.array([len(w) for w in waves], np.int32)
    enc = jax.device_get(encode_audio(self.params, jnp.asarray(wave), jnp.asarray(lengths),
                                      self.cfg))
    for j, r in enumerate(out):
      r.hotwords = list(static_hotwords)
      if self.has_ctc_text:
        toks = [int(t) for t in enc["ctc_tokens"][j, : enc["ctc_lengths"][j]]]
        frames = enc["ctc_frames"][j, : len(toks)]
        keep = [k for k, t in enumerate(toks) if t < self.tokenizer.vocab_size]
        toks, frames = [toks[k] for k in keep], [int(frames[k]) for k in keep]
        r.ctc_text = postprocess(self.tokenizer.decode(toks))
        valid = int(enc["ctc_valid_frames"][j])
        r.timestamps = ctc_words(self.tokenizer, toks, frames, valid,
                                 lengths[j] / _RATE / max(valid, 1))
        if index is not None:
          r.hotwords = [w for w, _ in index.retrieve(r.ctc_text)]
    layouts = [prompts.layout(self.tokenizer, num_audio_tokens(self.cfg, int(lengths[j])),
                              prompts.task_prompt(language=language, hotwords=r.hotwords))
               for j, r in enumerate(out)]
    longest = max(len(l.tokens) for l in layouts)
    batch = prompts.collate(layouts, self.tokenizer.pad_id, length=-(-longest // 32) * 32)
    batch.pop("target_mask")
    sampling = decoding.SamplingConfig(max_new_tokens=max_new_tokens,
                                       eos_ids=(self.tokenizer.eos_id,),
                                       pad_id=self.tokenizer.pad_id)
    gen = jax.device_get(decode_prompts(self.params, jnp.asarray(enc["audio"]),
                                        {k: jnp.asarray(v) for k, v in batch.items()},
                                        jax.random.key(0), self.cfg, sampling))
    for j, r in enumerate(out):
      r.text = postprocess(self.tokenizer.decode(gen["tokens"][j, : gen["lengths"][j]]))
      r.language = language if language not in (None, "", "auto") else script_of(r.text)
    return out[:real]


def _stitch(into: Transcript, piece: Transcript, offset_s: float):
  """Appends a segment's result to its recording's, timestamps shifted by the offset."""
  join = lambda a, b: " ".join(t for t in (a, b) if t)
  into.text, into.ctc_text = join(into.text, piece.text), join(into.ctc_text, piece.ctc_text)
  into.hotwords += [w for w in piece.hotwords if w not in into.hotwords]
  into.timestamps += [dict(w, start=round(w["start"] + offset_s, 3),
                           end=round(w["end"] + offset_s, 3)) for w in piece.timestamps]
  into.language = piece.language if into.language in ("", piece.language) else "mix"
