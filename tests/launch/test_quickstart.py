"""The README's first command, shrunk: every stage (GRPO included) on tiny, then transcribe."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_quickstart_runs_every_stage_and_ends_with_a_loadable_checkpoint(tmp_path):
  work = str(tmp_path / "qs")
  subprocess.run([sys.executable, os.path.join(ROOT, "launch", "quickstart.py"),
                  f"--workdir={work}", "--size=tiny", "--num_utterances=40",
                  "--steps_scale=0.05", "--eval_batches=1"], check=True, timeout=1200)
  rows = json.load(open(os.path.join(work, "quickstart.json")))
  from configs import quickstart  # pylint: disable=import-outside-toplevel
  assert [r["stage"] for r in rows] == [n for n, _, _ in quickstart.STAGES]
  assert all("wer" in r for r in rows if r["stage"] != "bestrq")
  row = json.loads(open(os.path.join(work, "corpus", "test.jsonl")).readline())
  out = subprocess.run([sys.executable, os.path.join(ROOT, "launch", "transcribe.py"),
                        f"--checkpoint={os.path.join(work, 'grpo')}",
                        os.path.join(work, "corpus", row["audio"])],
                       check=True, capture_output=True, text=True, timeout=600)
  assert os.path.basename(row["audio"]) in out.stdout


def test_stage_minutes_splits_what_is_left_and_keeps_to_the_budget():
  from configs import quickstart  # pylint: disable=import-outside-toplevel
  names = [n for n, _, _ in quickstart.STAGES]
  # a run whose stages take 0.4 min each beyond their training (setup, scoring), after a
  # 1-minute corpus synthesis, each training for exactly what it is given
  elapsed, overheads, given = 1.0, [], {}
  for i, name in enumerate(names):
    given[name] = quickstart.stage_minutes(19.0, elapsed, names[i:], overheads)
    elapsed += given[name] + 0.4
    overheads.append(0.4)
  assert 18.5 < elapsed <= 19.0
  assert max(given, key=given.get) == "s0"
  # a stage that overran leaves less to the others, never less than the floor
  late = quickstart.stage_minutes(19.0, 18.9, names[-2:], [0.4])
  assert late == 0.2
