"""notebooks/eval_wer.ipynb executed headlessly on a checkpoint trained in the test."""

import json
import os

import pytest

from tests.conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_eval_notebook_runs_and_reports_jiwer_scores(asr_workdir, corpus, tmp_path, monkeypatch):
  report = str(tmp_path / "report.json")
  monkeypatch.setenv("FUN_ASR_CHECKPOINT", asr_workdir)
  monkeypatch.setenv("FUN_ASR_MANIFEST", corpus["test"])
  monkeypatch.setenv("FUN_ASR_REPORT", report)
  monkeypatch.setenv("MPLBACKEND", "Agg")
  nb = nbformat.read(os.path.join(ROOT, "notebooks", "eval_wer.ipynb"), as_version=4)
  nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": ROOT}}).execute()
  out = json.load(open(report))
  import jiwer  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.text import normalize as norm  # pylint: disable=import-outside-toplevel
  rows = [u for u in out["utterances"] if norm.normalize(u["ref"])]
  assert rows and os.path.exists(report.replace(".json", ".png"))
  want = jiwer.wer([" ".join(norm.mixed_units(u["ref"])) for u in rows],
                   [" ".join(norm.mixed_units(u["hyp"])) or "" for u in rows])
  assert out["paths"]["LLM"]["mer"] == pytest.approx(want)
