"""A TFDS builder that turns a JSONL speech manifest into an array_record TFDS dataset.

No TensorFlow needed: audio is an int16 `Tensor` feature (TFDS's `Audio` feature needs
TensorFlow), strings are `Text`. Read it back with `tfds.data_source` (random access, what
grain wants) or point the training pipeline at it with `tfds:NAME:SPLIT?data_dir=DIR`.

    import tensorflow_datasets as tfds
    from data_pipelines.tfds.speech_manifest import build
    build({"train": "corpus/train.jsonl", "test": "corpus/test.jsonl"}, data_dir="tfds_data")
    ds = tfds.data_source("speech_manifest", split="train", data_dir="tfds_data")
"""

import numpy as np
import tensorflow_datasets as tfds

from fun_asr_jax.data import build as build_lib
from fun_asr_jax.data import manifest as manifest_lib


class SpeechManifest(tfds.core.GeneratorBasedBuilder):
  """Speech utterances from JSONL manifests (one per split)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "int16 audio tensor, text, lang, speaker, kind, hotwords."}

  def __init__(self, *, manifests: dict[str, str] | None = None, **kwargs):
    self._manifests = manifests or {}
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
            "sample_rate": tfds.features.Scalar(dtype=np.int32),
            "id": tfds.features.Text(),
            "text": tfds.features.Text(),
            "lang": tfds.features.Text(),
            "speaker": tfds.features.Text(),
            "kind": tfds.features.Text(),
            "hotwords": tfds.features.Sequence(tfds.features.Text()),
        }),
        supervised_keys=None)

  def _split_generators(self, dl_manager):
    del dl_manager
    if not self._manifests:
      raise ValueError("SpeechManifest needs manifests={'train': 'train.jsonl', ...}")
    return {split: self._generate_examples(path) for split, path in self._manifests.items()}

  def _generate_examples(self, path):
    rows, _ = manifest_lib.read_jsonl(path)
    for row in rows:
      try:
        u = build_lib.load_row(row, max_seconds=600.0, min_seconds=0.0)
      except ValueError:
        continue  # build_arrayrecord.py reports rejects; TFDS keeps the clean rows
      yield u.id, {"audio": u.audio, "sample_rate": u.sample_rate, "id": u.id,
                   "text": u.text, "lang": u.lang, "speaker": u.speaker, "kind": u.kind,
                   "hotwords": u.hotwords}


def build(manifests: dict[str, str], data_dir: str) -> SpeechManifest:
  builder = SpeechManifest(manifests=manifests, data_dir=data_dir,
                           file_format="array_record")
  builder.download_and_prepare()
  return builder
