"""The training/eval input pipeline on grain: sources -> examples -> bucketed batches.

    ArrayRecord folders | TFDS array_record datasets | JSONL manifests (built on first use)
      -> per-host slice -> shuffle -> repeat -> weighted mix
      -> decode, resample to 16 kHz, augment, prompt + target tokens   (random_map: seeded
         per example, so the same seed gives the same batches and resume is exact)
      -> batches of similar length (sorted within a window of batches), padded to a bucket
         shape, with paddings; prefetch on threads

A record that fails to decode is skipped, counted in `stats` and logged with its index and
id; a missing or unreadable shard is an error at construction.
"""

import dataclasses
import hashlib
import logging
import os
import threading

import grain
import numpy as np

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.data import augment as aug
from fun_asr_jax.data import build, schema
from fun_asr_jax.data.bucketing import Buckets, GroupedBatches, pad_to
from fun_asr_jax.inference import hotwords as hotwords_lib
from fun_asr_jax.models.fun_asr import ModelConfig, num_audio_tokens
from fun_asr_jax.text import prompts


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  batch_size: int = 8
  seed: int = 0
  shuffle: bool = True
  repeat: bool = True  # False: one pass (eval)
  buckets: Buckets = Buckets()
  augment: aug.AugmentConfig = aug.AugmentConfig()
  hotword_prompt_prob: float = 0.0  # put the utterance's hotwords in the prompt
  num_distractors: int = 2  # extra hotwords from other utterances, so the list is not a hint
  distractor_prompt_prob: float = 0.0  # utterances without hotwords: a list of distractors
  language_prompt_prob: float = 0.0
  num_threads: int = 2
  prefetch: int = 32
  drop_remainder: bool = True
  group_window: int = 16  # batches read, sorted by length and shuffled together; 1 = off
  include_targets: bool = True  # False: prompt-only layouts for decoding (eval)
  max_hotwords: int = 0  # >0: hotword_tokens [B, K, H] for in-graph keyword rewards
  hotword_tokens: int = 16  # H
  # >0: prompt_hotword_ids [B, P, H], the token sequences (inference.hotwords.bias_table) of
  # the hotwords the prompt lists, distractors included, for hinted GRPO rollouts
  prompt_hotword_entries: int = 0  # P


@dataclasses.dataclass
class Stats:
  """Counters the training loop reports (thread-safe)."""
  corrupt: int = 0
  too_long: int = 0
  skipped_in_a_row: int = 0  # skips since the last kept example (one that never ends: an error)
  _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

  def bump(self, name: str) -> int:
    """Counts a skipped example; returns the skips since the last kept one."""
    with self._lock:
      setattr(self, name, getattr(self, name) + 1)
      self.skipped_in_a_row += 1
      return self.skipped_in_a_row

  def kept(self):
    self.skipped_in_a_row = 0

  def __getstate__(self):  # worker processes get their own counters (and lock)
    return {"corrupt": self.corrupt, "too_long": self.too_long}

  def __setstate__(self, state):
    self.__init__(**state)


def parse_mixture(spec: str) -> list[tuple[str, float]]:
  """'a.jsonl@2,shards/b' -> [('a.jsonl', 2.0), ('shards/b', 1.0)].

  A TFDS source is `tfds:NAME[:SPLIT][?data_dir=DIR]`.
  """
  out = []
  for part in filter(None, (p.strip() for p in spec.split(","))):
    path, _, weight = part.rpartition("@") if "@" in part else (part, "", "")
    try:
      out.append((path, float(weight) if weight else 1.0))
    except ValueError as e:
      raise ValueError(f"data spec {part!r}: weight {weight!r} is not a number") from e
  if not out:
    raise ValueError("data spec is empty: set config.data.train / config.data.eval")
  return out


