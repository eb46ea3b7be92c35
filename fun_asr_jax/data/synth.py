"""The embedded corpus: bilingual synthetic speech from built-in templates with espeak-ng.

Sentences are English, Mandarin or code-switched (Mandarin with English keywords), filled
from word lists; some carry rare proper nouns, listed as `hotwords`. A share of clips are
noise-only or silent with empty transcripts, so models learn to say nothing. Voices are
espeak-ng voice + variant pairs; the test split uses variants the training split never
hears. Everything is a function of (seed, index), so any worker can make any utterance.
"""

import dataclasses
import functools
import random

import numpy as np

from fun_asr_jax.audio import io as audio_io

EN_SUBJECTS = ["the driver", "my sister", "our team", "the doctor", "a small child", "the pilot",
               "your neighbour", "the teacher", "this robot", "the old farmer"]
EN_VERBS = ["found", "painted", "opened", "carried", "ordered", "watched", "cleaned", "sold",
            "fixed", "moved"]
EN_OBJECTS = ["a red box", "the blue door", "seven apples", "the green car", "a new phone",
              "three chairs", "the wooden table", "a yellow kite", "the heavy bag", "two cups"]
EN_PLACES = ["in the morning", "near the river", "at the station", "after lunch",
             "in the garden", "before the meeting", "on monday", "at night"]
EN_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

ZH_SUBJECTS = ["我们", "老师", "他的朋友", "这个公司", "小王", "我妈妈", "那位医生", "学生们"]
ZH_VERBS = ["喜欢", "需要", "买了", "打开", "准备", "看到", "讨论", "完成"]
ZH_OBJECTS = ["一本新书", "这个问题", "红色的车", "三杯咖啡", "明天的会议", "那张桌子",
              "新的计划", "两个苹果"]
ZH_PLACES = ["在北京", "在上海", "今天上午", "昨天晚上", "在公司", "在学校", "下个星期", "在家里"]
ZH_NUMBERS = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"]

CS_KEYWORDS = ["meeting", "email", "project", "deadline", "python", "online", "download",
               "video", "app", "coffee"]

# Rare proper nouns: the hotwords. Latin-script inventions and rare Chinese names.
EN_RARE = ["Zorbulax", "Kestrava", "Quilliam", "Marbeth", "Ondrevik", "Tessaly", "Vornhelm",
           "Yzerbo", "Calloway", "Pinnacor", "Drusilla", "Fenwright"]
ZH_RARE = ["龚霁川", "阙梓萱", "蔺晗", "殳弈", "郗泠", "靳苒", "芮霈", "禚暄"]

# Invented names for large hotword lists: Latin syllables, rare surnames + given characters.
_ONSETS = ["b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "kr", "l", "m", "n",
           "p", "pr", "qu", "r", "s", "sh", "st", "t", "th", "tr", "v", "w", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "ee", "oa"]
_CODAS = ["", "", "n", "r", "l", "s", "x", "th", "m", "ck", "nd"]
_SURNAMES = "龚阙蔺殳郗靳芮禚濮邬蓟贲扈佘眭笪"
_GIVEN = "霁川梓萱晗弈泠苒霈暄珩琰璟婕翊曜澈昀瑾琛颢"


def latin_name(rng: random.Random) -> str:
  return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                 for _ in range(rng.randint(2, 3))).capitalize()


def chinese_name(rng: random.Random) -> str:
  return rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.randint(1, 2)))


@functools.lru_cache(maxsize=4)
def _invented_names(count: int) -> tuple[str, ...]:
  """The first `count` distinct invented names of one fixed sequence (70 % Latin)."""
  rng, seen, out = random.Random(20260), set(EN_RARE) | set(ZH_RARE), []
  while len(out) < count:
    name = latin_name(rng) if rng.random() < 0.7 else chinese_name(rng)
    if name not in seen:
      seen.add(name)
      out.append(name)
  return tuple(out)


def name_pool(size: int, offset: int = 0) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """Invented names `offset .. offset+size-1` of one fixed sequence -> (latin, chinese).

  A pool is a slice of that sequence, so a benchmark can exclude exactly the names a corpus
  of a given pool used, and `offset` gives a later stage (GRPO) names its SFT never heard.
  """
  out = _invented_names(offset + size)[offset:]
  return (tuple(n for n in out if n.isascii()), tuple(n for n in out if not n.isascii()))


