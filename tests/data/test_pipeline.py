"""grain pipeline: determinism, exact resume, host sharding, buckets, corrupt records."""

import os
import shutil

import numpy as np
import pytest

from configs import models
from fun_asr_jax.data import build
from fun_asr_jax.data.augment import AugmentConfig
from fun_asr_jax.data.bucketing import Buckets
from fun_asr_jax.data.pipeline import (Pipeline, PipelineConfig, bucket_shape, parse_mixture,
                                       repad)
from fun_asr_jax.text.tokenizer import Tokenizer

TOK = Tokenizer.byte_level()
MODEL = models.model_config("tiny")
BUCKETS = Buckets(seconds=(2.0, 4.0, 8.0), tokens=(256, 320, 448))


def pipe(spec, tmp, **kw):
  cfg = PipelineConfig(**{"batch_size": 4, "buckets": BUCKETS, "num_threads": 2, **kw})
  return Pipeline(spec, MODEL, TOK, cfg, cache_dir=str(tmp), **{
      k: v for k, v in kw.items() if k in ()})


def take(it, n):
  return [next(it) for _ in range(n)]


def same(a, b):
  return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x if k != "meta")


def test_same_seed_same_batches_and_different_seed_differs(corpus, tmp_path):
  aug = AugmentConfig(speed_prob=0.5, gain_prob=0.5, truncate_prob=0.2)
  a = take(iter(pipe(corpus["shards"], tmp_path, augment=aug)), 5)
  b = take(iter(pipe(corpus["shards"], tmp_path, augment=aug)), 5)
  c = take(iter(pipe(corpus["shards"], tmp_path, augment=aug, seed=7)), 5)
  assert same(a, b) and not same(a, c)


def test_resume_gives_exactly_the_next_batches(corpus, tmp_path):
  p = pipe(corpus["shards"], tmp_path, augment=AugmentConfig(speed_prob=0.5, gain_prob=0.5))
  it = iter(p)
  take(it, 3)
  state = it.get_state()
  expected = take(it, 4)
  it2 = iter(p)
  it2.set_state(state)
  assert same(take(it2, 4), expected)


def test_resume_across_length_group_windows(corpus, tmp_path):
  p = pipe(corpus["shards"], tmp_path, group_window=2)  # a window = 2 batches
  it = iter(p)
  take(it, 3)  # mid-window
  state = it.get_state()
  expected = take(it, 5)  # crosses two window boundaries
  it2 = iter(p)
  it2.set_state(state)
  assert same(take(it2, 5), expected)


def test_length_grouping_cuts_padding_and_keeps_every_example(corpus, tmp_path):
  def one_pass(window):
    p = pipe(corpus["shards"], tmp_path, shuffle=False, repeat=False, drop_remainder=False,
             group_window=window)
    batches = list(p)
    ids = sorted(i for b in batches for i in b["meta"]["id"] if i is not None)
    padded = sum(b["waveform"].size for b in batches)
    return ids, padded
  ids_plain, padded_plain = one_pass(1)
  ids_grouped, padded_grouped = one_pass(16)
  assert ids_grouped == ids_plain and len(set(ids_plain)) == len(ids_plain)
  assert padded_grouped < 0.8 * padded_plain, (padded_grouped, padded_plain)


def test_repad_grows_a_batch_without_touching_its_content(corpus, tmp_path):
  b = next(iter(pipe(corpus["shards"], tmp_path)))
  n, s = b["waveform"].shape[1], b["tokens"].shape[1]
  r = repad(b, n + 1600, s + 32, TOK.pad_id)
  assert r["waveform"].shape[1] == n + 1600 and r["tokens"].shape[1] == s + 32
  assert r["ctc_labels"].shape[1] == s + 32
  np.testing.assert_array_equal(r["waveform"][:, :n], b["waveform"])
  assert not r["waveform"][:, n:].any() and (r["tokens"][:, s:] == TOK.pad_id).all()
  assert (r["paddings"][:, s:] == 1).all() and not r["target_mask"][:, s:].any()
  assert (r["ctc_label_paddings"][:, s:] == 1).all()
  np.testing.assert_array_equal(r["wave_lengths"], b["wave_lengths"])


