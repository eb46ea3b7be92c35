"""ArrayRecord building: rejects with reasons, determinism, resume, Kaldi folders."""

import json
import os
import subprocess
import sys

import grain
import numpy as np
import soundfile as sf

from fun_asr_jax.data import build, schema
from tests.conftest import ROOT


def write_wav(path, seconds, rate=16000, seed=0):
  x = (np.random.RandomState(seed).randn(int(seconds * rate)) * 0.1).astype(np.float32)
  sf.write(path, x, rate)
  return x


def bad_manifest(folder):
  os.makedirs(folder, exist_ok=True)
  write_wav(os.path.join(folder, "ok1.wav"), 1.0, seed=1)
  write_wav(os.path.join(folder, "ok2.flac"), 0.5, rate=8000, seed=2)
  write_wav(os.path.join(folder, "noise.wav"), 1.0, seed=3)
  write_wav(os.path.join(folder, "long.wav"), 3.0, seed=4)
  open(os.path.join(folder, "corrupt.wav"), "wb").write(b"RIFF1234WAVEjunk")
  sf.write(os.path.join(folder, "stereo.wav"), np.zeros((800, 2), np.float32), 16000)
  rows = [
      {"id": "a", "audio": "ok1.wav", "text": "hello", "lang": "en", "hotwords": ["Zed"]},
      {"id": "b", "audio": "ok2.flac", "text": "你好", "lang": "zh"},
      {"id": "c", "audio": "missing.wav", "text": "x"},
      {"id": "d", "audio": "corrupt.wav", "text": "x"},
      {"id": "e", "audio": "ok1.wav", "text": "  "},
      {"id": "f", "audio": "noise.wav", "text": "", "kind": "noise"},
      {"id": "g", "audio": "long.wav", "text": "too long"},
      {"id": "h", "audio": "stereo.wav", "text": "two channels"},
  ]
  path = os.path.join(folder, "m.jsonl")
  with open(path, "w") as f:
    for r in rows:
      f.write(json.dumps(r, ensure_ascii=False) + "\n")
    f.write("{not json\n")
  return path


def read_all(folder):
  src = grain.sources.ArrayRecordDataSource(build.shard_paths(folder))
  return [schema.decode(src[i]) for i in range(len(src))]


def test_bad_rows_are_rejected_with_reasons(tmp_path):
  m = bad_manifest(str(tmp_path / "src"))
  out = str(tmp_path / "out")
  s = build.build_from_manifest(m, out, num_shards=3, num_workers=2, max_seconds=2.0)
  got = {u.id: u for u in read_all(out)}
  assert sorted(got) == ["a", "b", "f", "h"]
  assert got["b"].sample_rate == 8000 and got["f"].kind == "noise" and got["a"].hotwords == ["Zed"]
  assert got["h"].audio.ndim == 1
  rejects = [json.loads(l) for l in open(os.path.join(out, build.REJECTS))]
  reasons = {r["id"]: r["reason"] for r in rejects}
  assert "does not exist" in reasons["c"]
  assert "unreadable audio" in reasons["d"]
  assert "empty text" in reasons["e"]
  assert "outside" in reasons["g"]
  assert "invalid JSON" in reasons["line9"]
  assert s["utterances"] == 4 and s["rejected"] == 5
  assert s["langs"] == {"en": 2, "zh": 1, "?": 1} or s["langs"]["zh"] == 1
  assert abs(s["hours"] - (1.0 + 0.5 + 1.0 + 0.05) / 3600) < 1e-6


def test_deterministic_and_resumable(tmp_path):
  m = bad_manifest(str(tmp_path / "src"))
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  build.build_from_manifest(m, a, num_shards=3, num_workers=1, max_seconds=2.0)
  build.build_from_manifest(m, b, num_shards=3, num_workers=2, max_seconds=2.0)
  for name in json.load(open(os.path.join(a, build.SUMMARY)))["shards"]:
    assert open(os.path.join(a, name), "rb").read() == open(os.path.join(b, name), "rb").read()
  names = json.load(open(os.path.join(a, build.SUMMARY)))["shards"]
  kept = os.path.join(a, names[0])
  mtime = os.stat(kept).st_mtime_ns
  os.remove(os.path.join(a, names[1]))  # an interrupted build
  build.build_from_manifest(m, a, num_shards=3, num_workers=1, max_seconds=2.0)
  assert os.stat(kept).st_mtime_ns == mtime, "complete shards are not rewritten"
  assert sorted(u.id for u in read_all(a)) == ["a", "b", "f", "h"]


def test_kaldi_folder_with_segments(tmp_path):
  folder = tmp_path / "kaldi"
  folder.mkdir()
  x = write_wav(str(folder / "rec1.wav"), 2.0)
  (folder / "wav.scp").write_text(f"rec1 {folder / 'rec1.wav'}\nrec2 sox x.wav -t wav - |\n")
  (folder / "segments").write_text("u1 rec1 0.0 0.5\nu2 rec1 1.0 2.0\nu3 rec2 0 1\n")
  (folder / "text").write_text("u1 first part\nu2 second part\nu3 piped\n")
  (folder / "utt2spk").write_text("u1 s1\nu2 s2\nu3 s3\n")
  out = str(tmp_path / "out")
  s = build.build_from_manifest(str(folder), out, num_shards=1, num_workers=1)
  got = {u.id: u for u in read_all(out)}
  assert sorted(got) == ["u1", "u2"] and s["rejected"] == 1
  assert got["u2"].speaker == "s2" and got["u2"].text == "second part"
  del x
  np.testing.assert_array_equal(got["u1"].audio,
                                sf.read(str(folder / "rec1.wav"), dtype="int16")[0][:8000])
  assert "command pipe" in open(os.path.join(out, build.REJECTS)).read()


def test_cli(tmp_path):
  m = bad_manifest(str(tmp_path / "src"))
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "data_pipelines", "build_arrayrecord.py"),
                         f"--manifest={m}", f"--output_dir={tmp_path / 'out'}", "--num_shards=2",
                         "--max_seconds=2"], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "4 utterances" in proc.stdout and "5 rejected" in proc.stdout