EN_VOICES = ["en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan"]
ZH_VOICES = ["cmn"]
TRAIN_VARIANTS = ["", "m1", "m2", "m3", "m4", "f1", "f2", "f3", "klatt", "klatt2", "m6", "f4"]
TEST_VARIANTS = ["m5", "m7", "f5", "klatt3"]


@dataclasses.dataclass(frozen=True)
class SynthConfig:
  noise_share: float = 0.06  # noise-only clips, empty text
  silence_share: float = 0.03
  hotword_share: float = 0.25  # sentences with a rare proper noun
  code_switch_share: float = 0.2
  zh_share: float = 0.4  # of the non-code-switched sentences
  name_pool: int = 0  # >0: rare names drawn from this many invented ones, not the 20 above
  name_offset: int = 0  # ...starting at this index of the invented sequence
  sample_rate: int = 16000


def _pick(rng, items):
  return items[rng.randint(len(items))]


def english_sentence(rng, hotword=None):
  kind = rng.randint(3)
  if kind == 0:
    s = f"{_pick(rng, EN_SUBJECTS)} {_pick(rng, EN_VERBS)} {_pick(rng, EN_OBJECTS)}"
    s += f" {_pick(rng, EN_PLACES)}" if rng.rand() < 0.5 else ""
  elif kind == 1:
    s = " ".join(_pick(rng, EN_NUMBERS) for _ in range(rng.randint(3, 7)))
  else:
    s = f"{_pick(rng, EN_SUBJECTS)} {_pick(rng, EN_VERBS)} {_pick(rng, EN_NUMBERS)} " \
        f"{_pick(rng, ['boxes', 'letters', 'tickets', 'books'])}"
  if hotword:
    s = f"{hotword} and {s}" if rng.rand() < 0.5 else f"{s} with {hotword}"
  return s


def mandarin_sentence(rng, hotword=None):
  if rng.rand() < 0.25:
    s = "".join(_pick(rng, ZH_NUMBERS) for _ in range(rng.randint(3, 7)))
  else:
    s = f"{_pick(rng, ZH_SUBJECTS)}{_pick(rng, ZH_PLACES)}{_pick(rng, ZH_VERBS)}" \
        f"{_pick(rng, ZH_OBJECTS)}"
  if hotword:
    s = f"{hotword}说{s}"
  return s


def code_switched_sentence(rng, hotword=None):
  kw = _pick(rng, CS_KEYWORDS)
  s = _pick(rng, [f"我们{_pick(rng, ZH_PLACES)}有一个 {kw}",
                  f"{_pick(rng, ZH_SUBJECTS)}需要这个 {kw}",
                  f"请把 {kw} 发给{_pick(rng, ZH_SUBJECTS)}"])
  if hotword:
    s = f"{hotword}说{s}"
  return s


def voice_for(rng, lang: str, split: str) -> str:
  base = _pick(rng, ZH_VOICES if lang in ("zh", "mix") else EN_VOICES)
  variant = _pick(rng, TEST_VARIANTS if split == "test" else TRAIN_VARIANTS)
  return base + (f"+{variant}" if variant else "")


def noise_clip(rng, seconds: float, rate: int) -> np.ndarray:
  """Coloured noise (white, pink or brown) or hum at a random level, float [-1, 1]."""
  n = int(seconds * rate)
  kind = rng.randint(4)
  white = rng.randn(n)
  if kind == 0:
    x = white
  elif kind in (1, 2):  # pink (1/f) or brown (1/f^2) by spectral shaping
    spec = np.fft.rfft(white)
    f = np.maximum(np.arange(len(spec)), 1.0)
    spec /= f ** (0.5 if kind == 1 else 1.0)
    x = np.fft.irfft(spec, n)
  else:  # mains hum with harmonics plus a little hiss
    t = np.arange(n) / rate
    x = sum(np.sin(2 * np.pi * 50 * h * t + rng.rand() * 6) / h for h in range(1, 6))
    x = x + 0.05 * white
  x = x / (np.abs(x).max() + 1e-9)
  return (x * 10 ** rng.uniform(-2.0, -0.5)).astype(np.float32)