def test_host_shards_are_disjoint_and_complete(corpus, tmp_path):
  ids = []
  for host in range(3):
    cfg = PipelineConfig(batch_size=1, buckets=BUCKETS, shuffle=False, repeat=False,
                         drop_remainder=False)
    p = Pipeline(corpus["shards"], MODEL, TOK, cfg, str(tmp_path), process_index=host,
                 process_count=3)
    ids.append([i for b in p for i in b["meta"]["id"]])
  flat = [i for host in ids for i in host]
  assert len(flat) == len(set(flat)), "hosts overlap"
  summary = build.shard_paths(corpus["shards"])
  import grain
  total = len(grain.sources.ArrayRecordDataSource(summary))
  assert len(flat) == total


def test_batch_shapes_bounded_by_bucket_count(corpus, tmp_path):
  p = pipe(corpus["shards"], tmp_path, augment=AugmentConfig(speed_prob=1.0, speeds=(0.9,)))
  shapes = {(b["waveform"].shape, b["tokens"].shape) for b in take(iter(p), 30)}
  assert len(shapes) <= len(BUCKETS.seconds)
  for (wave, toks) in shapes:
    assert wave[1] in BUCKETS.samples and toks[1] in BUCKETS.tokens


def test_batch_contents_are_consistent(corpus, tmp_path):
  b = next(iter(pipe(corpus["shards"], tmp_path)))
  for i in range(4):
    n = b["wave_lengths"][i]
    assert not b["waveform"][i, n:].any()
    s = int((b["paddings"][i] < 0.5).sum())
    target = b["tokens"][i][b["target_mask"][i]]
    assert TOK.decode(target) == b["meta"]["text"][i]
    assert b["target_mask"][i, s:].sum() == 0 and b["audio_mask"][i, s:].sum() == 0


def _prompt_lists(batch):
  """The hotword list each prompt carries (the bracketed list of prompts.task_prompt)."""
  out = []
  for i in range(len(batch["meta"]["id"])):
    keep = (batch["paddings"][i] < 0.5) & ~batch["audio_mask"][i] & ~batch["target_mask"][i]
    text = TOK.decode(batch["tokens"][i][keep])
    inside = text.partition("热词列表：[")[2].partition("]")[0]
    out.append([h for h in inside.split(", ") if h])
  return out


@pytest.mark.parametrize("negative", [0.0, 1.0])
def test_prompt_hotword_lists(corpus, tmp_path, negative):
  it = iter(pipe(corpus["shards"], tmp_path, hotword_prompt_prob=1.0, num_distractors=2,
                 distractor_prompt_prob=negative))
  with_own = without = 0
  for b in take(it, 20):  # an epoch: length grouping puts the longer name sentences late
    for own, listed in zip(b["meta"]["hotwords"], _prompt_lists(b)):
      if own:  # its own names, among two others, none repeated
        with_own += 1
        assert set(own) <= set(listed) and len(listed) == len(own) + 2 == len(set(listed))
      else:  # nothing, or (negatives on) three names none of which it mentions
        without += 1
        assert listed == [] if not negative else (len(set(listed)) == 3)
  assert with_own and without


def test_prompt_hotword_ids_hold_each_prompts_list(corpus, tmp_path):
  """The bias table GRPO's hinted rollouts use is the list the prompt text carries."""
  it = iter(pipe(corpus["shards"], tmp_path, hotword_prompt_prob=1.0, num_distractors=1,
                 prompt_hotword_entries=16))
  seen = 0
  for b in take(it, 20):
    assert b["prompt_hotword_ids"].shape == (4, 16, 16)
    for ids, listed in zip(b["prompt_hotword_ids"], _prompt_lists(b)):
      words = {TOK.decode(e[e >= 0].tolist()).strip() for e in ids if (e >= 0).any()}
      assert words == set(listed)
      seen += bool(listed)
  assert seen


def test_manifest_is_built_on_first_use_and_cached(corpus, tmp_path):
  p = pipe(corpus["test"], tmp_path)
  next(iter(p))
  built = [d for d in os.listdir(tmp_path) if d.startswith("test-")]
  assert len(built) == 1
  pipe(corpus["test"], tmp_path)
  assert len([d for d in os.listdir(tmp_path) if d.startswith("test-")]) == 1


