"""launch/transcribe.py: folders and manifests in, text/json/srt out, bad files reported."""

import json
import os
import shutil
import subprocess
import sys

from tests.conftest import ROOT


def run(args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "launch", "transcribe.py")] + args,
                        capture_output=True, text=True, timeout=600)


def test_cli_formats_inputs_and_errors(asr_workdir, corpus, clips, tmp_path):
  folder = tmp_path / "audio"
  folder.mkdir()
  for c in clips[:2]:
    shutil.copy(c, folder)
  (folder / "broken.wav").write_bytes(b"RIFF....garbage")
  hot = tmp_path / "hot.txt"
  hot.write_text("Calloway\n\n  Calloway \n" + "x" * 300 + "\n", encoding="utf-8")
  out = run([f"--checkpoint={asr_workdir}", "--format=json", "--max_new_tokens=4",
             f"--hotwords={hot}", str(folder)])
  assert out.returncode == 1 and "broken.wav" in out.stderr  # reported, others transcribed
  rows = json.loads(out.stdout)
  assert sorted(os.path.basename(r["source"]) for r in rows) == sorted(
      os.path.basename(p) for p in clips[:2] + [str(folder / "broken.wav")])
  assert all(set(r) >= {"text", "ctc_text", "timestamps", "hotwords", "language", "error"}
             for r in rows)
  srt = run([f"--checkpoint={asr_workdir}", "--format=srt", "--max_new_tokens=4",
             corpus["test"]])
  assert srt.returncode == 0, srt.stderr
  n_rows = sum(1 for l in open(corpus["test"]) if l.strip())
  assert srt.stdout.count(" --> ") == n_rows
