"""`FunASR`: the Python API. Files or arrays in, transcripts with CTC text, hotwords used,
timestamps and language out.

  from fun_asr_jax import FunASR
  asr = FunASR.load("runs/s5")                    # a training workdir or a model folder
  for r in asr.transcribe(["a.wav", "b.flac"], hotwords=["Calloway", "龚霁川"]):
    print(r.text, r.timestamps)

Per batch: the encoder runs once; its CTC greedy pass gives `ctc_text` and, when a hotword
list is given, the retrieval query (`hotwords.HotwordIndex`); each utterance's prompt then
carries only the hotwords it probably mentions. Word timestamps come from forcing the
final text's tokens through the CTC posteriors (Viterbi alignment). Clips are sorted
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
from fun_asr_jax.inference.transcribe import (align_tokens, decode_prompts, encode_audio,
                                              postprocess)
from fun_asr_jax.models.fun_asr import ModelConfig, decoding_layout, num_audio_tokens
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


def word_timestamps(tokenizer, tokens, starts, last_end: int, seconds_per_frame: float):
  """Tokens with their start frames -> word timestamps [{text, start, end}] in seconds.

  Whitespace separates words and every CJK character is a word of its own. A word starts
  at the first frame of the token that brings its first character (tokens holding part
  of a multi-byte character wait for the rest) and ends where the next word starts; the
  last word ends at `last_end`.
  """
  words, shown, first, new_word = [], "", None, True
  for i, start in enumerate(starts):
    first = start if first is None else first
    text = tokenizer.decode(list(tokens[: i + 1]))
    if text.endswith("\ufffd") or not text.startswith(shown):
      continue  # an incomplete character
    piece, shown, at, first = text[len(shown):], text, first, None
    for ch in piece:
      if ch.isspace():
        new_word = True
        continue
      cjk = script_of(ch) == "zh"
      if new_word or not words or cjk or script_of(words[-1]["text"][-1]) == "zh":
        words.append({"text": "", "start": at})
      words[-1]["text"] += ch
      new_word = False
  ends = [w["start"] for w in words[1:]] + [last_end]
  return [{"text": w["text"], "start": round(w["start"] * seconds_per_frame, 3),
           "end": round(max(e, w["start"]) * seconds_per_frame, 3)}
          for w, e in zip(words, ends)]


class FunASR:
  """A loaded recognizer: config, parameters and tokenizer, plus decoding settings."""

  def __init__(self, cfg: ModelConfig, params, tokenizer,
               retrieval: hotwords_lib.RetrievalConfig = hotwords_lib.RetrievalConfig()):
    if tokenizer is None:
      raise ValueError("FunASR needs a tokenizer (the checkpoint folder has no tokenizer/)")
    # held in the decoding layout (LLM layers unrolled), so no decode call re-slices them
    self.cfg, self.params = decoding_layout(
        cfg, {k: v for k, v in params.items() if k != "bestrq"})
    self.tokenizer, self.retrieval = tokenizer, retrieval
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

  def hotword_plan(self, hotwords, retrieve: bool = True):
    """-> (retrieval index or None, the list every prompt gets): retrieval per utterance
    when the model has CTC text, else the whole (cleaned) list in every prompt."""
    if isinstance(hotwords, str):
      hotwords = [hotwords]
    index = self._index(hotwords) if hotwords and self.has_ctc_text and retrieve else None
    static = (hotwords_lib.clean_hotwords(hotwords, self.retrieval.max_chars)
              if hotwords and index is None else [])
    return index, static

  # -- transcription --------------------------------------------------------------------
  def transcribe(self, inputs, hotwords=None, language: str | None = None,
                 sample_rate: int = _RATE, batch_size: int = 8, max_new_tokens: int = 256,
                 segment_seconds: float = 30.0, retrieve: bool = True) -> list[Transcript]:
    """Transcripts in input order.

    `inputs`: paths, arrays (at `sample_rate`, mono `[N]` or `[N, C]`), or a mix;
    `hotwords`: a list of strings, retrieved per utterance from the CTC first pass
    (`retrieve=False`, or a model without CTC text: the whole list goes into every prompt).
    Recordings longer than `segment_seconds` are cut by the VAD into pieces of at most
    that length, decoded in the same batches as the rest, and stitched back with their
    timestamps shifted.
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
    index, static_hotwords = self.hotword_plan(hotwords, retrieve)
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
    return self.decode(*self.first_pass(waves), index, static_hotwords, language,
                       max_new_tokens)[:real]

  def decode(self, enc, lengths, passes, index, static_hotwords, language, max_new_tokens):
    """The text side of a batch whose audio side (`first_pass`) is done -> Transcripts."""
    out = [Transcript(source="") for _ in passes]
    for r, p in zip(out, passes):
      r.hotwords = list(static_hotwords)
      if self.has_ctc_text:
        r.ctc_text = p["text"]
        r.timestamps = word_timestamps(self.tokenizer, p["tokens"], p["frames"], p["valid"],
                                       p["seconds_per_frame"])
        if index is not None:
          r.hotwords = [w for w, _ in index.retrieve(r.ctc_text)]
    layouts = [prompts.layout(self.tokenizer, num_audio_tokens(self.cfg, int(lengths[j])),
                              prompts.task_prompt(language=language, hotwords=r.hotwords))
               for j, r in enumerate(out)]
    longest = max(len(l.tokens) for l in layouts)
    batch = prompts.collate(layouts, self.tokenizer.pad_id, length=-(-longest // 32) * 32)
    batch.pop("target_mask")
    bias = (hotwords_lib.bias_table(self.tokenizer, [r.hotwords for r in out])
            if self.retrieval.bias else None)
    sampling = decoding.greedy(self.tokenizer, max_new_tokens,
                               hotword_bonus=self.retrieval.bias if bias is not None else 0.0)
    gen = jax.device_get(decode_prompts(self.params, jnp.asarray(enc["audio"]),
                                        {k: jnp.asarray(v) for k, v in batch.items()},
                                        jax.random.key(0), self.cfg, sampling, bias,
                                        jnp.asarray(enc["audio_paddings"])))
    for j, r in enumerate(out):
      r.text = postprocess(self.tokenizer.decode(gen["tokens"][j, : gen["lengths"][j]]))
      r.language = language if language not in (None, "", "auto") else script_of(r.text)
    if self.has_ctc_text:
      self._align(out, enc, passes)
    return out

  def first_pass(self, waves):
    """The audio side of a batch of 16 kHz waveforms, run once.

    Returns (encode_audio's outputs on the device, lengths `[B]`, a dict per row with the
    CTC greedy path: `text`, `tokens`, `frames` (start frame per token), `valid` frames
    and `seconds_per_frame`; empty without a usable CTC branch).
    """
    n = padded_samples(max(len(w) for w in waves))
    wave = np.zeros((len(waves), n), np.float32)
    for j, w in enumerate(waves):
      wave[j, : len(w)] = w
    lengths = np.array([len(w) for w in waves], np.int32)
    enc = encode_audio(self.params, jnp.asarray(wave), jnp.asarray(lengths), self.cfg)
    return (enc, lengths, self.ctc_passes(enc, lengths))

  def ctc_passes(self, enc, lengths):
    """Per row of `encode_audio`'s outputs, the CTC greedy path (see `first_pass`)."""
    if not self.has_ctc_text:
      return [{} for _ in lengths]
    path = jax.device_get({k: enc[k] for k in ("ctc_tokens", "ctc_lengths", "ctc_frames",
                                                "ctc_valid_frames")})
    passes = []
    for j in range(len(lengths)):
      toks = path["ctc_tokens"][j, : path["ctc_lengths"][j]]
      keep = toks < self.tokenizer.vocab_size
      toks = [int(t) for t in toks[keep]]
      valid = int(path["ctc_valid_frames"][j])
      passes.append({"text": postprocess(self.tokenizer.decode(toks)), "tokens": toks,
                     "frames": [int(f) for f in path["ctc_frames"][j, : len(keep)][keep]],
                     "valid": valid, "seconds_per_frame": lengths[j] / _RATE / max(valid, 1)})
    return passes

  def _align(self, out, enc, passes):
    """Word timestamps of the final text: its tokens forced-aligned to the CTC posteriors.

    The CTC branch was trained on `tokenizer.encode(text)`, so the LLM text re-encoded is a
    label sequence it can align. Where no alignment fits (more tokens than frames) the
    CTC greedy path's words stay; empty text has no words.
    """
    labels = [self.tokenizer.encode(r.text) if r.text else [] for r in out]
    width = -(-max(1, max(map(len, labels))) // 32) * 32
    padded = np.zeros((len(out), width), np.int32)
    for j, lab in enumerate(labels):
      padded[j, : len(lab)] = lab
    starts, ends, ok = jax.device_get(align_tokens(
        enc["ctc_log_probs"], enc["ctc_paddings"], jnp.asarray(padded),
        jnp.asarray([len(l) for l in labels], jnp.int32), blank_id=self.cfg.ctc.blank_id))
    for j, (r, lab) in enumerate(zip(out, labels)):
      if not lab:
        r.timestamps = []
      elif ok[j]:
        r.timestamps = word_timestamps(self.tokenizer, lab, [int(f) for f in starts[j, : len(lab)]],
                                       int(ends[j, len(lab) - 1]),
                                       passes[j]["seconds_per_frame"])


def _stitch(into: Transcript, piece: Transcript, offset_s: float):
  """Appends a segment's result to its recording's, timestamps shifted by the offset."""
  join = lambda a, b: " ".join(t for t in (a, b) if t)
  into.text, into.ctc_text = join(into.text, piece.text), join(into.ctc_text, piece.ctc_text)
  into.hotwords += [w for w in piece.hotwords if w not in into.hotwords]
  into.timestamps += [dict(w, start=round(w["start"] + offset_s, 3),
                           end=round(w["end"] + offset_s, 3)) for w in piece.timestamps]
  into.language = piece.language if into.language in ("", piece.language) else "mix"