def resolve(path: str, cache_dir: str) -> str:
  """A manifest becomes a built shard folder under `cache_dir` (reused while unchanged)."""
  if path.startswith("tfds:") or os.path.isdir(path):
    return path
  if not os.path.exists(path):
    raise FileNotFoundError(f"data source {path} does not exist")
  st = os.stat(path)
  key = hashlib.sha1(f"{os.path.abspath(path)}:{st.st_mtime_ns}:{st.st_size}".encode()
                     ).hexdigest()[:12]
  out = os.path.join(cache_dir, f"{os.path.splitext(os.path.basename(path))[0]}-{key}")
  if not os.path.exists(os.path.join(out, build.SUMMARY)):
    logging.info("building shards for %s in %s", path, out)
    build.build_from_manifest(path, out)
  return out


class _TfdsRecords:
  """Random access over a TFDS array_record split, yielding Utterances."""

  def __init__(self, spec: str):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    body, _, query = spec[len("tfds:"):].partition("?")
    name, _, split = body.partition(":")
    data_dir = query[len("data_dir="):] if query.startswith("data_dir=") else ""
    self._src = tfds.data_source(name, split=split or "train", data_dir=data_dir or None)

  def __len__(self):
    return len(self._src)

  def __getitem__(self, i):
    ex = self._src[i]
    get = lambda k, d="": ex[k].decode() if isinstance(ex.get(k, d), bytes) else ex.get(k, d)
    return schema.Utterance(id=get("id"), audio=np.asarray(ex["audio"], np.int16),
                            sample_rate=int(ex["sample_rate"]), text=get("text"),
                            lang=get("lang"), speaker=get("speaker"), kind=get("kind") or "speech",
                            hotwords=[h.decode() if isinstance(h, bytes) else h
                                      for h in ex.get("hotwords", [])])


def open_source(path: str) -> grain.MapDataset:
  """A built folder or a TFDS spec -> MapDataset of raw records (bytes or Utterance)."""
  if path.startswith("tfds:"):
    return grain.MapDataset.source(_TfdsRecords(path))
  paths = build.shard_paths(path)
  for p in paths:  # fail now, naming the file, rather than mid-run
    try:
      with open(p, "rb") as f:
        f.read(1)
    except OSError as e:
      raise OSError(f"shard {p} is unreadable ({e})") from e
  try:
    source = grain.sources.ArrayRecordDataSource(paths)
  except Exception as e:  # pylint: disable=broad-except
    raise OSError(f"cannot open the shards of {path} ({e})") from e
  return grain.MapDataset.source(source)


def _length_key(example: dict):
  return example["bucket"], len(example["waveform"]), len(example["tokens"])


