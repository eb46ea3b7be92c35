"""Text normalisation for scoring, and the units error rates count.

`normalize`: NFKC (full-width -> half-width), lower case, punctuation to spaces, a space
between CJK characters and Latin words, whitespace collapsed. `mixed_units` splits into
CJK characters and Latin words: the unit of the mixed error rate (MER) for code-switching.
"""

import re
import unicodedata

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{_CJK}]")
_UNITS_RE = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def _is_punct(ch: str) -> bool:
  cat = unicodedata.category(ch)
  return cat.startswith("P") or cat.startswith("S")


def normalize(text: str) -> str:
  text = unicodedata.normalize("NFKC", text).lower()
  text = "".join(" " if _is_punct(c) and c != "'" else c for c in text)
  text = text.replace("'", "")
  text = re.sub(f"([{_CJK}])", r" \1 ", text)
  return " ".join(text.split())


def mixed_units(text: str) -> list[str]:
  """Normalised text -> CJK characters and Latin-script words."""
  return _UNITS_RE.findall(normalize(text))


def has_cjk(text: str) -> bool:
  return bool(_CJK_RE.search(text))


def script_of(text: str) -> str:
  """'zh' (only CJK), 'en' (only Latin), 'mix', or '' for empty text."""
  units = mixed_units(text)
  cjk = sum(bool(_CJK_RE.fullmatch(u)) for u in units)
  if not units:
    return ""
  if cjk == len(units):
    return "zh"
  return "en" if cjk == 0 else "mix"
