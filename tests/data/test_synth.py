"""The embedded corpus: deterministic, bilingual, hotwords, noise clips, held-out voices."""

import json

import numpy as np
import pytest

from fun_asr_jax.data import synth

pytest.importorskip("espeakng_loader")


def test_corpus_is_deterministic_by_seed(tmp_path):
  import soundfile as sf
  a = synth.write_corpus(str(tmp_path / "a"), 6, seed=3, test_fraction=0.5, num_workers=2)
  b = synth.write_corpus(str(tmp_path / "b"), 6, seed=3, test_fraction=0.5, num_workers=1)
  c = synth.write_corpus(str(tmp_path / "c"), 6, seed=4, test_fraction=0.5, num_workers=1)
  ra, rb, rc = ([json.loads(l) for l in open(m["train"])] for m in (a, b, c))
  assert [r["text"] for r in ra] == [r["text"] for r in rb] != [r["text"] for r in rc]
  for x, y in zip(ra, rb):
    wa = sf.read(str(tmp_path / "a" / x["audio"]), dtype="int16")[0]
    wb = sf.read(str(tmp_path / "b" / y["audio"]), dtype="int16")[0]
    assert np.array_equal(wa, wb), x["id"]


def test_corpus_contents(corpus):
  rows = [json.loads(l) for l in open(corpus["train"])]
  test_rows = [json.loads(l) for l in open(corpus["test"])]
  langs = {r["lang"] for r in rows if r["kind"] == "speech"}
  assert {"en", "zh", "mix"} <= langs
  assert any(r["kind"] in ("noise", "silence") and r["text"] == "" for r in rows + test_rows) or \
      synth.SynthConfig().noise_share * len(rows) < 3
  with_hot = [r for r in rows if r["hotwords"]]
  assert with_hot and all(h in r["text"] for r in with_hot for h in r["hotwords"])
  train_voices = {r["speaker"] for r in rows if r["speaker"]}
  test_voices = {r["speaker"] for r in test_rows if r["speaker"]}
  assert test_voices and not train_voices & test_voices


def test_speech_is_audible_and_scaled():
  u = synth.make_utterance(2, 0, "train", synth.SynthConfig(noise_share=0, silence_share=0))
  assert u["audio"].dtype == np.float32 and 0.3 < np.abs(u["audio"]).max() <= 1.0
  assert len(u["audio"]) > 0.3 * 16000
  cmn = synth.make_utterance(0, 0, "train", synth.SynthConfig(
      noise_share=0, silence_share=0, code_switch_share=0, zh_share=1.0))
  assert cmn["lang"] == "zh" and cmn["voice"].startswith("cmn")


def test_noise_and_silence_clips_have_empty_text():
  cfg = synth.SynthConfig(noise_share=0.5, silence_share=0.5)
  for i in range(5):
    u = synth.make_utterance(i, 0, "train", cfg)
    assert u["text"] == "" and u["kind"] in ("noise", "silence") and u["hotwords"] == []


def test_name_pool_is_a_fixed_sequence_of_new_names():
  latin, chinese = synth.name_pool(400)
  names = latin + chinese
  assert len(set(names)) == 400 and not set(names) & set(synth.EN_RARE + synth.ZH_RARE)
  assert 0.6 < len(latin) / 400 < 0.8 and all(n.isascii() and n[0].isupper() for n in latin)
  small_latin, small_chinese = synth.name_pool(100)  # a prefix of the bigger pool
  assert set(small_latin) <= set(latin) and set(small_chinese) <= set(chinese)
  assert len(small_latin) + len(small_chinese) == 100
  later = set(sum(synth.name_pool(300, offset=100), ()))  # the bigger pool's other 300
  assert len(later) == 300 and later == set(names) - set(small_latin + small_chinese)


def test_corpus_names_come_from_the_pool():
  cfg = synth.SynthConfig(name_pool=300, hotword_share=1.0, noise_share=0.0, silence_share=0.0)
  pool = set(sum(synth.name_pool(300), ()))
  said = [synth.make_utterance(i, 0, "train", cfg) for i in range(6)]
  for u in said:
    (name,) = u["hotwords"]
    assert name in pool and name in u["text"]
  assert len({u["hotwords"][0] for u in said}) > 3  # not the 20 built-in names over again
  later = synth.SynthConfig(name_pool=300, name_offset=300, hotword_share=1.0,
                            noise_share=0.0, silence_share=0.0)
  for i in range(6):  # names a model trained on the first pool never heard
    (name,) = synth.make_utterance(i, 0, "train", later)["hotwords"]
    assert name not in pool