class Pipeline:
  """Batches for one split. `iter(pipeline)` gives a checkpointable grain iterator."""

  def __init__(self, spec: str, model_cfg: ModelConfig, tokenizer, cfg: PipelineConfig,
               cache_dir: str, noise_manifest: str = "", process_index: int = 0,
               process_count: int = 1):
    self.model_cfg, self.tokenizer, self.cfg = model_cfg, tokenizer, cfg
    self.stats = Stats()
    self.bank = aug.NoiseBank(noise_manifest) if cfg.augment.enabled and noise_manifest \
        else None
    parts, weights, self._num_records = [], [], 0
    for path, weight in parse_mixture(spec):
      ds = open_source(resolve(path, cache_dir))
      if len(ds) < process_count:
        raise ValueError(f"{path}: {len(ds)} records cannot be split over {process_count} hosts")
      ds = ds[process_index::process_count]
      self._num_records += len(ds)
      if cfg.shuffle:
        ds = ds.shuffle(seed=cfg.seed)
      if cfg.repeat:
        ds = ds.repeat(None)
      parts.append(ds)
      weights.append(weight)
    ds = parts[0] if len(parts) == 1 else grain.MapDataset.mix(parts, weights)
    self._hotword_pool = self._collect_hotwords(parts)
    self._spec = spec
    ds = ds.map_with_index(lambda i, raw: (i, raw))
    ds = ds.random_map(self._example, seed=cfg.seed)
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=cfg.num_threads,
                                              prefetch_buffer_size=cfg.prefetch))
    self.dataset = GroupedBatches(it, cfg.batch_size, cfg.group_window, _length_key,
                                  self._collate, cfg.seed, cfg.drop_remainder)

  def __iter__(self):
    return iter(self.dataset)

  # -- per example ----------------------------------------------------------------------
  @staticmethod
  def _collect_hotwords(parts) -> tuple[str, ...]:
    pool = set()
    for ds in parts:
      for i in range(min(len(ds), 200)):
        try:
          raw = ds[i]
          u = raw if isinstance(raw, schema.Utterance) else schema.decode(raw)
          pool.update(u.hotwords)
        except Exception:  # pylint: disable=broad-except
          continue
    return tuple(sorted(pool))

  def _prompt_hotwords(self, own, rng: np.random.Generator) -> list[str]:
    """The prompt's list: the utterance's hotwords among distractors, or (with
    distractor_prompt_prob, for an utterance without any) distractors alone, so that a
    list in the prompt is neither a hint nor a promise that one of its entries is spoken."""
    cfg = self.cfg
    if own:
      if rng.random() >= cfg.hotword_prompt_prob:
        return []
    elif not (cfg.distractor_prompt_prob and rng.random() < cfg.distractor_prompt_prob):
      return []
    extra = [h for h in self._hotword_pool if h not in own]
    k = min(cfg.num_distractors + (0 if own else 1), len(extra))
    hotwords = list(own) + ([extra[j] for j in rng.choice(len(extra), k, False)] if k else [])
    rng.shuffle(hotwords)
    return hotwords

  def _skipped(self, reason: str):
    """Counts a skipped example; a whole pass of the data skipped in a row is an error (a
    repeating pipeline would otherwise look for a usable example forever)."""
    if self.stats.bump(reason) > max(self._num_records, 1):
      b = self.cfg.buckets
      raise ValueError(
          f"{self._spec}: {self.stats.skipped_in_a_row} examples in a row skipped (too long "
          f"for the largest bucket, {b.seconds[-1]} s / {b.tokens[-1]} tokens, or corrupt; "
          f"{self.stats}): raise config.data.bucket_seconds / bucket_tokens or check the data")

  def _example(self, item, rng: np.random.Generator):
    index, raw = item
    try:
      u = raw if isinstance(raw, schema.Utterance) else schema.decode(raw)
    except schema.RecordError as e:
      self._skipped("corrupt")
      logging.warning("skipping corrupt record #%d: %s", index, e)
      return None
    cfg = self.cfg
    x = audio_io.resample(u.float_audio(), u.sample_rate)
    text, kind = u.text, u.kind
    if cfg.augment.enabled:
      x, text, kind = aug.augment(x, text, rng, cfg.augment, self.bank, u.sample_rate)
    hotwords = self._prompt_hotwords(u.hotwords, rng)
    language = u.lang if u.lang in prompts.LANGUAGES and \
        rng.random() < cfg.language_prompt_prob else None
    task = prompts.task_prompt(language=language, hotwords=hotwords)
    lay = prompts.layout(self.tokenizer, num_audio_tokens(self.model_cfg, len(x)), task,
                         target=text if cfg.include_targets else None)
    bucket = cfg.buckets.index(len(x), len(lay.tokens))
    if bucket < 0:
      self._skipped("too_long")
      logging.warning("skipping %s: %.1f s / %d tokens exceed the largest bucket", u.id,
                      len(x) / 16000, len(lay.tokens))
      return None
    self.stats.kept()
    return {"waveform": x, "tokens": lay.tokens, "audio_mask": lay.audio_mask,
            "target_mask": lay.target_mask, "ctc_labels": np.asarray(
                self.tokenizer.encode(text), np.int32), "bucket": bucket,
            "id": u.id, "text": text, "lang": u.lang, "kind": kind,
            "hotwords": list(u.hotwords), "prompt_hotwords": hotwords}

  # -- per batch ------------------------------------------------------------------------
  def _collate(self, examples: list[dict]) -> dict:
    bk = self.cfg.buckets
    real = len(examples)
    if real < self.cfg.batch_size:  # a short last batch: pad with copies, id None
      examples = examples + [dict(examples[-1], id=None)] * (self.cfg.batch_size - real)
    b = max(e["bucket"] for e in examples)
    n, s = bk.samples[b], bk.tokens[b]
    ctc_len = s  # the target fits in the bucket's text length, so its CTC labels do too
    lengths = np.array([len(e["waveform"]) for e in examples], np.int32)
    text_len = np.array([len(e["tokens"]) for e in examples])
    ctc = [e["ctc_labels"][:ctc_len] for e in examples]
    return {
        "waveform": pad_to([e["waveform"] for e in examples], n, 0.0, np.float32),
        "wave_lengths": lengths,
        "tokens": pad_to([e["tokens"] for e in examples], s, self.tokenizer.pad_id, np.int32),
        "audio_mask": pad_to([e["audio_mask"] for e in examples], s, False, bool),
        "target_mask": pad_to([e["target_mask"] for e in examples], s, False, bool),
        "paddings": (np.arange(s)[None] >= text_len[:, None]).astype(np.float32),
        "ctc_labels": pad_to(ctc, ctc_len, 0, np.int32),
        "ctc_label_paddings": (np.arange(ctc_len)[None] >=
                               np.array([len(c) for c in ctc])[:, None]).astype(np.float32),
        "is_noise": np.array([e["kind"] != "speech" for e in examples]),
        "meta": {k: [e[k] for e in examples] for k in ("id", "text", "lang", "kind", "hotwords")},
        **self._hotword_arrays(examples),
    }

  def _hotword_arrays(self, examples: list[dict]) -> dict:
    """The utterances' own hotwords as token ids `[B, K, H]` and lengths `[B, K]`; the
    prompts' lists as bias tables `[B, P, H]`."""
    k, h = self.cfg.max_hotwords, self.cfg.hotword_tokens
    out = {}
    if self.cfg.prompt_hotword_entries > 0:
      out["prompt_hotword_ids"] = hotwords_lib.bias_table(
          self.tokenizer, [e["prompt_hotwords"] for e in examples], h,
          self.cfg.prompt_hotword_entries)
    if k <= 0:
      return out
    ids = np.zeros((len(examples), k, h), np.int32)
    lengths = np.zeros((len(examples), k), np.int32)
    for i, e in enumerate(examples):
      for j, word in enumerate(e["hotwords"][:k]):
        t = self.tokenizer.encode(word)[:h]
        ids[i, j, : len(t)], lengths[i, j] = t, len(t)
    return dict(out, hotword_tokens=ids, hotword_lengths=lengths)