def make_utterance(index: int, seed: int, split: str, cfg: SynthConfig, synth=None) -> dict:
  """Utterance `index` of a split: {'id', 'audio' float32 16 kHz, 'text', 'lang', ...}."""
  rng = np.random.RandomState((seed * 1_000_003 + index * 7919 + (split == "test")) % 2**31)
  uid = f"{split}-{seed}-{index:07d}"
  u = rng.rand()
  if u < cfg.noise_share + cfg.silence_share:
    seconds = rng.uniform(0.8, 3.0)
    if u < cfg.noise_share:
      audio = noise_clip(rng, seconds, cfg.sample_rate)
      kind = "noise"
    else:
      audio = (rng.randn(int(seconds * cfg.sample_rate)) * 1e-4).astype(np.float32)
      kind = "silence"
    return {"id": uid, "audio": audio, "text": "", "lang": "", "kind": kind, "hotwords": [],
            "voice": "", "speaker": ""}
  if rng.rand() < cfg.code_switch_share:
    lang = "mix"
  else:
    lang = "zh" if rng.rand() < cfg.zh_share else "en"
  hotword = None
  if rng.rand() < cfg.hotword_share:
    latin, chinese = (name_pool(cfg.name_pool, cfg.name_offset) if cfg.name_pool
                       else (EN_RARE, ZH_RARE))
    hotword = _pick(rng, chinese if (lang != "en" and rng.rand() < 0.5) else latin)
  text = {"en": english_sentence, "zh": mandarin_sentence,
          "mix": code_switched_sentence}[lang](rng, hotword)
  voice = voice_for(rng, lang, split)
  rate, pitch = int(rng.uniform(140, 210)), int(rng.uniform(25, 75))
  if synth is None:
    from fun_asr_jax.data.espeak import synthesizer  # pylint: disable=import-outside-toplevel
    synth = synthesizer()
  pcm = synth.synth(text, voice=voice, rate=rate, pitch=pitch)
  audio = audio_io.resample(pcm.astype(np.float32) / 32768.0, synth.sample_rate,
                            cfg.sample_rate)
  audio = audio * np.float32(10 ** rng.uniform(-0.4, 0.0) * 0.9 / (np.abs(audio).max() + 1e-9))
  return {"id": uid, "audio": audio.astype(np.float32), "text": text, "lang": lang,
          "kind": "speech", "hotwords": [hotword] if hotword else [], "voice": voice,
          "speaker": voice}


def _write_range(output_dir: str, split: str, start: int, stop: int, seed: int,
                 cfg: SynthConfig) -> list[dict]:
  import os  # pylint: disable=import-outside-toplevel
  import soundfile as sf  # pylint: disable=import-outside-toplevel
  rows = []
  folder = os.path.join(output_dir, "audio", split)
  os.makedirs(folder, exist_ok=True)
  for i in range(start, stop):
    u = make_utterance(i, seed, split, cfg)
    rel = os.path.join("audio", split, u["id"] + ".flac")
    sf.write(os.path.join(output_dir, rel), u["audio"], cfg.sample_rate, subtype="PCM_16")
    rows.append({"id": u["id"], "audio": rel, "text": u["text"], "lang": u["lang"],
                 "kind": u["kind"], "hotwords": u["hotwords"], "speaker": u["speaker"],
                 "duration": round(len(u["audio"]) / cfg.sample_rate, 3)})
  return rows


def write_corpus(output_dir: str, num_utterances: int, seed: int = 0,
                 test_fraction: float = 0.1, num_workers: int = 2,
                 cfg: SynthConfig = SynthConfig()) -> dict[str, str]:
  """Writes FLAC files and `train.jsonl` / `test.jsonl`; returns the manifest paths."""
  import concurrent.futures  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  import multiprocessing  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  os.makedirs(output_dir, exist_ok=True)
  sizes = {"train": num_utterances, "test": max(1, int(round(num_utterances * test_fraction)))}
  manifests = {}
  for split, n in sizes.items():
    chunks = [(s, min(n, s + 200)) for s in range(0, n, 200)]
    # espeak-ng keeps static wave-generator state (e.g. flutter phase) across calls, so an
    # utterance's samples depend on what the process spoke before. Each chunk therefore runs
    # in a fresh process: output depends only on (seed, split, index).
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max(1, num_workers), mp_context=ctx,
                                                max_tasks_per_child=1) as pool:
      parts = list(pool.map(_write_range, *zip(*[(output_dir, split, a, b, seed, cfg)
                                                  for a, b in chunks])))
    path = os.path.join(output_dir, f"{split}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
      for rows in parts:
        for r in rows:
          f.write(json.dumps(r, ensure_ascii=False) + "\n")
    manifests[split] = path
  return manifests