def test_mixture_weights(corpus, tmp_path):
  assert parse_mixture("a.jsonl@3,b") == [("a.jsonl", 3.0), ("b", 1.0)]
  with pytest.raises(ValueError, match="weight 'x'"):
    parse_mixture("a@x")
  test_shards = str(tmp_path / "test_shards")
  build.build_from_manifest(corpus["test"], test_shards, num_shards=1, num_workers=1)
  p = pipe(f"{corpus['shards']}@3,{test_shards}@1", tmp_path)
  ids = [i for b in take(iter(p), 40) for i in b["meta"]["id"]]
  share = np.mean([i.startswith("test") for i in ids])
  assert 0.15 < share < 0.35


def test_corrupt_record_is_skipped_and_counted(corpus, tmp_path):
  from array_record.python.array_record_module import ArrayRecordWriter
  folder = tmp_path / "bad"
  shutil.copytree(corpus["shards"], folder)
  name = build.shard_name(0, 4)
  src = __import__("grain").sources.ArrayRecordDataSource([str(folder / name)])
  records = [src[i] for i in range(len(src))]
  w = ArrayRecordWriter(str(folder / name), "group_size:1")
  for i, r in enumerate(records):
    w.write(r[: len(r) // 2] if i == 0 else r)
  w.close()
  cfg = PipelineConfig(batch_size=1, buckets=BUCKETS, shuffle=False, repeat=False,
                       drop_remainder=False)
  p = Pipeline(str(folder), MODEL, TOK, cfg, str(tmp_path))
  n = sum(1 for _ in p)
  total = len(__import__("grain").sources.ArrayRecordDataSource(build.shard_paths(str(folder))))
  assert n == total - 1 and p.stats.corrupt == 1


def test_a_pass_with_nothing_that_fits_is_an_error_not_a_hang(corpus, tmp_path):
  """Every example longer than the largest bucket: a repeating pipeline would skip forever."""
  it = iter(pipe(corpus["shards"], tmp_path, buckets=Buckets(seconds=(0.5,), tokens=(256,))))
  with pytest.raises(ValueError, match="in a row skipped.*bucket_seconds / bucket_tokens"):
    next(it)


def test_missing_shard_is_an_error_at_start(corpus, tmp_path):
  folder = tmp_path / "missing"
  shutil.copytree(corpus["shards"], folder)
  os.remove(folder / build.shard_name(2, 4))
  with pytest.raises(FileNotFoundError, match="shard\\(s\\) missing: .*00002-of-00004"):
    pipe(str(folder), tmp_path)


def test_noise_only_examples_have_empty_targets(corpus, tmp_path):
  noise = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))), "..", "shared", "data", "noise", "manifest.jsonl")
  if not os.path.exists(noise):
    pytest.skip("../shared/data/noise is absent")
  cfg = PipelineConfig(batch_size=4, buckets=BUCKETS,
                       augment=AugmentConfig(noise_only_prob=1.0))
  p = Pipeline(corpus["shards"], MODEL, TOK, cfg, str(tmp_path), noise_manifest=noise)
  b = next(iter(p))
  assert b["meta"]["text"] == ["", "", "", ""] and b["meta"]["kind"] == ["noise"] * 4
  assert b["ctc_label_paddings"].all()


def test_tfds_source(corpus, tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from data_pipelines.tfds.speech_manifest import build as tfds_build
  tfds_build({"train": corpus["test"]}, str(tmp_path / "tfds"))
  cfg = PipelineConfig(batch_size=1, buckets=BUCKETS, shuffle=False, repeat=False,
                       drop_remainder=False)
  p = Pipeline(f"tfds:speech_manifest:train?data_dir={tmp_path / 'tfds'}", MODEL, TOK, cfg, str(tmp_path))
  got = {b["meta"]["id"][0]: b["meta"]["text"][0] for b in p}
  import json
  want = {r["id"]: r["text"] for r in map(json.loads, open(corpus["test"]))}
  assert got == want


def test_bucket_shape_predicts_the_batches_of_every_bucket(corpus, tmp_path):
  """The trainer compiles buckets it has not seen yet from these predicted shapes."""
  first, seen = None, set()
  for batch in take(iter(pipe(corpus["shards"], tmp_path, group_window=1)), 30):
    batch = {k: v for k, v in batch.items() if k != "meta"}
    first = first or batch
    b = BUCKETS.samples.index(batch["waveform"].shape[1])
    for k, v in batch.items():
      assert np.shape(v) == bucket_shape(k, np.shape(first[k]), BUCKETS.samples[b],
                                         BUCKETS.tokens[b]), k
    seen.add(b)
  assert len(seen) >= 2, "the corpus should fill more than one bucket"