# Batch fields whose second axis is the bucket's text length (the waveform's is its samples).
TOKEN_FIELDS = {"tokens": "pad", "audio_mask": False, "target_mask": False, "paddings": 1.0,
                "ctc_labels": 0, "ctc_label_paddings": 1.0}


def bucket_shape(field: str, shape: tuple, samples: int, tokens: int) -> tuple:
  """The shape `field` has in a batch of the bucket (samples, tokens)."""
  if field == "waveform":
    return (shape[0], samples)
  return (shape[0], tokens) if field in TOKEN_FIELDS else tuple(shape)


def repad(batch: dict, samples: int, tokens: int, pad_id: int) -> dict:
  """Pads a collated batch out to a larger (samples, tokens) shape.

  Hosts of a multi-process run batch independently; each pads to the largest shape any
  host drew, so the global batch has one shape.
  """
  def grow(v, length, value):
    extra = length - v.shape[1]
    return v if extra <= 0 else np.pad(v, ((0, 0), (0, extra)), constant_values=value)
  out = dict(batch)
  out["waveform"] = grow(batch["waveform"], samples, 0.0)
  for key, value in TOKEN_FIELDS.items():
    if key in batch:
      out[key] = grow(batch[key], tokens, pad_id if value == "pad" else value)
  return out
