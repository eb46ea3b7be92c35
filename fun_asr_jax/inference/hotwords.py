"""CTC-retrieval hotwords: find which entries of a long list the audio probably mentions.

The paper's recipe: the CTC first pass gives a rough hypothesis; hotwords whose phonemes
appear in it within a few edits are put into the LLM prompt, so the prompt stays short
however long the list is (the release puts the whole list in the prompt). Matching is in
phoneme space (`text.phonemes`), so a first pass that spells an unknown name wrongly
still sounds like it.

  index = HotwordIndex(["Calloway", "龚霁川", ...])
  index.retrieve("call away said the pilot")  # [('Calloway', 0.0)]

Cost: an inverted index over phoneme q-grams picks candidates, then one vectorised
substring edit distance scores them all at once (<1 ms per utterance for 10,000 entries,
bench/hotwords.py).
"""

import collections
import dataclasses

import numpy as np

from fun_asr_jax.text.phonemes import is_vowel, phonemes


@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
  threshold: float = 0.2  # max phoneme edits per hotword phoneme (bench/hotwords.py)
  top_k: int = 10  # most hotwords put into one prompt
  max_chars: int = 64  # longer list entries are cut (a prompt is not a document)
  min_phonemes: int = 2  # shorter entries would match almost anything
  vowel_cost: float = 1.0  # < 1: a vowel heard as another costs less (bench/hotwords.py)
  # LLM decoding bonus (nats) on the next token of each hotword in the prompt (`bias_table`,
  # decoding.bias_logits): the prompt says which names to expect, the bonus helps write
  # them; 0 = the prompt alone.
  bias: float = 5.0


def clean_hotwords(entries, max_chars: int = 64) -> list[str]:
  """Strips, drops blanks and duplicates (first kept), cuts entries to `max_chars`."""
  seen, out = set(), []
  for e in entries:
    w = " ".join(str(e).split())[:max_chars].strip()
    if w and w not in seen:
      seen.add(w)
      out.append(w)
  return out


def substring_edit_distance(patterns: np.ndarray, lengths: np.ndarray, text: np.ndarray,
                            pattern_vowels=None, text_vowels=None, vowel_cost: float = 1.0):
  """Cheapest edits turning each pattern into some substring of `text` (Sellers' DP).

  patterns `[K, L]` int (padded), lengths `[K]`, text `[N]` -> `[K]` float costs.
  Insertions and deletions cost 1, substitutions 1, or `vowel_cost` between two vowels
  (flags `pattern_vowels [K, L]`, `text_vowels [N]`): vowels are what a first pass gets
  wrong most. Row i of the DP is vectorised over patterns and text positions; insertions
  (a step along the text) become a running minimum: D[i, j] = j + min_{j'<=j}(T[j'] - j').
  """
  k, l = patterns.shape
  n = len(text)
  cols = np.arange(n + 1, dtype=np.float32)
  row = np.zeros((k, n + 1), np.float32)  # free start anywhere in the text
  best = np.where(lengths == 0, 0.0, np.inf).astype(np.float32)
  for i in range(1, l + 1):
    differ = patterns[:, i - 1: i] != text[None, :]
    cost = differ.astype(np.float32)
    if vowel_cost != 1.0 and pattern_vowels is not None:
      both = pattern_vowels[:, i - 1: i] & text_vowels[None, :]
      cost = np.where(differ & both, np.float32(vowel_cost), cost)
    sub = row[:, :-1] + cost
    t = np.concatenate([row[:, :1] + 1, np.minimum(row[:, 1:] + 1, sub)], axis=1)
    row = cols + np.minimum.accumulate(t - cols, axis=1)
    best = np.where(lengths == i, row.min(axis=1), best)
  return best


class HotwordIndex:
  """A hotword list prepared for retrieval from first-pass hypotheses."""

  def __init__(self, hotwords, cfg: RetrievalConfig = RetrievalConfig()):
    self.cfg = cfg
    self.words = [w for w in clean_hotwords(hotwords, cfg.max_chars)
                  if len(phonemes(w)) >= cfg.min_phonemes]
    self._ids: dict[str, int] = {}
    seqs = [self._encode(phonemes(w)) for w in self.words]
    self.lengths = np.array([len(s) for s in seqs], np.int32)
    self.patterns = np.full((len(seqs), max(self.lengths, default=1)), -1, np.int32)
    self.vowels = np.zeros(self.patterns.shape, bool)
    for i, (w, s) in enumerate(zip(self.words, seqs)):
      self.patterns[i, : len(s)] = s
      self.vowels[i, : len(s)] = [is_vowel(u) for u in phonemes(w)]
    # q-gram lemma: within e edits a pattern keeps >= (m - 1) - 2e of its bigrams and
    # >= m - e of its phonemes. Each entry is filed under bigrams when that guarantees a
    # shared one, else under single phonemes, so the prefilter never drops a true match.
    # An entry needs `need[i]` of its distinct grams in the hypothesis (the lemma's
    # bound less its repeated grams), so most entries are never scored.
    self._by_gram = collections.defaultdict(list)
    self.need = np.zeros(len(seqs), np.int32)
    for i, s in enumerate(seqs):
      # the most edits within the threshold (vowel swaps are cheaper, so more fit)
      edits = int(np.floor(cfg.threshold * len(s) / min(1.0, cfg.vowel_cost) + 1e-9))
      bigrams = list(zip(s[:-1], s[1:]))
      grams = bigrams if len(bigrams) - 2 * edits >= 1 else [(u,) for u in s]
      bound = len(bigrams) - 2 * edits if grams is bigrams else len(s) - edits
      self.need[i] = max(1, bound - (len(grams) - len(set(grams))))
      for g in set(grams):
        self._by_gram[g].append(i)

  def _encode(self, units, grow: bool = True) -> list[int]:
    out = []
    for u in units:
      if u not in self._ids:
        if not grow:
          out.append(-2)  # a unit no hotword has: never equal to a pattern unit
          continue
        self._ids[u] = len(self._ids)
      out.append(self._ids[u])
    return out

  def __len__(self):
    return len(self.words)

  def retrieve(self, hypothesis: str) -> list[tuple[str, float]]:
    """Hotwords the hypothesis sounds like: [(hotword, edits per phoneme)], best first."""
    units = phonemes(hypothesis)
    text = np.array(self._encode(units, grow=False), np.int32)
    text_vowels = np.array([is_vowel(u) for u in units], bool)
    if not len(self.words) or not len(text):
      return []
    units = text.tolist()
    grams = set(zip(units[:-1], units[1:])) | {(u,) for u in units}
    hits = collections.Counter(i for g in grams for i in self._by_gram.get(g, ()))
    cand = np.array(sorted(i for i, n in hits.items() if n >= self.need[i]), np.int64)
    if not len(cand):
      return []
    dist = substring_edit_distance(self.patterns[cand], self.lengths[cand], text,
                                   self.vowels[cand], text_vowels, self.cfg.vowel_cost)
    score = dist / self.lengths[cand]
    keep = np.flatnonzero(score <= self.cfg.threshold)
    order = sorted(keep, key=lambda j: (score[j], -self.lengths[cand[j]]))
    return [(self.words[cand[j]], float(score[j])) for j in order[: self.cfg.top_k]]


MAX_VARIANTS = 3  # token_variants: alone, after a space, after a CJK character


def token_variants(tokenizer, word: str) -> list[list[int]]:
  """The token sequences `word` takes inside a transcript: as encoded alone, after a space
  (Latin words) and glued to a preceding character (CJK), whichever differ. A context
  whose tokens merge with the word's is skipped, and so is a leading token that is only a
  word boundary (a bonus on it would push spaces everywhere)."""
  out = [tokenizer.encode(word)]
  for context in ("a ", "我"):
    head = tokenizer.encode(context.strip())
    ids = tokenizer.encode(context + word)
    if ids[: len(head)] == head:
      out.append(ids[len(head):])
  unique = []
  for ids in out:
    while ids and not tokenizer.decode(ids[:1]).strip():
      ids = ids[1:]
    if ids and ids not in unique:
      unique.append(ids)
  return unique


def bias_table(tokenizer, rows: list[list[str]], max_tokens: int = 16,
               entries: int | None = None):
  """Per-row hotword token sequences for biased decoding -> `[B, H, L]` int32 (-1 padding).

  By default H is the longest row's count rounded up to a multiple of 8 (so few shapes
  compile), and None comes back when no row has a hotword; with `entries` H is fixed
  (a jitted training step needs one shape) and sequences past it are dropped. Entries
  longer than `max_tokens` tokens are cut."""
  seqs = [[v[:max_tokens] for w in row for v in token_variants(tokenizer, w)] for row in rows]
  h = max((len(s) for s in seqs), default=0)
  if entries is None:
    if h == 0:
      return None
    entries = -(-h // 8) * 8
  table = np.full((len(rows), entries, max_tokens), -1, np.int32)
  for i, row in enumerate(seqs):
    for j, ids in enumerate(row[:entries]):
      table[i, j, : len(ids)] = ids
  return table
